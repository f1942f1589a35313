r"""Mehler (Hermite) series for Gaussian pair expectations, the fast path of the C map.

For :math:`u_a = \mu + \Sigma z_a`, :math:`u_b = \mu + \Sigma(C z_a + \sqrt{1-C^2} z_b)`
(eq. (18)), Mehler's formula gives

.. math::
    \mathbb{E}[f(u_a) g(u_b)] = \sum_{n \ge 0} C^n f_n g_n,\qquad
    f_n = \mathbb{E}[f(\mu + \Sigma z)\,\mathrm{He}_n(z)] / \sqrt{n!},

so once the coefficients (one-dimensional integrals) are known, the pair expectation and its
derivative in :math:`C` (which by eq. (19) equals :math:`\Sigma^2\,\mathbb{E}[f'(u_a)g'(u_b)]`)
are polynomials in :math:`C`. This turns the fixed-point search for :math:`C^*` (eq. (7)) and
the evaluation of :math:`\chi` (eq. (8)) into cheap polynomial evaluations on a whole grid.

The series is truncated at order ``M``; the remainder is modelled as
:math:`A C^{M+1} + B C^{M+2}` with :math:`A, B` fixed so that the value and the derivative at
:math:`C = 1` are exact (:math:`\mathbb{E}[fg]` and :math:`\Sigma^2\mathbb{E}[f'g']` by 1-D
quadrature). The truncation error away from :math:`C = 1` decays like :math:`C^{M}`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .quadrature import gauss_hermite

__all__ = ["hermite_weights", "coefficients", "PairSeries", "SeriesStack"]

#: default truncation order and number of quadrature nodes of the series
SERIES_ORDER = 96
SERIES_NODES = 144


@lru_cache(maxsize=8)
def hermite_weights(M: int, nq: int):
    r"""Nodes ``x`` (nq,) and matrix ``Hw`` (M+1, nq) with ``Hw[n, j] = w_j He_n(x_j)/sqrt(n!)``.

    Built by the three-term recurrence applied directly to ``w_j h_n(x_j)`` (bounded by
    :math:`\sqrt{w_j}`), so nothing overflows for large nodes.
    """
    x, w = gauss_hermite(nq)
    H = np.empty((M + 1, nq))
    H[0] = w
    if M >= 1:
        H[1] = x * w
    for n in range(1, M):
        H[n + 1] = (x * H[n] - np.sqrt(n) * H[n - 1]) / np.sqrt(n + 1)
    H.setflags(write=False)
    return x, w, H


def coefficients(values: np.ndarray, M: int = SERIES_ORDER, nq: int = SERIES_NODES) -> np.ndarray:
    """Hermite coefficients ``f_n`` (..., M+1) from values of f at ``mu + sd * x`` (..., nq)."""
    _, _, H = hermite_weights(M, nq)
    return values @ H.T


class PairSeries:
    r"""The function :math:`P(C) = \mathbb{E}[f(u_a)g(u_b)]` of the correlation, as a series.

    Parameters
    ----------
    fa, ga : arrays (..., M+1)
        Hermite coefficients of f and g.
    v1 : array (...)
        Exact :math:`\mathbb{E}[f(u)g(u)]` (value at C = 1).
    d1 : array (...)
        Exact :math:`\Sigma^2\mathbb{E}[f'(u)g'(u)]` (derivative at C = 1), eq. (19).
    """

    def __init__(self, fa, ga, v1, d1):
        self.p = np.asarray(fa) * np.asarray(ga)
        self.v1, self.d1 = v1, d1                  # the exact value and slope at C = 1
        M = self.p.shape[-1] - 1
        self.M = M
        t0 = np.asarray(v1) - self.p.sum(-1)
        t1 = np.asarray(d1) - (self.p * np.arange(M + 1)).sum(-1)
        # tail A C^{M+1} + B C^{M+2}: A + B = t0, (M+1) A + (M+2) B = t1
        self.B = t1 - (M + 1) * t0
        self.A = t0 - self.B

    def take(self, idx) -> "PairSeries":
        """The series at the grid points ``idx`` (first axis of the coefficients)."""
        out = object.__new__(PairSeries)
        out.p, out.M = self.p[idx], self.M
        out.A, out.B = np.broadcast_to(self.A, self.p.shape[:-1])[idx], np.broadcast_to(self.B, self.p.shape[:-1])[idx]
        out.v1, out.d1 = (np.broadcast_to(v, self.p.shape[:-1])[idx] for v in (self.v1, self.d1))
        return out

    def __call__(self, C, deriv: bool = False):
        """Value (and derivative if ``deriv``) at correlation ``C`` (broadcast with the coefficients)."""
        C = np.asarray(C, dtype=float)
        return _horner(np.moveaxis(self.p, -1, 0), self.A, self.B, C, deriv)


class SeriesStack:
    r"""Several :class:`PairSeries` of one order ``M``, each at its own correlation, evaluated in
    a single Horner pass (``K`` series cost one loop over the ``M`` powers instead of ``K``).

    Used by the C map (eq. (7)), where every gate has its own correlation :math:`C_k`
    (eq. (4b)) but all gates share the series order. The coefficients are stored
    power-major, ``(M+1, K, ...)``, so that each Horner step reads contiguous memory.
    """

    def __init__(self, series):
        series = list(series)
        self.M = series[0].M
        if any(s.M != self.M for s in series):
            raise ValueError("all series of a SeriesStack need the same order M")
        shape = np.broadcast_shapes(*(s.p.shape[:-1] for s in series))
        self.K = len(series)
        self.pt = np.stack([np.moveaxis(np.broadcast_to(s.p, shape + (self.M + 1,)), -1, 0) for s in series],
                           axis=1)                                                # (M+1, K, *shape)
        self.A = np.stack([np.broadcast_to(s.A, shape) for s in series])
        self.B = np.stack([np.broadcast_to(s.B, shape) for s in series])

    def __call__(self, C, deriv: bool = False):
        """Values (and derivatives) of the K series at ``C`` of shape ``(K, ...)``; arrays ``(K, ...)``."""
        C = np.asarray(C, dtype=float)
        pt, A, B = self.pt, self.A, self.B
        extra = C.ndim - A.ndim            # C has axes the grid lacks: align the grid's axes last
        if extra > 0:
            pt = pt.reshape(pt.shape[:2] + (1,) * extra + pt.shape[2:])
            A, B = (a.reshape(a.shape[:1] + (1,) * extra + a.shape[1:]) for a in (A, B))
        return _horner(pt, A, B, C, deriv)


def _horner(pt, A, B, C, deriv):
    r""":math:`\sum_{n \le M} p_n C^n + C^{M+1}(A + B C)` (and its derivative in C) by Horner's
    rule with in-place updates; ``pt`` holds the coefficients power-major, ``(M+1, ...)``."""
    M = pt.shape[0] - 1
    shape = np.broadcast_shapes(pt.shape[1:], C.shape)
    val = np.broadcast_to(pt[M], shape).copy()
    der = np.zeros(shape) if deriv else None
    for n in range(M - 1, -1, -1):
        if deriv:
            der *= C
            der += val
        val *= C
        val += pt[n]
    CM = C ** M
    val += CM * C * (A + B * C)
    if not deriv:
        return val
    der += CM * ((M + 1) * A + (M + 2) * B * C)
    return val, der
