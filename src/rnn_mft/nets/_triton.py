r"""Fused element-wise steps of the two LSTM time loops, written in Triton (opt-in, for CUDA).

Per time step the LSTM loops of ``rnn_mft.nets._recurrence`` launch one batched matrix
product and six element-wise kernels forward (gates, cell update, output), and one product and
four element-wise kernels backward. On a GPU each launch costs more than its arithmetic at the
widths of the paper, so these two kernels do each direction's element-wise work in one pass:

* :func:`lstm_forward_step`: from the pre-activations ``u = [u_i, u_f, u_o, u_r]`` of step
  ``t`` (in place: the gate values, as the loop stores them for the backward pass), the cell
  state :math:`c_t = f \circ c_{t-1} + i \circ g` and, for the LSTM, :math:`h_t = o \circ
  \tanh c_t`;
* :func:`lstm_backward_step`: from the carried gradient, the chunk's precomputed gate
  derivatives ``P`` and the forget gate, the gradient of the pre-activations ``dA`` of step
  ``t`` and the carried gradient for step ``t - 1``.

They compute what the torch loops compute, in float32, with two differences in rounding:
:math:`\tanh` is evaluated as :math:`\mathrm{sign}(x)(1-e^{-2|x|})/(1+e^{-2|x|})` (with its
odd Taylor polynomial below :math:`|x| < 0.0625`; within about 1e-6 relative of ``torch.tanh``),
and products are fused differently. ``tests/test_triton.py`` runs them in Triton's interpreter on
the CPU (``TRITON_INTERPRET=1``) against the torch loops; ``benchmarks/gpu.py`` times them.

Switched on by ``RNN_MFT_TRITON=1`` for CUDA tensors when Triton is installed (default off);
``RNN_MFT_TRITON=interpret`` also runs them on CPU tensors (the interpreter must then be on,
``TRITON_INTERPRET=1`` before Triton is imported: tests only).
"""
from __future__ import annotations

import torch

from ..settings import current as current_settings

__all__ = ["enabled", "fused_lstm_steps_on", "lstm_forward_step", "lstm_backward_step"]

_BLOCK = 128
_kernels = None


def enabled(t: torch.Tensor) -> bool:
    """Whether the fused steps run for tensors like ``t`` (see the module docstring)."""
    mode = current_settings().triton          # RNN_MFT_TRITON: "off", "on" (1) or "interpret"
    if mode == "off":
        return False
    if not (t.is_cuda or mode == "interpret") or t.dtype != torch.float32:
        return False
    return _load() is not None


def fused_lstm_steps_on(device) -> bool:
    """Whether the LSTMs' fused Triton steps run for float32 tensors on ``device``
    (``RNN_MFT_TRITON``; see ``rnn_mft.nets._triton``)."""
    return enabled(torch.empty(0, device=device))


def _load():
    global _kernels
    if _kernels is None:
        try:
            _kernels = _build()
        except ImportError:
            _kernels = False
    return _kernels or None


def _build():
    import importlib

    import triton
    # through sys.modules (not the package attribute), so that a test that drops the module
    # builds the kernels anew, e.g. under Triton's interpreter
    k = importlib.import_module(__name__.rsplit(".", 1)[0] + "._triton_kernels")
    return {"fwd": k.fwd, "bwd": k.bwd, "cdiv": triton.cdiv}


def _ms(t: torch.Tensor):
    """Member and batch strides of a ``(M, B, K)`` view whose last axis is contiguous."""
    if t.dim() != 3 or t.stride(2) != 1:
        raise ValueError(f"fused LSTM step: expected a (M, B, K) view with a contiguous last axis, got shape "
                         f"{tuple(t.shape)} and strides {t.stride()}")
    return t.stride(0), t.stride(1)


def lstm_forward_step(Y: torch.Tensor, c_prev: torch.Tensor, c_out: torch.Tensor, h_out: torch.Tensor | None,
                      hard: bool) -> None:
    """One forward step in place: ``Y`` ``(M, B, 4N)`` pre-activations -> gate values; writes
    ``c_out`` and (LSTM, ``h_out`` not None) ``h_out``."""
    k = _load()
    M, B, GN = Y.shape
    N = GN // 4
    peep = h_out is None
    h = c_out if peep else h_out
    grid = (M * B, k["cdiv"](N, _BLOCK))
    k["fwd"][grid](Y, *_ms(Y), c_prev, *_ms(c_prev), c_out, *_ms(c_out), h, *_ms(h), B, N,
                   HARD=bool(hard), PEEP=peep, BLOCK=_BLOCK)


def lstm_backward_step(dc: torch.Tensor, dh: torch.Tensor | None, Q: torch.Tensor | None, P: torch.Tensor,
                       F: torch.Tensor, D: torch.Tensor, dC_prev: torch.Tensor | None, out: torch.Tensor) -> None:
    """One backward step. LSTM (``dh``, ``Q`` given): :math:`dc \\leftarrow dc + dh\\,Q`, then
    ``D = P * [dc, dc, dh, dc]`` per gate block; peephole (``dh = Q = None``): ``D = P * dc`` in
    the i, f and r blocks (the o block is left as it is). Then ``out = dc * F (+ dC_prev)``
    (``out`` may be ``dc`` itself)."""
    k = _load()
    M, B, GN = P.shape
    N = GN // 4
    peep = dh is None
    dh_, Q_ = (dc, dc) if peep else (dh, Q)
    dcp = out if dC_prev is None else dC_prev
    grid = (M * B, k["cdiv"](N, _BLOCK))
    k["bwd"][grid](dc, *_ms(dc), dh_, *_ms(dh_), Q_, *_ms(Q_), P, *_ms(P), F, *_ms(F), D, *_ms(D),
                   dcp, *_ms(dcp), out, *_ms(out), B, N, PEEP=peep, HAS_DCP=dC_prev is not None, BLOCK=_BLOCK)
