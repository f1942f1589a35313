r"""Mean-field theory of the standard LSTM by cell-state sampling (Section 4.5, Algorithm 1,
Appendix A.2.3).

The LSTM's state :math:`s = h = \sigma(u_o)\tanh(c)` depends on the cell state, whose stationary
law at large N is that of a *perpetuity* (eq. (16)): :math:`c \stackrel{d}{=} \sigma(u_f)\,c +
\sigma(u_i)\tanh(u_r)` with fresh independent Gaussian :math:`u_k` (eq. (3), moments from eq. (4)
with :math:`s = h`). It has no closed form, so we sample it (:func:`sample_cell_state`):
``n_s`` samples iterated ``n_iters`` times from :math:`c = 0`, with *common random numbers*
(one seeded draw of standard normals, shared by every grid point and every call), so that the
sampled maps are deterministic, smooth functions of :math:`\Theta` and can be solved by Newton.

* :func:`fixed_point_iteration` is Algorithm 1: :math:`(\mu_h, Q_h) \mapsto (\mu_h', Q_h')`
  with :math:`\mu_h' = \mathbb{E}\sigma(u_o)\,\overline{\tanh c}`,
  :math:`Q_h' = \mathbb{E}\sigma(u_o)^2\,\overline{\tanh^2 c}` (:math:`u_o` is independent of
  :math:`c`; its expectations are 1-D quadrature).
* The correlation map samples pairs :math:`(c_a, c_b)` driven by pairs of pre-activations with
  the correlations :math:`C_k` of eq. (4b).
* :math:`\chi` follows Appendix A.2.3: :math:`\chi = \mathbb{E}[D_{0a}D_{0b}] + \sum_k\sigma_k^2
  \mathbb{E}[D_{ka}D_{kb}]` with :math:`D_0 = \sigma(u_f)` (the paper's hidden-state approximation
  :math:`c = \tanh^{-1}(h/\sigma(u_o))`, :math:`\sigma(u_o^t)/\sigma(u_o^{t-1}) \approx 1`),
  :math:`D_o = \sigma'(u_o)\tanh(c')`, :math:`D_f = \sigma(u_o)\tanh'(c')\sigma'(u_f)c`,
  :math:`D_i = \sigma(u_o)\tanh'(c')\sigma'(u_i)\tanh(u_r)`, :math:`D_r = \sigma(u_o)\tanh'(c')
  \sigma(u_i)\tanh'(u_r)`, where :math:`c` is a stationary sample and
  :math:`c' = \sigma(u_f)c + \sigma(u_i)\tanh(u_r)` its successor (the paper writes :math:`c^*`
  for both).
* m1, m2 (eqs. (11)-(14)) use the same D's with the free-probability second moment of
  :func:`rnn_mft.theory.meanfield.jacobian_moments`, averaged over the samples.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .meanfield import _sig, check_R, check_sigma_z, nodes_for
from .quadrature import expect, expect2
from .theta import Theta

__all__ = ["sample_cell_state", "fixed_point_iteration", "LSTMFixedPoint", "fixed_point",
           "jacobian_moments", "DEFAULT_NS", "DEFAULT_ITERS"]

DEFAULT_NS = 1000
DEFAULT_ITERS = 200


def _check_sampling(n_s, n_iters):
    for name, v in (("n_s", n_s), ("n_iters", n_iters)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}={v!r} must be a positive integer")


def _crn(n_s, n_iters, seed, pair):
    """Common random numbers: standard normals (n_iters, 3 gates [, 2 copies], n_s)."""
    rng = np.random.default_rng(seed)
    za = rng.standard_normal((n_iters + 1, 4, n_s))
    zb = rng.standard_normal((n_iters + 1, 4, n_s)) if pair else None
    return za, zb


def _gate_sd(theta, q_h, R):
    """Standard deviations of u_i, u_f, u_r, u_o (eq. (4a) with s = h)."""
    return {k: np.sqrt(theta[k].sigma2 * q_h + theta[k].nu2 * R + theta[k].rho2) for k in "ifro"}


def _gate_corr(theta, mu_h, q_h, c_h, sigma_z, R):
    """Correlations C_k of eq. (4b) with s = h."""
    ss = (q_h - mu_h**2) * c_h + mu_h**2
    out = {}
    for k in "ifro":
        p = theta[k]
        var = p.sigma2 * q_h + p.nu2 * R + p.rho2
        cov = p.sigma2 * ss + p.nu2 * R * sigma_z + p.rho2
        with np.errstate(divide="ignore", invalid="ignore"):
            out[k] = np.clip(np.where(var > 0, cov / np.where(var > 0, var, 1.0), 1.0), -1, 1)
    return out


def _run(theta, q_h, za, zb=None, corr=None, R=1.0, keep_last=False):
    """Iterate eq. (16) from c = 0 with the common random numbers; shapes (*grid, n_s)."""
    sd = {k: np.asarray(v)[..., None] for k, v in _gate_sd(theta, q_h, R).items()}
    mu = {k: np.asarray(theta[k].mu)[..., None] for k in "ifro"}
    if zb is not None:
        cc = {k: np.asarray(corr[k])[..., None] for k in "ifr"}
        ss = {k: np.sqrt(np.clip(1 - cc[k] ** 2, 0, None)) for k in "ifr"}
    n_iters = za.shape[0] - 1
    ca = cb = 0.0
    idx = {"i": 0, "f": 1, "r": 2}
    last = None
    for t in range(n_iters + (1 if keep_last else 0)):
        ua = {k: mu[k] + sd[k] * za[t, idx[k]] for k in "ifr"}
        if keep_last and t == n_iters:
            last = (ca, cb, ua, None)
        new_a = _sig(ua["f"]) * ca + _sig(ua["i"]) * np.tanh(ua["r"])
        if zb is not None:
            ub = {k: mu[k] + sd[k] * (cc[k] * za[t, idx[k]] + ss[k] * zb[t, idx[k]]) for k in "ifr"}
            if keep_last and t == n_iters:
                last = (ca, cb, ua, ub)
            cb = _sig(ub["f"]) * cb + _sig(ub["i"]) * np.tanh(ub["r"])
        if keep_last and t == n_iters:
            break
        ca = new_a
    if keep_last:
        return last
    return ca, (cb if zb is not None else None)


def sample_cell_state(theta: Theta, q_h=None, mu_h=None, n_s: int = DEFAULT_NS, n_iters: int = DEFAULT_ITERS,
                      seed: int = 0, sigma_z=None, c_h=None, R: float = 1.0):
    r"""Samples of the stationary LSTM cell state (Section 4.5, Algorithm 1's inner loop, eq. (16)).

    Parameters
    ----------
    theta : Theta
        LSTM hyperparameters (``arch="lstm"``; ``peephole_lstm`` is also accepted, with
        :math:`Q_h` then read as the cell state's second moment), any grid shape.
    q_h, mu_h : array_like, optional
        Moments of the hidden state that set the gate variances (eq. (4a)). Default: the
        fixed point :math:`Q_h^*` from :func:`fixed_point` with the same sampling settings.
    n_s, n_iters, seed : int
        Number of samples, iterations of eq. (16) from :math:`c = 0`, and the seed of the common
        random numbers.
    sigma_z, c_h : float, optional
        When ``sigma_z`` is given, sample *pairs* :math:`(c_a, c_b)` for two input sequences with
        correlation ``sigma_z`` and hidden-state correlation ``c_h`` (default 1).

    Returns
    -------
    ndarray
        ``(*grid, n_s)``, or ``(2, *grid, n_s)`` for pairs.
    """
    if not isinstance(theta, Theta) or theta.arch not in ("lstm", "peephole_lstm"):
        raise ValueError("theta must be a Theta for arch='lstm' (or 'peephole_lstm')")
    _check_sampling(n_s, n_iters)
    R = check_R(R)
    if q_h is None:
        fp = fixed_point(theta, 1.0, R=R, n_s=n_s, n_iters=n_iters, seed=seed)
        q_h, mu_h = fp.q_s, fp.mu_s
    q_h = np.asarray(q_h, float)
    if np.any(~np.isfinite(q_h)) or np.any(q_h < 0):
        raise ValueError(f"q_h={q_h!r} must be finite and >= 0")
    mu_h = np.zeros_like(q_h) if mu_h is None else np.asarray(mu_h, float)
    pair = sigma_z is not None
    za, zb = _crn(n_s, n_iters, seed, pair)
    if not pair:
        ca, _ = _run(theta, q_h, za, R=R)
        return np.broadcast_to(ca, theta.shape + (n_s,)) if np.ndim(ca) < 1 else ca
    sz = check_sigma_z(sigma_z)
    c_h = 1.0 if c_h is None else np.asarray(c_h, float)
    corr = _gate_corr(theta, mu_h, q_h, c_h, sz, R)
    ca, cb = _run(theta, q_h, za, zb, corr, R)
    return np.stack(np.broadcast_arrays(ca, cb))


def _o_moments(theta, q_h, R, n=None):
    p = theta["o"]
    var = p.sigma2 * q_h + p.nu2 * R + p.rho2
    nn = nodes_for(np.max(var), n)
    return (expect(_sig, p.mu, var, n=nn), expect(lambda u: _sig(u) ** 2, p.mu, var, n=nn), var, nn)


def fixed_point_iteration(mu_h, q_h, theta: Theta, n_s: int = DEFAULT_NS, n_iters: int = DEFAULT_ITERS,
                          seed: int = 0, R: float = 1.0):
    """Algorithm 1: one application of the map (6) for (mu_h, Q_h) by cell-state sampling.

    CALCULATEQK (eq. (4)), SAMPLEUS (eq. (3)), UPDATEC (eq. (16)) ``n_iters`` times on ``n_s``
    samples, then CALCULATEM: ``mu_h' = E sigma(u_o) mean(tanh c)``,
    ``Q_h' = E sigma(u_o)^2 mean(tanh(c)^2)``. Returns ``(mu_h', Q_h')``.
    """
    _check_sampling(n_s, n_iters)
    za, _ = _crn(n_s, n_iters, seed, False)
    return _fpi(theta, np.asarray(q_h, float), za, R)


def _fpi(theta, q_h, za, R):
    c, _ = _run(theta, q_h, za, R=R)
    Eo, Eo2, _, _ = _o_moments(theta, q_h, R)
    t = np.tanh(c)
    return Eo * t.mean(-1), Eo2 * (t * t).mean(-1)


@dataclass(frozen=True)
class LSTMFixedPoint:
    """Fixed point of the sampled LSTM map and chi (Appendix A.2.3); NaN where not converged."""

    mu_s: np.ndarray
    q_s: np.ndarray
    c_s: np.ndarray
    chi: np.ndarray
    m1: np.ndarray
    m2: np.ndarray
    m2_printed: np.ndarray
    converged: np.ndarray
    residual: np.ndarray
    iterations: int


def _flat(theta: Theta, shape) -> Theta:
    """Theta with every field broadcast to ``shape`` and flattened (grid points on one axis)."""
    return Theta(theta.arch, {g: {f: np.broadcast_to(getattr(theta[g], f), shape).ravel().copy()
                                  for f in ("sigma2", "nu2", "rho2", "mu")} for g in theta})


def _take(theta: Theta, idx) -> Theta:
    return Theta(theta.arch, {g: {f: getattr(theta[g], f)[idx] for f in ("sigma2", "nu2", "rho2", "mu")}
                              for g in theta})


def _solve_q(theta, za, R, tol, max_iter):
    """Q_h = FPI(Q_h) by a safeguarded secant iteration on the flattened grid, iterating only
    over the points that have not converged yet (so stragglers do not cost the whole grid)."""
    P = theta.shape[0]
    q = np.full(P, 0.25)
    for _ in range(3):                                   # a few plain Algorithm-1 iterations
        _, q = _fpi(theta, q, za, R)
    mu, g = _fpi(theta, q, za, R)
    r = g - q
    q_prev, r_prev = q.copy(), r.copy()
    q = g.copy()
    active = np.arange(P)
    it = 0
    for it in range(max_iter):
        th = _take(theta, active)
        mu_a, g_a = _fpi(th, q[active], za, R)
        r_a = g_a - q[active]
        mu[active] = mu_a
        done = np.abs(r_a) < tol
        with np.errstate(divide="ignore", invalid="ignore"):
            d = (r_a - r_prev[active]) / (q[active] - q_prev[active])
            qN = q[active] - r_a / d
        ok = (d < -1e-12) & np.isfinite(qN) & (qN > 0)
        q_prev[active], r_prev[active] = q[active], r_a
        q[active] = np.where(done, q[active], np.where(ok, qN, g_a))
        active = active[~done]
        if active.size == 0:
            break
    mu, g = _fpi(theta, q, za, R)
    return mu, q, np.abs(g - q), it


def _pair_quantities(theta, mu, q, c_h, sz, za, zb, R, n_o):
    """E[h_a h_b] after one more step, chi (A.2.3) at correlation c_h, from sampled pairs."""
    corr = _gate_corr(theta, mu, q, c_h, sz, R)
    ca, cb, ua, ub = _run(theta, q, za, zb, corr, R, keep_last=True)
    po = theta["o"]
    vo = po.sigma2 * q + po.nu2 * R + po.rho2
    Soo = expect2(_sig, None, po.mu, vo, corr["o"], n=n_o)                   # E s(u_oa) s(u_ob)
    dSoo = expect2(lambda u: _sig(u) * (1 - _sig(u)), None, po.mu, vo, corr["o"], n=n_o)
    fa, fb = _sig(ua["f"]), _sig(ub["f"])
    ia, ib = _sig(ua["i"]), _sig(ub["i"])
    ra, rb = np.tanh(ua["r"]), np.tanh(ub["r"])
    cna, cnb = fa * ca + ia * ra, fb * cb + ib * rb                        # c' (eq. (16))
    ta, tb = np.tanh(cna), np.tanh(cnb)
    Ehh = Soo * (ta * tb).mean(-1)
    dt = (1 - ta**2) * (1 - tb**2)
    inner = (theta["f"].sigma2[..., None] * ca * cb * fa * (1 - fa) * fb * (1 - fb)
             + theta["i"].sigma2[..., None] * ia * (1 - ia) * ib * (1 - ib) * ra * rb
             + theta["r"].sigma2[..., None] * ia * ib * (1 - ra**2) * (1 - rb**2))
    chi = ((fa * fb).mean(-1) + theta["o"].sigma2 * dSoo * (ta * tb).mean(-1)
           + Soo * (dt * inner).mean(-1))
    return Ehh, chi


def jacobian_moments(theta: Theta, q, za, R=1.0):
    """m1, m2 (free probability) and the printed eq. (14) for the LSTM (Appendix A.2.3).

    The D's of the module docstring are evaluated on the sampled (c, u_i, u_f, u_r) of the last
    step; the output gate (independent of them) is integrated by quadrature:
    ``D_o = sigma'(u_o) X_o`` and ``D_k = sigma(u_o) X_k`` for k = i, f, r. See
    :func:`rnn_mft.theory.meanfield.jacobian_moments` for the formulas (all terms are (1a)).
    """
    ca, _, ua, _ = _run(theta, q, za, None, None, R, keep_last=True)
    f, i, r = _sig(ua["f"]), _sig(ua["i"]), np.tanh(ua["r"])
    cn = f * ca + i * r
    tc = np.tanh(cn)
    dtc = 1 - tc**2
    X = {"f": dtc * f * (1 - f) * ca, "i": dtc * i * (1 - i) * r, "r": dtc * i * (1 - r**2)}
    s2 = {k: np.asarray(theta[k].sigma2)[..., None] for k in "ifro"}
    Y = sum(s2[k] * X[k] ** 2 for k in "ifr")
    Xo2 = s2["o"] * tc**2
    po = theta["o"]
    vo = po.sigma2 * q + po.nu2 * R + po.rho2
    nn = nodes_for(np.max(vo))
    dsg = lambda u: _sig(u) * (1 - _sig(u))  # noqa: E731
    Eo = {key: expect(fn, po.mu, vo, n=nn)[..., None] for key, fn in (
        ("s2", lambda u: _sig(u) ** 2), ("s4", lambda u: _sig(u) ** 4), ("d2", lambda u: dsg(u) ** 2),
        ("d4", lambda u: dsg(u) ** 4), ("s2d2", lambda u: _sig(u) ** 2 * dsg(u) ** 2))}
    a0 = f**2
    A1 = Xo2 * Eo["d2"] + Y * Eo["s2"]                     # E_o[sum_k a_k]
    A2 = Xo2**2 * Eo["d4"] + Y**2 * Eo["s4"] + 2 * Xo2 * Y * Eo["s2d2"]   # E_o[(sum_k a_k)^2]
    m1 = (a0 + A1).mean(-1)
    Esq = (a0**2 + 2 * a0 * A1 + A2).mean(-1)              # E[(a0 + sum a_k)^2]
    EA = A1.mean(-1)
    m2 = Esq + 2 * a0.mean(-1) * EA + EA**2
    m2p = 2 * Esq - (a0**2).mean(-1)
    return m1, m2, m2p


def fixed_point(theta: Theta, sigma_z=1.0, R: float = 1.0, n_s: int = DEFAULT_NS,
                n_iters: int = DEFAULT_ITERS, seed: int = 0, tol: float = 1e-10,
                max_iter: int = 25) -> LSTMFixedPoint:
    """(mu*, Q*, C*) of the LSTM by Algorithm 1 (Newton on Q with common random numbers), chi of
    Appendix A.2.3, and m1, m2; vectorised over the grid of ``theta`` and ``sigma_z``.

    C* solves the sampled correlation map by a bracketed secant (Illinois) method on [0, 1]
    (at Sigma_z = 1, C* = 1 where chi(1) <= 1). The result is a Monte-Carlo estimate with
    relative error of order 1/sqrt(n_s), deterministic for a given ``seed``.
    """
    if not isinstance(theta, Theta) or theta.arch != "lstm":
        raise ValueError("theta must be a Theta for arch='lstm'")
    _check_sampling(n_s, n_iters)
    sz = check_sigma_z(sigma_z)
    R = check_R(R)
    za, zb = _crn(n_s, n_iters, seed, True)
    shape = np.broadcast_shapes(theta.shape, sz.shape)
    th_full = _flat(theta, shape)                          # every grid point (and Sigma_z) on one axis
    szf = np.broadcast_to(sz, shape).ravel()
    th_q = _flat(theta, theta.shape) if theta.shape else _flat(theta, (1,))
    mu_q, q_q, res_q, it = _solve_q(th_q, za, R, tol, max_iter)
    mu = np.broadcast_to(mu_q.reshape(theta.shape), shape).ravel()
    q = np.broadcast_to(q_q.reshape(theta.shape), shape).ravel()
    res_q = np.broadcast_to(res_q.reshape(theta.shape), shape).ravel()
    var = q - mu**2

    def Mc(c, idx):
        th = _take(th_full, idx)
        _, _, _, n_o = _o_moments(th, q[idx], R)
        Ehh, chi = _pair_quantities(th, mu[idx], q[idx], c, szf[idx], za, zb, R, n_o)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (Ehh - mu[idx] ** 2) / var[idx], chi

    Pn = szf.size
    allidx = np.arange(Pn)
    m_one, chi_one = Mc(np.ones(Pn), allidx)
    at_one = (szf == 1.0) & (chi_one <= 1.0)
    # Illinois on r(c) = M(c) - c in [0, 1]: r(0) >= 0 (Lemma 2), r(1) <= 0; at Sigma_z = 1 with
    # chi(1) > 1, C = 1 is the unstable root and the stable one is bracketed below it
    unstable_one = (szf == 1.0) & ~at_one
    lo, hi = np.zeros(Pn), np.where(unstable_one, 1.0 - 1e-6, 1.0)
    rlo, rhi = np.zeros(Pn), m_one - hi
    c = np.where(at_one, 1.0, 0.5)
    side = np.zeros(Pn)
    active = allidx[~at_one]                  # only these need a root search
    if active.size:
        rlo[active] = Mc(lo[active], active)[0] - lo[active]
        un = allidx[unstable_one]
        if un.size:
            rhi[un] = Mc(hi[un], un)[0] - hi[un]
    for _ in range(40):
        if active.size == 0:
            break
        a = active
        with np.errstate(divide="ignore", invalid="ignore"):
            cn = np.where(rlo[a] - rhi[a] != 0, (lo[a] * rhi[a] - hi[a] * rlo[a]) / (rhi[a] - rlo[a]),
                          0.5 * (lo[a] + hi[a]))
        cn = np.where(np.isfinite(cn) & (cn > lo[a]) & (cn < hi[a]), cn, 0.5 * (lo[a] + hi[a]))
        rn = Mc(cn, a)[0] - cn
        left = rn > 0
        sd = side[a]
        lo_a, rlo_a = np.where(left, cn, lo[a]), np.where(left, rn, rlo[a])
        hi_a, rhi_a = np.where(left, hi[a], cn), np.where(left, rhi[a], rn)
        rhi_a = np.where(left & (sd > 0), 0.5 * rhi_a, rhi_a)       # Illinois modification
        rlo_a = np.where(~left & (sd < 0), 0.5 * rlo_a, rlo_a)
        lo[a], hi[a], rlo[a], rhi[a] = lo_a, hi_a, rlo_a, rhi_a
        side[a] = np.where(left, 1.0, -1.0)
        c[a] = cn
        done = (np.abs(rn) < tol) | (hi_a - lo_a < 1e-10) | ~np.isfinite(rn)
        active = a[~done]
    chi = chi_one.copy()                      # at C* = 1 chi is already known
    res_c = np.zeros(Pn)
    rest = allidx[~at_one]
    if rest.size:
        mc_r, chi_r = Mc(c[rest], rest)
        chi[rest] = chi_r
        res_c[rest] = np.abs(mc_r - c[rest])
    res = np.maximum(res_q, res_c)
    conv = (res < max(tol, 1e-8)) & np.isfinite(chi) & np.isfinite(q) & (q > 0)
    mu, q, c, chi, res, conv = (np.reshape(x, shape) for x in (mu, q, c, chi, res, conv))
    m1, m2, m2p = jacobian_moments(theta, q_q.reshape(theta.shape), za, R)
    nan = lambda a: np.where(conv, np.broadcast_to(a, shape), np.nan)  # noqa: E731
    return LSTMFixedPoint(nan(mu), nan(q), nan(c), nan(chi), nan(m1), nan(m2), nan(m2p), conv, res, it)
