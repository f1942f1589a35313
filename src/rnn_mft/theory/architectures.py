r"""The architectures of Table 1 in the form of eq. (1), as plain numpy reference updates.

Every architecture has pre-activations of the form (1a),

.. math:: u_k^t = W_k s^{t-1} + U_k z^t + b_k,

(the GRU also one of the form (1b), :math:`u_{r_2}^t = W_{r_2} D_{\sigma(u_r^t)} s^{t-1} +
U_{r_2} z^t + b_{r_2}`), and a state update :math:`s^t = f(s^{t-1}, \{u_k\})` (1c) that is
affine in :math:`s^{t-1}` and element-wise. The reading of Table 1 used throughout the library:

``vanilla`` (K = {f})
    :math:`s^t = h^t = \tanh(u_f^t)`. Table 1 prints ``Id`` in the f row; the vanilla RNN of
    Chen, Pennington & Schoenholz (2018) is :math:`h^t = \phi(W h^{t-1} + U z^t + b)`, and we
    take :math:`\phi = \tanh` (the case of Poole et al. 2016 / Schoenholz et al. 2016).
    :math:`D_0 = 0`.
``minimal`` (K = {f, r})
    :math:`s^t = \sigma(u_f^t) s^{t-1} + (1 - \sigma(u_f^t)) x^t` with
    :math:`x^t = \tanh(u_r^t)`, :math:`u_r` of form (1a). Table 1 leaves :math:`x^t`
    unspecified; in Chen et al.'s minimalRNN :math:`x^t = \Phi(z^t)` is a feature map of the
    input alone, which is the case :math:`\sigma_r^2 = 0` here.
``gru`` (K = {f, r}, plus r2 of form (1b) with :math:`g_r = \sigma`)
    :math:`s^t = \sigma(u_f^t) s^{t-1} + (1-\sigma(u_f^t)) \tanh(u_{r_2}^t)`.
``peephole_lstm`` (K = {i, f, r, o})
    state :math:`s = c`; gates read the cell state, :math:`u_k^t = W_k c^{t-1} + U_k z^t + b_k`;
    :math:`c^t = \sigma(u_f^t) c^{t-1} + \sigma(u_i^t)\tanh(u_r^t)`; output
    :math:`p^t = \sigma(u_o^t)\tanh(c^t)` (the output gate does not feed back).
``lstm`` (K = {i, f, r, o})
    state :math:`s = h` with the cell state :math:`c` carried along;
    :math:`c^t = \sigma(u_f^t) c^{t-1} + \sigma(u_i^t)\tanh(u_r^t)`,
    :math:`h^t = \sigma(u_o^t)\tanh(c^t)`. Table 1 writes the unrolled cell state; the printed
    product :math:`\prod_{l=j}^t \sigma(u_f^l)\sigma(u_i^l)\tanh(u_r^l)` is garbled, the
    unrolling of eq. (16) is
    :math:`c^t = \prod_{l=1}^t\sigma(u_f^l) c^0 + \sum_{j=1}^t \big(\prod_{l=j+1}^t
    \sigma(u_f^l)\big)\sigma(u_i^j)\tanh(u_r^j)`.

The updates themselves live in the architecture registry (:mod:`rnn_mft.arch`, one module per
column, e.g. :mod:`rnn_mft.arch.gru`); :func:`reference_step` runs a registered architecture's
``update`` with float64 numpy operators, which makes it the reference every fast path (the
simulator's torch step, the fused cells of :mod:`rnn_mft.nets`) is tested against.

``sigma`` is the logistic sigmoid, or with ``hard_sigmoid=True`` the Keras hard sigmoid
:math:`\max(0, \min(1, 0.2u + 0.5))`; ``tanh`` is never replaced.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import arch as _arch
from ..arch import NUMPY, NUMPY_HARD, ArchInfo, hard_sigmoid, logistic
from .theta import ARCHS, check_arch

__all__ = ["TABLE1", "ArchInfo", "reference_step", "reference_output", "unrolled_cell_state",
           "hard_sigmoid", "logistic"]

#: Table 1: ``{arch: ArchInfo}`` of every registered architecture with an ``info`` (the paper's five
#: first, then any registered since: live, :class:`rnn_mft.arch.Live`)
TABLE1: Mapping[str, ArchInfo] = _arch.Live(lambda name: _arch.get(name).info, keep=lambda a: a.info is not None)


def _check_params(arch, params, N=None):
    gates = ARCHS[arch]
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict gate -> (W, U, b); got {type(params).__name__}")
    for g in params:
        if g not in gates:
            raise ValueError(f"unknown gate {g!r} for arch={arch!r}; allowed gates: {', '.join(gates)}")
    for g in gates:
        if g not in params:
            raise ValueError(f"missing gate {g!r} for arch={arch!r}; required gates: {', '.join(gates)}")
    return {g: tuple(np.asarray(a, dtype=float) for a in params[g]) for g in gates}


def _pre(P, g, s, z):
    """u_g = W_g s + U_g z + b_g (eq. (1a)) for states/inputs with a leading batch shape."""
    W, U, b = P[g]
    return s @ W.T + z @ U.T + b


def reference_step(arch: str, state, z, params: dict, hard_sigmoid: bool = False,
                   return_output: bool = False):
    r"""One step of ``arch`` exactly as Table 1 writes it (eqs. (1a)-(1c)), in numpy float64.

    Parameters
    ----------
    arch : str
        One of ``vanilla, minimal, gru, peephole_lstm, lstm``, or an architecture registered with
        :func:`rnn_mft.arch.register` (its ``update`` is run with float64 numpy operators).
    state : array (..., N), or tuple ``(h, c)`` of two such arrays for ``lstm``
        :math:`s^{t-1}` (``c^{t-1}`` for ``peephole_lstm``); any leading batch shape.
    z : array (..., n_in)
        Input :math:`z^t` (same leading shape as the state, or broadcastable).
    params : dict
        ``{gate: (W, U, b)}`` with ``W`` (N, N), ``U`` (N, n_in), ``b`` (N,), for every gate of
        :data:`~rnn_mft.theory.ARCHS` ``[arch]``.
    hard_sigmoid : bool
        Use :func:`hard_sigmoid` for the gates instead of the logistic sigmoid.
    return_output : bool
        Also return the output :math:`p^t` of Table 1 (``(new_state, p)``).

    Returns
    -------
    new_state : array (..., N) or tuple ``(h, c)`` for ``lstm``
        :math:`s^t` (``(h^t, c^t)`` for the LSTM).
    """
    check_arch(arch)
    A = _arch.get(arch)
    P = _check_params(arch, params)
    ops = NUMPY_HARD if hard_sigmoid else NUMPY
    z = np.asarray(z, dtype=float)
    if len(A.state) > 1:
        if not (isinstance(state, (tuple, list)) and len(state) == len(A.state)):
            raise ValueError(f"state for arch={arch!r} must be a tuple ({', '.join(A.state)})")
        state = tuple(np.asarray(a, dtype=float) for a in state)
    else:
        state = np.asarray(state, dtype=float)

    def pre(g, x):
        return _pre(P, g, x, z)

    new = A.update(pre, state, ops)                                       # eq. (1c) / (16)
    return (new, A.output(pre, state, new, ops)) if return_output else new


def reference_output(arch: str, state, z, params: dict, hard_sigmoid: bool = False):
    """The output :math:`p^t` (Table 1, row p) produced by :func:`reference_step` from ``state``."""
    return reference_step(arch, state, z, params, hard_sigmoid, return_output=True)[1]


def unrolled_cell_state(c0, uf_seq, ui_seq, ur_seq, hard_sigmoid: bool = False):
    r"""The LSTM cell state of Table 1 in unrolled form (eq. (16) summed):
    :math:`c^t = \prod_{l\le t}\sigma(u_f^l) c^0 + \sum_j \prod_{l=j+1}^t\sigma(u_f^l)\,
    \sigma(u_i^j)\tanh(u_r^j)`. Sequences have a leading time axis."""
    sig = _hard_sigmoid if hard_sigmoid else logistic
    F = sig(np.asarray(uf_seq, dtype=float))
    T = F.shape[0]
    c = np.prod(F, axis=0) * np.asarray(c0, dtype=float)
    for j in range(T):
        c = c + np.prod(F[j + 1:], axis=0) * sig(ui_seq[j]) * np.tanh(ur_seq[j])
    return c


_hard_sigmoid = hard_sigmoid
hard_sigmoid_fn = hard_sigmoid
