r"""The tangent of the LSTM's two-state theory: the time scale :math:`\chi` and the Jacobian moments.

Given the one-copy cell-state chain of :mod:`rnn_mft.theory.lstm_cellstate` (its discretised
operators ``mod`` and stationary law ``pi``, at the fixed point :math:`Q_h^*`), this module
computes how a perturbation of :math:`(h, c)` evolves: :math:`\chi` at :math:`\Sigma_z = 1`
(:math:`C^* = 1`), :math:`\chi` at :math:`\Sigma_z = 0` with independent copies
(:math:`C^* = 0`), and the moments :math:`m_1, m_2` of the state-to-state Jacobian; the book's
chapter *The LSTM has two states* derives them.

**The time scale at** :math:`\Sigma_z = 1`. Two copies with identical inputs whose states differ
by a small :math:`(\delta h, \delta c)` evolve (exactly, to first order) by

.. math::
    \delta c' = F\,\delta c + \textstyle\sum_{k\in\{i,f,r\}} \beta_k\,\delta u_k,\qquad
    \delta h' = \sigma'(u_o)\tanh(c')\,\delta u_o + \gamma\,\delta c',

with :math:`\delta u_k = W_k\delta h` (Gaussian, variance :math:`\sigma_k^2 q`,
:math:`q = \langle\delta h^2\rangle`), :math:`\beta_f = \sigma'(u_f)c`,
:math:`\beta_i = \sigma'(u_i)\tanh u_r`, :math:`\beta_r = \sigma(u_i)\tanh'(u_r)` and
:math:`\gamma = \sigma(u_o)\tanh'(c')`. The unit-level second moment
:math:`m(c) = \mathbb{E}[\delta c^2 \mid c]\,p(c)` and the population :math:`q` obey a closed
*linear* system,

.. math::
    m' = m P_2 + q\,a_p,\qquad q' = \alpha q + \beta\,\langle m', w\rangle,

with :math:`P_2` the transition weighted by :math:`F^2`, :math:`a_p` the law of :math:`c'`
weighted by :math:`A = \sum_k \sigma_k^2\beta_k^2`, :math:`w = \tanh'(c)^2`,
:math:`\alpha = \sigma_o^2\mathbb{E}\sigma'(u_o)^2\langle\pi,\tanh^2\rangle` and
:math:`\beta = \mathbb{E}\sigma(u_o)^2`. :math:`1 - C` of the two copies, and the squared norm
of the tangent, decay by its Perron root :math:`\chi`, the root above
:math:`\rho(P_2) = \mathbb{E}F^2` of

.. math:: 1 = \frac{\alpha}{\chi} + \beta\,\langle a_p, (\chi - P_2)^{-1} w\rangle .

**The time scale at** :math:`\Sigma_z = 0`. When the two copies are independent at the fixed
point (:math:`C^* = 0`: :math:`\Sigma_z = 0`, every :math:`\rho_k^2 = 0` and :math:`\mu_h^* = 0`),
the first-order cross moment :math:`S = \mathbb{E}[h_a h_b]` obeys a renewal equation (Mehler's
first term at every step): :math:`\chi` solves
:math:`\chi = (\mathbb{E}\sigma(u_o))^2 \sum_k \sigma_k^2 \sum_{\tau\ge0} \chi^{-\tau} d_k(\tau)^2`,
:math:`d_k(\tau) = \mathbb{E}[\tanh'(c^{t+\tau}) F^{t+1}\cdots F^{t+\tau}\beta_k^t]`.
Other :math:`\Sigma_z < 1` (where :math:`0 < C^* < 1`) need the joint law of :math:`(c_a, c_b)`:
:mod:`rnn_mft.theory.lstm_joint`; :func:`rnn_mft.theory.analyze` says which method each point used.

**Jacobian moments.** The state-to-state Jacobian of :math:`(h, c)` is a 2N x 2N matrix; at
large N (normalised trace over 2N)

.. math::
    m_1 = \tfrac12\,\mathbb{E}[(1+\gamma^2)S + O],\qquad
    m_2 = \tfrac12\,\mathbb{E}[(1+\gamma^2)^2S^2 + 2\gamma^2 S O + O^2]
          + \tfrac12\,(\mathbb{E}[(1+\gamma^2)A + O])^2,

with :math:`S = F^2 + A` and :math:`O = \sigma_o^2\sigma'(u_o)^2\tanh^2(c')`. Lemma 1 does not
hold for two states: :math:`m_1 \ne \chi` in general.

Functions (``mod`` a :class:`~rnn_mft.theory.lstm_cellstate.CellStateModel` for one point or a
:class:`~rnn_mft.theory.lstm_cellstate.BatchCellStateModel` for a stack, ``th`` its point(s)):

* :func:`chi_identical_inputs`: :math:`\chi` at :math:`\Sigma_z = 1`, the Perron root of the
  :math:`(m, q)` system (Newton in a bracket); :func:`chi_identical_inputs_batch` for a stack
  (a bracketed secant iteration per point, under a mask);
* :func:`chi_independent_copies`: :math:`\chi` at :math:`\Sigma_z = 0`, :math:`C^* = 0`, the
  renewal equation (one point);
* :func:`jacobian_moments`, :func:`jacobian_moments_batch`: :math:`m_1, m_2` of the
  :math:`2N \times 2N` Jacobian of :math:`(h, c)`.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sl

from .quadrature import dsigmoid, gauss_hermite, sigmoid

__all__ = ["chi_identical_inputs", "chi_independent_copies", "jacobian_moments", "chi_identical_inputs_batch",
           "jacobian_moments_batch", "ROOT_RTOL"]


def chi_identical_inputs(mod, pi, th):
    """chi at Sigma_z = 1, C* = 1: Perron root of the (m, q) system (module docstring)."""
    c = mod.grid.c
    tc = np.tanh(c)
    w = (1.0 - tc**2) ** 2
    AG1 = mod.AG("1")
    P2 = mod.AF("F2") @ AG1
    a_p = th["f"]["sigma2"] * ((pi * c**2) @ mod.AF("d2")) @ AG1 + (pi @ mod.AF("1")) @ mod.AG("B")
    alpha = th["o"]["sigma2"] * mod.Eo["d2"] * float(pi @ tc**2)
    beta = mod.Eo["s2"]
    rho = mod.EF2
    EA = float(a_p.sum())
    n = len(c)
    eye = np.eye(n)

    def f_and_df(chi):
        lu = sl.lu_factor(chi * eye - P2)
        y = sl.lu_solve(lu, w)
        z = sl.lu_solve(lu, y)
        return alpha / chi + beta * float(a_p @ y) - 1.0, -alpha / chi**2 - beta * float(a_p @ z)

    if EA <= 1e-300 or beta <= 0:
        return max(alpha, rho)
    # f is decreasing (and convex) on (rho, inf), f -> +inf at rho. Upper end: with w <= 1 and
    # a_p >= 0, <a_p, (chi - P2)^-1 w> <= EA / (chi - rho), whose root is the larger root below.
    s = rho + alpha + beta * EA
    hi = 0.5 * (s + np.sqrt(max(s * s - 4 * alpha * rho, 0.0))) * (1 + 1e-9) + 1e-15
    for _ in range(60):              # (interpolation weights can be slightly negative: widen)
        fv, dfv = f_and_df(hi)
        if fv <= 0:
            break
        hi = rho + 2.0 * (hi - rho) + 1e-12
    # a start left of the root (f > 0), then Newton, which rises monotonically to the root of a
    # convex decreasing function; the bracket [lo, hi] guards it
    x = hi
    for _ in range(200):
        x = rho + 0.5 * (x - rho)
        fv, dfv = f_and_df(x)
        if fv > 0:
            break
        hi = x
    lo = x
    for _ in range(100):
        xn = x - fv / dfv if dfv < 0 else 0.5 * (lo + hi)
        if not (lo <= xn <= hi):
            xn = 0.5 * (lo + hi)
        if abs(xn - x) <= 4e-16 * x:
            x = xn
            break
        x = xn
        fv, dfv = f_and_df(x)
        if fv > 0:
            lo = x
        else:
            hi = x
        if fv == 0:
            break
    chi = x
    return float(chi)


def chi_independent_copies(mod, pi, th, tol=1e-13, max_lag=200000):
    """chi at Sigma_z = 0 when C* = 0 (independent copies): the renewal equation of the module
    docstring, with the lag sum continued geometrically once d_k(tau + 1)/d_k(tau) has settled
    at its limit E F (the Perron root of the F-weighted transition)."""
    c = mod.grid.c
    tc = np.tanh(c)
    dt = 1.0 - tc**2
    AG1 = mod.AG("1")
    P1 = mod.AF("F") @ AG1
    Eo = mod.Eo["s"] ** 2
    # nu_k^0: law of c^t weighted by beta_k (signed): f (sigma'(u_f) c), i, r (functions of u_i, u_r)
    base = pi @ mod.AF("1")
    xg, wg = gauss_hermite(mod.st.nodes("n_g", max(mod.var["i"], mod.var["r"])))
    ui = th["i"]["mu"] + np.sqrt(mod.var["i"]) * xg
    ur = th["r"]["mu"] + np.sqrt(mod.var["r"]) * xg
    bi = (dsigmoid(ui)[:, None] * np.tanh(ur)[None, :]).ravel()
    br = (sigmoid(ui)[:, None] * (1.0 - np.tanh(ur) ** 2)[None, :]).ravel()
    nus = {}
    if th["f"]["sigma2"] > 0:
        Ad = mod.grid.operator(c[:, None] * mod.F[None, :], (mod.wf * mod.dF)[None, :])
        nus["f"] = ((pi * c) @ Ad) @ AG1
    for k, bk in (("i", bi), ("r", br)):
        if th[k]["sigma2"] > 0:
            acc = 0.0
            for part, sign in ((np.clip(bk, 0, None), 1.0), (np.clip(-bk, 0, None), -1.0)):
                g, wgt = mod.grule(part)
                if g.size:
                    acc = acc + sign * (base @ mod.grid.operator(c[:, None] + g[None, :], wgt[None, :]))
            nus[k] = acc
    if not nus:
        return 0.0
    # d_k(tau) = <tanh', nu_k P1^tau>; it decays at the rate of the slowest mode that nu_k excites
    # (E F for a law with mass, E F^2 for a zero-mass odd one such as beta_f = sigma'(u_f) c on a
    # symmetric law). Iterate until every ratio d_k(tau)/d_k(tau - 1) has settled (or d_k is
    # negligible), then continue each lag sum geometrically with its own settled ratio.
    seqs = {k: [float(v @ dt)] for k, v in nus.items()}
    cur = {k: v @ P1 for k, v in nus.items()}
    ratio = {k: np.nan for k in nus}
    settled = 0
    for tau in range(1, max_lag):
        ok = True
        for k in cur:
            seqs[k].append(float(cur[k] @ dt))
            d0, d1, d2_ = seqs[k][0], seqs[k][-2], seqs[k][-1]
            if abs(d2_) <= 1e-17 * max(abs(d0), 1e-300):
                ratio[k] = 0.0                      # negligible from here on
                continue
            r = d2_ / d1 if d1 != 0 else np.inf
            if not (np.isfinite(ratio[k]) and abs(r - ratio[k]) <= 1e-10 * abs(r)):
                ok = False
            ratio[k] = r
        settled = settled + 1 if (ok and tau > 20) else 0
        if settled >= 5:
            break
        cur = {k: v @ P1 for k, v in cur.items()}
    d2 = {k: np.asarray(v) ** 2 for k, v in seqs.items()}
    s2 = {k: th[k]["sigma2"] for k in d2}
    tail_sq = {k: (ratio[k] ** 2 if np.isfinite(ratio[k]) else 1.0) for k in d2}

    logd2 = {}
    with np.errstate(divide="ignore"):
        for k, d in d2.items():
            logd2[k] = np.log(d)                    # -inf where d_k(tau) = 0: the term is 0

    def rhs(chi):
        """sum_k sigma_k^2 sum_tau chi^-tau d_k(tau)^2 (times E sigma(u_o))^2), in logs: chi can be
        tiny and tau large."""
        lc = np.log(chi)
        tot = 0.0
        for k, ld in logd2.items():
            lags = np.arange(ld.size)
            with np.errstate(over="ignore"):
                tot += s2[k] * float(np.sum(np.exp(ld - lags * lc)))
                tr = tail_sq[k] / chi
                if tail_sq[k] > 0 and np.isfinite(ld[-1]):
                    tot += s2[k] * (np.exp(ld[-1] - (ld.size - 1.0) * lc) * tr / (1.0 - tr) if tr < 1 else np.inf)
        return Eo * tot

    # the lag sums converge for chi above every settled squared ratio; rhs(chi) - chi decreases
    lo = max(max(tail_sq.values()), 1e-300) * (1 + 1e-12)
    hi = max(1.0, rhs(1.0)) * 2.0
    if rhs(lo) - lo <= 0:
        return float(lo)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if rhs(mid) - mid > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= tol * hi:
            break
    return float(0.5 * (lo + hi))


def jacobian_moments(mod, pi, th):
    """m1, m2 of the 2N x 2N Jacobian of (h, c) (module docstring), exact given the grid law."""
    c = mod.grid.c
    tc = np.tanh(c)
    t2, dt2 = tc**2, (1.0 - tc**2) ** 2
    s2f = th["f"]["sigma2"]
    so = th["o"]["sigma2"]
    Eo = mod.Eo
    AG = mod.AG
    AF = mod.AF
    c2 = pi * c**2
    c4 = pi * c**4
    # measures of c' weighted by S, A, S^2 (S = F^2 + A, A = s2f sigma'(u_f)^2 c^2 + B)
    law = (pi @ AF("1")) @ AG("1")
    mA = s2f * (c2 @ AF("d2")) @ AG("1") + (pi @ AF("1")) @ AG("B")
    mS = (pi @ AF("F2")) @ AG("1") + mA
    mS2 = ((pi @ AF("F4")) @ AG("1") + s2f**2 * (c4 @ AF("d4")) @ AG("1") + (pi @ AF("1")) @ AG("B2")
           + 2 * s2f * (c2 @ AF("F2d2")) @ AG("1") + 2 * (pi @ AF("F2")) @ AG("B")
           + 2 * s2f * (c2 @ AF("d2")) @ AG("B"))
    m1 = 0.5 * (mS.sum() + Eo["s2"] * (mS @ dt2) + so * Eo["d2"] * (law @ t2))
    on = (mS2.sum() + 2 * Eo["s2"] * (mS2 @ dt2) + Eo["s4"] * (mS2 @ dt2**2)
          + 2 * so * Eo["s2d2"] * (mS @ (dt2 * t2)) + so**2 * Eo["d4"] * (law @ t2**2))
    off = mA.sum() + Eo["s2"] * (mA @ dt2) + so * Eo["d2"] * (law @ t2)
    m2 = 0.5 * on + 0.5 * off**2
    return float(m1), float(m2)


#: the batched chi's root iteration stops after a step below this fraction of chi: the error
#: after such a step is of the order of the step times the previous error, far below rounding
#: here (measured on a 50 x 50 grid of benchmarks/theory.py: chi within 6e-14, relative, of a
#: Newton iteration run until its step vanishes, which takes about twice the solves)
ROOT_RTOL = 1e-10


def chi_identical_inputs_batch(mod, pi, th):
    """Batched :func:`chi_identical_inputs`: the Perron root of the (m, q) system, the root of
    the convex decreasing f(x) = alpha / x + beta <a_p, (x - P_2)^{-1} w> - 1 on (rho, inf), by a
    bracketed secant iteration per point (masked) from a start that f's value and slope at the
    upper bracket give."""
    c = mod.grid.c
    tc = np.tanh(c)
    w = (1.0 - tc**2) ** 2
    AG1 = mod.AG("1")
    pp = mod.pi_products(pi)
    P2 = mod.AF("F2") @ AG1
    a_p = np.einsum("bj,bjk->bk", th["f"]["sigma2"][:, None] * pp["c2d2"], AG1) + mod.vG(pp["p1"], "B")
    alpha = th["o"]["sigma2"] * mod.Eo["d2"] * np.einsum("bj,bj->b", pi, tc**2)
    beta = mod.Eo["s2"]
    rho = mod.EF2
    EA = a_p.sum(-1)
    B, n, _ = P2.shape
    eye = np.eye(n)

    def f_df(sel, x, slope=True):
        A = x[:, None, None] * eye - P2[sel]
        y = np.linalg.solve(A, w[sel][..., None])[..., 0]
        ap = a_p[sel]
        f = alpha[sel] / x + beta[sel] * np.einsum("bj,bj->b", ap, y) - 1.0
        if not slope:
            return f
        z = np.linalg.solve(A, y[..., None])[..., 0]
        return f, -alpha[sel] / x**2 - beta[sel] * np.einsum("bj,bj->b", ap, z)

    out = np.maximum(alpha, rho)
    live = ~((EA <= 1e-300) | (beta <= 0))
    idx = np.flatnonzero(live)
    if idx.size == 0:
        return out
    r, al = rho[idx], alpha[idx]
    s = r + al + beta[idx] * EA[idx]
    hi = 0.5 * (s + np.sqrt(np.maximum(s * s - 4 * al * r, 0.0))) * (1 + 1e-9) + 1e-15
    # widen where interpolation weights (slightly negative) leave f(hi) > 0
    fhi, dhi = np.zeros(idx.size), np.zeros(idx.size)
    act = np.ones(idx.size, bool)
    for _ in range(60):
        fv, dv = f_df(idx[act], hi[act])
        fhi[act], dhi[act] = fv, dv
        bad = fv > 0
        if not bad.any():
            break
        h = hi[act]
        h[bad] = r[act][bad] + 2.0 * (h[bad] - r[act][bad]) + 1e-12
        hi[act] = h
        a2 = act.copy()
        a2[act] = bad
        act = a2
    # a start: the tangent at hi, which for a convex decreasing f meets zero left of the root;
    # where it falls below rho (a steep pole at rho), the root of c / (x - rho) - d with f's
    # value and slope at hi (close to the root, on either side); else the midpoint. The start
    # narrows the bracket (rho, hi) on its side of the root.
    hi0 = hi.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        xt = hi - fhi / dhi
        cp = -dhi * (hi - r) ** 2
        xp = r + cp / (cp / (hi - r) - fhi)
    inside = lambda v: np.isfinite(v) & (v > r) & (v < hi)  # noqa: E731
    x = np.where(inside(xt) & (dhi < 0), xt, np.where(inside(xp), xp, r + 0.5 * (hi - r)))
    fx = f_df(idx, x, slope=False)
    left = fx > 0
    lo = np.where(left, x, r)
    hi = np.where(left, hi, x)
    # secant steps from (hi, f(hi)) and the start, kept inside the bracket (else bisection; one
    # solve per step, where Newton takes two): a step below ROOT_RTOL x is the last one
    # taken (the error after it is of the order of the step times the previous error),
    # accepted without another evaluation
    xq, fq = hi0, fhi
    act = np.ones(idx.size, bool)
    for _ in range(100):
        xa, fa, xb, fb, la, ha = x[act], fx[act], xq[act], fq[act], lo[act], hi[act]
        with np.errstate(divide="ignore", invalid="ignore"):
            xn = xa - fa * (xa - xb) / (fa - fb)
        xn = np.where(np.isfinite(xn) & (la <= xn) & (xn <= ha), xn, 0.5 * (la + ha))
        stop = np.abs(xn - xa) <= ROOT_RTOL * xa
        sel = np.flatnonzero(act)
        xq[sel], fq[sel] = xa, fa
        x[sel] = xn
        go = ~stop
        if go.any():
            sg = sel[go]
            fv = f_df(idx[sg], xn[go], slope=False)
            fx[sg] = fv
            lo[sg] = np.where(fv > 0, xn[go], lo[sg])
            hi[sg] = np.where(fv > 0, hi[sg], xn[go])
            go[go] = fv != 0
        a2 = act.copy()
        a2[act] = go
        act = a2
        if not act.any():
            break
    out[idx] = x
    return out


def jacobian_moments_batch(mod, pi, th):
    """Batched :func:`jacobian_moments` (m1, m2 of the 2N x 2N Jacobian)."""
    c = mod.grid.c
    tc = np.tanh(c)
    t2, dt2 = tc**2, (1.0 - tc**2) ** 2
    s2f = th["f"]["sigma2"][:, None]
    so = th["o"]["sigma2"]
    Eo = mod.Eo
    vG = mod.vG
    pp = mod.pi_products(pi)
    p1, pF2, c2d2 = pp["p1"], pp["pF2"], pp["c2d2"]
    # (vG is linear in its vector: the measures are combined before the G-operators act)
    law = vG(p1, "1")
    gB = vG(p1, "B")
    mA = s2f * vG(c2d2, "1") + gB
    mS = vG(pF2, "1") + mA
    mS2 = (vG(pp["m2F"], "1") + vG(p1, "B2")
           + 2 * vG(pF2 + s2f * c2d2, "B"))
    dot = lambda a, b: np.einsum("bj,bj->b", a, b)  # noqa: E731
    m1 = 0.5 * (mS.sum(-1) + Eo["s2"] * dot(mS, dt2) + so * Eo["d2"] * dot(law, t2))
    on = (mS2.sum(-1) + 2 * Eo["s2"] * dot(mS2, dt2) + Eo["s4"] * dot(mS2, dt2**2)
          + 2 * so * Eo["s2d2"] * dot(mS, dt2 * t2) + so**2 * Eo["d4"] * dot(law, t2**2))
    off = mA.sum(-1) + Eo["s2"] * dot(mA, dt2) + so * Eo["d2"] * dot(law, t2)
    return m1, 0.5 * on + 0.5 * off**2
