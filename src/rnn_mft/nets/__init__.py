"""PyTorch cells of Table 1 (tied and untied weights, single networks and ensembles) and their
initializers (Theta-sampling, standard, critical, chrono; stock ``torch.nn.LSTM``/``GRU`` too).

Modules: ``cells`` (:class:`RecurrentCell`, :func:`make`), ``classifier``
(:class:`SequenceClassifier`, :func:`stack`), ``init`` (the initializers); the time loops with
hand-written backward passes live in the private ``_recurrence``, whose public helpers are
re-exported here: :func:`hard_sigmoid` and :func:`flush_denormal` (a context manager that
flushes denormal floats to zero on the CPU, which the training engine wraps around every run:
vanishing gradients otherwise fall into slow denormal arithmetic); :func:`fused_lstm_steps_on`
says whether the LSTMs' opt-in fused Triton steps (private ``_triton``, ``RNN_MFT_TRITON=1``)
run on a device.

>>> from rnn_mft import nets, theory
>>> cell = nets.make("peephole_lstm", n_in=1, n_hidden=32)
>>> _ = nets.init_(cell, nets.critical_theta("peephole_lstm"))
"""
from .._deps import require_torch

require_torch(__name__)      # without torch: an ImportError naming the extra [torch]

from ._recurrence import flush_denormal, hard_sigmoid
from ._triton import fused_lstm_steps_on
from .cells import GateWeights, RecurrentCell, make
from .classifier import SequenceClassifier, StockSequenceClassifier, make_classifier, stack
from .init import (STOCK_GATE_ORDER, chrono_init_, critical_init_, critical_theta, init_, standard_init_,
                   theta_of_module)

__all__ = ["GateWeights", "RecurrentCell", "SequenceClassifier", "StockSequenceClassifier", "make",
           "make_classifier", "stack", "hard_sigmoid", "flush_denormal", "fused_lstm_steps_on", "init_",
           "standard_init_", "critical_theta", "critical_init_", "chrono_init_", "theta_of_module", "STOCK_GATE_ORDER"]
