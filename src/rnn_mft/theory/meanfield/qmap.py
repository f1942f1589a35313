r"""The map :math:`\mathcal{M}` of eq. (6) and its single-sequence fixed point :math:`(\mu^*, Q^*)`.

:func:`step` / :func:`trajectory` apply the map by direct 1-D and 2-D Gauss-Hermite quadrature
(the reference for the fast path); :func:`_q_map` is the single-sequence part with
:math:`\mu` eliminated, written with forward-mode duals so that :func:`solve_q` runs Newton's
method on :math:`Q = G(Q)`; :func:`q_converged` is the extra convergence test of a cell state
with :math:`Q^* > 1`.
"""
from __future__ import annotations

import numpy as np

from ...arch import SPECS
from ..quadrature import expect, expect2
from ..theta import ARCHS, Theta
from .algebra import FUNCS, _Dual
from .gates import _flat, _gate_var_max, _max_var, _safe_corr, _take, check_sigma_z, gate_moment, gate_stats
from .gauss import _Gauss1, _q_nodes, nodes_for

__all__ = ["step", "trajectory", "solve_q", "q_converged", "Q_DIST_TOL", "VAR_RESOLVED"]


def step(theta: Theta, mu_s, q_s, c_s, sigma_z=1.0, R=1.0, n: int | None = None):
    r"""One application of the map :math:`\mathcal{M}` of eq. (6): returns ``(mu_s, q_s, c_s)``.

    Direct 1-D and 2-D Gauss-Hermite quadrature (no series); used for trajectories and as the
    reference for the fixed-point solver and for the finite-difference check of :math:`\chi`.
    """
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
        means[k], vars_[k], dvars[k] = p.mu, gate_moment(p, q, R), p.sigma2
    G = _Gauss1(means, vars_, n, dvars)
    E = G.ED if deriv else G.E
    Q = _Dual(q, 1.0) if deriv else q
    if spec.gru:
        p = theta["r2"]
        v2 = gate_moment(p, Q, R, gain=E("r", ("sig", "sig")))                   # eq. (17a)
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



#: Beyond Q* = 1 (only a cell state that is not bounded gets there) a residual relative to Q says
#: little: a Q that grows without end has |G(Q) - Q| / Q -> 0. Such a point counts as converged
#: only when (a) it is a stable fixed point (G'(Q*) < 1) whose Newton distance
#: |G(Q) - Q| / (1 - G'(Q)) is below ``Q_DIST_TOL * Q*``, and (b) the quadrature resolves it: the
#: largest gate pre-activation variance at Q* is at most ``VAR_RESOLVED``, where Gauss-Hermite at
#: :data:`MAX_NODES` nodes has the error estimate exp(-2.6 sqrt(n) / Sigma) of
#: :func:`nodes_for` of about 1e-6 (beyond, Q* = G(Q*), amplified by 1 / (1 - G'), is noise).
Q_DIST_TOL = 1e-6
VAR_RESOLVED = 21.0


def q_converged(theta: Theta, q, r, dG, R=1.0):
    """The extra test of a converged Q* > 1 (see :data:`Q_DIST_TOL`); True where Q* <= 1."""
    q, r, dG = np.asarray(q, float), np.asarray(r, float), np.asarray(dG, float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slope = 1.0 - dG
        dist = np.where(r == 0, 0.0, np.where(slope > 0, np.abs(r) / slope, np.inf))
        big = ~(q <= 1.0)
        ok = (dist <= Q_DIST_TOL * q) & (_gate_var_max(theta, q, R) <= VAR_RESOLVED)
    return ~big | ok


