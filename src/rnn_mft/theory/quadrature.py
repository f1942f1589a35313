r"""Gaussian expectations by Gauss-Hermite quadrature.

Every expectation in the mean-field theory is over one Gaussian variable,

.. math:: \mathbb{E}[f(u)] = \int \mathcal{D}z\, f(\mu + \Sigma z),

or over a correlated pair (eq. (3) of the paper),

.. math::
    (u_a, u_b) \sim \mathcal{N}\left(\begin{pmatrix}\mu\\ \mu\end{pmatrix},
    \Sigma^2 \begin{pmatrix}1 & C\\ C & 1\end{pmatrix}\right),
    \quad u_a = \mu + \Sigma z_a,\;
    u_b = \mu + \Sigma (C z_a + \sqrt{1 - C^2} z_b)

(the Cholesky form of eq. (18)). Both are evaluated with the probabilists'
Gauss-Hermite rule (weights normalised to sum to one), vectorised over any
broadcastable shape of ``mean``, ``var`` and ``corr``: the quadrature axes are
appended last and summed out, so a grid of hyperparameters is one call.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["DEFAULT_ORDER", "MAX_ORDER_1D", "MAX_ORDER_2D", "order_for", "gauss_hermite", "expect",
           "expect2", "sigmoid", "dsigmoid", "dtanh"]

#: Smallest number of nodes per Gaussian dimension used by default.
DEFAULT_ORDER = 80
#: Caps of the automatic order (1-D and per dimension of 2-D rules).
MAX_ORDER_1D, MAX_ORDER_2D = 400, 200


def order_for(var, cap: int = MAX_ORDER_1D) -> int:
    r"""Number of Gauss-Hermite nodes for sigmoid/tanh expectations at variance up to ``max(var)``.

    tanh has poles at :math:`\pm i\pi/2`; in the standardised variable they lie at distance
    :math:`\pi/(2\Sigma)` from the real axis, so the number of nodes needed for a given accuracy
    grows like :math:`\Sigma^2`. Measured against adaptive quadrature (tests/test_quadrature.py),
    ``n = 60 var + 20`` gives errors below 1e-9 for tanh and below 1e-12 for the sigmoid. The
    order is at least :data:`DEFAULT_ORDER` and at most ``cap``: with the 1-D cap (400), tanh is
    accurate to 1e-8 up to var = 6 and the sigmoid up to var = 20; with the 2-D cap (200 per
    dimension), tanh to 1e-8 up to var = 3.
    """
    v = float(np.max(np.asarray(var, dtype=float), initial=0.0))
    if not np.isfinite(v):
        return int(cap)
    return int(min(cap, max(DEFAULT_ORDER, np.ceil(60.0 * v) + 20)))


@lru_cache(maxsize=32)
def _rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    # scipy's Golub-Welsch/asymptotic rule stays finite for large n (numpy's hermegauss overflows)
    from scipy.special import roots_hermitenorm

    x, w = roots_hermitenorm(n)
    w = w / w.sum()
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


def gauss_hermite(n: int = DEFAULT_ORDER) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the ``n``-point rule for the standard normal measure.

    ``sum(w * f(x))`` approximates ``E[f(z)]`` for ``z ~ N(0, 1)``; the weights sum to one.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"quadrature order n={n!r} must be a positive integer")
    return _rule(int(n))


def _check_var(var) -> np.ndarray:
    var = np.asarray(var, dtype=float)
    if np.any(var < 0) or not np.all(np.isfinite(var)):
        bad = var[(var < 0) | ~np.isfinite(var)].ravel()[0]
        raise ValueError(f"variance var={bad!r} must be finite and >= 0")
    return var


def expect(f, mean=0.0, var=1.0, n: int | None = None) -> np.ndarray:
    r"""``E[f(u)]`` for ``u ~ N(mean, var)``, broadcast over ``mean`` and ``var``.

    Parameters
    ----------
    f : callable
        Vectorised function of one array argument.
    mean, var : array_like
        Mean and variance (``var >= 0``); any broadcastable shapes.
    n : int, optional
        Number of Gauss-Hermite nodes; default :func:`order_for` the largest variance.
    """
    var = _check_var(var)
    x, w = gauss_hermite(order_for(var) if n is None else n)
    mean = np.asarray(mean, dtype=float)
    sd = np.sqrt(var)
    u = mean[..., None] + sd[..., None] * x
    return np.einsum("...i,i->...", f(u), w)


def expect2(f, g=None, mean=0.0, var=1.0, corr=0.0, n: int | None = None) -> np.ndarray:
    r"""``E[f(u_a) g(u_b)]`` for the correlated pair of eq. (3), broadcast over the arguments.

    ``mean``, ``var`` and ``corr`` (``-1 <= corr <= 1``) are the common mean, the common variance
    :math:`\Sigma^2` and the correlation :math:`C`. ``g`` defaults to ``f``. The default order
    is :func:`order_for` the largest variance, capped at :data:`MAX_ORDER_2D` per dimension.
    """
    if g is None:
        g = f
    var = _check_var(var)
    x, w = gauss_hermite(order_for(var, MAX_ORDER_2D) if n is None else n)
    mean = np.asarray(mean, dtype=float)
    sd = np.sqrt(var)
    corr = np.asarray(corr, dtype=float)
    if np.any(np.abs(corr) > 1 + 1e-12) or not np.all(np.isfinite(corr)):
        raise ValueError(f"correlation corr={corr!r} must lie in [-1, 1]")
    corr = np.clip(corr, -1.0, 1.0)
    shape = np.broadcast_shapes(mean.shape, sd.shape, corr.shape)
    mean, sd, corr = (np.broadcast_to(a, shape)[..., None, None] for a in (mean, sd, corr))
    za = x[:, None]
    zb = x[None, :]
    ua = mean + sd * za
    ub = mean + sd * (corr * za + np.sqrt(1.0 - corr**2) * zb)
    # f(ua) is constant along the second quadrature axis: evaluate it once.
    fa = f(mean[..., 0] + sd[..., 0] * x)  # (..., n)
    gb = g(ub)  # (..., n, n)
    inner = np.einsum("...ij,j->...i", gb, w)
    del ua
    return np.einsum("...i,...i,i->...", fa, inner, w)


def sigmoid(x):
    """Logistic sigmoid, numerically stable for large ``|x|``: ``(1 + tanh(x / 2)) / 2``, evaluated in
    place (one new array; no temporaries of the input's size)."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 0:
        return 0.5 * (1.0 + np.tanh(0.5 * x))
    t = np.multiply(x, 0.5)
    np.tanh(t, out=t)
    t += 1.0
    t *= 0.5
    return t


def dsigmoid(x):
    """Derivative of the logistic sigmoid."""
    s = sigmoid(x)
    return s * (1.0 - s)


def dtanh(x):
    """Derivative of tanh."""
    return 1.0 - np.tanh(x) ** 2
