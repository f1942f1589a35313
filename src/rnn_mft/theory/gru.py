r"""Mean-field forward propagation in the GRU (Sections 4.1-4.2 and Appendix A.1 of the paper).

The GRU of Table 1 has state :math:`s^t = h^t`, gates :math:`K = \{f, r\}` and one variable of
the form (1b),

.. math::
    u_k^t &= W_k s^{t-1} + U_k z^t + b_k,\quad k \in \{f, r\}, \\
    u_{r_2}^t &= W_{r_2} D_{\sigma(u_r^t)} s^{t-1} + U_{r_2} z^t + b_{r_2}, \\
    s^t &= \sigma(u_f^t) \circ s^{t-1} + (1 - \sigma(u_f^t)) \circ \tanh(u_{r_2}^t).

At large :math:`N` with untied weights, each coordinate of :math:`u_k` is Gaussian and
independent of :math:`s^{t-1}` (eqs. (3)-(5)), so the moments (2a)-(2c) of two copies of the
network fed inputs with correlation :math:`\Sigma_z` obey a closed map
:math:`(\mu_s^t, Q_s^t, C_s^t) = \mathcal{M}(\mu_s^{t-1}, Q_s^{t-1}, C_s^{t-1})` (eq. (6)).
Writing :math:`F_1 = \mathbb{E}\sigma(u_f)`, :math:`F_2 = \mathbb{E}\sigma(u_f)^2`,
:math:`F_{ab} = \mathbb{E}\sigma(u_{fa})\sigma(u_{fb})` and :math:`T_1, T_2, T_{ab}` likewise
for :math:`\tanh(u_{r_2})`:

.. math::
    \mu_s^t &= F_1 \mu_s + (1 - F_1) T_1, \\
    Q_s^t &= F_2 Q_s + 2 (F_1 - F_2) \mu_s T_1 + (1 - 2F_1 + F_2) T_2, \\
    \mathbb{E}[s_a^t s_b^t] &= F_{ab} (\Sigma_s^2 C_s + \mu_s^2) + 2 (F_1 - F_{ab}) \mu_s T_1
        + (1 - 2F_1 + F_{ab}) T_{ab},

and :math:`C_s^t = (\mathbb{E}[s_a^t s_b^t] - (\mu_s^t)^2) / (Q_s^t - (\mu_s^t)^2)` (eq. (2c)).
The moments of :math:`u_f, u_r` are eqs. (4a)-(4b); those of :math:`u_{r_2}` are eqs.
(17a)-(17b). Every function here broadcasts over the shape of :class:`~rnn_mft.theory.Theta`
and of ``sigma_z``.

Which copy is the reference: this module is the GRU's map *written out by hand* (the Figure 5
chapter reads it as a worked example), with its own Picard/Newton solver
(:func:`direct_fixed_point`, historical name ``fixed_point``, returning a :class:`FixedPoint`).
The reference map of every closed-form architecture, the one :func:`rnn_mft.theory.analyze`
uses, is :mod:`rnn_mft.theory.meanfield` built from the registry's spec
(:data:`rnn_mft.arch.gru.SPEC`); its fixed point is
:func:`~rnn_mft.theory.meanfield.closed_form_fixed_point` (a
:class:`~rnn_mft.theory.meanfield.FixedPointResult`). ``tests/test_theory.py`` checks that the two
agree. The gate moments (eqs. (4), (17)) are the shared :func:`~rnn_mft.theory.meanfield.gate_moment`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .meanfield import _safe_corr, _var_corr, check_sigma_z, gate_moment
from .quadrature import expect, expect2, sigmoid
from .theta import Theta

__all__ = ["GRUState", "FixedPoint", "preactivations", "step", "trajectory", "fixed_point",
           "direct_fixed_point", "fixed_point_c", "check_sigma_z"]


def _check_theta(theta: Theta) -> Theta:
    if not isinstance(theta, Theta):
        raise ValueError(f"theta must be a rnn_mft.theory.Theta, got {type(theta).__name__}")
    if theta.arch != "gru":
        raise ValueError(f"theta is for arch={theta.arch!r}; this function needs arch='gru'")
    return theta


@dataclass(frozen=True)
class GRUState:
    """Moments of the state: mean ``mu_s`` (2a), second moment ``q_s`` (2b), correlation ``c_s`` (2c)."""

    mu_s: np.ndarray
    q_s: np.ndarray
    c_s: np.ndarray


def _gate(theta: Theta, k: str, q_s, ss_ab, R, sigma_z):
    """Variance and correlation of u_k for a gate of form (1a): eqs. (4a)-(4b)."""
    return _var_corr(theta[k], q_s, ss_ab, R, sigma_z)


def preactivations(theta: Theta, mu_s, q_s, c_s, sigma_z=1.0, R=1.0, n: int | None = None) -> dict:
    """Mean, variance and cross-sequence correlation of u_f, u_r (eq. 4) and u_r2 (eq. 17).

    Returns ``{gate: (mean, var, corr)}`` for ``f``, ``r`` and ``r2``.
    """
    _check_theta(theta)
    sigma_z = check_sigma_z(sigma_z)
    mu_s, q_s, c_s = (np.asarray(a, dtype=float) for a in (mu_s, q_s, c_s))
    ss_ab = (q_s - mu_s**2) * c_s + mu_s**2                  # E[s_a s_b], eq. (2c)
    out = {}
    for k in ("f", "r"):
        var, corr = _gate(theta, k, q_s, ss_ab, R, sigma_z)
        out[k] = (theta[k].mu, var, corr)
    mu_r, var_r, c_r = out["r"]
    g2 = expect(lambda u: sigmoid(u) ** 2, mu_r, var_r, n=n)          # int g_r^2 D_r
    gab = expect2(sigmoid, None, mu_r, var_r, c_r, n=n)              # int g_r(u_a) g_r(u_b) D_r
    p = theta["r2"]
    var2 = gate_moment(p, q_s, R, gain=g2)                            # eq. (17a) less mu^2
    cov2 = gate_moment(p, ss_ab, R, sigma_z, gain=gab)                # eq. (17b) numerator
    out["r2"] = (p.mu, var2, _safe_corr(cov2, var2))
    return out


def step(theta: Theta, state: GRUState, sigma_z=1.0, R=1.0, n: int | None = None) -> GRUState:
    """One application of the mean-field map :math:`\\mathcal{M}` of eq. (6) for the GRU."""
    mu_s, q_s, c_s = (np.asarray(a, dtype=float) for a in (state.mu_s, state.q_s, state.c_s))
    pre = preactivations(theta, mu_s, q_s, c_s, sigma_z, R, n)
    mf, vf, cf = pre["f"]
    m2, v2, c2 = pre["r2"]
    F1 = expect(sigmoid, mf, vf, n=n)
    F2 = expect(lambda u: sigmoid(u) ** 2, mf, vf, n=n)
    Fab = expect2(sigmoid, None, mf, vf, cf, n=n)
    T1 = expect(np.tanh, m2, v2, n=n)
    T2 = expect(lambda u: np.tanh(u) ** 2, m2, v2, n=n)
    Tab = expect2(np.tanh, None, m2, v2, c2, n=n)
    ss_ab = (q_s - mu_s**2) * c_s + mu_s**2
    mu_new = F1 * mu_s + (1 - F1) * T1
    q_new = F2 * q_s + 2 * (F1 - F2) * mu_s * T1 + (1 - 2 * F1 + F2) * T2
    ab_new = Fab * ss_ab + 2 * (F1 - Fab) * mu_s * T1 + (1 - 2 * F1 + Fab) * Tab
    var_new = q_new - mu_new**2
    c_new = _safe_corr(ab_new - mu_new**2, var_new)
    return GRUState(mu_new, q_new, c_new)


def trajectory(theta: Theta, sigma_z, mu0=0.0, q0=1.0, c0=1.0, R=1.0, n: int | None = None) -> GRUState:
    """Iterate eq. (6) for a time-varying input correlation.

    Parameters
    ----------
    sigma_z : array_like, shape (T,)
        :math:`\\Sigma_z^t` for t = 1..T (e.g. 0 for t < 10 and 1 after, as in Figure 5).
    mu0, q0, c0 : float
        Moments of the initial state :math:`s^0` (``c0 = 1``: both copies start from the same state).

    Returns
    -------
    GRUState
        Arrays with a leading time axis of length T + 1 (t = 0..T), then the shape of ``theta``.
    """
    sz = check_sigma_z(sigma_z)
    if sz.ndim != 1:
        raise ValueError(f"sigma_z must be a 1-D sequence over time, got shape {sz.shape}")
    shape = theta.shape
    st = GRUState(*(np.broadcast_to(np.asarray(v, dtype=float), shape) for v in (mu0, q0, c0)))
    out = [st]
    for s in sz:
        st = step(theta, st, s, R, n)
        out.append(st)
    return GRUState(*(np.stack([getattr(o, f) for o in out]) for f in ("mu_s", "q_s", "c_s")))


@dataclass(frozen=True)
class FixedPoint:
    """Fixed point (mu*, Q*, C*) of eq. (6); ``converged`` is False (and values NaN) where the
    solver did not reach ``residual < tol``."""

    mu_s: np.ndarray
    q_s: np.ndarray
    c_s: np.ndarray
    converged: np.ndarray
    residual: np.ndarray
    iterations: int


def _mq_fixed_point(theta, R, n, tol, max_iter):
    """(mu*, Q*): Picard iteration, then a damped 2-D Newton polish with a finite-difference Jacobian."""
    shape = theta.shape
    mu = np.zeros(shape)
    q = np.ones(shape)
    one = np.ones(shape)

    def F(mu, q):
        s = step(theta, GRUState(mu, q, one), 1.0, R, n)
        return s.mu_s, s.q_s

    for _ in range(50):
        mu, q = F(mu, q)
    it = 50
    for it in range(50, max_iter):
        fm, fq = F(mu, q)
        rm, rq = fm - mu, fq - q
        res = np.maximum(np.abs(rm), np.abs(rq))
        if np.all(res < tol):
            break
        h = 1e-6
        a1, b1 = F(mu + h, q)
        a2, b2 = F(mu, q + h)
        # Jacobian of the residual G = F - id
        j11, j21 = (a1 - fm) / h - 1, (b1 - fq) / h
        j12, j22 = (a2 - fm) / h, (b2 - fq) / h - 1
        det = j11 * j22 - j12 * j21
        ok = np.abs(det) > 1e-14
        det = np.where(ok, det, 1.0)
        dmu = np.where(ok, -(j22 * rm - j12 * rq) / det, rm)
        dq = np.where(ok, -(-j21 * rm + j11 * rq) / det, rq)
        # damping: never more than a unit step in either coordinate, keep q > mu^2 >= 0
        scale = np.minimum(1.0, 1.0 / np.maximum(np.abs(dmu), np.abs(dq)).clip(1e-300))
        mu_n, q_n = mu + scale * dmu, q + scale * dq
        bad = (q_n <= 0) | ~np.isfinite(q_n) | ~np.isfinite(mu_n)
        mu = np.where(bad, fm, mu_n)
        q = np.where(bad, fq, q_n)
    fm, fq = F(mu, q)
    res = np.maximum(np.abs(fm - mu), np.abs(fq - q))
    return mu, q, res, it


def fixed_point_c(theta: Theta, mu_s, q_s, sigma_z, R=1.0, n: int | None = None, tol=1e-10, max_iter=200):
    """C* of eq. (7) at given (mu*, Q*): iterate the 1-D map from C = 1, then Newton-polish.

    The map is convex (Appendix B), so iterating from C = 1 decreases monotonically to the
    stable fixed point; Newton steps from above the root (where the map's slope is below one)
    stay above it, which makes the polish safe. Returns ``(c, residual)``.
    """
    sz = check_sigma_z(sigma_z)
    shape = np.broadcast_shapes(theta.shape, np.shape(mu_s), sz.shape)
    c = np.ones(shape)

    def M(c):
        return step(theta, GRUState(mu_s, q_s, c), sz, R, n).c_s

    for _ in range(20):
        c = M(c)
    for _ in range(max_iter):
        mc = M(c)
        r = mc - c
        if np.all(np.abs(r) < tol):
            break
        h = 1e-7
        slope = (M(np.clip(c - h, -1, 1)) - mc) / -h
        newton = c - r / np.where(np.abs(slope - 1) > 1e-12, slope - 1, np.nan)
        use_newton = (slope < 1 - 1e-9) & np.isfinite(newton) & (newton <= 1) & (newton >= -1)
        c = np.where(use_newton, newton, mc)
    return c, np.abs(M(c) - c)


def direct_fixed_point(theta: Theta, sigma_z=1.0, R=1.0, n: int | None = None, tol: float = 1e-9,
                max_iter: int = 500) -> FixedPoint:
    """The fixed point (mu*, Q*, C*) of the GRU map eq. (6) at input correlation ``sigma_z``.

    (mu*, Q*) do not depend on C (they are the single-sequence moments); C* then solves the
    one-dimensional map of eq. (7). Vectorised over the shape of ``theta`` and ``sigma_z``.
    Points where the residual stays above ``tol`` are returned as NaN with ``converged=False``.
    """
    _check_theta(theta)
    sz = check_sigma_z(sigma_z)
    mu, q, res_mq, it = _mq_fixed_point(theta, R, n, tol, max_iter)
    mu_b, q_b = np.broadcast_arrays(mu, q)
    c, res_c = fixed_point_c(theta, mu, q, sz, R, n, tol=tol)
    res = np.maximum(np.broadcast_to(res_mq, np.shape(c)), res_c)
    ok = res < tol * 10
    nan = lambda a: np.where(ok, np.broadcast_to(a, np.shape(c)), np.nan)  # noqa: E731
    return FixedPoint(nan(mu_b), nan(q_b), nan(c), ok, res, it)


#: the historical name of :func:`direct_fixed_point`
fixed_point = direct_fixed_point
