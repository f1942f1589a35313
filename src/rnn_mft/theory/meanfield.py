r"""Mean-field theory of the closed-form architectures: vanilla, minimal, GRU, peephole LSTM.

All four updates of Table 1 have the form

.. math:: s^t = \alpha(u_f^t)\, s^{t-1} + \beta(u_f^t)\, T^t,\qquad
          T^t = \prod_{k \in \mathcal{T}} \phi_k(u_k^t),

with ``(alpha, beta, T)`` = ``(0, tanh, 1)`` (vanilla), ``(sigma, 1 - sigma, tanh(u_r))``
(minimal), ``(sigma, 1 - sigma, tanh(u_r2))`` (GRU) and ``(sigma, 1, sigma(u_i) tanh(u_r))``
(peephole LSTM, s = c). At large N with untied weights the pre-activations of different gates
are independent Gaussians, independent of :math:`s^{t-1}` (eqs. (3)-(5)), so all moments factor
into one- and two-dimensional Gaussian integrals per gate:

.. math::
    \mu_s' &= \mathbb{E}\alpha\,\mu_s + \mathbb{E}\beta\,\mathbb{E}T,\qquad
    Q_s' = \mathbb{E}\alpha^2\, Q_s + 2\mathbb{E}[\alpha\beta]\mathbb{E}T\,\mu_s
           + \mathbb{E}\beta^2\,\mathbb{E}T^2, \\
    \mathbb{E}[s_a' s_b'] &= \mathbb{E}[\alpha_a\alpha_b](\Sigma_s^2 C_s + \mu_s^2)
      + 2\mathbb{E}[\alpha_a\beta_b]\mathbb{E}T\,\mu_s + \mathbb{E}[\beta_a\beta_b]\mathbb{E}[T_aT_b],

which is the map :math:`\mathcal{M}` of eq. (6) (gate moments from eqs. (4a)-(4b), the GRU's
:math:`u_{r_2}` from eqs. (17a)-(17b)). Its fixed point :math:`(\mu^*, Q^*)` solves a scalar
equation in :math:`Q` (:math:`\mu` is explicit given :math:`Q`); :math:`C^*` solves the 1-D map
eq. (7), which we write as a Mehler series in the gate correlations
(:mod:`rnn_mft.theory.hermite`), so that the map and its derivative :math:`\chi` (eq. (8)) are
polynomials evaluated on the whole grid at once.

The state-to-state Jacobian is :math:`J = D_0 + \sum_k D_k W_k` (eq. (10)) with
:math:`D_0 = \alpha(u_f)`, :math:`D_f = \alpha'(u_f) s + \beta'(u_f) T`,
:math:`D_k = \beta(u_f)\,\partial T/\partial u_k`; for the GRU the (1b) term is
:math:`D_{r_2} W_{r_2} (D_{\sigma(u_r)} + D_{s\sigma'(u_r)} W_r)`. Its moments are eqs. (11)-(12)
(:func:`jacobian_moments`), with the second moment from free probability (see
:func:`jacobian_moments` for the derivation) and the printed eq. (14) kept as ``m2_printed``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import comb

import numpy as np

from . import hermite as _h
from .quadrature import gauss_hermite, sigmoid
from .theta import ARCHS, Theta

__all__ = ["CLOSED_FORM", "Spec", "SPECS", "check_sigma_z", "nodes_for", "gate_stats", "step",
           "trajectory", "solve_q", "CMap", "solve_c", "fixed_point", "jacobian_moments",
           "state_moments", "FixedPointResult"]

CLOSED_FORM = ("vanilla", "minimal", "gru", "peephole_lstm")

# --- element-wise functions and their derivatives --------------------------------------------
_sig = sigmoid                       # the logistic function, numerically stable


def _dsig(u):
    s = _sig(u)
    return s * (1.0 - s)


FUNCS = {
    "sig": _sig,
    "dsig": _dsig,
    "omsig": lambda u: _sig(-u),
    "ndsig": lambda u: -_dsig(u),
    "tanh": np.tanh,
    "dtanh": lambda u: 1.0 - np.tanh(u) ** 2,
    "one": lambda u: np.ones_like(u),
    "zero": lambda u: np.zeros_like(u),
}
DERIV = {"sig": "dsig", "omsig": "ndsig", "tanh": "dtanh", "one": "zero", "zero": "zero"}


@dataclass(frozen=True)
class Spec:
    """``s' = alpha(u_f) s + beta(u_f) prod_k phi_k(u_k)`` (see the module docstring)."""

    alpha: str          # function name for alpha (or "zero")
    beta: str           # function name for beta
    T: tuple            # ((gate, fname), ...): the factors of T
    gru: bool = False   # T's gate r2 is of form (1b) with g_r = sigma(u_r)


SPECS = {
    "vanilla": Spec("zero", "tanh", ()),
    "minimal": Spec("sig", "omsig", (("r", "tanh"),)),
    "gru": Spec("sig", "omsig", (("r2", "tanh"),), gru=True),
    "peephole_lstm": Spec("sig", "one", (("i", "sig"), ("r", "tanh"))),
}


def check_sigma_z(sigma_z) -> np.ndarray:
    """Validate the input correlation :math:`\\Sigma_z \\in [0, 1]` (Section 4.2)."""
    sz = np.asarray(sigma_z, dtype=float)
    if not np.all(np.isfinite(sz)) or np.any(sz < 0) or np.any(sz > 1):
        raise ValueError(f"sigma_z={sigma_z!r} must lie in [0, 1]")
    return sz


def check_R(R) -> float:
    """Validate the input second moment R (> 0, finite)."""
    try:
        R = float(R)
    except (TypeError, ValueError):
        raise ValueError(f"R={R!r} must be a finite number > 0") from None
    if not np.isfinite(R) or R <= 0:
        raise ValueError(f"R={R!r} must be a finite number > 0")
    return R


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
    return int(np.clip(np.ceil(24 + 40 * v), 48, 400))


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
#: Cap of the two node counts above (:func:`nodes_for` itself stops at 400).
MAX_NODES = 600


def _q_nodes(var_max: float) -> int:
    """The automatic order of the (mu*, Q*) solve: :data:`Q_ORDER_FACTOR` x :func:`nodes_for`."""
    return int(min(MAX_NODES, np.ceil(Q_ORDER_FACTOR * nodes_for(var_max))))


# --- gate statistics ---------------------------------------------------------------------------
def _var_corr(p, q_s, ss_ab, R, sz):
    """Eqs. (4a)-(4b): variance Q_k - mu_k^2 and correlation C_k of a gate of form (1a)."""
    var = p.sigma2 * q_s + p.nu2 * R + p.rho2
    cov = p.sigma2 * ss_ab + p.nu2 * R * sz + p.rho2
    return var, _safe_corr(cov, var)


def _safe_corr(cov, var):
    var = np.asarray(var, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(var > 0, cov / np.where(var > 0, var, 1.0), 1.0)
    return np.clip(c, -1.0, 1.0)


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


def gate_stats(theta: Theta, mu_s, q_s, c_s, sigma_z=1.0, R=1.0, n: int | None = None):
    """Mean, variance and correlation of every pre-activation (eqs. (4a)-(4b), (17a)-(17b)).

    Returns ``{gate: (mean, var, corr)}`` broadcast over theta's grid and the arguments.
    """
    arch = theta.arch
    sz = check_sigma_z(sigma_z)
    mu_s, q_s, c_s = (np.asarray(a, dtype=float) for a in (mu_s, q_s, c_s))
    ss_ab = (q_s - mu_s**2) * c_s + mu_s**2
    out = {}
    for k in ARCHS[arch]:
        if k == "r2":
            continue
        var, corr = _var_corr(theta[k], q_s, ss_ab, R, sz)
        out[k] = (theta[k].mu, var, corr)
    if arch == "gru":
        from .quadrature import expect, expect2
        mu_r, var_r, c_r = out["r"]
        nn = nodes_for(np.max(var_r), n)
        g2 = expect(lambda u: _sig(u) ** 2, mu_r, var_r, n=nn)
        gab = expect2(_sig, None, mu_r, var_r, c_r, n=nn)
        p = theta["r2"]
        var2 = p.sigma2 * g2 * q_s + p.nu2 * R + p.rho2                   # eq. (17a)
        cov2 = p.sigma2 * gab * ss_ab + p.nu2 * R * sz + p.rho2           # eq. (17b)
        out["r2"] = (p.mu, var2, _safe_corr(cov2, var2))
    return out


# --- the map (6) by direct quadrature (trajectories, and the reference for the fast path) -----
def step(theta: Theta, mu_s, q_s, c_s, sigma_z=1.0, R=1.0, n: int | None = None):
    r"""One application of the map :math:`\mathcal{M}` of eq. (6): returns ``(mu_s, q_s, c_s)``.

    Direct 1-D and 2-D Gauss-Hermite quadrature (no series); used for trajectories and as the
    reference for the fixed-point solver and for the finite-difference check of :math:`\chi`.
    """
    from .quadrature import expect, expect2
    spec = SPECS[theta.arch]
    mu_s, q_s, c_s = (np.asarray(a, dtype=float) for a in (mu_s, q_s, c_s))
    pre = gate_stats(theta, mu_s, q_s, c_s, sigma_z, R, n)
    nn = nodes_for(max(float(np.max(v)) for _, v, _ in pre.values()), n)
    F = FUNCS
    mf, vf, cf = pre["f"]
    al, be = F[spec.alpha], F[spec.beta]
    Ea, Eb = expect(al, mf, vf, n=nn), expect(be, mf, vf, n=nn)
    Eaa = expect(lambda u: al(u) ** 2, mf, vf, n=nn)
    Eab = expect(lambda u: al(u) * be(u), mf, vf, n=nn)
    Ebb = expect(lambda u: be(u) ** 2, mf, vf, n=nn)
    Paa = expect2(al, al, mf, vf, cf, n=nn)
    Pab = expect2(al, be, mf, vf, cf, n=nn)
    Pbb = expect2(be, be, mf, vf, cf, n=nn)
    ET, ET2, Tab = 1.0, 1.0, 1.0
    for g, name in spec.T:
        m, v, c = pre[g]
        fn = F[name]
        ET = ET * expect(fn, m, v, n=nn)
        ET2 = ET2 * expect(lambda u: fn(u) ** 2, m, v, n=nn)
        Tab = Tab * expect2(fn, fn, m, v, c, n=nn)
    ss_ab = (q_s - mu_s**2) * c_s + mu_s**2
    mu_new = Ea * mu_s + Eb * ET
    q_new = Eaa * q_s + 2 * Eab * ET * mu_s + Ebb * ET2
    ab_new = Paa * ss_ab + 2 * Pab * ET * mu_s + Pbb * Tab
    c_new = _safe_corr(ab_new - mu_new**2, q_new - mu_new**2)
    return mu_new, q_new, c_new


def trajectory(theta: Theta, sigma_z, mu0=0.0, q0=1.0, c0=1.0, R=1.0, n: int | None = None):
    """Iterate eq. (6) for a sequence ``sigma_z`` (shape (T,)); arrays of shape (T+1, *grid)."""
    sz = check_sigma_z(sigma_z)
    if sz.ndim != 1:
        raise ValueError(f"sigma_z must be a 1-D sequence over time, got shape {sz.shape}")
    st = tuple(np.broadcast_to(np.asarray(v, dtype=float), theta.shape) for v in (mu0, q0, c0))
    out = [st]
    for s in sz:
        st = step(theta, *st, s, R, n)
        out.append(st)
    return tuple(np.stack([o[i] for o in out]) for i in range(3))


# --- fixed point of (mu, Q) --------------------------------------------------------------------
def _q_map(theta, spec, q, R, n, deriv: bool = False):
    """(mu*(Q), G(Q), gates): the single-sequence part of eq. (6) with mu eliminated.

    The gate variances are eq. (4a) (and (17a) for the GRU's r2). With ``deriv`` every
    expectation carries its derivative in Q (:class:`_Dual`, Stein's lemma), so that ``G``
    is returned as a :class:`_Dual` holding ``G(Q)`` and ``G'(Q)``; ``mu`` is always an array.
    """
    means, vars_, dvars = {}, {}, {}
    for k in ARCHS[theta.arch]:
        if k == "r2":
            continue
        p = theta[k]
        means[k], vars_[k], dvars[k] = p.mu, p.sigma2 * q + p.nu2 * R + p.rho2, p.sigma2
    G = _Gauss1(means, vars_, n, dvars)
    E = G.ED if deriv else G.E
    Q = _Dual(q, 1.0) if deriv else q
    if spec.gru:
        p = theta["r2"]
        v2 = p.sigma2 * E("r", ("sig", "sig")) * Q + p.nu2 * R + p.rho2          # eq. (17a)
        G.add("r2", p.mu, *((v2.v, v2.d) if deriv else (v2, None)))
    Ea, Eb = E("f", (spec.alpha,)), E("f", (spec.beta,))
    Eaa, Eab, Ebb = (E("f", (spec.alpha, spec.alpha)), E("f", (spec.alpha, spec.beta)),
                     E("f", (spec.beta, spec.beta)))
    ET, ET2 = 1.0, 1.0
    for g, name in spec.T:
        ET = ET * E(g, (name,))
        ET2 = ET2 * E(g, (name, name))
    if spec.beta == "omsig":            # mu = (1 - Ea) ET / (1 - Ea) = ET exactly
        mu = ET + 0.0 * Ea
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            mu = Eb * ET / (1.0 - Ea)
    qn = Eaa * Q + 2 * Eab * ET * mu + Ebb * ET2
    return (mu.v if deriv else mu), qn, G


def _max_var(theta, q, R):
    """Largest pre-activation variance over the grid, point by point (NaN ignored); for the GRU's
    r2 the bound sigma2 * Q + ... (E sigma(u_r)^2 <= 1)."""
    v = 0.0
    for k in ARCHS[theta.arch]:
        p = theta[k]
        vk = np.asarray(p.sigma2 * q + p.nu2 * R + p.rho2, float)
        v = max(v, float(np.nanmax(vk, initial=0.0)) if vk.size else 0.0)
    return v


def _flat(theta: Theta, shape) -> Theta:
    """Theta with every field broadcast to ``shape`` and flattened (grid points on one axis)."""
    return Theta(theta.arch, {g: {f: np.broadcast_to(getattr(theta[g], f), shape).ravel().copy()
                                  for f in ("sigma2", "nu2", "rho2", "mu")} for g in theta})


def _take(theta: Theta, idx) -> Theta:
    """The grid points ``idx`` of a flattened Theta."""
    return Theta(theta.arch, {g: {f: getattr(theta[g], f)[idx] for f in ("sigma2", "nu2", "rho2", "mu")}
                              for g in theta})


def solve_q(theta: Theta, R=1.0, n: int | None = None, tol: float = 1e-12, max_iter: int = 100,
            q_init=None, info: dict | None = None):
    """Fixed point (mu*, Q*) of eq. (6) (single sequence): safeguarded Newton on Q = G(Q).

    ``G'(Q)`` comes with ``G(Q)`` from the same quadrature nodes (:func:`_q_map` with
    ``deriv``), so a step costs one map and converges quadratically: from a close start
    (``q_init``, e.g. a low-order solve) two or three maps reach ``tol``; without it Newton
    starts at Q = 1. Where Newton's slope is not that of a stable fixed point (G' >= 1) or the
    step is not finite, a Picard step is taken instead, and where moreover G(Q) > Q (the fixed
    point lies above, beyond the region where G' >= 1, e.g. a long-memory cell state with
    Q* >> 1) at least a doubling of Q; a step to Q <= 0 shrinks Q instead (a state with no
    input decays to Q* = 0). Grid points whose residual is below ``tol`` are not iterated
    further; ``mu`` and the residual are those of each point's last map.

    Returns ``(mu, q, residual, iterations, nodes)``; with an ``info`` dict, also puts the
    signed residual ``G(Q) - Q`` (``"r"``) and the slope ``G'(Q)`` (``"dG"``) of each point's
    last map there.
    """
    spec = SPECS[theta.arch]
    shape = theta.shape
    th = _flat(theta, shape if shape else (1,))
    P = th.shape[0]
    if n is None and q_init is None and P > 1:
        # locate Q* at a low order first: the automatic order then follows the actual variances
        # (not the bound Q <= 1 or the start), and the full-order solve starts close to Q*
        _, q0, _, _, _ = solve_q(theta, R, n=32, tol=1e-4, max_iter=10)
        q_init = np.where(np.isfinite(q0) & (q0 > 0), q0, 1.0)
    # node count from a bound on the largest gate variance (Q of a bounded state is <= 1;
    # the peephole cell state can exceed it: the bound is re-checked after solving).
    q = np.ones(P) if q_init is None else np.broadcast_to(np.asarray(q_init, float), shape).ravel().copy()
    mu, res = np.full(P, np.nan), np.full(P, np.inf)
    r_all, dG = np.full(P, np.nan), np.full(P, np.nan)
    nn = n
    it = 0
    for attempt in range(3):
        # from a close start (q_init), a 5% margin on Q avoids a second attempt for a small rise
        nq_var = _max_var(th, q * (1.05 if (attempt == 0 and q_init is not None) else 1.0), R)
        nn = _q_nodes(nq_var) if n is None else int(n)
        active = np.arange(P)
        for it in range(max_iter + 1):
            a = active
            qa = q[a]
            mu_a, g, _ = _q_map(th if a.size == P else _take(th, a), spec, qa, R, nn, deriv=True)
            r = g.v - qa
            mu[a], res[a] = mu_a, np.abs(r) / np.maximum(1.0, qa)
            r_all[a], dG[a] = r, g.d
            done = res[a] <= tol
            active = a[~done]
            if active.size == 0 or it == max_iter:
                break
            d = g.d - 1.0                                       # slope of r(Q) = G(Q) - Q
            with np.errstate(divide="ignore", invalid="ignore"):
                qN = qa - r / d
            qN = np.where(np.isfinite(qN) & (qN <= 0), 1e-3 * qa, qN)
            qN = np.minimum(qN, 10 * qa + 1)                    # damped growth (long memories)
            ok = (d < -1e-14) & np.isfinite(qN)
            # fallback: a Picard step; below the fixed point where the slope is not yet that of
            # a stable one (G' >= 1), at least a doubling of Q (Picard would crawl: G' ~ 1)
            picard = np.where(np.isfinite(g.v) & (g.v > 0), g.v, qa)
            grow = (r > 0) & (d >= -1e-14) & np.isfinite(g.v)
            q[active] = np.where(ok, qN, np.where(grow, np.maximum(picard, 2 * qa), picard))[~done]
        if n is not None or _q_nodes(_max_var(th, q, R)) <= nn:
            break
    if info is not None:
        info["r"], info["dG"] = r_all.reshape(shape), dG.reshape(shape)
    return mu.reshape(shape), q.reshape(shape), res.reshape(shape), it, nn


# --- the C map (7) as a series, its fixed point and chi (8) ----------------------------------
#: every gate function as ``const + coef * base``: the C map then needs one Mehler series per
#: gate, of its base function (e.g. E[sig(u_a)(1 - sig(u_b))] = E sig - E[sig(u_a) sig(u_b)])
_AFFINE = {"zero": (0.0, 0.0, None), "one": (1.0, 0.0, None), "sig": (0.0, 1.0, "sig"),
           "omsig": (1.0, -1.0, "sig"), "tanh": (0.0, 1.0, "tanh")}


def _bases(spec: Spec) -> dict:
    """``{gate: base function}`` of the gates whose pair expectations the C map needs."""
    uses = {"f": [spec.alpha, spec.beta]}
    if spec.gru:
        uses["r"] = ["sig"]                 # g_r = sigma(u_r) enters u_r2 (eqs. (17a)-(17b))
    for g, name in spec.T:
        uses.setdefault(g, []).append(name)
    out = {}
    for g, names in uses.items():
        bs = {_AFFINE[nm][2] for nm in names} - {None}
        if len(bs) > 1:
            raise NotImplementedError(f"gate {g!r}: functions {names} have no common base function")
        if bs:
            out[g] = bs.pop()
    return out


class CMap:
    r"""The correlation map :math:`C_s \mapsto \mathcal{M}_C(\mu^*, Q^*, C_s)` of eq. (7) and its
    derivative (eq. (8)) at a fixed :math:`(\mu^*, Q^*)`, through Mehler series of every gate.

    Each gate k needs :math:`\mathbb{E}[a(u_{k,a}) b(u_{k,b})]` for a few functions a, b that are
    all affine in one base function h (sigma or tanh, :data:`_AFFINE`); with
    :math:`a = c_a + k_a h`: :math:`\mathbb{E}[a_a b_b] = c_ac_b + (c_ak_b + k_ac_b)\mathbb{E}h
    + k_ak_b P_k(C_k)`, where :math:`P_k(C) = \mathbb{E}[h(u_a)h(u_b)]` is one Mehler series per gate
    (:class:`~rnn_mft.theory.hermite.PairSeries`). The series of the gates whose correlation
    follows from eq. (4b) directly are evaluated together (:class:`~rnn_mft.theory.hermite.SeriesStack`);
    the GRU's r2 (eq. (17b)) after them. With ``nq`` unset, the coefficients are integrated with
    :data:`C_NODES_FACTOR` x :func:`nodes_for`'s order (``order``; it also sets M = 2/3 order);
    the gate values at these nodes are kept in ``values`` (reused by :func:`jacobian_moments`).
    """

    def __init__(self, theta: Theta, mu, q, sigma_z, R=1.0, M=None, nq=None):
        self.theta, self.spec = theta, SPECS[theta.arch]
        self.mu, self.q = np.asarray(mu, float), np.asarray(q, float)
        self.var_s = self.q - self.mu**2
        self.sz, self.R = check_sigma_z(sigma_z), R
        spec = self.spec
        means, vars_ = {}, {}
        for k in ARCHS[theta.arch]:
            if k == "r2":
                continue
            p = theta[k]
            means[k], vars_[k] = p.mu, p.sigma2 * self.q + p.nu2 * R + p.rho2
        vmax = max(float(np.nanmax(v)) for v in vars_.values())
        if nq is None:                  # automatic: C_NODES_FACTOR x the rule's order (see there)
            order = max(nodes_for(vmax), 96)
            nq = int(min(np.ceil(C_NODES_FACTOR * order), MAX_NODES))
        else:
            order = nq
        if M is None:
            M = int(min(order * 2 // 3, 320))
        self.order, self.M, self.nq = order, M, nq
        x, w, H = _h.hermite_weights(M, nq)
        self.x, self.w, self.H = x, w, H
        self.bases = _bases(spec)
        self.series, self.Eh, self.Ehh = {}, {}, {}
        self.values = {}                                # {(gate, function): values at the nodes}
        for g, h in self.bases.items():                 # f, (GRU: r before r2), T's gates
            if g == "r2":
                p = theta["r2"]
                g2 = self.Ehh["r"]                      # E sigma(u_r)^2
                means["r2"], vars_["r2"] = p.mu, p.sigma2 * g2 * self.q + p.nu2 * R + p.rho2   # eq. (17a)
            self._add(g, h, means[g], vars_[g])
        self.means, self.vars = means, vars_
        self.direct = [g for g in self.bases if g != "r2"]
        self.stack = _h.SeriesStack([self.series[g] for g in self.direct])
        self.ET = np.ones(())
        for g, name in spec.T:
            self.ET = self.ET * self._mean(g, name)

    def _add(self, g, h, m, v):
        """Mehler series of E[h(u_a) h(u_b)] for gate g (pre-activation mean m, variance v)."""
        vals = {}

        def get(nm):                                    # h and h' at the nodes: one tanh
            if nm not in vals:
                vals[nm] = _derived(get, nm, lambda b: _base(b, m, v, self.x))
            return vals[nm]

        fh, dh = get(h), get(DERIV[h])
        self.values.update({(g, nm): a for nm, a in vals.items()})
        coef = fh @ self.H.T                            # f_n = E[h He_n] / sqrt(n!)
        self.Ehh[g] = np.einsum("...j,...j,j->...", fh, fh, self.w)       # P_g(1) = E h^2
        d1 = np.asarray(v) * np.einsum("...j,...j,j->...", dh, dh, self.w)   # P_g'(1), eq. (19)
        self.series[g] = _h.PairSeries(coef, coef, self.Ehh[g], d1)
        self.Eh[g] = coef[..., 0]                       # E h (He_0 = 1)

    def _mean(self, g, name):
        c, k, _ = _AFFINE[name]
        return c + k * self.Eh[g] if k else c

    def _pair(self, g, a, b, P, dP):
        """E[a(u_a) b(u_b)] for gate g and its derivative in C_s, from P_g = E[h_a h_b] and dP_g/dC_s."""
        (ca, ka, _), (cb, kb, _) = _AFFINE[a], _AFFINE[b]
        val = ca * cb + ((ca * kb + ka * cb) * self.Eh[g] if (ca * kb + ka * cb) else 0.0)
        if not ka * kb:
            return val, 0.0
        return val + ka * kb * P[g], (ka * kb * dP[g] if dP else 0.0)

    def _corr(self, k, S):
        p = self.theta[k]
        return _safe_corr(p.sigma2 * S + p.nu2 * self.R * self.sz + p.rho2, self.vars[k])

    def _dcorr(self, k):
        p = self.theta[k]
        v = self.vars[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(v > 0, p.sigma2 * self.var_s / np.where(v > 0, v, 1.0), 0.0)

    def __call__(self, C, deriv: bool = False):
        """:math:`\\mathcal{M}_C(C)` (and its derivative :math:`\\chi(C)` of eq. (8))."""
        sp, th = self.spec, self.theta
        C = np.asarray(C, float)
        S = self.var_s * C + self.mu**2                  # E[s_a s_b] = Sigma_s^2 C + mu_s^2
        # gate correlations (eq. (4b)) and the per-gate series P_k(C_k), with dP_k/dC_s
        Ck = np.stack(np.broadcast_arrays(*[self._corr(g, S) for g in self.direct]))
        out = self.stack(Ck, deriv)
        vals, ders = out if deriv else (out, None)
        P = dict(zip(self.direct, vals))
        dP = {g: ders[i] * self._dcorr(g) for i, g in enumerate(self.direct)} if deriv else {}
        if "r2" in self.bases:                           # GRU: u_r2 correlation from eq. (17b)
            p = th["r2"]
            v2 = self.vars["r2"]
            Gv = P["r"]
            cov = p.sigma2 * Gv * S + p.nu2 * self.R * self.sz + p.rho2
            C2 = _safe_corr(cov, v2)
            if deriv:
                with np.errstate(divide="ignore", invalid="ignore"):
                    dC2 = np.where(v2 > 0, p.sigma2 * (dP["r"] * S + Gv * self.var_s)
                                   / np.where(v2 > 0, v2, 1.0), 0.0)
                P["r2"], d2 = self.series["r2"](C2, True)
                dP["r2"] = d2 * dC2
            else:
                P["r2"] = self.series["r2"](C2)
        Paa = self._pair("f", sp.alpha, sp.alpha, P, dP)
        Pab = self._pair("f", sp.alpha, sp.beta, P, dP)
        Pbb = self._pair("f", sp.beta, sp.beta, P, dP)
        # T_ab = prod_k E[phi_k(u_ka) phi_k(u_kb)] and its derivative in C_s
        Ts = [self._pair(g, name, name, P, dP) for g, name in sp.T]
        Tab = np.ones(())
        for v, _ in Ts:
            Tab = Tab * v
        Eab = Paa[0] * S + 2 * Pab[0] * self.ET * self.mu + Pbb[0] * Tab
        with np.errstate(divide="ignore", invalid="ignore"):
            Mc = (Eab - self.mu**2) / self.var_s
        if not deriv:
            return Mc
        dT = np.zeros(())
        for i in range(len(Ts)):
            term = Ts[i][1]
            for j, (v, _) in enumerate(Ts):
                if j != i:
                    term = term * v
            dT = dT + term
        dE = Paa[1] * S + Paa[0] * self.var_s + 2 * Pab[1] * self.ET * self.mu + Pbb[1] * Tab + Pbb[0] * dT
        with np.errstate(divide="ignore", invalid="ignore"):
            chi = dE / self.var_s
        return Mc, chi


def solve_c(cmap: CMap, tol: float = 1e-13, max_iter: int = 200):
    """The stable fixed point C* of eq. (7): safeguarded Newton in the bracket [-1, 1].

    The map is convex on [0, 1] (Appendix B, Lemma 3), so Newton from the left (where
    M_C(C) > C) increases monotonically to the smallest root, the stable one; bisection keeps
    the bracket if an iterate misbehaves. At Sigma_z = 1, C = 1 is a fixed point; where
    chi(1) <= 1 it is the stable one and is returned directly. Every map evaluation carries chi,
    so the first one (at C = 0) is also the first Newton step, and chi at C* is that of the
    last, converged evaluation.
    Returns ``(c, chi, residual, iterations)``.
    """
    shape = np.broadcast_shapes(cmap.var_s.shape, cmap.sz.shape, cmap.theta.shape)
    one = np.ones(shape)
    szb = np.broadcast_to(cmap.sz, shape)
    at_one = np.zeros(shape, dtype=bool)
    if np.any(szb == 1.0):
        m1, chi1 = cmap(one, deriv=True)
        at_one = (szb == 1.0) & (chi1 <= 1.0 + 1e-12)
    lo, hi = -one.copy(), one.copy()
    c = np.zeros(shape)
    m, d = cmap(c, deriv=True)
    neg = (m - c) < 0
    if np.any(neg):                       # start from the left end where M_C(0) < 0
        hi = np.where(neg, 0.0, hi)
        c = np.where(neg, -1.0, c)
        m, d = cmap(c, deriv=True)
    it = 0
    converged = False
    for it in range(max_iter):
        if it > 0:
            m, d = cmap(c, deriv=True)
        r = m - c
        done = (np.abs(r) < tol) | at_one
        if np.all(done):
            converged = True
            break
        lo = np.where(r > 0, c, lo)
        hi = np.where(r < 0, c, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            cn = c - r / (d - 1.0)
        bad = ~np.isfinite(cn) | (cn <= lo) | (cn >= hi) | (d - 1.0 >= 0)
        cn = np.where(bad, 0.5 * (lo + hi), cn)
        c = np.where(done, c, cn)
    if not converged:                      # c moved after the last evaluation
        m, d = cmap(c, deriv=True)
    if np.any(at_one):
        c = np.where(at_one, 1.0, c)
        m, d = np.where(at_one, m1, m), np.where(at_one, chi1, d)
    res = np.where(at_one, 0.0, np.abs(m - c))
    return c, d, res, it


#: Beyond Q* = 1 (only a cell state that is not bounded gets there) a residual relative to Q says
#: little: a Q that grows without end has |G(Q) - Q| / Q -> 0. Such a point counts as converged
#: only when (a) it is a stable fixed point (G'(Q*) < 1) whose Newton distance
#: |G(Q) - Q| / (1 - G'(Q)) is below ``Q_DIST_TOL * Q*``, and (b) the quadrature resolves it: the
#: largest gate pre-activation variance at Q* is at most ``VAR_RESOLVED``, where Gauss-Hermite at
#: :data:`MAX_NODES` nodes has the error estimate exp(-2.6 sqrt(n) / Sigma) of
#: :func:`nodes_for` of about 1e-6 (beyond, Q* = G(Q*), amplified by 1 / (1 - G'), is noise).
Q_DIST_TOL = 1e-6
VAR_RESOLVED = 21.0


def _gate_var_max(theta: Theta, q, R):
    """Largest pre-activation variance point by point (for r2 the bound sigma2 * Q + ...)."""
    v = 0.0
    for k in ARCHS[theta.arch]:
        p = theta[k]
        v = np.maximum(v, p.sigma2 * q + p.nu2 * R + p.rho2)
    return v


def q_converged(theta: Theta, q, r, dG, R=1.0):
    """The extra test of a converged Q* > 1 (see :data:`Q_DIST_TOL`); True where Q* <= 1."""
    q, r, dG = np.asarray(q, float), np.asarray(r, float), np.asarray(dG, float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slope = 1.0 - dG
        dist = np.where(r == 0, 0.0, np.where(slope > 0, np.abs(r) / slope, np.inf))
        big = ~(q <= 1.0)
        ok = (dist <= Q_DIST_TOL * q) & (_gate_var_max(theta, q, R) <= VAR_RESOLVED)
    return ~big | ok


@dataclass(frozen=True)
class FixedPointResult:
    """Fixed point (mu*, Q*, C*), chi at C* and diagnostics; NaN where not converged."""

    mu_s: np.ndarray
    q_s: np.ndarray
    c_s: np.ndarray
    chi: np.ndarray
    converged: np.ndarray
    residual: np.ndarray
    iterations: int
    cmap: CMap | None = None


def fixed_point(theta: Theta, sigma_z=1.0, R=1.0, tol: float = 1e-10, n: int | None = None,
                M: int | None = None, q_init=None) -> FixedPointResult:
    """(mu*, Q*, C*) of eq. (6) and chi (eq. (8)) for a closed-form architecture, on a grid."""
    if theta.arch not in SPECS:
        raise ValueError(f"arch={theta.arch!r} has no closed-form map; allowed: {', '.join(SPECS)}")
    sz = check_sigma_z(sigma_z)
    R = check_R(R)
    qinfo: dict = {}
    mu, q, res_q, it_q, _ = solve_q(theta, R, n, tol=tol * 1e-2, q_init=q_init, info=qinfo)
    q_ok = q_converged(theta, q, qinfo["r"], qinfo["dG"], R)
    var_s = q - mu**2
    # a (numerically) deterministic state has no correlation to speak of: C* = 1
    ok_var = var_s > 1e-14 * np.maximum(1.0, q)
    q_safe = np.where(ok_var, q, np.maximum(q, mu**2) + 1e-12)
    cm = CMap(theta, mu, q_safe, sz, R, M=M, nq=n)
    c, chi, res_c, it_c = solve_c(cm, tol=min(tol, 1e-12))
    shape = c.shape
    res = np.maximum(np.broadcast_to(res_q, shape), res_c)
    conv = (res < tol) & np.isfinite(c) & np.isfinite(chi) & np.broadcast_to(np.isfinite(q) & (q >= 0) & q_ok, shape)
    nan = lambda a: np.where(conv, np.broadcast_to(a, shape), np.nan)  # noqa: E731
    return FixedPointResult(nan(mu), nan(q), nan(c), nan(chi), conv, res, max(it_q, it_c), cm)


# --- backward: moments of the state-to-state Jacobian -----------------------------------------
# A "D" is a list of monomials (coef, ((gate, fname), ...), power of s).
def _mono(coef, factors, p=0):
    return [(coef, tuple(factors), p)]


def _prod(*Ds):
    out = [(1.0, (), 0)]
    for D in Ds:
        out = [(c1 * c2, f1 + f2, p1 + p2) for (c1, f1, p1) in out for (c2, f2, p2) in D]
    return out


def _expect(G: _Gauss1, D, smom):
    """E over one unit of a sum of monomials: gates independent, s independent of the gates."""
    tot = 0.0
    for c, factors, p in D:
        by = {}
        for g, nm in factors:
            by.setdefault(g, []).append(nm)
        v = c * smom[p]
        for g, names in by.items():
            if "zero" in names:
                v = 0.0 * v
                break
            v = v * G.E(g, names)
        tot = tot + v
    return tot


def jacobian_terms(arch: str):
    """``(D0, [(gate, D_k, K)])`` of eq. (10); ``K`` is None for (1a) or ``(G, H, gate)`` for (1b)."""
    sp = SPECS[arch]
    Tf = list(sp.T)
    D0 = [] if sp.alpha == "zero" else _mono(1.0, [("f", sp.alpha)])
    Df = []
    if sp.alpha != "zero":
        Df += _mono(1.0, [("f", DERIV[sp.alpha])], 1)
    Df += _mono(1.0, [("f", DERIV[sp.beta])] + Tf)
    terms = [("f", Df, None)]
    for i, (g, nm) in enumerate(Tf):
        others = [t for j, t in enumerate(Tf) if j != i]
        Dk = _mono(1.0, [("f", sp.beta), (g, DERIV[nm])] + others)
        if sp.gru and g == "r2":
            K = (_mono(1.0, [("r", "sig")]), _mono(1.0, [("r", "dsig")], 1), "r")
            terms.append((g, Dk, K))
        else:
            terms.append((g, Dk, None))
    return D0, terms


def state_moments(G: _Gauss1, spec: Spec, mu, q, pmax: int = 4):
    """Moments E[s^p], p <= pmax, of the stationary state: the perpetuity s = A s + B
    (A = alpha(u_f), B = beta(u_f) T) gives m_p (1 - E A^p) = sum_{j<p} C(p,j) E[A^j B^(p-j)] m_j."""
    m = {0: np.ones_like(np.asarray(q, float)), 1: np.asarray(mu, float), 2: np.asarray(q, float)}
    for p in range(3, pmax + 1):
        acc = 0.0
        for j in range(p):
            fac = [("f", spec.alpha)] * j + [("f", spec.beta)] * (p - j)
            for g, nm in spec.T:
                fac += [(g, nm)] * (p - j)
            acc = acc + comb(p, j) * _expect(G, _mono(1.0, fac), m) * (m[j] if j > 0 else 1.0)
        EAp = _expect(G, _mono(1.0, [("f", spec.alpha)] * p), m) if spec.alpha != "zero" else 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            m[p] = acc / (1.0 - EAp)
    return m


def jacobian_moments(theta: Theta, mu, q, R=1.0, n: int | None = None, values: dict | None = None):
    r"""m1 (eqs. (11)-(12)), m2 from free probability, and m2 as printed in eq. (14).

    With :math:`J = D_0 + \sum_k D_k W_k K_k` (:math:`K_k = I` for (1a) variables,
    :math:`K = D_{\sigma(u_r)} + D_{s\sigma'(u_r)} W_r` for the GRU's (1b) variable), independent
    Ginibre :math:`W_k` (entries of variance :math:`\sigma_k^2/N`) and diagonal :math:`D`'s whose
    entries are functions of one unit, only non-crossing Wick pairings survive at large N:

    .. math::
        m_1 &= \mathbb{E}[D_0^2] + \sum_k \sigma_k^2 t_k\,\mathbb{E}[D_k^2],
        \qquad t_k = \tau(K_kK_k^\top), \\
        m_2 &= \mathbb{E}\Big[\big(D_0^2 + \textstyle\sum_k \tilde a_k\big)^2\Big]
              + 2\,\mathbb{E}[D_0^2]\,\mathbb{E}\textstyle\sum_k \tilde a_k
              + \big(\mathbb{E}\textstyle\sum_k \tilde a_k\big)^2
              + \sum_k \sigma_k^4\, \mathbb{E}[D_k^2]^2\,(v_k - t_k^2),

    with :math:`\tilde a_k = \sigma_k^2 t_k D_k^2` and :math:`v_k = \tau((K_kK_k^\top)^2)`
    (:math:`t = v = 1` for (1a); for the GRU :math:`t = \mathbb{E}g^2 + \sigma_r^2\mathbb{E}H^2`,
    :math:`v = \mathbb{E}g^4 + 2\sigma_r^2(\mathbb{E}[g^2H^2] + \mathbb{E}g^2\mathbb{E}H^2)
    + \sigma_r^4(\mathbb{E}H^4 + (\mathbb{E}H^2)^2)`, :math:`g = \sigma(u_r)`,
    :math:`H = s\sigma'(u_r)`). The printed eq. (14), :math:`\mathbb{E}\sum_{k,l}2a_ka_l - a_0^2`
    with the per-unit :math:`a_k` of eq. (12), replaces :math:`(\mathbb{E}\sum\tilde a)^2 +
    2\mathbb{E}D_0^2\,\mathbb{E}\sum\tilde a` by the same-unit :math:`\mathbb{E}[(\sum a)^2]
    - \mathbb{E}[a_0^2]`-type terms and so over-counts by roughly :math:`\mathrm{Var}(\sum_k a_k)
    - \mathrm{Var}(a_0)`; the two agree when the :math:`a_k` do not fluctuate across units.

    ``values`` (``{(gate, function): values at the nodes}``, e.g. :attr:`CMap.values` of the C map
    at the same (mu, Q) with ``n = cmap.nq``) are reused instead of recomputed.

    Returns ``(m1, m2, m2_printed)``, arrays over the grid.
    """
    arch = theta.arch
    spec = SPECS[arch]
    mu, q = np.asarray(mu, float), np.asarray(q, float)
    means, vars_ = {}, {}
    for k in ARCHS[arch]:
        if k == "r2":
            continue
        p = theta[k]
        means[k], vars_[k] = p.mu, p.sigma2 * q + p.nu2 * R + p.rho2
    nn = nodes_for(max(float(np.nanmax(v)) if np.any(np.isfinite(v)) else 1.0 for v in vars_.values()), n)
    G = _Gauss1(means, vars_, nn)
    if values:
        G.vals.update(values)
    if spec.gru:
        p = theta["r2"]
        G.add("r2", p.mu, p.sigma2 * G.E("r", ("sig", "sig")) * q + p.nu2 * R + p.rho2)   # eq. (17a)
    sm = state_moments(G, spec, mu, q, 4)
    E = lambda *Ds: _expect(G, _prod(*Ds), sm)  # noqa: E731
    D0, terms = jacobian_terms(arch)
    zero = np.zeros(np.broadcast_shapes(q.shape, theta.shape))
    ED0_2 = E(D0, D0) if D0 else zero
    ED0_4 = E(D0, D0, D0, D0) if D0 else zero
    s2, t, v, ED2 = {}, {}, {}, {}
    for k, Dk, K in terms:
        s2[k] = theta[k].sigma2
        ED2[k] = E(Dk, Dk)
        if K is None:
            t[k], v[k] = 1.0, 1.0
        else:
            g, H, kr = K
            sr = theta[kr].sigma2
            Eg2, EH2 = E(g, g), E(H, H)
            t[k] = Eg2 + sr * EH2
            v[k] = E(g, g, g, g) + 2 * sr * (E(g, g, H, H) + Eg2 * EH2) + sr**2 * (E(H, H, H, H) + EH2**2)
    m1 = ED0_2 + sum(s2[k] * t[k] * ED2[k] for k, _, _ in terms)
    # E[(D0^2 + sum a~)^2]
    sq = ED0_4 + zero
    for k, Dk, _ in terms:
        if D0:
            sq = sq + 2 * s2[k] * t[k] * E(D0, D0, Dk, Dk)
        for l, Dl, _ in terms:
            sq = sq + s2[k] * s2[l] * t[k] * t[l] * E(Dk, Dk, Dl, Dl)
    Ea = sum(s2[k] * t[k] * ED2[k] for k, _, _ in terms)
    m2 = sq + 2 * ED0_2 * Ea + Ea**2 + sum(s2[k]**2 * ED2[k]**2 * (v[k] - t[k]**2) for k, _, _ in terms)
    # the printed eq. (14) with the per-unit a_k of eq. (12): a = sum_j w_j X_j^2
    A = [[(1.0, D0)]] if D0 else []
    for k, Dk, K in terms:
        if K is None:
            A.append([(s2[k], Dk)])
        else:
            g, H, kr = K
            A.append([(s2[k], _prod(Dk, g)), (s2[k] * theta[kr].sigma2, _prod(Dk, H))])

    def Eaa(a, b):
        return sum(wa * wb * E(Xa, Xa, Xb, Xb) for wa, Xa in a for wb, Xb in b)

    tot = zero
    for a in A:
        for b in A:
            tot = tot + 2 * Eaa(a, b)
    m2p = tot - (ED0_4 if D0 else 0.0)
    return m1 + zero, m2 + zero, m2p + zero
