r"""Recurrent cells of Table 1 of the paper, tied and untied, single networks and ensembles.

Every architecture is written in the form of eq. (1): pre-activations

.. math::
    u_k^t = W_k s^{t-1} + U_k z^t + b_k \quad (1a),\qquad
    u_{k_2}^t = W_{k_2} D_{g_k(u_k^t)} s^{t-1} + U_{k_2} z^t + b_{k_2} \quad (1b),

and a state update :math:`s^t = f(s^{t-1}, \{u_k^t\})` (1c), with the gates ``k`` of
:data:`rnn_mft.theory.ARCHS`:

``vanilla`` (gates ``f``)
    :math:`s^t = \tanh(u_f^t)`. Table 1 lists the vanilla RNN with :math:`K=\{f\}` and
    output :math:`p = s^t`; its single pre-activation passes through the tanh of Chen,
    Pennington & Schoenholz (2018), :math:`h^t = \tanh(W h^{t-1} + U z^t + b)`.
``minimal`` (gates ``f, r``)
    :math:`s^t = \sigma(u_f^t) \circ s^{t-1} + (1 - \sigma(u_f^t)) \circ x^t` with the
    feature map :math:`x^t = \tanh(u_r^t)`, :math:`u_r^t = W_r s^{t-1} + U_r z^t + b_r`.
    Table 1 gives the update with an unspecified :math:`x^t` and :math:`K=\{f, r\}`; in Chen
    et al.'s minimalRNN :math:`x^t = \Phi(z^t)` is a feature map of the input alone, which is
    the case :math:`\sigma_r^2 = 0` here (the weight :math:`W_r` is kept so that every gate
    has the form (1a) and the same :math:`\Theta` fields).
``gru`` (gates ``f, r, r2``)
    :math:`u_{r_2}^t = W_{r_2} (\sigma(u_r^t) \circ s^{t-1}) + U_{r_2} z^t + b_{r_2}` (1b),
    :math:`s^t = \sigma(u_f^t) \circ s^{t-1} + (1-\sigma(u_f^t)) \circ \tanh(u_{r_2}^t)`.
``peephole_lstm`` (gates ``i, f, r, o``)
    state :math:`s = c`, :math:`u_k^t = W_k c^{t-1} + U_k z^t + b_k`,
    :math:`c^t = \sigma(u_f^t) \circ c^{t-1} + \sigma(u_i^t) \circ \tanh(u_r^t)`, output
    :math:`p^t = \sigma(u_o^t) \circ \tanh(c^t)`.
``lstm`` (gates ``i, f, r, o``)
    state :math:`s = h`, :math:`u_k^t = W_k h^{t-1} + U_k z^t + b_k`,
    :math:`c^t = \sigma(u_f^t) c^{t-1} + \sigma(u_i^t) \tanh(u_r^t)`,
    :math:`h^t = \sigma(u_o^t) \tanh(c^t)`, output :math:`p = h`.

:math:`\sigma` is the logistic sigmoid, or with ``hard_sigmoid=True`` the Keras hard sigmoid
:math:`\max(0,\min(1, 0.2u + 0.5))` (used for the paper's CIFAR-10 LSTM); ``tanh`` is
never replaced. Initial states are zero.

**Tied** cells use one set of weights at every step. **Untied** cells (``untied=T``) hold an
independent :math:`(W_k, U_k, b_k)` for every step ``t < T`` (the untied-weights assumption of
Section 4.1); sequences longer than ``T`` are refused.

**Ensembles** (``members=M``) hold ``M`` independent networks of the same architecture and
shape, stored with a leading member axis and run with batched matrix products: one forward pass
advances all members. A single network is an ensemble of one whose accessors drop that axis.

Parameters are stored fused over gates and transposed for speed (``weight_hh[..., :, j*N:(j+1)*N]
= W_k^T`` for the ``j``-th gate ``k`` of ``cell.storage_order``, which is ``i, f, o, r`` for the
LSTMs and the order of :data:`~rnn_mft.theory.ARCHS` otherwise);
:meth:`RecurrentCell.gate` returns per-gate views in
the paper's convention (``W`` of shape ``(N, N)``, ``U`` of shape ``(N, n_in)``, ``b`` of shape
``(N,)``) that write through to the parameters.

The classifiers built on these cells (a read-out of the last step, ensembles of them) are in
:mod:`rnn_mft.nets.classifier`; the time loops with their hand-written backward passes in
``rnn_mft.nets._recurrence``.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from .. import arch as _arch
from ..theory.theta import ARCHS, check_arch
from . import _loops, _recurrence
from ._draw import standard_cell_init_

__all__ = ["RecurrentCell", "GateWeights", "make"]


class GateWeights(NamedTuple):
    """Views of one gate's parameters: ``W`` (recurrent), ``U`` (input), ``b`` (bias)."""

    W: torch.Tensor
    U: torch.Tensor
    b: torch.Tensor


def _pos_int(name: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "a positive int or None" if allow_none else "a positive int"
        raise ValueError(f"{name}={value!r} is not allowed; expected {allowed}")
    return value


class RecurrentCell(nn.Module):
    """One recurrent layer of architecture ``arch`` (see the module docstring).

    Weights are initialised by :func:`rnn_mft.nets.standard_init_` (Appendix C.5); use
    :func:`rnn_mft.nets.init_` to draw them from a :class:`~rnn_mft.theory.Theta`.

    Parameters
    ----------
    arch : str
        A registered architecture (:func:`rnn_mft.arch.names`: Table 1's five and any added).
    n_in, n_hidden : int
        Input size and width ``N``.
    untied : int or None
        ``None`` for tied weights, else the maximal sequence length ``T`` (one set of weights
        per time step).
    hard_sigmoid : bool
        Use the hard sigmoid for the gates.
    members : int or None
        ``None`` for a single network, else the number of ensemble members.
    h_detach : float or sequence of floats
        h-detach (Arpit et al. 2018; LSTMs only): in training (``model.train()`` with gradients
        enabled), at every step and for every member one Bernoulli draw with probability
        ``h_detach`` (one value, or one per member) decides whether the gradient through the
        recurrent product ``s_{t-1} W`` (``h_{t-1}`` of the LSTM; ``c_{t-1}`` of the peephole
        LSTM, whose gates read the cell state) is blocked for the whole batch; the cell-state
        path stays. Forward values are unchanged. Draws use torch's global CPU generator (the
        training engine seeds it and stores it in checkpoints, so resumed runs are exact).
    """

    def __init__(self, arch: str, n_in: int, n_hidden: int, untied: int | None = None,
                 hard_sigmoid: bool = False, members: int | None = None, h_detach=0.0):
        super().__init__()
        self.arch = check_arch(arch)
        self.n_in = _pos_int("n_in", n_in)
        self.n_hidden = _pos_int("n_hidden", n_hidden)
        self.untied = _pos_int("untied", untied, allow_none=True)
        self.members = _pos_int("members", members, allow_none=True)
        self.hard_sigmoid = bool(hard_sigmoid)
        self.gates = ARCHS[arch]
        self.storage_order = _arch.get(arch).storage_order
        self._loop = _loops.loop_for(arch)      # its fused loop (or autograd) and that loop's facts
        M, N, G = self.n_members, n_hidden, len(self.gates)
        lead = (M,) if self.untied is None else (M, self.untied)
        self.weight_hh = nn.Parameter(torch.empty(*lead, N, G * N))
        self.weight_ih = nn.Parameter(torch.empty(*lead, n_in, G * N))
        self.bias = nn.Parameter(torch.empty(*lead, G * N))
        self.h_detach = h_detach
        self.reset_parameters()

    # -- h-detach -------------------------------------------------------------------------
    @property
    def h_detach(self) -> tuple:
        """Per-member h-detach probabilities (a tuple of ``n_members`` floats in [0, 1])."""
        return self._h_detach

    @h_detach.setter
    def h_detach(self, p) -> None:
        M = self.n_members
        vals = [p] * M if isinstance(p, (int, float)) and not isinstance(p, bool) else list(p)
        if len(vals) != M:
            raise ValueError(f"h_detach={p!r} has {len(vals)} values; allowed: one float or one per member ({M})")
        out = []
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"h_detach={p!r}: {v!r} is not allowed; expected a probability in [0, 1]")
            out.append(float(v))
        if any(out) and not self._loop.detach:
            raise ValueError(f"h_detach={p!r} for arch={self.arch!r}; h-detach is defined for "
                             f"{_loops.detach_archs()} only (allowed for {self.arch!r}: 0)")
        self._h_detach = tuple(out)

    def draw_detach(self, T: int, device=None):
        """The h-detach mask ``(members, T)`` (True: detached step) for one forward pass, or
        ``None`` when h-detach is off, in eval mode, or without gradients."""
        if not any(self._h_detach) or not self.training or not torch.is_grad_enabled():
            return None
        p = torch.tensor(self._h_detach, dtype=torch.float32).unsqueeze(1)
        mask = torch.rand(self.n_members, T) < p
        return mask.to(device) if device is not None else mask

    # -- structure ------------------------------------------------------------------------
    @property
    def n_members(self) -> int:
        return self.members or 1

    @property
    def is_ensemble(self) -> bool:
        return self.members is not None

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The standard initialization of Appendix C.5 (:func:`rnn_mft.nets.standard_init_`)."""
        standard_cell_init_(self, generator=generator)

    def extra_repr(self) -> str:
        hd = f", h_detach={list(self._h_detach)}" if any(self._h_detach) else ""
        return (f"arch={self.arch!r}, n_in={self.n_in}, n_hidden={self.n_hidden}, untied={self.untied}, "
                f"hard_sigmoid={self.hard_sigmoid}, members={self.members}{hd}")

    def gate(self, k: str, member: int | None = None) -> GateWeights:
        """Views ``(W, U, b)`` of gate ``k`` in the paper's convention.

        Shapes: ``W (…, N, N)``, ``U (…, N, n_in)``, ``b (…, N)`` where ``…`` is ``(M,)`` for an
        ensemble (nothing for a single network, or with ``member`` given) followed by ``(T,)``
        for untied cells. In-place changes (``copy_``, ``normal_``) write to the parameters.
        """
        if k not in self.gates:
            raise ValueError(f"unknown gate {k!r} for arch={self.arch!r}; allowed gates: {', '.join(self.gates)}")
        j, N = self.storage_order.index(k), self.n_hidden
        sl = slice(j * N, (j + 1) * N)
        W = self.weight_hh.data[..., sl].transpose(-1, -2)
        U = self.weight_ih.data[..., sl].transpose(-1, -2)
        b = self.bias.data[..., sl]
        if member is not None:
            if not (isinstance(member, int) and 0 <= member < self.n_members):
                raise ValueError(f"member={member!r} is not allowed; expected an int in [0, {self.n_members})")
            return GateWeights(W[member], U[member], b[member])
        if not self.is_ensemble:
            return GateWeights(W[0], U[0], b[0])
        return GateWeights(W, U, b)

    def reference_params(self, member: int = 0, t: int = 0) -> dict:
        """``{gate: (W, U, b)}`` as numpy arrays for member ``member`` (and step ``t`` if
        untied): the ``params`` argument of :func:`rnn_mft.theory.reference_step`."""
        out = {}
        for k in self.gates:
            W, U, b = self.gate(k, member=member)
            if self.untied is not None:
                W, U, b = W[t], U[t], b[t]
            out[k] = tuple(a.detach().cpu().double().numpy().copy() for a in (W, U, b))
        return out

    # -- running --------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() == 4 and not self.is_ensemble:
            raise ValueError(f"x has shape {tuple(x.shape)}; a single network takes (batch, T, n_in)")
        if x.dim() not in (3, 4):
            raise ValueError(f"x has shape {tuple(x.shape)}; allowed: (batch, T, n_in) or, for an ensemble, "
                             f"(members, batch, T, n_in)")
        if x.dim() == 4 and x.shape[0] != self.n_members:
            raise ValueError(f"x has {x.shape[0]} members (shape {tuple(x.shape)}); this ensemble has "
                             f"members={self.n_members}")
        if x.shape[-1] != self.n_in:
            raise ValueError(f"input size {x.shape[-1]} (x of shape {tuple(x.shape)}) does not match "
                             f"n_in={self.n_in}")
        T = x.shape[-2]
        if T < 1:
            raise ValueError(f"sequence length T={T} must be at least 1")
        if self.untied is not None and T > self.untied:
            raise ValueError(f"sequence length T={T} exceeds this untied model's length untied={self.untied}; "
                             f"allowed: T <= {self.untied}")
        return x

    def input_steps(self, x: torch.Tensor) -> torch.Tensor:
        """The input in the internal layout ``(M, T, B, n_in)`` (a shared input ``(B, T, n_in)``
        is expanded over the members without a copy)."""
        if x.dim() == 3:                                   # shared input (B, T, n_in)
            B, T, n = x.shape
            return x.transpose(0, 1).contiguous().expand(self.n_members, T, B, n)
        return x.transpose(1, 2).contiguous()              # per-member input (M, B, T, n_in)

    def _input_weights(self, T: int):
        if self.untied is None:
            return self.weight_ih, self.bias
        return self.weight_ih[:, :T], self.bias[:, :T]

    def input_projection(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`U_k z^t + b_k` for all gates and steps, ``(M, T, B, G*N)``, in one product."""
        X = self.input_steps(x)
        return _recurrence.project(X, *self._input_weights(X.shape[1]), self.untied is not None)

    def _zero_state(self, X: torch.Tensor, M: int):
        z = X.new_zeros(M, X.shape[2], self.n_hidden, dtype=self.weight_hh.dtype)
        return (z, z) if self._loop.pair_state else z

    def _run_internal(self, X, U, b, W, state0, detach):
        if X.is_cuda and torch.is_autocast_enabled("cuda"):
            with torch.autocast("cuda", enabled=False):   # the recurrence runs in float32
                state0 = tuple(s.float() for s in state0) if self._loop.pair_state else state0.float()
                return _loops.run_projected(self.arch, X.float(), U.float(), b.float(), W.float(), state0,
                                                 self.untied is not None, self.hard_sigmoid, detach)
        return _loops.run_projected(self.arch, X, U, b, W, state0, self.untied is not None, self.hard_sigmoid,
                                         detach)

    def _check_detach(self, detach, T: int, device):
        if detach is None:
            return self.draw_detach(T, device)
        if not isinstance(detach, torch.Tensor) or detach.dtype != torch.bool:
            raise ValueError("detach must be a bool tensor (members, T) or, for a single network, (T,)")
        if detach.dim() == 1:
            detach = detach.unsqueeze(0)
        if tuple(detach.shape) != (self.n_members, T):
            raise ValueError(f"detach has shape {tuple(detach.shape)}; expected (members, T) = {(self.n_members, T)}")
        if not self._loop.detach:
            raise ValueError(f"detach (h-detach) is defined for {_loops.detach_archs()} only, not arch={self.arch!r}")
        return detach.to(device)

    def run(self, x: torch.Tensor, state0=None, detach=None):
        """Internal layout: returns ``(S, O)`` with ``S (M, T, B, N)`` the states (``h`` for
        the LSTM, ``c`` for the peephole LSTM) and ``O`` the peephole output gates
        :math:`\\sigma(u_o^t)` / the LSTM cell states / ``None``. ``detach``: an explicit
        h-detach mask (bool, ``(members, T)``); by default it is drawn (:meth:`draw_detach`)."""
        x = self._check_input(x)
        X = self.input_steps(x)
        M, T, B, _ = X.shape
        U, b = self._input_weights(T)
        W = self.weight_hh if self.untied is None else self.weight_hh[:, :T]
        state0 = self._zero_state(X, M) if state0 is None else self._check_state0(state0, M, B)
        return self._run_internal(X, U, b, W, state0, self._check_detach(detach, T, X.device))

    def _check_state0(self, state0, M: int, B: int):
        """``state0`` in the internal layout ``(M, B, N)`` after checking it: a tensor ``(B, N)``
        (``(members, B, N)`` for an ensemble); for the LSTM an ``(h, c)`` pair (tuple or list) of two
        such tensors. Anything else is a ``ValueError`` naming what was given and what is allowed."""
        shape = (M, B, self.n_hidden) if self.is_ensemble else (B, self.n_hidden)
        lstm = self._loop.pair_state
        pair = isinstance(state0, (tuple, list)) and len(state0) == 2
        parts = tuple(state0) if lstm and pair else (state0,)
        if (lstm and not pair) or not all(isinstance(s, torch.Tensor) and tuple(s.shape) == shape for s in parts):
            def describe(s):
                if isinstance(s, torch.Tensor):
                    return f"a tensor of shape {tuple(s.shape)}"
                if isinstance(s, (tuple, list)):
                    return f"a {type(s).__name__} of {len(s)} ({', '.join(describe(v) for v in s)})"
                return f"a {type(s).__name__}"
            dims = "(members, batch, N)" if self.is_ensemble else "(batch, N)"
            want = "an (h, c) pair (tuple or list) of two tensors" if lstm else "a tensor"
            raise ValueError(f"state0 is {describe(state0)}; allowed for arch={self.arch!r}: {want} of shape "
                             f"{dims} = {shape}")
        if not self.is_ensemble:
            parts = tuple(s.unsqueeze(0) for s in parts)
        return parts if lstm else parts[0]

    def _index_tensor(self, order: tuple, device) -> torch.Tensor:
        """``torch.tensor(order)`` on ``device``, made once per order and device (no host-to-device
        copy per forward pass, so that the pass can be captured in a CUDA graph)."""
        cache = self.__dict__.setdefault("_index_cache", {})
        key = (order, str(device))
        if key not in cache:
            cache[key] = torch.tensor(order, device=device)
        return cache[key]

    def run_lengths(self, x: torch.Tensor, lengths: Sequence[int], detach=None):
        """States at each member's own last step: member ``m`` runs the first ``lengths[m]``
        steps of ``x``. Returns ``(s, o)``, each ``(M, B, N)`` (``o`` as ``O`` of :meth:`run`
        at that step, or ``None``).

        The steps run as a staircase: with the distinct lengths ``L_1 < L_2 < ...``, segment
        ``j`` runs steps ``[L_{j-1}, L_j)`` for the members with ``lengths[m] >= L_j`` only,
        starting from their states at the end of segment ``j - 1``. The sequential cost is
        ``max(lengths)`` steps and the arithmetic is ``sum(lengths)`` member-steps, as if every
        member had run alone on its own length. Gradients flow across segments through the
        initial-state gradients of the time loops."""
        x = self._check_input(x)
        X = self.input_steps(x)
        M, T, B, _ = X.shape
        L = [int(v) for v in lengths]
        if len(L) != M or min(L) < 1 or max(L) > T:
            raise ValueError(f"lengths={L!r}; allowed: {M} ints in [1, {T}] (T of the input)")
        detach = self._check_detach(detach, max(L), X.device)
        order = sorted(range(M), key=lambda m: -L[m])        # longest first: the active set is a prefix
        ident = order == list(range(M))
        order_t = None if ident else self._index_tensor(tuple(order), X.device)
        shared = x.dim() == 3
        s_last, o_last = [], []                               # per segment, shortest first
        state, t0 = None, 0
        for tb in sorted(set(L)):
            n_act = sum(1 for m in order if L[m] >= tb)
            idx = None if ident else order_t[:n_act]

            def sel(p, _n=n_act, _idx=idx):
                if _n == M and ident:
                    return p
                return p[:_n] if ident else p.index_select(0, _idx)

            if self.untied is None:
                U, b, W = sel(self.weight_ih), sel(self.bias), sel(self.weight_hh)
            else:
                U, b, W = (sel(p[:, t0:tb]) for p in (self.weight_ih, self.bias, self.weight_hh))
            if shared:
                Xs = X[:1, t0:tb].expand(n_act, -1, -1, -1)
            else:
                Xs = sel(X[:, t0:tb])
            if state is None:
                state0 = self._zero_state(X, n_act)
            else:
                state0 = tuple(s[:n_act] for s in state) if self._loop.pair_state else state[:n_act]
            det = None if detach is None else sel(detach[:, t0:tb])
            S, O = self._run_internal(Xs, U, b, W, state0, det)
            # the members that end here hold positions [n_next, n_act) of the order: one copy per
            # segment (so that its outputs can be freed), not one per member
            n_next = sum(1 for m in order if L[m] > tb)
            s_last.append(S[n_next:, -1].clone())
            o_last.append(None if O is None else O[n_next:, -1].clone())
            state = ((S[:n_next, -1].clone(), O[:n_next, -1].clone()) if self._loop.pair_state
                     else S[:n_next, -1].clone())
            del S, O
            t0 = tb
        # positions 0..M-1 of the order (the longest segment's members first), then member order
        s = torch.cat(s_last[::-1])
        o = None if o_last[0] is None else torch.cat(o_last[::-1])
        if not ident:
            inv = self._index_tensor(tuple(sorted(range(M), key=order.__getitem__)), X.device)
            s = s.index_select(0, inv)
            o = None if o is None else o.index_select(0, inv)
        return s, o

    def output(self, S: torch.Tensor, O: torch.Tensor | None) -> torch.Tensor:
        """The output :math:`p` of Table 1 from the internal states (any matching index)."""
        return self._loop.output(S, O)

    def forward(self, x: torch.Tensor, state0=None):
        """Run the cell over ``x``.

        ``x`` is ``(batch, T, n_in)`` (for an ensemble also ``(members, batch, T, n_in)``,
        one input per member). Returns ``(p, s_T)``: the outputs :math:`p^t` of Table 1 for all
        steps, ``(batch, T, N)`` (``(members, batch, T, N)`` for an ensemble), and the last state
        (``(h_T, c_T)`` for the LSTM). ``state0``: the initial state (default zeros), ``(batch, N)``
        (``(members, batch, N)`` for an ensemble); for the LSTM an ``(h, c)`` pair of them.
        """
        S, O = self.run(x, state0)
        P = self.output(S, O).transpose(1, 2)
        last = (S[:, -1], O[:, -1]) if self._loop.pair_state else S[:, -1]
        if not self.is_ensemble:
            P = P[0]
            last = tuple(v[0] for v in last) if self._loop.pair_state else last[0]
        return P, last


def make(arch: str, n_in: int, n_hidden: int, untied: int | None = None, hard_sigmoid: bool = False,
         members: int | None = None, h_detach=0.0) -> RecurrentCell:
    """A :class:`RecurrentCell` (see its docstring); ``untied=T`` unties the weights over ``T`` steps."""
    return RecurrentCell(arch, n_in, n_hidden, untied=untied, hard_sigmoid=hard_sigmoid, members=members,
                         h_detach=h_detach)
