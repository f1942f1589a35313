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

Names: :func:`algorithm1_fixed_point` (historical name ``fixed_point``, returns a
:class:`LSTMFixedPoint`) and :func:`algorithm1_jacobian_moments` (historical name
``jacobian_moments``; it takes the common random numbers ``za``, unlike the closed-form
:func:`rnn_mft.theory.meanfield.closed_form_jacobian_moments`, which takes ``(mu, q)``). The
default LSTM theory of :func:`rnn_mft.theory.analyze` is the two-state theory
(:func:`rnn_mft.theory.lstm_twostate.fixed_point`, a dict of arrays).

*Why this module is ~510 lines (over the ~500 of the rest of src/).* Algorithm 1 is one
computation: the sampler, its fixed point, the correlation map and Appendix A.2.3's Jacobian
moments all run on the same common random numbers and the same sampled law; split apart, each
part would hand that state to the next.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import hermite as _h
from .meanfield import _flat, _take, check_R, check_sigma_z, gate_moment, nodes_for
from .quadrature import dsigmoid, expect, sigmoid as _sig
from .theta import Theta

__all__ = ["sample_cell_state", "fixed_point_iteration", "LSTMFixedPoint", "fixed_point",
           "algorithm1_fixed_point", "jacobian_moments", "algorithm1_jacobian_moments", "DEFAULT_NS",
           "DEFAULT_ITERS", "thread_pool"]

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
    return {k: np.sqrt(gate_moment(theta[k], q_h, R)) for k in "ifro"}


def _gate_corr(theta, mu_h, q_h, c_h, sigma_z, R):
    """Correlations C_k of eq. (4b) with s = h."""
    ss = (q_h - mu_h**2) * c_h + mu_h**2
    out = {}
    for k in "ifro":
        p = theta[k]
        var = gate_moment(p, q_h, R)
        cov = gate_moment(p, ss, R, sigma_z)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[k] = np.clip(np.where(var > 0, cov / np.where(var > 0, var, 1.0), 1.0), -1, 1)
    return out


#: grid points per block of the cell-state iteration (the block's work arrays stay in cache)
_BLOCK = 256
_POOL = None


def thread_pool():
    """The theory's pool of (at most) two threads, made on first use and shared by every solver that
    splits a grid (numpy releases the GIL)."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor
        import os
        _POOL = ThreadPoolExecutor(max(1, min(2, os.cpu_count() or 1)))
    return _POOL


def _chain(theta, q_h, za, zb=None, corr=None, R=1.0, last=False):
    """Iterate eq. (16) from c = 0 with the common random numbers.

    Returns ``c`` (*grid, n_s) after ``n_iters`` steps and, with ``last``, the gate values
    ``(sigma(u_f), sigma(u_i), tanh(u_r))`` of one more step (draw ``n_iters``). With ``zb`` the
    chain is the second copy ``b`` of a pair, driven by ``corr[k] za + sqrt(1 - corr[k]^2) zb``.
    The grid is cut into blocks of :data:`_BLOCK` points that are iterated in place (and two at a
    time on two threads: numpy releases the GIL); sigma(u) is evaluated as (1 + tanh(u/2))/2.
    """
    sd = _gate_sd(theta, q_h, R)
    parts = [np.shape(sd[k]) for k in "ifr"] + [np.shape(theta[k].mu) for k in "ifr"]
    if zb is not None:
        parts += [np.shape(corr[k]) for k in "ifr"]
    gshape = np.broadcast_shapes(*parts)
    P = int(np.prod(gshape))
    n_iters, n_s = za.shape[0] - 1, za.shape[-1]
    coef = {}
    for k in "ifr":
        h = 0.5 if k in "if" else 1.0
        m = h * np.broadcast_to(np.asarray(theta[k].mu, float), gshape).reshape(P, 1)
        a = h * np.broadcast_to(np.asarray(sd[k], float), gshape).reshape(P, 1)
        if zb is None:
            coef[k] = (m, a, None)
        else:
            cc = np.broadcast_to(np.asarray(corr[k], float), gshape).reshape(P, 1)
            coef[k] = (m, a * cc, a * np.sqrt(np.clip(1 - cc**2, 0, None)))
    gi = {"i": 0, "f": 1, "r": 2}
    c_out = np.empty((P, n_s))
    lasts = tuple(np.empty((P, n_s)) for _ in range(3)) if last else None

    def pre(k, t, sl, out, tmp):
        m, a, b = coef[k]
        np.multiply(a[sl], za[t, gi[k]], out=out)
        out += m[sl]
        if b is not None:
            np.multiply(b[sl], zb[t, gi[k]], out=tmp)
            out += tmp
        np.tanh(out, out=out)

    def block(lo):
        sl = slice(lo, min(lo + _BLOCK, P))
        p = sl.stop - sl.start
        c = np.zeros((p, n_s))
        tf, ti, tr, tmp = (np.empty((p, n_s)) for _ in range(4))
        for t in range(n_iters):
            pre("f", t, sl, tf, tmp)
            pre("i", t, sl, ti, tmp)
            pre("r", t, sl, tr, tmp)
            tf += 1.0                       # c <- ((1 + tanh(u_f/2)) c + (1 + tanh(u_i/2)) tanh(u_r)) / 2
            c *= tf
            ti += 1.0
            ti *= tr
            c += ti
            c *= 0.5
        c_out[sl] = c
        if last:
            pre("f", n_iters, sl, tf, tmp)
            pre("i", n_iters, sl, ti, tmp)
            pre("r", n_iters, sl, tr, tmp)
            lasts[0][sl] = 0.5 * (1.0 + tf)
            lasts[1][sl] = 0.5 * (1.0 + ti)
            lasts[2][sl] = tr

    starts = range(0, P, _BLOCK)
    if P > _BLOCK:
        list(thread_pool().map(block, starts))
    else:
        block(0)
    oshape = gshape + (n_s,)
    c_out = c_out.reshape(oshape)
    if not last:
        return c_out, None
    return c_out, tuple(x.reshape(oshape) for x in lasts)


def _run(theta, q_h, za, zb=None, corr=None, R=1.0, keep_last=False):
    """Compatibility wrapper: ``(ca, cb)`` after ``n_iters`` steps of eq. (16) from c = 0."""
    ca, _ = _chain(theta, q_h, za, None, None, R)
    cb = _chain(theta, q_h, za, zb, corr, R)[0] if zb is not None else None
    return ca, cb


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
    var = gate_moment(p, q_h, R)
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
    c, _ = _chain(theta, q_h, za, R=R)
    Eo, Eo2, _, _ = _o_moments(theta, q_h, R)
    t = np.tanh(c)
    return Eo * t.mean(-1), Eo2 * (t * t).mean(-1)


@dataclass(frozen=True)
class LSTMFixedPoint:
    """Fixed point of the sampled LSTM map and chi (Appendix A.2.3); NaN where not converged.

    ``chi_stderr``: the Monte Carlo standard error of chi, ``std(X) / sqrt(n_s)`` of the per-sample
    terms X_j whose mean is chi (NaN with ``n_s = 1``). It is the error of the sample mean at the
    fixed point found; that (mu*, Q*, C*) come from the same samples adds to it (not included)."""

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
    chi_stderr: np.ndarray | None = None
    n_s: int | None = None


def _solve_q(theta, za, R, tol, max_iter):
    """Q_h = FPI(Q_h) by a safeguarded secant iteration on the flattened grid, iterating only
    over the points that have not converged yet (so stragglers do not cost the whole grid).

    The start comes from three plain Algorithm-1 iterations on a quarter of the samples (only
    the start: the secant iteration solves the full sampled map); a point's residual and mu are
    those of its last evaluation, and only points still moving at ``max_iter`` are re-evaluated.
    """
    P = theta.shape[0]
    q = np.full(P, 0.25)
    zs = za[..., : max(10, za.shape[-1] // 4)]
    for _ in range(3):                                   # a few plain Algorithm-1 iterations
        _, qn = _fpi(theta, q, zs, R)
        q = np.where(np.isfinite(qn) & (qn > 0), qn, q)
    mu, g = _fpi(theta, q, za, R)
    r = g - q
    q_prev, r_prev = q.copy(), r.copy()
    q = g.copy()
    res = np.full(P, np.inf)
    active = np.arange(P)
    it = 0
    for it in range(max_iter):
        th = theta if active.size == P else _take(theta, active)
        mu_a, g_a = _fpi(th, q[active], za, R)
        r_a = g_a - q[active]
        mu[active] = mu_a
        res[active] = np.abs(r_a)
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
    if active.size:                                      # moved after their last evaluation
        mu_a, g_a = _fpi(_take(theta, active), q[active], za, R)
        mu[active], res[active] = mu_a, np.abs(g_a - q[active])
    return mu, q, res, it


def _o_series(theta, q, R):
    """Mehler series of E[sigma(u_oa) sigma(u_ob)] and E[sigma'(u_oa) sigma'(u_ob)] in C_o
    (the output gate is independent of the cell state: its pair expectations are 1-D work)."""
    po = theta["o"]
    vo = np.asarray(gate_moment(po, q, R), float)
    mo = np.broadcast_to(np.asarray(po.mu, float), vo.shape)
    nq = max(nodes_for(np.max(vo)), 96)
    M = int(min(nq * 2 // 3, 320))
    x, w, _ = _h.hermite_weights(M, nq)
    u = mo[..., None] + np.sqrt(vo)[..., None] * x
    s = _sig(u)
    d = s * (1 - s)
    dd = d * (1 - 2 * s)
    cs, cd = _h.coefficients(s, M, nq), _h.coefficients(d, M, nq)
    return (_h.PairSeries(cs, cs, (s * s) @ w, vo * ((d * d) @ w)),
            _h.PairSeries(cd, cd, (d * d) @ w, vo * ((dd * dd) @ w)))


def _pair_quantities(theta, mu, q, c_h, sz, za, zb, R, a_cache, o_series):
    """E[h_a h_b] after one more step, chi (A.2.3) at correlation c_h, from sampled pairs.

    ``a_cache = (ca, (fa, ia, ra))`` is copy a's chain (it does not depend on c_h);
    ``o_series`` the output gate's pair series (:func:`_o_series`) at these grid points."""
    corr = _gate_corr(theta, mu, q, c_h, sz, R)
    cb, (fb, ib, rb) = _chain(theta, q, za, zb, corr, R, last=True)
    ca, (fa, ia, ra) = a_cache
    Soo = o_series[0](corr["o"])                                           # E s(u_oa) s(u_ob)
    dSoo = o_series[1](corr["o"])
    cna, cnb = fa * ca + ia * ra, fb * cb + ib * rb                        # c' (eq. (16))
    ta, tb = np.tanh(cna), np.tanh(cnb)
    Ehh = Soo * (ta * tb).mean(-1)
    dt = (1 - ta**2) * (1 - tb**2)
    inner = (theta["f"].sigma2[..., None] * ca * cb * fa * (1 - fa) * fb * (1 - fb)
             + theta["i"].sigma2[..., None] * ia * (1 - ia) * ib * (1 - ib) * ra * rb
             + theta["r"].sigma2[..., None] * ia * ib * (1 - ra**2) * (1 - rb**2))
    # chi is the sample mean of X_j (one term per sample): its Monte Carlo standard error is
    # std(X) / sqrt(n_s) (NaN for one sample: no estimate of the spread)
    X = fa * fb + (theta["o"].sigma2 * dSoo)[..., None] * (ta * tb) + Soo[..., None] * (dt * inner)
    chi = X.mean(-1)
    n = X.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        se = X.std(-1, ddof=1) / np.sqrt(n) if n > 1 else np.full(chi.shape, np.nan)
    return Ehh, chi, se


def algorithm1_jacobian_moments(theta: Theta, q, za, R=1.0, chain=None):
    """m1, m2 (free probability) and the printed eq. (14) for the LSTM (Appendix A.2.3).

    The D's of the module docstring are evaluated on the sampled (c, u_i, u_f, u_r) of the last
    step; the output gate (independent of them) is integrated by quadrature:
    ``D_o = sigma'(u_o) X_o`` and ``D_k = sigma(u_o) X_k`` for k = i, f, r. See
    :func:`rnn_mft.theory.meanfield.jacobian_moments` for the formulas (all terms are (1a)).
    ``chain``: the result of ``_chain(theta, q, za, R=R, last=True)`` if already computed.
    """
    ca, (f, i, r) = _chain(theta, q, za, None, None, R, last=True) if chain is None else chain
    cn = f * ca + i * r
    tc = np.tanh(cn)
    dtc = 1 - tc**2
    X = {"f": dtc * f * (1 - f) * ca, "i": dtc * i * (1 - i) * r, "r": dtc * i * (1 - r**2)}
    s2 = {k: np.asarray(theta[k].sigma2)[..., None] for k in "ifro"}
    Y = sum(s2[k] * X[k] ** 2 for k in "ifr")
    Xo2 = s2["o"] * tc**2
    po = theta["o"]
    vo = gate_moment(po, q, R)
    nn = nodes_for(np.max(vo))
    Eo = {key: expect(fn, po.mu, vo, n=nn)[..., None] for key, fn in (
        ("s2", lambda u: _sig(u) ** 2), ("s4", lambda u: _sig(u) ** 4), ("d2", lambda u: dsigmoid(u) ** 2),
        ("d4", lambda u: dsigmoid(u) ** 4), ("s2d2", lambda u: _sig(u) ** 2 * dsigmoid(u) ** 2))}
    a0 = f**2
    A1 = Xo2 * Eo["d2"] + Y * Eo["s2"]                     # E_o[sum_k a_k]
    A2 = Xo2**2 * Eo["d4"] + Y**2 * Eo["s4"] + 2 * Xo2 * Y * Eo["s2d2"]   # E_o[(sum_k a_k)^2]
    m1 = (a0 + A1).mean(-1)
    Esq = (a0**2 + 2 * a0 * A1 + A2).mean(-1)              # E[(a0 + sum a_k)^2]
    EA = A1.mean(-1)
    m2 = Esq + 2 * a0.mean(-1) * EA + EA**2
    m2p = 2 * Esq - (a0**2).mean(-1)
    return m1, m2, m2p


def algorithm1_fixed_point(theta: Theta, sigma_z=1.0, R: float = 1.0, n_s: int = DEFAULT_NS,
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

    ca, lst = _chain(th_full, q, za, None, None, R, last=True)       # copy a: independent of C
    o_ser = _o_series(th_full, q, R)

    def Mc(c, idx):
        th = _take(th_full, idx)
        a_cache = (ca[idx], tuple(x[idx] for x in lst))
        Ehh, chi, se = _pair_quantities(th, mu[idx], q[idx], c, szf[idx], za, zb, R, a_cache,
                                        tuple(o.take(idx) for o in o_ser))
        with np.errstate(divide="ignore", invalid="ignore"):
            return (Ehh - mu[idx] ** 2) / var[idx], chi, se

    Pn = szf.size
    allidx = np.arange(Pn)
    m_one, chi_one, se_one = Mc(np.ones(Pn), allidx)
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
        # Lemma 2 gives r(0) >= 0; with Monte-Carlo noise a root at (or just below) C = 0, e.g. at
        # Sigma_z = 0, can give r(0) < 0. Then the root lies in [-1, 0]: r(-1) = M(-1) + 1 >= 0.
        neg = active[rlo[active] < 0]
        if neg.size:
            hi[neg], rhi[neg] = 0.0, rlo[neg]
            lo[neg] = -1.0
            rlo[neg] = Mc(lo[neg], neg)[0] - lo[neg]
        un = allidx[unstable_one]
        if un.size:
            rhi[un] = Mc(hi[un], un)[0] - hi[un]
        # no sign change on [lo, hi]: no root to bracket. The bracketed search would only slide to
        # the endpoint with the smaller residual, so take that endpoint at once; its residual
        # (evaluated below) decides convergence exactly as before (usually: not converged, NaN).
        a = active
        nob = (np.sign(rlo[a]) == np.sign(rhi[a])) & (rlo[a] != 0) & (rhi[a] != 0)
        c[a[nob]] = np.where(np.abs(rlo[a[nob]]) < np.abs(rhi[a[nob]]), lo[a[nob]], hi[a[nob]])
        active = a[~nob]
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
    se = se_one.copy()
    res_c = np.zeros(Pn)
    rest = allidx[~at_one]
    if rest.size:
        mc_r, chi_r, se_r = Mc(c[rest], rest)
        chi[rest], se[rest] = chi_r, se_r
        res_c[rest] = np.abs(mc_r - c[rest])
    res = np.maximum(res_q, res_c)
    conv = (res < max(tol, 1e-8)) & np.isfinite(chi) & np.isfinite(q) & (q > 0)
    mu, q, c, chi, se, res, conv = (np.reshape(x, shape) for x in (mu, q, c, chi, se, res, conv))
    ch = None
    if shape == theta.shape:                  # copy a's chain is the one the moments need
        ch = (ca.reshape(shape + ca.shape[-1:]), tuple(x.reshape(shape + x.shape[-1:]) for x in lst))
    m1, m2, m2p = jacobian_moments(theta, q_q.reshape(theta.shape), za, R, chain=ch)
    nan = lambda a: np.where(conv, np.broadcast_to(a, shape), np.nan)  # noqa: E731
    return LSTMFixedPoint(nan(mu), nan(q), nan(c), nan(chi), nan(m1), nan(m2), nan(m2p), conv, res, it,
                          nan(se), n_s)


#: historical names (the paper's Algorithm 1; see the module docstring)
fixed_point = algorithm1_fixed_point
jacobian_moments = algorithm1_jacobian_moments
