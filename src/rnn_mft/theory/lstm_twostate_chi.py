r"""chi and the Jacobian moments of the two-state LSTM theory, given the discretised model.

The equations are those of :mod:`rnn_mft.theory.lstm_twostate` (its module docstring and the
book's chapter *The LSTM has two states*):

* :func:`_chi_one`: chi at Sigma_z = 1 (C* = 1), the Perron root of the (m, q) system, the root
  above rho(P_2) = E F^2 of ``1 = alpha/chi + beta <a_p, (chi - P_2)^{-1} w>``;
* :func:`_chi_zero`: chi at Sigma_z = 0 with independent copies (C* = 0), the renewal equation;
* :func:`_moments`: m1, m2 of the 2N x 2N Jacobian of (h, c);
* :func:`_chi_one_batch`, :func:`_moments_batch`: the same for a stack of points
  (:mod:`rnn_mft.theory.lstm_twostate_batch`), chi by a bracketed Newton iteration per point
  under a mask;
* :func:`gauss_rule_batch`: the stacked Lanczos (Stieltjes) procedure that compresses the laws
  of G = sigma(u_i) tanh(u_r) to Gauss rules on the batched path.

``mod`` is a ``lstm_twostate._Model`` (one point) or a ``lstm_twostate_batch._BModel`` (a
stack), ``pi`` its stationary cell-state law.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sl

from .quadrature import gauss_hermite, sigmoid as _sig


def _dsig(u):
    s = _sig(u)
    return s * (1.0 - s)


def _chi_one(mod, pi, th):
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


def _chi_zero(mod, pi, th, tol=1e-13, max_lag=200000):
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
    bi = (_dsig(ui)[:, None] * np.tanh(ur)[None, :]).ravel()
    br = (_sig(ui)[:, None] * (1.0 - np.tanh(ur) ** 2)[None, :]).ravel()
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


def _moments(mod, pi, th):
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


def _chi_one_batch(mod, pi, th):
    """Batched :func:`lstm_twostate._chi_one`: the Perron root of the (m, q) system, by a
    bracketed Newton iteration per point (masked)."""
    c = mod.grid.c
    tc = np.tanh(c)
    w = (1.0 - tc**2) ** 2
    AG1 = mod.AG("1")
    P2 = mod.AF("F2") @ AG1
    v1 = mod.vF(pi, "1")
    a_p = np.einsum("bj,bjk->bk", th["f"]["sigma2"][:, None] * mod.vF(pi * c**2, "d2"), AG1) + mod.vG(v1, "B")
    alpha = th["o"]["sigma2"] * mod.Eo["d2"] * np.einsum("bj,bj->b", pi, tc**2)
    beta = mod.Eo["s2"]
    rho = mod.EF2
    EA = a_p.sum(-1)
    B, n, _ = P2.shape
    eye = np.eye(n)

    def f_df(sel, x):
        A = x[:, None, None] * eye - P2[sel]
        Y = np.linalg.solve(A, np.stack([w[sel], np.zeros_like(w[sel])], -1))
        y = Y[..., 0]
        z = np.linalg.solve(A, y[..., None])[..., 0]
        ap = a_p[sel]
        return (alpha[sel] / x + beta[sel] * np.einsum("bj,bj->b", ap, y) - 1.0,
                -alpha[sel] / x**2 - beta[sel] * np.einsum("bj,bj->b", ap, z))

    out = np.maximum(alpha, rho)
    live = ~((EA <= 1e-300) | (beta <= 0))
    idx = np.flatnonzero(live)
    if idx.size == 0:
        return out
    r, al = rho[idx], alpha[idx]
    s = r + al + beta[idx] * EA[idx]
    hi = 0.5 * (s + np.sqrt(np.maximum(s * s - 4 * al * r, 0.0))) * (1 + 1e-9) + 1e-15
    # widen where interpolation weights (slightly negative) leave f(hi) > 0
    act = np.ones(idx.size, bool)
    for _ in range(60):
        fv, _d = f_df(idx[act], hi[act])
        bad = fv > 0
        if not bad.any():
            break
        h = hi[act]
        h[bad] = r[act][bad] + 2.0 * (h[bad] - r[act][bad]) + 1e-12
        hi[act] = h
        a2 = act.copy()
        a2[act] = bad
        act = a2
    # a start left of the root (f > 0), then Newton (monotone for a convex decreasing f)
    x = hi.copy()
    fx, dfx = np.zeros(idx.size), np.zeros(idx.size)
    act = np.ones(idx.size, bool)
    for _ in range(200):
        xa = r[act] + 0.5 * (x[act] - r[act])
        fv, dv = f_df(idx[act], xa)
        x[act], fx[act], dfx[act] = xa, fv, dv
        left = fv > 0
        h = hi[act]
        h[~left] = xa[~left]
        hi[act] = h
        a2 = act.copy()
        a2[act] = ~left
        act = a2
        if not act.any():
            break
    lo = x.copy()
    act = np.ones(idx.size, bool)
    for _ in range(100):
        xa, fa, da, la, ha = x[act], fx[act], dfx[act], lo[act], hi[act]
        with np.errstate(divide="ignore", invalid="ignore"):
            xn = np.where(da < 0, xa - fa / da, 0.5 * (la + ha))
        xn = np.where((la <= xn) & (xn <= ha), xn, 0.5 * (la + ha))
        stop = np.abs(xn - xa) <= 4e-16 * xa
        x[act] = xn
        go = ~stop
        if go.any():
            sel = np.flatnonzero(act)[go]
            fv, dv = f_df(idx[sel], xn[go])
            fx[sel], dfx[sel] = fv, dv
            lo[sel] = np.where(fv > 0, xn[go], lo[sel])
            hi[sel] = np.where(fv > 0, hi[sel], xn[go])
            go[go] = fv != 0
        a2 = act.copy()
        a2[act] = go
        act = a2
        if not act.any():
            break
    out[idx] = x
    return out


def _moments_batch(mod, pi, th):
    """Batched :func:`lstm_twostate._moments` (m1, m2 of the 2N x 2N Jacobian)."""
    c = mod.grid.c
    tc = np.tanh(c)
    t2, dt2 = tc**2, (1.0 - tc**2) ** 2
    s2f = th["f"]["sigma2"][:, None]
    so = th["o"]["sigma2"]
    Eo = mod.Eo
    vF, vG = mod.vF, mod.vG
    c2, c4 = pi * c**2, pi * c**4
    # (vG is linear in its vector: the measures are combined before the G-operators act)
    p1, pF2 = vF(pi, "1"), vF(pi, "F2")
    c2d2 = vF(c2, "d2")
    law = vG(p1, "1")
    gB = vG(p1, "B")
    mA = s2f * vG(c2d2, "1") + gB
    mS = vG(pF2, "1") + mA
    mS2 = (vG(vF(pi, "F4") + s2f**2 * vF(c4, "d4") + 2 * s2f * vF(c2, "F2d2"), "1") + vG(p1, "B2")
           + 2 * vG(pF2 + s2f * c2d2, "B"))
    dot = lambda a, b: np.einsum("bj,bj->b", a, b)  # noqa: E731
    m1 = 0.5 * (mS.sum(-1) + Eo["s2"] * dot(mS, dt2) + so * Eo["d2"] * dot(law, t2))
    on = (mS2.sum(-1) + 2 * Eo["s2"] * dot(mS2, dt2) + Eo["s4"] * dot(mS2, dt2**2)
          + 2 * so * Eo["s2d2"] * dot(mS, dt2 * t2) + so**2 * Eo["d4"] * dot(law, t2**2))
    off = mA.sum(-1) + Eo["s2"] * dot(mA, dt2) + so * Eo["d2"] * dot(law, t2)
    return m1, 0.5 * on + 0.5 * off**2


def gauss_rule_batch(x, w, m):
    """Batched :func:`lstm_twostate._gauss_rule`: for each row b, an ``m``-point Gauss rule of the
    discrete measure ``sum_j w[b, j] delta(x[b, j])`` (w >= 0). Returns nodes and weights
    (B, m); where the measure has fewer than m support points the surplus nodes get weight 0
    (up to rounding) and a zero measure gives zero weights."""
    x = np.asarray(x, float)
    w = np.asarray(w, float)
    B, N = x.shape
    tot = w.sum(-1)
    pos = tot > 0
    tsafe = np.where(pos, tot, 1.0)
    shift = (w * x).sum(-1) / tsafe
    xs = x - shift[:, None]
    V = np.zeros((m, B, N))                       # Lanczos vectors, each a contiguous block
    V[0] = np.sqrt(w / tsafe[:, None])
    a, b = np.zeros((B, m)), np.zeros((B, m - 1))
    alive = pos.copy()
    thr = 1e-13 * (1.0 + np.abs(xs).max(-1))
    y = np.empty((B, N))
    for k in range(m):
        # three-term recurrence, then one full (classical Gram-Schmidt) reorthogonalisation
        np.multiply(xs, V[k], out=y)
        if k:
            y -= b[:, k - 1, None] * V[k - 1]
        a[:, k] = np.einsum("bn,bn->b", V[k], y)
        y -= a[:, k, None] * V[k]
        Vk = V[: k + 1]
        y -= np.einsum("kb,kbn->bn", np.einsum("kbn,bn->kb", Vk, y), Vk)
        if k + 1 < m:
            nb = np.sqrt(np.einsum("bn,bn->b", y, y))
            alive &= nb > thr
            b[:, k] = np.where(alive, nb, 0.0)
            V[k + 1] = y * np.where(alive, 1.0 / np.where(alive, nb, 1.0), 0.0)[:, None]
    # a broken-down recursion (b = 0) leaves zero rows: their eigenvectors carry no weight; keep
    # the surplus diagonal at the mean (shift) so every node stays inside the support's hull
    a = np.where(np.concatenate([np.ones((B, 1), bool), np.cumprod(b != 0, axis=1).astype(bool)], axis=1), a, 0.0)
    J = np.zeros((B, m, m))
    ii = np.arange(m)
    J[:, ii, ii] = a
    J[:, ii[:-1], ii[1:]] = b
    J[:, ii[1:], ii[:-1]] = b
    # nodes: eigenvalues of J; weights (Golub-Welsch: squared first eigenvector components) as
    # Christoffel numbers 1 / sum_j p_j(node)^2 of the orthonormal polynomials of the recurrence
    # (cheaper than eigenvectors); a broken-down recurrence (some b = 0) takes the eigenvectors
    lam = np.linalg.eigvalsh(J)
    full = np.all(b > 0, axis=1)
    wts = np.empty((B, m))
    if full.any():
        L, A, Bc = lam[full], a[full], b[full]
        p_prev, p_cur = np.zeros_like(L), np.ones_like(L)
        ssum = np.ones_like(L)
        for k in range(m - 1):
            p_next = ((L - A[:, k, None]) * p_cur - (Bc[:, k - 1, None] * p_prev if k else 0.0)) / Bc[:, k, None]
            ssum += p_next**2
            p_prev, p_cur = p_cur, p_next
        wts[full] = 1.0 / ssum
    if not full.all():
        lam_b, U = np.linalg.eigh(J[~full])
        lam[~full], wts[~full] = lam_b, U[:, 0, :] ** 2
    return lam + shift[:, None], tot[:, None] * wts
