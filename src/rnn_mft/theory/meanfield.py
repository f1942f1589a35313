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


def _derived(get, name, u):
    """Values of FUNCS[name] at the nodes, from the cached sigmoid/tanh values where possible
    (``get(name)`` returns cached values, ``u()`` the nodes): one transcendental per gate."""
    if name == "omsig":
        return 1.0 - get("sig")
    if name == "dsig":
        s = get("sig")
        return s * (1.0 - s)
    if name == "ndsig":
        return -get("dsig")
    if name == "dtanh":
        t = get("tanh")
        return 1.0 - t * t
    return FUNCS[name](u())


class _Gauss1:
    """E[prod of functions of one gate] by n-point Gauss-Hermite, with a per-gate value cache."""

    def __init__(self, means: dict, vars_: dict, n: int):
        self.x, self.w = gauss_hermite(n)
        self.n = n
        self.u = {g: np.asarray(means[g], float)[..., None] + np.sqrt(np.asarray(vars_[g], float))[..., None] * self.x
                  for g in means}
        self.vals = {}
        self.cache = {}

    def f(self, g, name):
        key = (g, name)
        if key not in self.vals:
            self.vals[key] = _derived(lambda nm: self.f(g, nm), name, lambda: self.u[g])
        return self.vals[key]

    def E(self, g, names):
        names = tuple(sorted(n for n in names if n != "one"))
        key = (g, names)
        if key not in self.cache:
            if not names:
                self.cache[key] = np.ones(self.u[g].shape[:-1])
            else:
                v = self.f(g, names[0])
                for nm in names[1:]:
                    v = v * self.f(g, nm)
                self.cache[key] = v @ self.w
        return self.cache[key]


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
def _q_map(theta, spec, q, R, n):
    """(mu*(Q), G(Q)): the single-sequence part of eq. (6) with mu eliminated."""
    means, vars_ = {}, {}
    for k in ARCHS[theta.arch]:
        if k == "r2":
            continue
        p = theta[k]
        means[k], vars_[k] = p.mu, p.sigma2 * q + p.nu2 * R + p.rho2
    if spec.gru:
        g1 = _Gauss1({"r": means["r"]}, {"r": vars_["r"]}, n)
        p = theta["r2"]
        means["r2"], vars_["r2"] = p.mu, p.sigma2 * g1.E("r", ("sig", "sig")) * q + p.nu2 * R + p.rho2
    G = _Gauss1(means, vars_, n)
    Ea, Eb = G.E("f", (spec.alpha,)), G.E("f", (spec.beta,))
    Eaa, Eab, Ebb = (G.E("f", (spec.alpha, spec.alpha)), G.E("f", (spec.alpha, spec.beta)),
                     G.E("f", (spec.beta, spec.beta)))
    ET, ET2 = 1.0, 1.0
    for g, name in spec.T:
        ET = ET * G.E(g, (name,))
        ET2 = ET2 * G.E(g, (name, name))
    if spec.beta == "omsig":            # mu = (1 - Ea) ET / (1 - Ea) = ET exactly
        mu = ET * np.ones_like(Ea)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            mu = Eb * ET / (1.0 - Ea)
    qn = Eaa * q + 2 * Eab * ET * mu + Ebb * ET2
    return mu, qn, G


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
            q_init=None):
    """Fixed point (mu*, Q*) of eq. (6) (single sequence): safeguarded Newton on Q = G(Q).

    Returns ``(mu, q, residual, iterations)``; Picard steps are used where Newton's slope is not
    that of a stable fixed point (G' >= 1) or the step would leave Q > 0. Grid points whose
    residual is below ``tol`` are not iterated further. With ``q_init`` (a close start, e.g. a
    low-order solve) the initial Picard steps are skipped.
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
    nn = n
    it = 0
    for attempt in range(3):
        # from a close start (q_init), a 5% margin on Q avoids a second attempt for a small rise
        nq_var = _max_var(th, q * (1.05 if (attempt == 0 and q_init is not None) else 1.0), R)
        nn = nodes_for(nq_var, n)
        for _ in range(3 if (q_init is None or attempt > 0) else 0):
            _, qn, _ = _q_map(th, spec, q, R, nn)
            q = np.where(np.isfinite(qn) & (qn > 0), qn, q)
        # secant iteration on r(Q) = G(Q) - Q (one map per step), safeguarded: a secant slope
        # that is not that of a stable fixed point (G' >= 1), a non-finite step or Q <= 0 falls
        # back to a Picard step or a shrink towards 0 (a state with no input decays to Q* = 0)
        _, g0, _ = _q_map(th, spec, q, R, nn)
        r0 = g0 - q
        q_prev, r_prev = q.copy(), r0
        q = np.where(np.isfinite(g0) & (g0 > 0), g0, q)
        active = np.arange(P)
        for it in range(max_iter):
            a = active
            tha = th if a.size == P else _take(th, a)
            qa = q[a]
            _, g, _ = _q_map(tha, spec, qa, R, nn)
            r = g - qa
            done = np.abs(r) <= tol * np.maximum(1.0, qa)
            if np.all(done):
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                d = (r - r_prev[a]) / (qa - q_prev[a])
                qN = qa - r / d
            qN = np.where(np.isfinite(qN) & (qN <= 0), 1e-3 * qa, qN)
            qN = np.minimum(qN, 10 * qa + 1)                    # damped growth (long memories)
            ok = (d < -1e-14) & np.isfinite(qN) & (qa != q_prev[a])
            q_prev[a], r_prev[a] = qa, r
            q[a] = np.where(done, qa, np.where(ok, qN, np.where(np.isfinite(g) & (g > 0), g, qa)))
            active = a[~done]
        new_var = _max_var(th, q, R)
        if n is not None or nodes_for(new_var) <= nn:
            break
    mu, g0, _ = _q_map(th, spec, q, R, nn)
    res = np.abs(g0 - q) / np.maximum(1.0, q)
    return mu.reshape(shape), q.reshape(shape), res.reshape(shape), it, nn


# --- the C map (7) as a series, its fixed point and chi (8) ----------------------------------
class CMap:
    r"""The correlation map :math:`C_s \mapsto \mathcal{M}_C(\mu^*, Q^*, C_s)` of eq. (7) and its
    derivative (eq. (8)) at a fixed :math:`(\mu^*, Q^*)`, through Mehler series of every gate."""

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
        if nq is None:
            nq = max(nodes_for(vmax), 96)
        if M is None:
            M = int(min(nq * 2 // 3, 320))
        self.M, self.nq = M, nq
        x, w, H = _h.hermite_weights(M, nq)
        self.x, self.w, self.H = x, w, H
        self.series = {}
        if spec.gru:
            self._add(("r", "sig", "sig"), means["r"], vars_["r"])
            g2 = self._vals(means["r"], vars_["r"], "sig", "r")
            p = theta["r2"]
            means["r2"] = p.mu
            vars_["r2"] = p.sigma2 * (g2**2 @ w) * self.q + p.nu2 * R + p.rho2
        self.means, self.vars = means, vars_
        for a, b in ((spec.alpha, spec.alpha), (spec.alpha, spec.beta), (spec.beta, spec.beta)):
            self._add(("f", a, b), means["f"], vars_["f"])
        self.ET = np.ones(())
        for g, name in spec.T:
            self._add((g, name, name), means[g], vars_[g])
            self.ET = self.ET * (self._vals(means[g], vars_[g], name, g) @ w)

    def _vals(self, m, v, name, g=None):
        if g is not None:                      # cached per gate (the gate fixes m and v)
            cache = self.__dict__.setdefault("_cache", {})
            if (g, name) not in cache:
                cache[(g, name)] = _derived(lambda nm: self._vals(m, v, nm, g), name,
                                            lambda: self._u(m, v))
            return cache[(g, name)]
        return FUNCS[name](self._u(m, v))

    def _u(self, m, v):
        return np.asarray(m, float)[..., None] + np.sqrt(np.asarray(v, float))[..., None] * self.x

    def _add(self, key, m, v):
        g, a, b = key
        fa, fb = self._vals(m, v, a, g), self._vals(m, v, b, g)
        da, db = self._vals(m, v, DERIV[a], g), self._vals(m, v, DERIV[b], g)
        ca = _h.coefficients(fa, self.M, self.nq)
        cb = ca if a == b else _h.coefficients(fb, self.M, self.nq)
        self.series[key] = _h.PairSeries(ca, cb, (fa * fb) @ self.w, np.asarray(v) * ((da * db) @ self.w))

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
        S = self.var_s * C + self.mu**2
        Cf = self._corr("f", S)
        dCf = self._dcorr("f")
        Paa = self.series[("f", sp.alpha, sp.alpha)](Cf, deriv)
        Pab = self.series[("f", sp.alpha, sp.beta)](Cf, deriv)
        Pbb = self.series[("f", sp.beta, sp.beta)](Cf, deriv)
        if not deriv:
            Paa, Pab, Pbb = (Paa, 0), (Pab, 0), (Pbb, 0)
        # T_ab = prod_k P_k(C_k) and its derivative in C_s
        vals, ders = [], []
        for g, name in sp.T:
            if g == "r2":
                Cr = self._corr("r", S)
                Gab = self.series[("r", "sig", "sig")](Cr, deriv)
                Gv, Gd = (Gab if deriv else (Gab, 0))
                p = th["r2"]
                v2 = self.vars["r2"]
                cov = p.sigma2 * Gv * S + p.nu2 * self.R * self.sz + p.rho2       # eq. (17b)
                C2 = _safe_corr(cov, v2)
                with np.errstate(divide="ignore", invalid="ignore"):
                    dC2 = np.where(v2 > 0, p.sigma2 * (Gd * self._dcorr("r") * S + Gv * self.var_s)
                                   / np.where(v2 > 0, v2, 1.0), 0.0)
                P = self.series[(g, name, name)](C2, deriv)
                Pv, Pd = (P if deriv else (P, 0))
                vals.append(Pv)
                ders.append(Pd * dC2)
            else:
                Ck = self._corr(g, S)
                P = self.series[(g, name, name)](Ck, deriv)
                Pv, Pd = (P if deriv else (P, 0))
                vals.append(Pv)
                ders.append(Pd * self._dcorr(g))
        Tab = np.ones(())
        for v in vals:
            Tab = Tab * v
        Eab = Paa[0] * S + 2 * Pab[0] * self.ET * self.mu + Pbb[0] * Tab
        with np.errstate(divide="ignore", invalid="ignore"):
            Mc = (Eab - self.mu**2) / self.var_s
        if not deriv:
            return Mc
        dT = np.zeros(())
        for i in range(len(vals)):
            term = ders[i]
            for j, v in enumerate(vals):
                if j != i:
                    term = term * v
            dT = dT + term
        dE = (Paa[1] * dCf * S + Paa[0] * self.var_s + 2 * Pab[1] * dCf * self.ET * self.mu
              + Pbb[1] * dCf * Tab + Pbb[0] * dT)
        with np.errstate(divide="ignore", invalid="ignore"):
            chi = dE / self.var_s
        return Mc, chi


def solve_c(cmap: CMap, tol: float = 1e-13, max_iter: int = 200):
    """The stable fixed point C* of eq. (7): safeguarded Newton in the bracket [-1, 1].

    The map is convex on [0, 1] (Appendix B, Lemma 3), so Newton from the left (where
    M_C(C) > C) increases monotonically to the smallest root, the stable one; bisection keeps
    the bracket if an iterate misbehaves. At Sigma_z = 1, C = 1 is a fixed point; where
    chi(1) <= 1 it is the stable one and is returned directly.
    Returns ``(c, chi, residual, iterations)``.
    """
    shape = np.broadcast_shapes(cmap.var_s.shape, cmap.sz.shape, cmap.theta.shape)
    one = np.ones(shape)
    m1, chi1 = cmap(one, deriv=True)
    at_one = (np.broadcast_to(cmap.sz, shape) == 1.0) & (chi1 <= 1.0 + 1e-12)
    lo, hi = -one.copy(), one.copy()
    c = np.zeros(shape)
    m0 = cmap(c)
    neg = (m0 - c) < 0
    hi = np.where(neg, 0.0, hi)
    c = np.where(neg, -1.0, c)
    it = 0
    for it in range(max_iter):
        m, d = cmap(c, deriv=True)
        r = m - c
        done = (np.abs(r) < tol) | at_one
        if np.all(done):
            break
        lo = np.where(r > 0, c, lo)
        hi = np.where(r < 0, c, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            cn = c - r / (d - 1.0)
        bad = ~np.isfinite(cn) | (cn <= lo) | (cn >= hi) | (d - 1.0 >= 0)
        cn = np.where(bad, 0.5 * (lo + hi), cn)
        c = np.where(done, c, cn)
    c = np.where(at_one, 1.0, c)
    m, chi = cmap(c, deriv=True)
    res = np.where(at_one, 0.0, np.abs(m - c))
    return c, chi, res, it


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
    mu, q, res_q, it_q, _ = solve_q(theta, R, n, tol=tol * 1e-2, q_init=q_init)
    var_s = q - mu**2
    # a (numerically) deterministic state has no correlation to speak of: C* = 1
    ok_var = var_s > 1e-14 * np.maximum(1.0, q)
    q_safe = np.where(ok_var, q, np.maximum(q, mu**2) + 1e-12)
    cm = CMap(theta, mu, q_safe, sz, R, M=M, nq=n)
    c, chi, res_c, it_c = solve_c(cm, tol=min(tol, 1e-12))
    shape = c.shape
    res = np.maximum(np.broadcast_to(res_q, shape), res_c)
    conv = (res < tol) & np.isfinite(c) & np.isfinite(chi) & np.broadcast_to(np.isfinite(q) & (q >= 0), shape)
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


def jacobian_moments(theta: Theta, mu, q, R=1.0, n: int | None = None):
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
    if spec.gru:
        g1 = _Gauss1({"r": means["r"]}, {"r": vars_["r"]}, nn)
        p = theta["r2"]
        means["r2"], vars_["r2"] = p.mu, p.sigma2 * g1.E("r", ("sig", "sig")) * q + p.nu2 * R + p.rho2
    G = _Gauss1(means, vars_, nn)
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
