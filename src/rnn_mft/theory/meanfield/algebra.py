r"""The string-keyed function algebra of the mean-field map, and forward-mode derivatives.

A :class:`~rnn_mft.arch.Spec` names the element-wise functions of an update (``"sig"``,
``"omsig"`` = 1 - sigma, ``"tanh"``, ...; the vocabulary and derivative table
:data:`~rnn_mft.arch.DERIV` live with the architectures). Here: their values (:data:`FUNCS`),
their values at Gauss-Hermite nodes with one transcendental per gate (:func:`_derived`,
:func:`_base`), and :class:`_Dual`, a value carrying its derivative in one scalar, with which
the Q map of eq. (6) gives G(Q) and G'(Q) at once (Newton's method in
:func:`~rnn_mft.theory.meanfield.solve_q`).
"""
from __future__ import annotations

import numpy as np

from ...arch import DERIV
from ..quadrature import dsigmoid, sigmoid

__all__ = ["FUNCS", "DERIV"]

_sig = sigmoid                       # the logistic function, numerically stable

FUNCS = {
    "sig": _sig,
    "dsig": dsigmoid,
    "omsig": lambda u: _sig(-u),
    "ndsig": lambda u: -dsigmoid(u),
    "tanh": np.tanh,
    "dtanh": lambda u: 1.0 - np.tanh(u) ** 2,
    "one": lambda u: np.ones_like(u),
    "zero": lambda u: np.zeros_like(u),
}
assert set(FUNCS) >= set(DERIV)


def _derived(get, name, base):
    """Values of FUNCS[name] at the nodes, from the cached sigmoid/tanh values where possible
    (``get(name)`` returns cached values, ``base(name)`` computes a function at the nodes): one
    transcendental per gate. Built with in-place operations (one new array each; the cached
    values are not modified)."""
    if name == "omsig":
        return 1.0 - get("sig")
    if name == "dsig":
        s = get("sig")
        d = 1.0 - s
        d *= s
        return d
    if name == "ndsig":
        return np.negative(get("dsig"))
    if name == "dtanh":
        t = get("tanh")
        d = np.multiply(t, t)
        return np.subtract(1.0, d, out=d)
    return base(name)


def _nodes(mean, var, x):
    """Pre-activations ``mean + sqrt(var) x`` at the quadrature nodes ``x``: shape
    ``(*broadcast(mean, var), n)``, built in place (no temporaries of that size)."""
    m = np.asarray(mean, float)
    sd = np.sqrt(np.asarray(var, float))
    u = np.empty(np.broadcast_shapes(m.shape, sd.shape) + np.shape(x))
    np.multiply(sd[..., None], x, out=u)
    u += m[..., None]
    return u


def _base(name, mean, var, x):
    """FUNCS[name] at the nodes ``mean + sqrt(var) x``, in one array: tanh in place on the nodes,
    the sigmoid as (1 + tanh(u/2))/2 on nodes built at half scale (``u/2`` has mean ``mean/2``
    and variance ``var/4``; both scalings are exact, so this equals :func:`quadrature.sigmoid`)."""
    if name == "sig":
        t = _nodes(0.5 * np.asarray(mean, float), 0.25 * np.asarray(var, float), x)
        np.tanh(t, out=t)
        t += 1.0
        t *= 0.5
        return t
    if name == "tanh":
        t = _nodes(mean, var, x)
        return np.tanh(t, out=t)
    return FUNCS[name](_nodes(mean, var, x))


class _Dual:
    """A value and its derivative with respect to one scalar parameter (forward-mode
    differentiation): the Q map (eq. (6)) written with these gives G(Q) and G'(Q) at once, for
    Newton's method in :func:`solve_q`."""

    __slots__ = ("v", "d")
    __array_ufunc__ = None              # ndarray (op) _Dual defers to _Dual's reflected operators

    def __init__(self, v, d=0.0):
        self.v, self.d = v, d

    @staticmethod
    def _split(o):
        return (o.v, o.d) if isinstance(o, _Dual) else (o, 0.0)

    def __add__(self, o):
        v, d = self._split(o)
        return _Dual(self.v + v, self.d + d)

    __radd__ = __add__

    def __sub__(self, o):
        v, d = self._split(o)
        return _Dual(self.v - v, self.d - d)

    def __rsub__(self, o):
        v, d = self._split(o)
        return _Dual(v - self.v, d - self.d)

    def __mul__(self, o):
        v, d = self._split(o)
        return _Dual(self.v * v, self.d * v + self.v * d)

    __rmul__ = __mul__

    def __truediv__(self, o):
        v, d = self._split(o)
        q = self.v / v
        return _Dual(q, (self.d - q * d) / v)

