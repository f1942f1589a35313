r"""Time loops of the Table 1 architectures with hand-written backward passes.

Every architecture is run by one :class:`torch.autograd.Function` whose forward loop runs
without autograd (one batched matrix product and a few element-wise operations per step) and
whose backward loop computes the gradients of eq. (1) by hand; the weight gradients of all time
steps are then formed by a single batched matrix product. This keeps the Python/autograd
overhead per step at one kernel launch per operation, which is what lets the tied cells run at
about the speed of ``torch.nn.LSTM`` on CPU (see ``benchmarks/train.py``).

Shapes (``M`` ensemble members, ``T`` time steps, ``B`` batch, ``N`` width, ``G`` gates):

* ``A``: input contributions :math:`U_k z^t + b_k` of every gate, ``(M, T, B, G*N)``;
* ``W``: recurrent weights, fused over gates and stored transposed so that
  :math:`u = s W`: ``(M, N, G*N)`` (tied) or ``(M, T, N, G*N)`` (untied);
* ``s0`` (and ``c0`` for the LSTM): initial state ``(M, B, N)``.

The gate order inside the fused ``G*N`` axis is :data:`STORAGE_ORDER` ``[arch]`` (the order of
:data:`rnn_mft.theory.ARCHS`, except ``i, f, o, r`` for the LSTMs, which puts the three sigmoid
gates next to each other).
For the GRU the last block (``r2``) multiplies :math:`\sigma(u_r) \circ s` (eq. (1b)).

Denormal numbers are flushed to zero inside the loops (:func:`flush_denormal`): gradients that
vanish over hundreds of steps otherwise reach the denormal range, where CPU arithmetic is
several times slower (measured: a T=784 GRU backward 5x slower, for ``torch.nn.GRU`` too).
Values below ~1e-38 (float32) do not matter to training.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["hard_sigmoid", "gate_sigmoid", "run", "flush_denormal", "STORAGE_ORDER"]

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
class _Vanilla(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, W, s0, untied: bool, hard: bool):
        with flush_denormal():
            return _Vanilla._fwd(ctx, A, W, s0, untied, hard)

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
            return _Vanilla._bwd(ctx, dS)

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
class _Minimal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, W, s0, untied: bool, hard: bool):
        with flush_denormal():
            return _Minimal._fwd(ctx, A, W, s0, untied, hard)

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
            return _Minimal._bwd(ctx, dS)

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
class _GRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, W, s0, untied: bool, hard: bool):
        with flush_denormal():
            return _GRU._fwd(ctx, A, W, s0, untied, hard)

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
            return _GRU._bwd(ctx, dS)

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
# (i, f, o, r) (STORAGE_ORDER), so that one sigmoid covers the three sigmoid gates.
#   peephole: state c, u_k = W_k c + U_k z + b_k, c' = sig(u_f) c + sig(u_i) tanh(u_r);
#             returns C and the output gates O = sig(u_o) (output p = O * tanh(C)).
#   LSTM:     u_k = W_k h + U_k z + b_k, c' as above, h' = sig(u_o) tanh(c'); returns H and C.
# Per step the forward stores Y = [g, i, f, o] (g = tanh(u_r)) and the states; the backward
# forms the four gate gradients as one product
#   du = [dc*g, dc*c_prev, X_o, dc*i] * [sig'(u_i), sig'(u_f), sig'(u_o), 1 - g^2].
# --------------------------------------------------------------------------------------------
def _sig_into(u: torch.Tensor, out: torch.Tensor, hard: bool) -> None:
    if hard:
        out.copy_(hard_sigmoid(u))
    else:
        torch.sigmoid(u, out=out)


def _dsig_into(y: torch.Tensor, out: torch.Tensor, hard: bool) -> None:
    if hard:
        torch.mul(((y > 0) & (y < 1)).to(y.dtype), 0.2, out=out)
    else:
        torch.addcmul(y, y, y, value=-1.0, out=out)


def _lstm_forward(A, W, h0, c0, untied: bool, hard: bool, peephole: bool):
    M, T, B, GN = A.shape
    N = GN // 4
    Y = A.new_empty(M, T, B, 4 * N)                         # [g, i, f, o]
    Cx = A.new_empty(M, T + 1, B, N)                        # Cx[:, 0] = c0, Cx[:, 1:] = C
    Cx[:, 0] = c0
    Hx = None if peephole else A.new_empty(M, T + 1, B, N)   # Hx[:, 0] = h0, Hx[:, 1:] = H
    if Hx is not None:
        Hx[:, 0] = h0
    h, c = h0, c0
    for t in range(T):
        u = torch.baddbmm(A[:, t], c if peephole else h, _w(W, t, untied))
        y = Y[:, t]
        g, i, f = y[..., :N], y[..., N:2 * N], y[..., 2 * N:3 * N]
        torch.tanh(u[..., 3 * N:], out=g)
        _sig_into(u[..., :3 * N], y[..., N:], hard)
        c = torch.addcmul(f * c, i, g, out=Cx[:, t + 1])
        if not peephole:
            h = torch.mul(y[..., 3 * N:], torch.tanh(c), out=Hx[:, t + 1])
    return Y, Cx, Hx


def _lstm_backward(W, Y, Cx, Hx, dOut, dC, untied: bool, hard: bool, peephole: bool):
    """dOut: gradient of H (LSTM) or of the output gates O (peephole). Gate axis of dA in
    storage order (i, f, o, r)."""
    M, T, B, N4 = Y.shape
    N = N4 // 4
    dA = Y.new_empty(M, T, B, 4 * N)
    X = Y.new_empty(M, B, 4 * N)
    D = Y.new_empty(M, B, 4 * N)
    one = torch.ones((), dtype=Y.dtype, device=Y.device)
    dc = Y.new_zeros(M, B, N)
    dh = None if peephole else Y.new_zeros(M, B, N)
    for t in range(T - 1, -1, -1):
        y = Y[:, t]
        g, i, f, o = y[..., :N], y[..., N:2 * N], y[..., 2 * N:3 * N], y[..., 3 * N:]
        if dC is not None:
            dc = dc + dC[:, t]
        if peephole:
            X[..., 2 * N:3 * N] = dOut[:, t]
        else:
            dh = dh + dOut[:, t]
            tc = torch.tanh(Cx[:, t + 1])
            dc = torch.addcmul(dc, dh * o, torch.addcmul(one, tc, tc, value=-1.0))
            torch.mul(dh, tc, out=X[..., 2 * N:3 * N])
        torch.mul(dc, g, out=X[..., :N])
        torch.mul(dc, Cx[:, t], out=X[..., N:2 * N])
        torch.mul(dc, i, out=X[..., 3 * N:])
        _dsig_into(y[..., N:], D[..., :3 * N], hard)
        torch.addcmul(one, g, g, value=-1.0, out=D[..., 3 * N:])
        d = torch.mul(X, D, out=dA[:, t])
        Wt = _w(W, t, untied).transpose(1, 2)
        if peephole:
            dc = torch.baddbmm(dc * f, d, Wt)
        else:
            dc = dc * f
            dh = torch.bmm(d, Wt)
    if peephole:
        return dA, _wgrad(Cx[:, :-1], dA, untied), dc, None
    return dA, _wgrad(Hx[:, :-1], dA, untied), dh, dc


class _Peephole(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, W, c0, untied: bool, hard: bool):
        with flush_denormal():
            Y, Cx, _ = _lstm_forward(A, W, c0, c0, untied, hard, True)
        ctx.save_for_backward(W, Y, Cx)
        ctx.untied, ctx.hard = untied, hard
        N = Cx.shape[-1]
        return Cx[:, 1:], Y[..., 3 * N:]

    @staticmethod
    def backward(ctx, dC, dO):
        W, Y, Cx = ctx.saved_tensors
        with flush_denormal():
            dA, dW, dc, _ = _lstm_backward(W, Y, Cx, None, dO, dC, ctx.untied, ctx.hard, True)
        return dA, dW, dc, None, None


class _LSTM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, W, h0, c0, untied: bool, hard: bool):
        with flush_denormal():
            Y, Cx, Hx = _lstm_forward(A, W, h0, c0, untied, hard, False)
        ctx.save_for_backward(W, Y, Cx, Hx)
        ctx.untied, ctx.hard = untied, hard
        return Hx[:, 1:], Cx[:, 1:]

    @staticmethod
    def backward(ctx, dH, dC):
        W, Y, Cx, Hx = ctx.saved_tensors
        with flush_denormal():
            dA, dW, dh, dc = _lstm_backward(W, Y, Cx, Hx, dH, dC, ctx.untied, ctx.hard, False)
        return dA, dW, dh, dc, None, None


#: Order of the gates along the fused G*N axis of the parameters (and of ``A``).
STORAGE_ORDER = {"vanilla": ("f",), "minimal": ("f", "r"), "gru": ("f", "r", "r2"),
                 "peephole_lstm": ("i", "f", "o", "r"), "lstm": ("i", "f", "o", "r")}


def run(arch: str, A: torch.Tensor, W: torch.Tensor, state0, untied: bool, hard: bool):
    """Run ``arch`` over all time steps. Returns ``(S, O)``: the state sequence ``(M,T,B,N)``
    (``h`` for the LSTM, ``c`` for the peephole LSTM) and, for the peephole LSTM, the output
    gates ``sigma(u_o)`` (else ``None``); for the LSTM ``O`` is the cell-state sequence."""
    if arch == "vanilla":
        return _Vanilla.apply(A, W, state0, untied, hard), None
    if arch == "minimal":
        return _Minimal.apply(A, W, state0, untied, hard), None
    if arch == "gru":
        return _GRU.apply(A, W, state0, untied, hard), None
    if arch == "peephole_lstm":
        return _Peephole.apply(A, W, state0, untied, hard)
    if arch == "lstm":
        h0, c0 = state0
        return _LSTM.apply(A, W, h0, c0, untied, hard)
    raise ValueError(f"unknown architecture arch={arch!r}")
