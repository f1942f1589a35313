"""The Triton kernels of ``rnn_mft.nets._triton`` (imported only when they are switched on:
Triton is an optional dependency; its jit needs the kernels at module level)."""
import triton
import triton.language as tl

__all__ = ["fwd", "bwd"]


@triton.jit
def _tanh(x):
    a = tl.abs(x)
    e = tl.exp(-2.0 * a)
    big = (1.0 - e) / (1.0 + e)
    x2 = x * x
    small = a * (1.0 - x2 * (0.3333333333333333 - x2 * (0.13333333333333333 - x2 * 0.05396825396825397)))
    r = tl.where(a < 0.0625, small, big)
    return tl.where(x < 0, -r, r)


@triton.jit
def _sig(x, HARD: tl.constexpr):
    if HARD:
        return tl.minimum(tl.maximum(x * 0.2 + 0.5, 0.0), 1.0)
    else:
        return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tile(B, N, BLOCK: tl.constexpr):
    """This program's member m, batch row b, columns col and their mask k (grid: M*B rows x
    column blocks); 64-bit, as m * stride may pass 2**31."""
    row = tl.program_id(0).to(tl.int64)
    col = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    return row // B, row % B, col, col < N


@triton.jit
def fwd(Y, sYm, sYb, Cp, sCpm, sCpb, Co, sCom, sCob, H, sHm, sHb, B, N,
        HARD: tl.constexpr, PEEP: tl.constexpr, BLOCK: tl.constexpr):
    m, b, col, k = _tile(B, N, BLOCK)
    y = Y + m * sYm + b * sYb + col
    i = _sig(tl.load(y, mask=k), HARD)
    f = _sig(tl.load(y + N, mask=k), HARD)
    o = _sig(tl.load(y + 2 * N, mask=k), HARD)
    g = _tanh(tl.load(y + 3 * N, mask=k))
    tl.store(y, i, mask=k)
    tl.store(y + N, f, mask=k)
    tl.store(y + 2 * N, o, mask=k)
    tl.store(y + 3 * N, g, mask=k)
    c = f * tl.load(Cp + m * sCpm + b * sCpb + col, mask=k) + i * g
    tl.store(Co + m * sCom + b * sCob + col, c, mask=k)
    if not PEEP:
        tl.store(H + m * sHm + b * sHb + col, o * _tanh(c), mask=k)


@triton.jit
def bwd(DC, sDCm, sDCb, DH, sDHm, sDHb, Q, sQm, sQb, P, sPm, sPb, F, sFm, sFb, D, sDm, sDb,
        DCP, sDCPm, sDCPb, OUT, sOm, sOb, B, N,
        PEEP: tl.constexpr, HAS_DCP: tl.constexpr, BLOCK: tl.constexpr):
    m, b, col, k = _tile(B, N, BLOCK)
    dc = tl.load(DC + m * sDCm + b * sDCb + col, mask=k)
    p = P + m * sPm + b * sPb + col
    d = D + m * sDm + b * sDb + col
    if not PEEP:                          # LSTM: dc = carried + dh tanh(c) sig'(.)...; o block: dh P_o
        dh = tl.load(DH + m * sDHm + b * sDHb + col, mask=k)
        dc = dc + dh * tl.load(Q + m * sQm + b * sQb + col, mask=k)
        tl.store(d + 2 * N, tl.load(p + 2 * N, mask=k) * dh, mask=k)
    tl.store(d, tl.load(p, mask=k) * dc, mask=k)
    tl.store(d + N, tl.load(p + N, mask=k) * dc, mask=k)
    tl.store(d + 3 * N, tl.load(p + 3 * N, mask=k) * dc, mask=k)
    out = dc * tl.load(F + m * sFm + b * sFb + col, mask=k)
    if HAS_DCP:
        out = out + tl.load(DCP + m * sDCPm + b * sDCPb + col, mask=k)
    tl.store(OUT + m * sOm + b * sOb + col, out, mask=k)
