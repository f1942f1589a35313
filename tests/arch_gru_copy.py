"""A copy of the GRU under a new name, as a new contributor would add an architecture
(tests/test_new_architecture.py; CONTRIBUTING.md, "Adding an architecture").

One module with an ``ARCH`` record, and one ``rnn_mft.arch.register(module)`` call. It keeps the
GRU's fused loop (``fused="gru_loop"``), its presets and its Table 1 row; it does not claim the
stock ``torch.nn.GRU`` (``stock=None``: that stays the GRU's).
"""
import dataclasses

from rnn_mft.arch import gru

ARCH = dataclasses.replace(gru.ARCH, name="gru_copy", stock=None,
                           info=dataclasses.replace(gru.INFO, name="GRU (copy)"))
