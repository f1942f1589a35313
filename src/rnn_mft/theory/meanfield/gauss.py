r"""Gaussian quadrature of the mean-field map: the node rule and a caching Gauss-Hermite integrator.

:func:`nodes_for` is the one rule that turns the largest pre-activation variance into a
Gauss-Hermite order (:func:`node_rule` is the same rule point by point); :class:`_Gauss1`
computes expectations of products of gate functions of one Gaussian pre-activation (eqs. (4a),
(5)) with per-gate caches and, through Stein's lemma, their derivatives in the variance.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..quadrature import gauss_hermite
from .algebra import _base, _derived, _Dual

__all__ = ["nodes_for", "node_rule", "finite_max", "Q_ORDER_FACTOR", "C_NODES_FACTOR", "C_MIN_ORDER", "MAX_NODES"]


def node_rule(var):
    """:func:`nodes_for`'s rule point by point: ``clip(ceil(24 + 40 var), 48, 400)`` (float array)."""
    return np.clip(np.ceil(24 + 40 * np.asarray(var, float)), 48, 400)


def finite_max(*arrays) -> float:
    """The largest finite entry of ``arrays`` (NaN if none). The node rules take the largest
    variance *of the points that have one*: a diverged point (Q* = inf, variance inf or NaN)
    must not set the order of its grid (with ``inf``, :func:`nodes_for` fell back to variance 1,
    and every other point of the grid was integrated at the lowest order)."""
    best = -np.inf
    for a in arrays:
        a = np.asarray(a, float)
        if a.size:
            f = a[np.isfinite(a)]
            if f.size:
                best = max(best, float(f.max()))
    return best if best > -np.inf else float("nan")


def nodes_for(var_max: float, order=None) -> int:
    """Gauss-Hermite nodes for tanh/sigmoid of a Gaussian of variance ``var_max``.

    The rule acts like a trapezoid of spacing ~pi/sqrt(2n); for tanh (poles at distance pi/2)
    the error decays like exp(-2.6 sqrt(n) / Sigma) (measured against scipy.integrate), so
    ``n = 24 + 40 Sigma^2`` gives ~1e-7 on single expectations, and xi to ~1e-8 relative in
    practice (benchmarks/theory.py). Capped at 400 nodes (variance ~9; beyond, the accuracy
    degrades gracefully). Pass ``order`` to fix it.
    """
    if order is not None:
        return int(order)
    v = float(np.nanmax(var_max)) if np.size(var_max) else 1.0
    if not np.isfinite(v):
        v = 1.0
    return int(node_rule(v))


#: Q* = G(Q*) amplifies the quadrature error of G by 1/(1 - G'(Q*)), which grows with the memory
#: of the state (for a long-memory cell state 1 - G' is ~1e-2): :func:`solve_q` integrates with
#: this multiple of :func:`nodes_for`'s order.
Q_ORDER_FACTOR = 1.5
#: The C map's Hermite coefficients f_n = E[h He_n] / sqrt(n!) (n <= M) need more nodes than one
#: expectation does, and near criticality (C* and chi close to 1, long time scales) chi weighs all
#: of them: :class:`CMap` integrates them with this multiple of :func:`nodes_for`'s order (the
#: series order M, and the ``order`` reported, follow :func:`nodes_for`). The Jacobian moments of
#: :func:`rnn_mft.theory.analyze` use the same nodes.
C_NODES_FACTOR = 1.5
#: The C map's order is at least this (:class:`CMap`); :mod:`rnn_mft.theory.schedule` buckets
#: grid points by the same floor.
C_MIN_ORDER = 96
#: Cap of the two node counts above (:func:`nodes_for` itself stops at 400).
MAX_NODES = 600


def _q_nodes(var_max: float) -> int:
    """The automatic order of the (mu*, Q*) solve: :data:`Q_ORDER_FACTOR` x :func:`nodes_for`."""
    return int(min(MAX_NODES, np.ceil(Q_ORDER_FACTOR * nodes_for(var_max))))


class _Gauss1:
    r"""E[prod of functions of one gate] by n-point Gauss-Hermite, with a per-gate value cache.

    With ``dvars`` (the derivative of each gate's variance with respect to a parameter, e.g. Q),
    :meth:`ED` also returns the derivative of the expectation, from the same function values:
    by Stein's lemma :math:`\partial_v \mathbb{E} f(\mu + \sqrt v z) = \mathbb{E}[f(u)(z^2 - 1)]/(2v)`.
    """

    def __init__(self, means: dict, vars_: dict, n: int, dvars: dict | None = None):
        self.x, self.w = gauss_hermite(n)
        self.n = n
        self.means = dict(means)
        self.vars = dict(vars_)
        self.dvars = None if dvars is None else dict(dvars)
        self.vals = {}
        self.prods = {}
        self.cache = {}

    def add(self, g, mean, var, dvar=None):
        """Add gate ``g`` (e.g. the GRU's r2, whose variance depends on gate r)."""
        self.means[g], self.vars[g] = mean, var
        if self.dvars is not None:
            self.dvars[g] = dvar

    def _shape(self, g):
        return np.broadcast_shapes(np.shape(self.means[g]), np.shape(self.vars[g]))

    def f(self, g, name):
        """Values of function ``name`` at gate g's nodes (computed on first use: gates and
        functions that an expectation never asks for cost nothing)."""
        key = (g, name)
        if key not in self.vals:
            self.vals[key] = _derived(lambda nm: self.f(g, nm), name,
                                      lambda nm: _base(nm, self.means[g], self.vars[g], self.x))
        return self.vals[key]

    def _prod(self, g, names):
        """The product of the functions ``names`` (sorted) at the nodes, as the product of its two
        halves; products of two functions are cached (they are the halves of fourth moments)."""
        if len(names) == 1:
            return self.f(g, names[0])
        key = (g, names)
        if key in self.prods:
            return self.prods[key]
        k = len(names) // 2
        v = np.multiply(self._prod(g, names[:k]), self._prod(g, names[k:]))
        if len(names) == 2:
            self.prods[key] = v
        return v

    @staticmethod
    def _canon(names):
        """Sorted names without the constant "one", and ndsig = -dsig as a sign: ``(sign, names)``."""
        names = [n for n in names if n != "one"]
        k = names.count("ndsig")
        if k:
            names = ["dsig" if n == "ndsig" else n for n in names]
        return (-1.0) ** k, tuple(sorted(names))

    def E(self, g, names):
        """E[prod of the functions ``names`` of gate g's pre-activation]."""
        sign, names = self._canon(names)
        if sign < 0:
            return -self.E(g, names)
        key = (g, names)
        if key not in self.cache:
            if not names:
                self.cache[key] = np.ones(self._shape(g))
            elif len(names) == 1 or key in self.prods:
                self.cache[key] = self._prod(g, names) @ self.w
            else:                       # sum_j w_j A_j B_j over the two halves: no product array
                k = len(names) // 2
                self.cache[key] = np.einsum("...j,...j,j->...", self._prod(g, names[:k]),
                                            self._prod(g, names[k:]), self.w)
        return self.cache[key]

    def ED(self, g, names):
        """:meth:`E` as a :class:`_Dual` carrying its derivative (through the gate's variance)."""
        sign, names = self._canon(names)
        if sign < 0:
            return -1.0 * self.ED(g, names)
        key = (g, names, "d")
        if key not in self.cache:
            if not names:
                self.cache[key] = _Dual(np.ones(self._shape(g)), 0.0)
            else:
                W = _stein_weights(self.n)                 # (n, 2): E and 2 v dE/dv in one pass
                e = self._prod(g, names) @ W
                self.cache[(g, names)] = e[..., 0]
                v = np.asarray(self.vars[g], float)
                with np.errstate(divide="ignore", invalid="ignore"):
                    dv = np.where(v > 0, e[..., 1] / (2 * np.where(v > 0, v, 1.0)), 0.0)
                self.cache[key] = _Dual(e[..., 0], dv * self.dvars[g])
        return self.cache[key]


@lru_cache(maxsize=16)
def _stein_weights(n: int) -> np.ndarray:
    """Columns ``w`` and ``w (x^2 - 1)``: ``f @ W`` gives E f and 2 v dE f/dv (Stein's lemma)."""
    x, w = gauss_hermite(n)
    W = np.ascontiguousarray(np.stack([w, w * (x * x - 1.0)], axis=1))
    W.setflags(write=False)
    return W


