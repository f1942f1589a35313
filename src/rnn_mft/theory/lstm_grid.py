r"""The cell-state grid of the LSTM theories: nodes, local interpolation, operators, stationary laws.

Functions of the cell state :math:`c` are represented by their values at the nodes
:math:`c_j = a\sinh(t_j)`, :math:`t_j` uniform on :math:`[-T, T]` with :math:`T =
\operatorname{arcsinh}(L/a)`: dense where :math:`\tanh` bends, sparse in the tails, out to
:math:`\pm L`. A value at any :math:`y` is the local ``p``-point Lagrange interpolation in
:math:`t` (the stencil centred on :math:`y`, clamped to the grid; ``p = 4``: cubic). An
operator :math:`(M\varphi)(c_j) = \sum_b w_{jb}\,\varphi(y_{jb})` is then a dense
``n x n`` matrix, built by one scatter of the stencil weights; the transition of the
discretised chain is a product of such matrices, and its stationary law the left Perron
vector (:func:`stationary_vector`).

* :class:`Grid`: one grid (one Theta point), any stencil size;
* :class:`BatchGrid`: a stack of grids, one per point of a batch, with blocked stencils and
  scatters (:data:`BLOCK_ELEMS`) and the centrosymmetric operators of odd point sets;
* :func:`lagrange_weights` (reference) and :func:`lagrange_into` (in place, for the blocks):
  the stencil weights.

The grids' widths and the stencil sizes are chosen by the cell-state theory
(:mod:`rnn_mft.theory.lstm_cellstate`), which also builds the operators of its chain here.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Grid", "BatchGrid", "lagrange_weights", "lagrange_into", "stationary_vector", "blocks", "BLOCK_ELEMS"]


def lagrange_weights(s, n, p):
    """Stencil indices (..., p) and weights (..., p) of p-point Lagrange interpolation at the
    fractional node positions ``s`` (0 <= s <= n - 1), the stencil centred on s."""
    i0 = np.clip(np.floor(s).astype(np.int64) - (p // 2 - 1), 0, n - p)
    u = s - i0
    # w_k(u) = prod_{j != k} (u - j) / (k - j): prefix and suffix products of (u - j)
    d = u[..., None] - np.arange(p, dtype=float)
    left = np.ones_like(d)
    right = np.ones_like(d)
    for k in range(1, p):
        left[..., k] = left[..., k - 1] * d[..., k - 1]
        right[..., p - 1 - k] = right[..., p - k] * d[..., p - k]
    den = np.array([np.prod([k - j for j in range(p) if j != k]) for k in range(p)], float)
    return i0[..., None] + np.arange(p), left * right / den


class Grid:
    """Cell-state nodes c_j = a sinh(t_j) and local Lagrange interpolation in t (``order``
    points: 4 is cubic)."""

    def __init__(self, L, a, n, order=4):
        self.a, self.n, self.order = a, n, order
        self.T = np.arcsinh(L / a)
        self.t = np.linspace(-self.T, self.T, n)
        self.dt = self.t[1] - self.t[0]
        self.c = a * np.sinh(self.t)
        self.L = L

    def weights(self, y):
        """Indices (..., p) and Lagrange weights (..., p) of the values at ``y`` (clamped to the
        grid), p = ``order``."""
        s = (np.arcsinh(np.clip(y, -self.L, self.L) / self.a) + self.T) / self.dt
        if self.order != 4:
            return lagrange_weights(s, self.n, self.order)
        i0 = np.clip(np.floor(s).astype(np.int64) - 1, 0, self.n - 4)
        u = s - i0
        u1, u2, u3 = u - 1.0, u - 2.0, u - 3.0
        w = np.stack([-u1 * u2 * u3 / 6.0, u * u2 * u3 / 2.0, -u * u1 * u3 / 2.0, u * u1 * u2 / 6.0], axis=-1)
        idx = i0[..., None] + np.arange(4)
        return idx, w

    def operator(self, y, wq):
        """Dense matrix M with (M phi)_j = sum_b wq[j, b] phi(y[j, b]) (phi interpolated)."""
        idx, w = self.weights(y)
        n = self.n
        rows = np.broadcast_to(np.arange(n)[:, None, None], idx.shape)
        vals = w * np.broadcast_to(wq, y.shape)[..., None]
        return np.bincount((rows * n + idx).ravel(), weights=vals.ravel(), minlength=n * n).reshape(n, n)


def stationary_vector(P):
    """The left Perron vector of a stochastic matrix ``P``: ``pi P = pi``, ``sum(pi) = 1``
    (one linear solve, the last equation replaced by the normalisation); a stack of matrices
    (..., n, n) gives the stack of vectors (..., n)."""
    n = P.shape[-1]
    M = np.swapaxes(P, -1, -2) - np.eye(n)
    M[..., -1, :] = 1.0
    rhs = np.zeros(P.shape[:-1] + (1,))
    rhs[..., -1, 0] = 1.0
    return np.linalg.solve(M, rhs)[..., 0]


#: elements (points x grid nodes x abscissae) per block of the stencil computations
#: (:meth:`BatchGrid.weights`, :meth:`BatchGrid.operator`,
#: :meth:`rnn_mft.theory.lstm_cellstate.BatchCellStateModel.vF_many`): temporaries of
#: ~0.5 MB stay in cache and reuse memory instead of touching fresh pages (measured on the
#: 100 x 100 grid: whole-batch temporaries made the stencils ~4x slower)
BLOCK_ELEMS = 1 << 16


def blocks(B, per_point):
    """Slices of the batch axis with about :data:`BLOCK_ELEMS` elements each."""
    step = max(1, BLOCK_ELEMS // max(1, per_point))
    return [slice(b0, min(B, b0 + step)) for b0 in range(0, B, step)]


def lagrange_into(u, p, out):
    """Lagrange weights out[k] = prod_{j != k} (u - j) / (k - j) of the nodes 0..p-1 at u, as
    products of the factors left and right of k (no division by u - j, so exact nodes are
    safe), accumulated in place: three live arrays, whatever p."""
    if p == 4:
        u1, u2, u3 = u - 1.0, u - 2.0, u - 3.0
        out[0] = -u1 * u2 * u3 / 6.0
        out[1] = u * u2 * u3 / 2.0
        out[2] = -u * u1 * u3 / 2.0
        out[3] = u * u1 * u2 / 6.0
        return out
    t = np.empty_like(u)
    out[0] = 1.0
    np.copyto(out[1], u)
    for k in range(2, p):                    # out[k] = prod_{j < k} (u - j)
        np.subtract(u, k - 1, out=t)
        np.multiply(out[k - 1], t, out=out[k])
    r = np.subtract(u, p - 1)                # r = prod_{j > k} (u - j)
    for k in range(p - 2, -1, -1):
        out[k] *= r
        if k:
            np.subtract(u, k, out=t)
            r *= t
    for k in range(p):
        out[k] /= float(np.prod([k - j for j in range(p) if j != k]))
    return out


class BatchGrid:
    """Per-point grids c[b, j] = a_b sinh(t_j), t_j uniform on [-T_b, T_b]; Lagrange stencils."""

    def __init__(self, L, a, n, order):
        self.L, self.a, self.n, self.order = L, a, n, order
        self.T = np.arcsinh(L / a)
        self.t = np.linspace(-self.T, self.T, n, axis=-1)
        self.dt = self.t[:, 1] - self.t[:, 0]
        c = a[:, None] * np.sinh(self.t)
        self.c = 0.5 * (c - c[:, ::-1])              # exactly odd: c[n-1-j] = -c[j], c = 0 at the centre

    def take(self, sel):
        g = object.__new__(BatchGrid)
        g.n, g.order = self.n, self.order
        for k in ("L", "a", "T", "t", "dt", "c"):
            setattr(g, k, getattr(self, k)[sel])
        return g

    def weights(self, y, out=None):
        """Stencils of the values at y (B, n, K), stencil axis first: first node i0 (B, n, K) and
        Lagrange weights (p, B, n, K) (the weights of :func:`lagrange_weights`),
        written into ``out = (i0, w)`` if given. Computed in blocks of points
        (:data:`BLOCK_ELEMS`): the same numbers, with temporaries small enough to stay in cache
        and out of fresh memory pages."""
        B = y.shape[0]
        p, n = self.order, self.n
        i0, w = out if out is not None else (np.empty(y.shape, np.int64), np.empty((p,) + y.shape))
        for sl in blocks(B, y[0].size):
            ex = (sl, None, None)
            s = np.arcsinh(np.clip(y[sl], -self.L[ex], self.L[ex]) / self.a[ex])
            s += self.T[ex]
            s /= self.dt[ex]
            i = np.clip(np.floor(s).astype(np.int64) - (p // 2 - 1), 0, n - p)
            i0[sl] = i
            s -= i
            lagrange_into(s, p, w[:, sl])
        return i0, w

    def operator(self, y, wq, odd=False):
        """Stack of dense M[b] with (M[b] phi)_j = sum_k wq[b, k] phi(y[b, j, k]); ``y`` may be
        given as its stencil from :meth:`weights`. Scattered in blocks of points. ``odd``: the
        points are odd in the node (y[n-1-j] = -y[j], as F c_j), so M is centrosymmetric,
        M[n-1-j, n-1-i] = M[j, i] (the grid is odd and stencils mirror), and only the rows from
        the centre on are scattered."""
        i0, w = y if isinstance(y, tuple) else self.weights(y)
        B, n, p = i0.shape[0], self.n, w.shape[0]
        h = n // 2 if odd else 0
        r = n - h                                             # rows scattered: h .. n-1
        out = np.empty((B, n, n))
        for sl in blocks(B, i0[0].size):
            nb = i0[sl].shape[0]
            base = (np.arange(nb)[:, None, None] * r + np.arange(r)[None, :, None]) * n + i0[sl, h:]
            flat = base[None] + np.arange(p)[:, None, None, None]
            vals = w[:, sl, h:] * wq[None, sl, None, :]
            out[sl, h:] = np.bincount(flat.ravel(), weights=vals.ravel(), minlength=nb * r * n).reshape(nb, r, n)
        if h:
            out[:, :h] = out[:, n - 1 - np.arange(h), ::-1]
        return out

    def vecop(self, v, y, wq):
        """v[b] @ M[b] for the M of :meth:`operator`, as a scatter (no dense matrix)."""
        i0, w = y if isinstance(y, tuple) else self.weights(y)
        B, n, p = i0.shape[0], self.n, w.shape[0]
        flat = (np.arange(B)[:, None, None] * n + i0)[None] + np.arange(p)[:, None, None, None]
        vals = w * (v[:, :, None] * wq[:, None, :])[None]
        return np.bincount(flat.ravel(), weights=vals.ravel(), minlength=B * n).reshape(B, n)
