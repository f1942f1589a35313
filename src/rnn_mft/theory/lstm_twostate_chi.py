r"""chi and the Jacobian moments of the two-state LSTM theory, given the discretised model.

The equations are those of :mod:`rnn_mft.theory.lstm_twostate` (its module docstring and the
book's chapter *The LSTM has two states*):

* :func:`_chi_one`: chi at Sigma_z = 1 (C* = 1), the Perron root of the (m, q) system, the root
  above rho(P_2) = E F^2 of ``1 = alpha/chi + beta <a_p, (chi - P_2)^{-1} w>``;
* :func:`_chi_zero`: chi at Sigma_z = 0 with independent copies (C* = 0), the renewal equation;
* :func:`_moments`: m1, m2 of the 2N x 2N Jacobian of (h, c);
* :func:`_chi_one_batch`, :func:`_moments_batch`: the same for a stack of points
  (:mod:`rnn_mft.theory.lstm_twostate_batch`), chi by a bracketed secant iteration per point
  under a mask;
* :func:`jacobi_batch`, :func:`gauss_rule_batch`: the stacked Lanczos (Stieltjes) procedure
  for the Jacobi matrices and Gauss rules of discrete measures, and
  :func:`product_gauss_rule`, which compresses the laws of G = sigma(u_i) tanh(u_r) to Gauss
  rules on the batched path from the Jacobi matrices of the two factors.

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


#: the batched chi's root iteration stops after a step below this fraction of chi: the error
#: after such a step is of the order of the step times the previous error, far below rounding
#: here (measured on a 50 x 50 grid of benchmarks/theory.py: chi within 6e-14, relative, of a
#: Newton iteration run until its step vanishes, which takes about twice the solves)
ROOT_RTOL = 1e-10


def _chi_one_batch(mod, pi, th):
    """Batched :func:`lstm_twostate._chi_one`: the Perron root of the (m, q) system, the root of
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


def _moments_batch(mod, pi, th):
    """Batched :func:`lstm_twostate._moments` (m1, m2 of the 2N x 2N Jacobian)."""
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


#: Lanczos vectors (rows x nodes x steps) per block of rows in :func:`jacobi_batch` (measured:
#: blocks of ~2 MB run 15 % faster than one stack of 15 MB)
LANCZOS_ELEMS = 1 << 18


def _lanczos(apply, v0, m, thr):
    """Batched Lanczos with full (classical Gram-Schmidt) reorthogonalisation: the Jacobi
    matrices, diagonals ``a`` (B, m) and off-diagonals ``b`` (B, m - 1), of the symmetric
    operators ``apply`` (a stack of row vectors (B, N) to (B, N)) on the Krylov spaces of the
    unit start vectors ``v0`` (B, N). A row whose recurrence breaks down (b <= thr; a zero
    start at once) keeps zeros from there on."""
    B, N = v0.shape
    V = np.zeros((m, B, N))                       # Lanczos vectors, each a contiguous block
    V[0] = v0
    a, b = np.zeros((B, m)), np.zeros((B, m - 1))
    alive = np.einsum("bn,bn->b", v0, v0) > 0
    for k in range(m):
        # three-term recurrence, then one full reorthogonalisation
        y = apply(V[k])
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
    # the surplus diagonal at the mean (the shift) so every node stays inside the support's hull
    a = np.where(np.concatenate([np.ones((B, 1), bool), np.cumprod(b != 0, axis=1).astype(bool)], axis=1), a, 0.0)
    return a, b


def _gauss_from_jacobi(a, b):
    """Nodes (eigenvalues) and weights (summing to one) of the Gauss rules of Jacobi matrices
    (a (B, m), b (B, m - 1)): the weights (Golub-Welsch: squared first eigenvector components)
    as Christoffel numbers 1 / sum_j p_j(node)^2 of the orthonormal polynomials of the
    recurrence (cheaper than eigenvectors); a broken-down recurrence (some b = 0) takes the
    eigenvectors."""
    B, m = a.shape
    J = np.zeros((B, m, m))
    ii = np.arange(m)
    J[:, ii, ii] = a
    J[:, ii[:-1], ii[1:]] = b
    J[:, ii[1:], ii[:-1]] = b
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
    return lam, wts


def jacobi_batch(x, w, m):
    """For each row b, the m x m Jacobi matrix of the discrete measure ``sum_j w[b, j]
    delta(x[b, j])`` (w >= 0), normalised and centred: ``(a, b, shift, tot)`` with the
    recurrence coefficients a (B, m), b (B, m - 1) of x - shift, the mean ``shift`` and the
    mass ``tot`` (B,). Its Gauss rule is :func:`gauss_rule_batch`'s."""
    x = np.asarray(x, float)
    w = np.asarray(w, float)
    B, N = x.shape
    rows = max(1, LANCZOS_ELEMS // max(1, m * N))
    if B > rows:                                  # rows are independent: blocks stay in cache
        parts = [jacobi_batch(x[r:r + rows], w[r:r + rows], m) for r in range(0, B, rows)]
        return tuple(np.concatenate(p) for p in zip(*parts))
    tot = w.sum(-1)
    tsafe = np.where(tot > 0, tot, 1.0)
    shift = (w * x).sum(-1) / tsafe
    xs = x - shift[:, None]
    a, b = _lanczos(lambda v: xs * v, np.sqrt(w / tsafe[:, None]), m, 1e-13 * (1.0 + np.abs(xs).max(-1)))
    return a, b, shift, tot


def gauss_rule_batch(x, w, m):
    """Batched :func:`lstm_twostate._gauss_rule`: for each row b, an ``m``-point Gauss rule of the
    discrete measure ``sum_j w[b, j] delta(x[b, j])`` (w >= 0). Returns nodes and weights
    (B, m); where the measure has fewer than m support points the surplus nodes get weight 0
    (up to rounding) and a zero measure gives zero weights."""
    a, b, shift, tot = jacobi_batch(x, w, m)
    lam, wts = _gauss_from_jacobi(a, b)
    return lam + shift[:, None], tot[:, None] * wts


def product_gauss_rule(coef, fx, fy, m):
    """For each row b, the ``m``-point Gauss rule of the law of G = X Y under the measure
    ``sum_t coef[t, b] mu_X[t, b] (x) mu_Y[t, b]``, where each factor measure is given by its
    :func:`jacobi_batch` tuple (arrays with a leading term axis t, as ``fx``, ``fy``).

    The Lanczos recurrence of G runs on the direct sum over t of the tensor-product spaces, with
    the operator J_X (x) J_Y of each term (J with the shift on its diagonal) and the start
    sum_t sqrt(coef mass_X mass_Y / total) e_1 (x) e_1: the moments it sees,
    E[G^j] = E[X^j] E[Y^j], are those of the factor Gauss rules' product measure, exact for
    j < 2 m_f (m_f: the factors' size), so for m_f >= m the rule equals that of the product of
    the factor rules, without forming them. Returns nodes and weights (B, m)."""
    aX, bX, sX, tX = fx
    aY, bY, sY, tY = fy
    T, B, mf = aX.shape
    ii = np.arange(mf)

    def dense(a, b, sh):                                          # (B, T, mf, mf) Jacobi matrices
        J = np.zeros((B, T, mf, mf))
        J[..., ii, ii] = np.moveaxis(a + sh[..., None], 0, 1)
        J[..., ii[:-1], ii[1:]] = J[..., ii[1:], ii[:-1]] = np.moveaxis(b, 0, 1)
        return J

    JX, JY = dense(aX, bX, sX), dense(aY, bY, sY)
    mass = np.moveaxis(np.asarray(coef, float) * tX * tY, 0, 1)   # (B, T)
    tot = mass.sum(-1)
    v0 = np.zeros((B, T, mf, mf))
    v0[:, :, 0, 0] = np.sqrt(np.maximum(mass, 0.0) / np.where(tot > 0, tot, 1.0)[:, None])

    def kron(v):
        return (JX @ v.reshape(B, T, mf, mf) @ JY).reshape(B, -1)   # (J_X (x) J_Y) v, J_Y symmetric

    v0 = v0.reshape(B, -1)
    shift = np.einsum("bn,bn->b", v0, kron(v0))
    a, b = _lanczos(lambda v: kron(v) - shift[:, None] * v, v0, m, 1e-13 * 3.0)
    lam, wts = _gauss_from_jacobi(a, b)
    return lam + shift[:, None], tot[:, None] * wts
