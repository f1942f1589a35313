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

``sigma`` is the logistic sigmoid, or with ``hard_sigmoid=True`` the Keras hard sigmoid
:math:`\max(0, \min(1, 0.2u + 0.5))`; ``tanh`` is never replaced.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .theta import ARCHS, check_arch

__all__ = ["TABLE1", "ArchInfo", "reference_step", "reference_output", "unrolled_cell_state",
           "hard_sigmoid", "logistic"]


@dataclass(frozen=True)
class ArchInfo:
    """Table 1 metadata of one architecture (LaTeX strings, as the Table 1 chapter renders them)."""

    name: str          #: column title of Table 1
    citation: str
    state: str         #: s^t
    K: str             #: set of gate subscripts
    p: str             #: output p(s^t, {u_k^t})
    g: str             #: g_k of eq. (1b) ("." when none)
    f: str             #: state update f of eq. (1c)
    update: str        #: the update written out step by step (display math)
    gates: tuple       #: gates stored in Theta (ARCHS[arch])


TABLE1: dict[str, ArchInfo] = {
    "vanilla": ArchInfo(
        "Vanilla RNN", "Chen et al. (2018)", r"\mathbf{h}^t", r"\{f\}", r"\mathbf{s}^t", ".",
        r"\tanh(\mathbf{u}_f^t)",
        r"\mathbf{h}^t = \tanh(\mathbf{u}_f^t),\quad \mathbf{u}_f^t = \mathbf{W}_f\mathbf{h}^{t-1}"
        r" + \mathbf{U}_f\mathbf{z}^t + \mathbf{b}_f", ARCHS["vanilla"]),
    "minimal": ArchInfo(
        "Minimal RNN", "Chen et al. (2018)", r"\mathbf{h}^t", r"\{f, r\}", r"\mathbf{s}^t", ".",
        r"\sigma(\mathbf{u}_f^t)\circ\mathbf{s}^{t-1} + (\mathbf{1}-\sigma(\mathbf{u}_f^t))\circ\mathbf{x}^t",
        r"\mathbf{x}^t = \tanh(\mathbf{u}_r^t),\quad \mathbf{h}^t = \sigma(\mathbf{u}_f^t)\circ"
        r"\mathbf{h}^{t-1} + (\mathbf{1}-\sigma(\mathbf{u}_f^t))\circ\mathbf{x}^t", ARCHS["minimal"]),
    "gru": ArchInfo(
        "GRU", "Cho et al. (2014)", r"\mathbf{h}^t", r"\{f, r\}", r"\mathbf{s}^t", r"\sigma(\mathbf{u}_r)",
        r"\sigma(\mathbf{u}_f^t)\circ\mathbf{s}^{t-1} + (\mathbf{1}-\sigma(\mathbf{u}_f^t))\circ\tanh(\mathbf{u}_{r_2}^t)",
        r"\mathbf{u}_{r_2}^t = \mathbf{W}_{r_2}(\sigma(\mathbf{u}_r^t)\circ\mathbf{h}^{t-1}) + "
        r"\mathbf{U}_{r_2}\mathbf{z}^t + \mathbf{b}_{r_2},\quad \mathbf{h}^t = \sigma(\mathbf{u}_f^t)"
        r"\circ\mathbf{h}^{t-1} + (\mathbf{1}-\sigma(\mathbf{u}_f^t))\circ\tanh(\mathbf{u}_{r_2}^t)", ARCHS["gru"]),
    "peephole_lstm": ArchInfo(
        "Peephole LSTM", "Gers et al. (2002)", r"\mathbf{c}^t", r"\{i, f, r, o\}",
        r"\sigma(\mathbf{u}_o^t)\circ\tanh(\mathbf{s}^t)", ".",
        r"\sigma(\mathbf{u}_f^t)\circ\mathbf{s}^{t-1} + \sigma(\mathbf{u}_i^t)\circ\tanh(\mathbf{u}_r^t)",
        r"\mathbf{u}_k^t = \mathbf{W}_k\mathbf{c}^{t-1} + \mathbf{U}_k\mathbf{z}^t + \mathbf{b}_k,\quad"
        r" \mathbf{c}^t = \sigma(\mathbf{u}_f^t)\circ\mathbf{c}^{t-1} + \sigma(\mathbf{u}_i^t)\circ"
        r"\tanh(\mathbf{u}_r^t)", ARCHS["peephole_lstm"]),
    "lstm": ArchInfo(
        "LSTM", "Hochreiter & Schmidhuber (1997)", r"\mathbf{h}^t", r"\{i, f, r, o\}", r"\mathbf{s}^t", ".",
        r"\sigma(\mathbf{u}_o^t)\circ\tanh\Big(\prod_{l=1}^t\sigma(\mathbf{u}_f^l)\circ\mathbf{c}^0 + "
        r"\sum_{j=1}^t \big(\textstyle\prod_{l=j+1}^t\sigma(\mathbf{u}_f^l)\big)\circ\sigma(\mathbf{u}_i^j)"
        r"\circ\tanh(\mathbf{u}_r^j)\Big)",
        r"\mathbf{c}^t = \sigma(\mathbf{u}_f^t)\circ\mathbf{c}^{t-1} + \sigma(\mathbf{u}_i^t)\circ"
        r"\tanh(\mathbf{u}_r^t),\quad \mathbf{h}^t = \sigma(\mathbf{u}_o^t)\circ\tanh(\mathbf{c}^t)",
        ARCHS["lstm"]),
}


def logistic(x):
    """Logistic sigmoid :math:`1/(1+e^{-x})`, stable for large ``|x|``."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))


def hard_sigmoid(x):
    """Keras hard sigmoid :math:`\\max(0, \\min(1, 0.2x + 0.5))`."""
    return np.clip(0.2 * np.asarray(x, dtype=float) + 0.5, 0.0, 1.0)


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
        One of ``vanilla, minimal, gru, peephole_lstm, lstm``.
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
    P = _check_params(arch, params)
    sig = globals()["hard_sigmoid"] if hard_sigmoid else logistic
    z = np.asarray(z, dtype=float)
    if arch == "lstm":
        if not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise ValueError("state for arch='lstm' must be a tuple (h, c)")
        h, c = (np.asarray(a, dtype=float) for a in state)
        u = {g: _pre(P, g, h, z) for g in ("i", "f", "r", "o")}
        c_new = sig(u["f"]) * c + sig(u["i"]) * np.tanh(u["r"])          # eq. (16)
        h_new = sig(u["o"]) * np.tanh(c_new)
        return ((h_new, c_new), h_new) if return_output else (h_new, c_new)
    s = np.asarray(state, dtype=float)
    if arch == "vanilla":
        new = np.tanh(_pre(P, "f", s, z))
        out = new
    elif arch == "minimal":
        g = sig(_pre(P, "f", s, z))
        new = g * s + (1 - g) * np.tanh(_pre(P, "r", s, z))
        out = new
    elif arch == "gru":
        g = sig(_pre(P, "f", s, z))
        r = sig(_pre(P, "r", s, z))
        u2 = _pre(P, "r2", r * s, z)                                       # eq. (1b)
        new = g * s + (1 - g) * np.tanh(u2)
        out = new
    else:  # peephole_lstm: s = c
        u = {k: _pre(P, k, s, z) for k in ("i", "f", "r", "o")}
        new = sig(u["f"]) * s + sig(u["i"]) * np.tanh(u["r"])
        out = sig(u["o"]) * np.tanh(new)
    return (new, out) if return_output else new


def reference_output(arch: str, state, z, params: dict, hard_sigmoid: bool = False):
    """The output :math:`p^t` (Table 1, row p) produced by :func:`reference_step` from ``state``."""
    return reference_step(arch, state, z, params, hard_sigmoid, return_output=True)[1]


def unrolled_cell_state(c0, uf_seq, ui_seq, ur_seq, hard_sigmoid: bool = False):
    r"""The LSTM cell state of Table 1 in unrolled form (eq. (16) summed):
    :math:`c^t = \prod_{l\le t}\sigma(u_f^l) c^0 + \sum_j \prod_{l=j+1}^t\sigma(u_f^l)\,
    \sigma(u_i^j)\tanh(u_r^j)`. Sequences have a leading time axis."""
    sig = hard_sigmoid_fn if hard_sigmoid else logistic
    F = sig(np.asarray(uf_seq, dtype=float))
    T = F.shape[0]
    c = np.prod(F, axis=0) * np.asarray(c0, dtype=float)
    for j in range(T):
        c = c + np.prod(F[j + 1:], axis=0) * sig(ui_seq[j]) * np.tanh(ur_seq[j])
    return c


hard_sigmoid_fn = hard_sigmoid
