"""CUDA-graph capture of the training step (:func:`rnn_mft.train.fit`'s ``cuda_graphs``).

On CUDA the model's training forward and backward are captured once as CUDA graphs
(``torch.cuda.make_graphed_callables``) and replayed every step, which removes the per-kernel
launch cost of the Python time loops; the arithmetic is the same. Not with h-detach (its mask is
drawn on the host every step); a capture that fails falls back to the ordinary path.

A run's *plan* is a dict: ``want`` (capture at the first step), ``note`` (``"on"`` or ``"off:
<why>"``, what ``meta["cuda_graphs"]`` says), and once captured ``fwd`` (the graphed forward) and
``shape`` (the batch shape it was captured for).
"""
from __future__ import annotations

import sys

import torch

from .metrics import member_logits

__all__ = ["MembersForward", "plan", "capture"]


class MembersForward(torch.nn.Module):
    """``(M, B, C)`` logits of ``model`` as a module's forward (what the CUDA graph captures)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return member_logits(self.model, x)


def plan(model, device, cuda_graphs: bool | None = None, from_settings: bool = False) -> dict:
    """Whether this run captures CUDA graphs: ``{"want": bool, "note": "on" | "off: <why>"}``.
    ``cuda_graphs``: fit's argument (None: ``from_settings``, the ``RNN_MFT_CUDA_GRAPHS`` setting,
    which a CPU run ignores; an explicit True on a CPU is a ``ValueError``)."""
    explicit = cuda_graphs is not None
    want = bool(cuda_graphs) if explicit else bool(from_settings)
    if not want:
        return {"want": False, "note": "off"}
    if device.type != "cuda":
        if explicit:
            raise ValueError(f"cuda_graphs=True needs a CUDA device; this run is on {device}")
        return {"want": False, "note": f"off: needs CUDA (this run is on {device})"}
    if any(getattr(getattr(model, "cell", None), "h_detach", ()) or ()):
        return {"want": False, "note": "off: h-detach draws its mask on the host every step"}
    return {"want": True, "note": "off: not captured yet", "fwd": None}


def capture(graphs: dict, model, x) -> None:
    """Capture the training forward and backward on the batch ``x`` (``graphs`` updated in place);
    a failure falls back to the ordinary path, with a warning."""
    try:
        graphs["fwd"] = torch.cuda.make_graphed_callables(MembersForward(model), (x,))
        graphs["shape"] = x.shape
        graphs["note"] = "on"
    except Exception as exc:                      # noqa: BLE001 (any capture failure: run without graphs)
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        graphs.update(want=False, fwd=None, note=f"off: capture failed ({type(exc).__name__}: {first})")
        print(f"rnn_mft: CUDA graph capture failed, training without graphs: {type(exc).__name__}: {first}",
              file=sys.stderr)
