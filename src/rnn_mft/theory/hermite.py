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

__all__ = ["hermite_weights", "coefficients", "PairSeries"]

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
        return out

    def __call__(self, C, deriv: bool = False):
        """Value (and derivative if ``deriv``) at correlation ``C`` (broadcast with the coefficients)."""
        C = np.asarray(C, dtype=float)
        p = self.p
        M = self.M
        val = np.broadcast_to(p[..., M], np.broadcast_shapes(p.shape[:-1], C.shape)).copy()
        der = np.zeros_like(val) if deriv else None
        for n in range(M - 1, -1, -1):
            if deriv:
                der = der * C + val
            val = val * C + p[..., n]
        CM = C ** M
        val = val + CM * C * (self.A + self.B * C)
        if not deriv:
            return val
        der = der + CM * ((M + 1) * self.A + (M + 2) * self.B * C)
        return val, der
