r"""Time loops of the Table 1 architectures with hand-written backward passes.

*Why this module is large (~570 lines, over the ~500 of the rest of src/).* It holds the
hand-written kernels of the library: five time loops (vanilla, minimal, GRU, and the two LSTMs,
which share one chunked loop), each a forward and a backward pass written out step by step.
Splitting them across modules would separate each forward from its backward, and the LSTMs'
chunked projection from the loop that writes into its buffer; the loops are tested against
autograd (``tests/test_nets.py``) and against the float64 reference update of eq. (1)
(``tests/test_nets_vs_theory.py``).

Every architecture is run by one :class:`torch.autograd.Function` whose forward loop runs
without autograd (one batched matrix product and a few element-wise operations per step) and
whose backward loop computes the gradients of eq. (1) by hand; the weight gradients of all time
steps are then formed by batched matrix products over many steps at once. This keeps the
Python/autograd overhead per step at one kernel launch per operation, which is what lets the
tied cells run at about the speed of ``torch.nn.LSTM`` on CPU (see ``benchmarks/train.py``). With
``RNN_MFT_TRITON=1`` on CUDA the two LSTMs' element-wise work of a step runs as one fused Triton
kernel in each direction (``rnn_mft.nets._triton``, opt-in).

Shapes (``M`` ensemble members, ``T`` time steps, ``B`` batch, ``N`` width, ``G`` gates):

* ``A``: input contributions :math:`U_k z^t + b_k` of every gate, ``(M, T, B, G*N)``; formed by
  :func:`project` from ``X (M, T, B, n_in)``, ``U`` and ``b`` (``_loops.run_projected``). The two
  LSTMs take ``X, U, b`` themselves and form ``A`` chunk by chunk inside their loop, in place in
  their gate buffer, so that neither ``A`` nor its gradient exists as a whole (see the comment
  above :func:`_lstm_forward`);
* ``W``: recurrent weights, fused over gates and stored transposed so that
  :math:`u = s W`: ``(M, N, G*N)`` (tied) or ``(M, T, N, G*N)`` (untied);
* ``s0`` (and ``c0`` for the LSTM): initial state ``(M, B, N)``.

The gate order inside the fused ``G*N`` axis is the architecture's ``storage_order``
(:class:`rnn_mft.arch.Architecture`: the order of its gates, except ``i, f, o, r`` for the
LSTMs, which puts the three sigmoid gates next to each other); :mod:`rnn_mft.nets._loops`
pairs each loop with the architectures it is written for.
For the GRU the last block (``r2``) multiplies :math:`\sigma(u_r) \circ s` (eq. (1b)).

Denormal numbers are flushed to zero inside the loops (:func:`flush_denormal`): gradients that
vanish over hundreds of steps otherwise reach the denormal range, where CPU arithmetic is
several times slower (measured: a T=784 GRU backward 5x slower, for ``torch.nn.GRU`` too).
Values below ~1e-38 (float32) do not matter to training.
"""
from __future__ import annotations

import contextlib

import torch

from . import _triton

__all__ = ["hard_sigmoid", "gate_sigmoid", "project", "flush_denormal", "Vanilla", "Minimal", "GRU",
           "Peephole", "LSTM"]

_TINY = torch.tensor([1e-40], dtype=torch.float32)


def _ftz_on() -> bool:
    return bool((_TINY * 1.0).item() == 0.0)


@contextlib.contextmanager
def flush_denormal():
    """Flush denormals to zero on CPU within the block, restoring the previous setting."""
    was = _ftz_on()
    if not was:
        torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if not was:
            torch.set_flush_denormal(False)


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    r"""The piecewise-linear sigmoid :math:`\max(0, \min(1, 0.2x + 0.5))` of Keras (the
    ``recurrent_activation`` default of Keras' LSTM at the time of the paper)."""
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


def gate_sigmoid(x: torch.Tensor, hard: bool) -> torch.Tensor:
    return hard_sigmoid(x) if hard else torch.sigmoid(x)


def _dsig(y: torch.Tensor, hard: bool) -> torch.Tensor:
    """Derivative of the (hard) sigmoid expressed through its output ``y``."""
    if hard:
        return 0.2 * ((y > 0) & (y < 1)).to(y.dtype)
    return y * (1.0 - y)


def _w(W: torch.Tensor, t: int, untied: bool) -> torch.Tensor:
    return W[:, t] if untied else W


def _wgrad(Sprev: torch.Tensor, dA: torch.Tensor, untied: bool) -> torch.Tensor:
    """sum_t s_{t-1}^T du_t (tied) or the per-step products (untied), in one bmm."""
    M, T, B, N = Sprev.shape
    GN = dA.shape[-1]
    if untied:
        return torch.bmm(Sprev.reshape(M * T, B, N).transpose(1, 2),
                         dA.reshape(M * T, B, GN)).reshape(M, T, N, GN)
    return torch.bmm(Sprev.reshape(M, T * B, N).transpose(1, 2), dA.reshape(M, T * B, GN))


# --------------------------------------------------------------------------------------------
# vanilla: s' = tanh(u_f)
# --------------------------------------------------------------------------------------------
class Vanilla(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, W, s0, untied: bool, hard: bool):
        with flush_denormal():
            return Vanilla._fwd(ctx, A, W, s0, untied, hard)

    @staticmethod
    def _fwd(ctx, A, W, s0, untied: bool, hard: bool):
        M, T, B, GN = A.shape
        S = A.new_empty(M, T, B, GN)
        s = s0
        for t in range(T):
            s = torch.tanh(torch.baddbmm(A[:, t], s, _w(W, t, untied)))
            S[:, t] = s
        ctx.save_for_backward(W, s0, S)
        ctx.untied = untied
        return S

    @staticmethod
    def backward(ctx, dS):
        with flush_denormal():
            return Vanilla._bwd(ctx, dS)

    @staticmethod
    def _bwd(ctx, dS):
        W, s0, S = ctx.saved_tensors
        untied = ctx.untied
        M, T, B, N = S.shape
        dA = torch.empty_like(S)
        ds = torch.zeros_like(s0)
        for t in range(T - 1, -1, -1):
            ds = ds + dS[:, t]
            s = S[:, t]
            du = ds * (1.0 - s * s)
            dA[:, t] = du
            ds = torch.bmm(du, _w(W, t, untied).transpose(1, 2))
        Sprev = torch.cat([s0.unsqueeze(1), S[:, :-1]], 1)
        return dA, _wgrad(Sprev, dA, untied), ds, None, None


# --------------------------------------------------------------------------------------------
# minimal: x = tanh(u_r), s' = sig(u_f) s + (1 - sig(u_f)) x
# --------------------------------------------------------------------------------------------
class Minimal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, W, s0, untied: bool, hard: bool):
        with flush_denormal():
            return Minimal._fwd(ctx, A, W, s0, untied, hard)

    @staticmethod
    def _fwd(ctx, A, W, s0, untied: bool, hard: bool):
        M, T, B, GN = A.shape
        N = GN // 2
        S = A.new_empty(M, T, B, N)
        F = A.new_empty(M, T, B, N)
        X = A.new_empty(M, T, B, N)
        s = s0
        for t in range(T):
            u = torch.baddbmm(A[:, t], s, _w(W, t, untied))
            f = gate_sigmoid(u[..., :N], hard)
            x = torch.tanh(u[..., N:])
            s = x + f * (s - x)
            S[:, t] = s
            F[:, t] = f
            X[:, t] = x
        ctx.save_for_backward(W, s0, S, F, X)
        ctx.untied, ctx.hard = untied, hard
        return S

    @staticmethod
    def backward(ctx, dS):
        with flush_denormal():
            return Minimal._bwd(ctx, dS)

    @staticmethod
    def _bwd(ctx, dS):
        W, s0, S, F, X = ctx.saved_tensors
        untied, hard = ctx.untied, ctx.hard
        M, T, B, N = S.shape
        Sprev = torch.cat([s0.unsqueeze(1), S[:, :-1]], 1)
        dA = S.new_empty(M, T, B, 2 * N)
        ds = torch.zeros_like(s0)
        for t in range(T - 1, -1, -1):
            ds = ds + dS[:, t]
            f, x, sp = F[:, t], X[:, t], Sprev[:, t]
            dA[:, t, :, :N] = ds * (sp - x) * _dsig(f, hard)
            dA[:, t, :, N:] = ds * (1.0 - f) * (1.0 - x * x)
            ds = ds * f + torch.bmm(dA[:, t], _w(W, t, untied).transpose(1, 2))
        return dA, _wgrad(Sprev, dA, untied), ds, None, None


# --------------------------------------------------------------------------------------------
# gru (Table 1): u_r2 = W_r2 (sig(u_r) s) + U_r2 z + b_r2, s' = sig(u_f) s + (1-sig(u_f)) tanh(u_r2)
# --------------------------------------------------------------------------------------------
class GRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, W, s0, untied: bool, hard: bool):
        with flush_denormal():
            return GRU._fwd(ctx, A, W, s0, untied, hard)

    @staticmethod
    def _fwd(ctx, A, W, s0, untied: bool, hard: bool):
        M, T, B, GN = A.shape
        N = GN // 3
        Wfr = W[..., :2 * N].contiguous()       # contiguous copies: no strided bmm per step
        W2 = W[..., 2 * N:].contiguous()
        S = A.new_empty(M, T, B, N)
        FR = A.new_empty(M, T, B, 2 * N)
        X = A.new_empty(M, T, B, N)
        s = s0
        for t in range(T):
            a = A[:, t]
            fr = FR[:, t]
            u = torch.baddbmm(a[..., :2 * N], s, _w(Wfr, t, untied))
            torch.sigmoid(u, out=fr) if not hard else fr.copy_(hard_sigmoid(u))
            x = torch.tanh(torch.baddbmm(a[..., 2 * N:], fr[..., N:] * s, _w(W2, t, untied)))
            s = torch.addcmul(x, fr[..., :N], s - x)
            S[:, t] = s
            X[:, t] = x
        ctx.save_for_backward(Wfr, W2, s0, S, FR, X)
        ctx.untied, ctx.hard = untied, hard
        return S

    @staticmethod
    def backward(ctx, dS):
        with flush_denormal():
            return GRU._bwd(ctx, dS)

    @staticmethod
    def _bwd(ctx, dS):
        Wfr, W2, s0, S, FR, X = ctx.saved_tensors
        untied, hard = ctx.untied, ctx.hard
        M, T, B, N = S.shape
        Sprev = torch.cat([s0.unsqueeze(1), S[:, :-1]], 1)
        dA = S.new_empty(M, T, B, 3 * N)
        ds = torch.zeros_like(s0)
        for t in range(T - 1, -1, -1):
            ds = ds + dS[:, t]
            f, r, x, sp = FR[:, t, :, :N], FR[:, t, :, N:], X[:, t], Sprev[:, t]
            d = dA[:, t]
            du2 = torch.mul(ds * (1.0 - f), 1.0 - x * x, out=d[..., 2 * N:])
            dg = torch.bmm(du2, _w(W2, t, untied).transpose(1, 2))
            torch.mul(ds * (sp - x), _dsig(f, hard), out=d[..., :N])
            torch.mul(dg * sp, _dsig(r, hard), out=d[..., N:2 * N])
            ds = torch.baddbmm(torch.addcmul(ds * f, dg, r), d[..., :2 * N], _w(Wfr, t, untied).transpose(1, 2))
        dW_fr = _wgrad(Sprev, dA[..., :2 * N], untied)
        dW_2 = _wgrad(FR[..., N:] * Sprev, dA[..., 2 * N:], untied)
        return dA, torch.cat([dW_fr, dW_2], -1), ds, None, None


# --------------------------------------------------------------------------------------------
# peephole LSTM and LSTM share one loop. Their fused gate axis is stored in the order
# (i, f, o, r) (their storage_order), so that one sigmoid covers the three sigmoid gates.
#   peephole: state c, u_k = W_k c + U_k z + b_k, c' = sig(u_f) c + sig(u_i) tanh(u_r);
#             returns C and the output gates O = sig(u_o) (output p = O * tanh(C)).
#   LSTM:     u_k = W_k h + U_k z + b_k, c' as above, h' = sig(u_o) tanh(c'); returns H and C.
#
# The input projection U z + b is part of the loop (it is written chunk by chunk straight into
# the gate buffer Y, which then holds [i, f, o, g] in storage order; no separate (T, B, 4N)
# tensor of pre-activations and no (T, B, 4N) tensor of their gradients is ever formed).
# Time is processed in chunks of K steps (_chunk_len: a few MiB of buffers, so that they stay in
# cache). The backward first forms, for a whole chunk at once, everything that does not depend
# on the back-propagated signal,
#   P = [g sig'(u_i), c_prev sig'(u_f), tanh(c) sig'(u_o), i (1 - g^2)],  Q = o (1 - tanh(c)^2),
# so that each step needs only a handful of element-wise operations:
#   dc = dc_carry + dh Q;  du = dc P (o block: dh P_o);  dc_carry = dc f (+ dC);  dh = du W^T (+ dH).
# (peephole: du_o = dO P_o is formed for the whole chunk; dc = dc_carry + du W^T.)
# The gradients of W, U, b (and of the input) are then one matrix product per chunk over its
# K*B rows.
# --------------------------------------------------------------------------------------------
#: Steps per chunk; None: chosen by _chunk_len from _CHUNK_BYTES (tests force small chunks).
_CHUNK: int | None = None
_CHUNK_BYTES = 1 << 21


def _chunk_len(M: int, B: int, GN: int, T: int, itemsize: int) -> int:
    if _CHUNK is not None:
        return max(1, min(T, _CHUNK))
    return max(1, min(T, _CHUNK_BYTES // (M * B * GN * itemsize)))


def _sig_(y: torch.Tensor, hard: bool) -> None:
    """(Hard) sigmoid in place."""
    if hard:
        y.mul_(0.2).add_(0.5).clamp_(0.0, 1.0)
    else:
        y.sigmoid_()


def _dsig_into(y: torch.Tensor, out: torch.Tensor, hard: bool) -> None:
    if hard:
        torch.mul(((y > 0) & (y < 1)).to(y.dtype), 0.2, out=out)
    else:
        torch.addcmul(y, y, y, value=-1.0, out=out)


def _project(Y, X, U, b, t0: int, t1: int, untied: bool) -> None:
    """Y[:, t0:t1] = X[:, t0:t1] U + b (U None: X already holds the pre-activations)."""
    if U is None:
        Y[:, t0:t1] = X[:, t0:t1]
        return
    M, _, B, n = X.shape
    if untied:
        for t in range(t0, t1):
            torch.baddbmm(b[:, t].unsqueeze(1), X[:, t], U[:, t], out=Y[:, t])
        return
    K = t1 - t0
    torch.baddbmm(b.unsqueeze(1), X[:, t0:t1].reshape(M, K * B, n), U,
                  out=Y[:, t0:t1].view(M, K * B, Y.shape[-1]))


def _lstm_forward(X, U, b, W, h0, c0, untied: bool, hard: bool, peephole: bool):
    """Returns Y = [i, f, o, g] (M, T, B, 4N), Cx = [c0, C] (M, T+1, B, N) and (LSTM only)
    Hx = [h0, H]."""
    M, T, B, _ = X.shape
    GN = W.shape[-1]
    N = GN // 4
    Y = X.new_empty(M, T, B, GN)
    Cx = X.new_empty(M, T + 1, B, N)
    Cx[:, 0] = c0
    Hx = tc = None
    if not peephole:
        Hx = X.new_empty(M, T + 1, B, N)
        Hx[:, 0] = h0
        tc = X.new_empty(M, B, N)
    # per-step views, made once (slicing inside the loop costs as much as a small kernel)
    Ys, SIG, I, F, O, G = (Y[..., sl].unbind(1) for sl in (
        slice(None), slice(0, 3 * N), slice(0, N), slice(N, 2 * N), slice(2 * N, 3 * N), slice(3 * N, None)))
    Cs = Cx.unbind(1)
    Ss = Cs if peephole else Hx.unbind(1)
    Ws = W.unbind(1) if untied else (W,) * T
    K = _chunk_len(M, B, GN, T, X.element_size())
    fused = _triton.enabled(Y)                   # opt-in Triton step (RNN_MFT_TRITON; CUDA)
    for t0 in range(0, T, K):
        t1 = min(T, t0 + K)
        _project(Y, X, U, b, t0, t1, untied)
        for t in range(t0, t1):
            Ys[t].baddbmm_(Ss[t], Ws[t])
            if fused:
                _triton.lstm_forward_step(Ys[t], Cs[t], Cs[t + 1], None if peephole else Ss[t + 1], hard)
                continue
            _sig_(SIG[t], hard)
            G[t].tanh_()
            c = torch.mul(F[t], Cs[t], out=Cs[t + 1])
            c.addcmul_(I[t], G[t])
            if not peephole:
                torch.mul(O[t], torch.tanh(c, out=tc), out=Ss[t + 1])
    return Y, Cx, Hx


def _lstm_backward(X, U, W, Y, Cx, Hx, dOut, dC, untied: bool, hard: bool, peephole: bool,
                   need_dX: bool, detach=None):
    """dOut: gradient of H (LSTM) or of the output gates O (peephole); dOut and dC may be None.
    ``detach`` (h-detach): None or a bool tensor ``(M, T)``; where ``detach[m, t]`` the gradient
    that step ``t``'s gates send back through the recurrent product ``s_{t-1} W`` to ``s_{t-1}``
    (``h_{t-1}`` of the LSTM, ``c_{t-1}`` of the peephole LSTM) is dropped; the cell-state path
    ``c_t = f c_{t-1} + ...`` and the weight gradients are unchanged.
    Returns dX, dU, db, dW, d(initial state), dc0 (LSTM; None for the peephole)."""
    M, T, B, GN = Y.shape
    N = GN // 4
    n = X.shape[-1]
    K = _chunk_len(M, B, GN, T, Y.element_size())
    S = Cx if peephole else Hx
    WT = W.transpose(-1, -2).contiguous()          # (…, 4N, N): the per-step product runs faster
    P = Y.new_empty(M, K, B, GN)
    Q = None if peephole else Y.new_empty(M, K, B, N)
    dAc = Y.new_empty(M, K, B, GN)
    if untied:
        dW = torch.empty_like(W)
        dU = None if U is None else torch.empty_like(U)
        db = None if U is None else Y.new_empty(M, T, GN)
    else:
        dW = torch.zeros_like(W)
        dU = None if U is None else torch.zeros_like(U)
        db = None if U is None else Y.new_zeros(M, GN)
    dX = X.new_empty(M, T, B, n) if need_dX else None
    # per-step views, made once
    WTs = WT.unbind(1) if untied else (WT,) * T
    F = Y[..., N:2 * N].unbind(1)
    dOs = None if dOut is None else dOut.unbind(1)
    dCs = None if dC is None else dC.unbind(1)
    Ds = dAc.unbind(1)
    Ds2, Ds4, Dr = (dAc.unflatten(-1, (4, N))[..., sl, :].unbind(1)
                    for sl in (slice(0, 2), slice(None), slice(3, 4)))
    Do = dAc[..., 2 * N:3 * N].unbind(1)
    Ps2, Ps4, Pr = (P.unflatten(-1, (4, N))[..., sl, :].unbind(1)
                    for sl in (slice(0, 2), slice(None), slice(3, 4)))
    Po = P[..., 2 * N:3 * N].unbind(1)
    Qs = None if peephole else Q.unbind(1)
    fused = _triton.enabled(Y)                   # opt-in Triton step (RNN_MFT_TRITON; CUDA)
    if fused:
        Pf = P.unbind(1)
        dOut = None if dOut is None else dOut.contiguous()
        dC = None if dC is None else dC.contiguous()
        dOs = None if dOut is None else dOut.unbind(1)
        dCs = None if dC is None else dC.unbind(1)
    dc = Y.new_zeros(M, B, N)                      # gradient of c_t (peephole: all of it)
    dcc = Y.new_zeros(M, B, N)                     # LSTM: carried part dc_{t+1} f_{t+1} + dC_t
    dc2 = dc.unsqueeze(2)
    if dC is not None:
        (dc if peephole else dcc).copy_(dCs[T - 1])
    dh = None
    if not peephole:
        dh = Y.new_zeros(M, B, N)
        if dOut is not None:
            dh.copy_(dOs[T - 1])
    ds0 = dc0 = None
    keeps = None
    anyd = [False] * T
    if detach is not None:
        anyd = detach.any(0).tolist()              # steps where some member detaches (others: plain path)
        keeps = (~detach.to(device=Y.device, dtype=torch.bool)).to(Y.dtype).view(M, T, 1, 1).unbind(1)
        rec = Y.new_empty(M, B, N)                 # the recurrent-product part of ds_{t-1}
    for t0 in reversed(range(0, T, K)):
        t1 = min(T, t0 + K)
        Kc = t1 - t0
        Yc, Pc, dA = Y[:, t0:t1], P[:, :Kc], dAc[:, :Kc]
        i, g = Yc[..., :N], Yc[..., 3 * N:]
        # everything that does not depend on the back-propagated signal, for the whole chunk
        _dsig_into(Yc[..., :3 * N], Pc[..., :3 * N], hard)
        Pc[..., :N].mul_(g)                                       # g sig'(u_i)
        Pc[..., N:2 * N].mul_(Cx[:, t0:t1])                       # c_prev sig'(u_f)
        Pc3 = torch.mul(i, g, out=Pc[..., 3 * N:])
        torch.addcmul(i, Pc3, g, value=-1.0, out=Pc3)             # i (1 - g^2)
        if peephole:
            if dOut is None:
                dA[..., 2 * N:3 * N].zero_()
            else:
                torch.mul(Pc[..., 2 * N:3 * N], dOut[:, t0:t1], out=dA[..., 2 * N:3 * N])
        else:
            Qc = torch.tanh(Cx[:, t0 + 1:t1 + 1], out=Q[:, :Kc])
            Pc[..., 2 * N:3 * N].mul_(Qc)                         # tanh(c) sig'(u_o)
            torch.addcmul(Yc[..., 2 * N:3 * N], Hx[:, t0 + 1:t1 + 1], Qc, value=-1.0, out=Qc)
        # the recurrence, step by step (k: index within the chunk)
        for t in range(t1 - 1, t0 - 1, -1):
            k = t - t0
            if peephole:
                if fused and t > 0:                               # one kernel: the else branch and dcc below
                    _triton.lstm_backward_step(dc, None, None, Pf[k], F[t], Ds[k],
                                               None if dC is None else dCs[t - 1], dcc)
                else:
                    torch.mul(Ps2[k], dc2, out=Ds2[k])            # i and f blocks: dc P
                    torch.mul(Pr[k], dc2, out=Dr[k])              # r block
                if t > 0:
                    if fused:                                     # the kernel wrote dcc
                        pass
                    elif dC is None:
                        torch.mul(dc, F[t], out=dcc)
                    else:
                        torch.addcmul(dCs[t - 1], dc, F[t], out=dcc)
                    if not anyd[t]:
                        torch.baddbmm(dcc, Ds[k], WTs[t], out=dc)
                    else:
                        torch.bmm(Ds[k], WTs[t], out=rec)
                        torch.addcmul(dcc, rec, keeps[t], out=dc)
                else:
                    ds0 = torch.bmm(Ds[k], WTs[t])
                    if anyd[t]:
                        ds0.mul_(keeps[t])
                    ds0.addcmul_(dc, F[t])
            else:
                if fused and t > 0:                               # one kernel: the else branch and dcc below
                    _triton.lstm_backward_step(dcc, dh, Qs[k], Pf[k], F[t], Ds[k],
                                               None if dC is None else dCs[t - 1], dcc)
                else:
                    torch.addcmul(dcc, dh, Qs[k], out=dc)
                    torch.mul(Ps4[k], dc2, out=Ds4[k])            # all blocks: dc P ...
                    torch.mul(dh, Po[k], out=Do[k])               # ... but the o block: dh P_o
                if t > 0:
                    if fused:                                     # the kernel wrote dcc
                        pass
                    elif dC is None:
                        torch.mul(dc, F[t], out=dcc)
                    else:
                        torch.addcmul(dCs[t - 1], dc, F[t], out=dcc)
                    if not anyd[t]:
                        if dOut is None:
                            torch.bmm(Ds[k], WTs[t], out=dh)
                        else:
                            torch.baddbmm(dOs[t - 1], Ds[k], WTs[t], out=dh)
                    else:
                        torch.bmm(Ds[k], WTs[t], out=rec)
                        torch.mul(rec, keeps[t], out=dh)
                        if dOut is not None:
                            dh.add_(dOs[t - 1])
                else:
                    dc0 = dc * F[t]
                    ds0 = torch.bmm(Ds[k], WTs[t])
                    if anyd[t]:
                        ds0.mul_(keeps[t])
        # parameter (and input) gradients of the chunk: one product over its Kc*B rows
        Sc = S[:, t0:t1]
        dA2 = None if untied else dA.reshape(M, Kc * B, GN)
        if untied:
            dW[:, t0:t1] = torch.matmul(Sc.transpose(-1, -2), dA)
        else:
            dW.baddbmm_(Sc.reshape(M, Kc * B, N).transpose(1, 2), dA2)
        if U is None:
            if need_dX:
                dX[:, t0:t1] = dA
        elif untied:
            dU[:, t0:t1] = torch.matmul(X[:, t0:t1].transpose(-1, -2), dA)
            torch.sum(dA, 2, out=db[:, t0:t1])
            if need_dX:
                dX[:, t0:t1] = torch.matmul(dA, U[:, t0:t1].transpose(-1, -2))
        else:
            dU.baddbmm_(X[:, t0:t1].reshape(M, Kc * B, n).transpose(1, 2), dA2)
            db.add_(dA2.sum(1))
            if need_dX:
                torch.bmm(dA2, U.transpose(1, 2), out=dX[:, t0:t1].view(M, Kc * B, n))
    return dX, dU, db, dW, ds0, dc0


class Peephole(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, U, b, W, c0, untied: bool, hard: bool, detach=None):
        with flush_denormal():
            Y, Cx, _ = _lstm_forward(X, U, b, W, c0, c0, untied, hard, True)
        ctx.save_for_backward(X, U, W, Y, Cx)
        ctx.untied, ctx.hard, ctx.detach = untied, hard, detach
        ctx.set_materialize_grads(False)
        N = Cx.shape[-1]
        return Cx[:, 1:], Y[..., 2 * N:3 * N]

    @staticmethod
    def backward(ctx, dC, dO):
        X, U, W, Y, Cx = ctx.saved_tensors
        with flush_denormal():
            dX, dU, db, dW, dc0, _ = _lstm_backward(X, U, W, Y, Cx, None, dO, dC, ctx.untied, ctx.hard,
                                                    True, ctx.needs_input_grad[0], ctx.detach)
        return dX, dU, db, dW, dc0, None, None, None


class LSTM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, U, b, W, h0, c0, untied: bool, hard: bool, detach=None):
        with flush_denormal():
            Y, Cx, Hx = _lstm_forward(X, U, b, W, h0, c0, untied, hard, False)
        ctx.save_for_backward(X, U, W, Y, Cx, Hx)
        ctx.untied, ctx.hard, ctx.detach = untied, hard, detach
        ctx.set_materialize_grads(False)
        return Hx[:, 1:], Cx[:, 1:]

    @staticmethod
    def backward(ctx, dH, dC):
        X, U, W, Y, Cx, Hx = ctx.saved_tensors
        with flush_denormal():
            dX, dU, db, dW, dh0, dc0 = _lstm_backward(X, U, W, Y, Cx, Hx, dH, dC, ctx.untied, ctx.hard,
                                                      False, ctx.needs_input_grad[0], ctx.detach)
        return dX, dU, db, dW, dh0, dc0, None, None, None


def project(X: torch.Tensor, U: torch.Tensor, b: torch.Tensor, untied: bool) -> torch.Tensor:
    """The pre-activations ``X U + b`` of all steps, ``(M, T, B, G*N)``, in one product."""
    M, T, B, n = X.shape
    GN = U.shape[-1]
    if not untied:
        return torch.baddbmm(b.unsqueeze(1), X.reshape(M, T * B, n), U).view(M, T, B, GN)
    return torch.baddbmm(b.reshape(M * T, 1, GN), X.reshape(M * T, B, n),
                         U.reshape(M * T, n, GN)).view(M, T, B, GN)
