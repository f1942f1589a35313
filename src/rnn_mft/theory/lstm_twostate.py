r"""The LSTM as a two-state network: the deterministic mean-field theory of :math:`(h, c)`, assembled.

The paper (Appendix A.2.3) treats the LSTM as a one-state network in :math:`h`, through the
*hidden-state approximation* :math:`c = \tanh^{-1}(h/\sigma(u_o))` with
:math:`\sigma(u_o^t)/\sigma(u_o^{t-1}) \approx 1`. The network carries two states, and a
perturbation of the cell state :math:`\delta c` is remembered by each unit through the forget
gate, while :math:`\delta h` only reaches the next step through the random weights. The
two-state theory is the large-N theory of that pair, without the approximation (the book's
chapter *The LSTM has two states* derives it; ``rnn_mft.theory.lstm`` keeps the paper's method,
:func:`rnn_mft.theory.sample_cell_state`, for comparison). It lives in modules by concept:

* :mod:`rnn_mft.theory.lstm_cellstate`: one copy's cell-state chain :math:`c' = Fc + G`, its
  stationary law and the fixed point :math:`Q_h^*` of eq. (6);
* :mod:`rnn_mft.theory.lstm_tangent`: :math:`\chi` at :math:`\Sigma_z = 1` and at
  :math:`\Sigma_z = 0` with independent copies, and the Jacobian moments :math:`m_1, m_2`;
* :mod:`rnn_mft.theory.lstm_joint`: the joint law of :math:`(c_a, c_b)`, :math:`C^*` and
  :math:`\chi_{C^*}` at the other :math:`\Sigma_z < 1`;
* :mod:`rnn_mft.theory.lstm_grid` and :mod:`rnn_mft.theory.gauss_rules`: the numerics (the sinh
  grid, interpolation and Perron vectors; Gauss rules of discrete measures).

This module puts them together: :func:`solve_point` (one Theta, the method chosen by
:math:`\Sigma_z`), :func:`fixed_point` (a grid of Thetas, the default of
``analyze("lstm", ...)``) and its batched path (:func:`solve_batch`,
:func:`fixed_point_batched`, :func:`point_orders`).

**The batched grid path.** The same equations as :func:`solve_point`, vectorised across grid
points:

* the operators :math:`A_F, A_G` of B points are (B, n, n) stacks built by one scatter each
  (:class:`~rnn_mft.theory.lstm_cellstate.BatchCellStateModel`); the stationary law
  :math:`\pi P = \pi` is one stacked ``np.linalg.solve``;
* :math:`Q_h^* = G(Q_h^*)` is the safeguarded secant iteration of
  :func:`~rnn_mft.theory.lstm_cellstate.solve_q` under a per-point mask, started from a
  Gaussian-cell-state estimate (``_q_guess``), whose slope makes the first step a Newton step;
  a point leaves when its residual is below ``tol``, and its outputs are computed from the
  model of that last evaluation;
* :math:`\chi` at :math:`\Sigma_z = 1` is the root of :math:`1 = \alpha/\chi + \beta\langle
  a_p, (\chi - P_2)^{-1} w\rangle` by a bracketed secant iteration per point (masked;
  :func:`~rnn_mft.theory.lstm_tangent.chi_identical_inputs_batch`); :math:`m_1, m_2` by stacked
  vector-operator products (:func:`~rnn_mft.theory.lstm_tangent.jacobian_moments_batch`); the
  F-operator products of the stationary law they share are made once
  (:meth:`~rnn_mft.theory.lstm_cellstate.BatchCellStateModel.pi_products`);
* the law of :math:`G = \sigma(u_i)\tanh(u_r)` (weighted by 1, B or B^2) is compressed to an
  ``n_c``-point Gauss rule by a Lanczos run on the Kronecker products of the factors' Jacobi
  matrices (:func:`~rnn_mft.theory.gauss_rules.product_gauss_rule`), which gives the rule of the
  product of the factor Gauss rules without forming it.

Cost (a 100 x 100 grid, ``benchmarks/theory.py``): the stencils, their scatters and the Lanczos
runs work on blocks of points (:data:`rnn_mft.theory.lstm_grid.BLOCK_ELEMS`), whose temporaries
stay in cache; whole-batch temporaries made them several times slower on the development
machines. Gauss-Hermite nodes of negligible weight are dropped
(:data:`rnn_mft.theory.lstm_cellstate.PRUNE`).

The discretisation is a :class:`~rnn_mft.theory.lstm_cellstate.Settings`
(``lstm_cellstate.FAST`` on the grid path: 35 nodes and 10-point Lagrange stencils, which are as
accurate as 201 nodes with cubic ones). Each point's Gauss-Hermite orders come from its own
variance bound (:func:`point_orders`), and points are grouped by them, so a point's numbers
depend on that point only: a grid gives the numbers of the points one by one, up to the
rounding of stacked BLAS kernels (tested: 1e-11), and to 1e-9 those of :func:`solve_point` with
the same settings. The same call gives the same bits.

:math:`\chi` at :math:`\Sigma_z = 0` (the renewal equation,
:func:`~rnn_mft.theory.lstm_tangent.chi_independent_copies`) and the joint theory stay per
point: :func:`fixed_point_batched` evaluates them with the single-point code at the batch's
:math:`Q_h^*`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .lstm import thread_pool
from .lstm_cellstate import (DEFAULT, FAST, BatchCellStateModel, CellStateModel, Settings, check_theta_point,
                             solve_q, sub_points, theta_point)
from .lstm_joint import solve_joint
from .lstm_tangent import (chi_identical_inputs, chi_identical_inputs_batch, chi_independent_copies,
                           jacobian_moments, jacobian_moments_batch)
from .meanfield import check_R, check_sigma_z, gate_moment, node_rule
from .quadrature import gauss_hermite, sigmoid
from .theta import Theta

__all__ = ["TwoStatePoint", "solve_point", "fixed_point", "solve_batch", "fixed_point_batched", "point_orders",
           "CHUNK", "NF_PER_VAR", "NG_FACTOR"]


@dataclass(frozen=True)
class TwoStatePoint:
    """Fixed point, time scale and Jacobian moments of one Theta (NaN where not covered)."""

    mu_s: float
    q_s: float
    c_s: float
    chi: float
    m1: float
    m2: float
    converged: bool
    residual: float
    method: str
    boundary_mass: float


def solve_point(theta, sigma_z=1.0, R=1.0, *, settings: Settings = DEFAULT, tol=1e-12, max_iter=60,
                q0=None) -> TwoStatePoint:
    """The two-state theory at one Theta (a scalar :class:`Theta` or ``{gate: {field: value}}``).

    ``method`` of the result: ``"two-state, C*=1"`` at Sigma_z = 1 (where C* = 1 is the stable
    fixed point, chi <= 1), ``"two-state, C*=0"`` at Sigma_z = 0 with independent copies,
    ``"two-state joint (c_a, c_b)"`` at other Sigma_z < 1 (:mod:`rnn_mft.theory.lstm_joint`), or
    ``"not covered"`` (an unstable fixed point), with NaN chi.
    """
    th = theta_point(theta) if isinstance(theta, Theta) else theta
    check_theta_point(th)
    R = check_R(R)
    sz = float(check_sigma_z(sigma_z))
    q, mod, pi, res, _ = solve_q(th, R, settings, tol, max_iter, q0)
    conv = bool(res <= max(tol, 1e-10) * max(1.0, q) and np.isfinite(q) and q > 0)
    tc = np.tanh(mod.grid.c)
    mu = mod.Eo["s"] * float(pi @ tc)
    # mass on the two outermost nodes on each side: the clamped boundary must hold (almost) none
    bmass = float(np.abs(pi[:2]).sum() + np.abs(pi[-2:]).sum())
    m1, m2 = jacobian_moments(mod, pi, th)
    nan = float("nan")
    if sz == 1.0:
        chi = chi_identical_inputs(mod, pi, th)
        if chi <= 1.0:
            return TwoStatePoint(mu, q, 1.0, chi, m1, m2, conv, res, "two-state, C*=1", bmass)
        return TwoStatePoint(mu, q, nan, nan, m1, m2, False, res, "not covered (C*=1 unstable)", bmass)
    indep = sz == 0.0 and all(th[k]["rho2"] == 0 for k in "ifro") and abs(mu) < 1e-9
    if indep:
        chi = chi_independent_copies(mod, pi, th)
        if chi < 1.0:
            return TwoStatePoint(mu, q, 0.0, chi, m1, m2, conv, res, "two-state, C*=0", bmass)
        return TwoStatePoint(mu, q, nan, nan, m1, m2, False, res, "not covered (C*=0 unstable)", bmass)
    # 0 <= Sigma_z < 1, 0 < C* < 1: the joint (c_a, c_b) law
    jp = solve_joint(th, sz, R, q=q, mu_h=mu)
    if jp.stable:
        return TwoStatePoint(mu, q, jp.c_star, jp.chi, m1, m2, conv and jp.converged, max(res, jp.residual),
                             jp.method, max(bmass, jp.boundary_mass))
    return TwoStatePoint(mu, q, jp.c_star, nan, m1, m2, False, res, jp.method, bmass)


def fixed_point(theta: Theta, sigma_z=1.0, R: float = 1.0, *, settings: Settings | None = None,
                tol: float | None = None, batched: bool = True):
    """The two-state theory over the grid of ``theta`` (and ``sigma_z``): a dict of arrays
    ``mu_s, q_s, c_s, chi, m1, m2, converged, residual, method``.

    ``batched`` (default): all grid points at once with stacked linear algebra
    (:func:`fixed_point_batched`, discretisation ``settings``, default
    :data:`~rnn_mft.theory.lstm_cellstate.FAST`; Q* to a residual ``tol`` = 1e-9, which moves
    chi by < 1e-10 against 1e-12 on the grid of ``benchmarks/theory.py``, measured); each
    point's numbers depend on that point only. ``batched=False``: the single-point reference
    path, :func:`solve_point` point by point (default
    :data:`~rnn_mft.theory.lstm_cellstate.DEFAULT`, ``tol`` = 1e-12), in two halves on two
    threads, each starting its Q-iteration from the previous point's Q*."""
    if not isinstance(theta, Theta) or theta.arch != "lstm":
        raise ValueError("theta must be a Theta for arch='lstm'")
    sz = check_sigma_z(sigma_z)
    R = check_R(R)
    shape = np.broadcast_shapes(theta.shape, sz.shape)
    if batched:
        pts = {k: {f: np.array(np.broadcast_to(getattr(theta[k], f), shape), float).ravel()
                   for f in ("sigma2", "nu2", "rho2", "mu")} for k in "ifro"}
        out = fixed_point_batched(pts, np.array(np.broadcast_to(sz, shape), float).ravel(), R,
                                  settings or FAST, tol=1e-9 if tol is None else tol)
        return {k: v.reshape(shape) for k, v in out.items()}
    settings = settings or DEFAULT
    tol = 1e-12 if tol is None else tol
    keys = ("mu_s", "q_s", "c_s", "chi", "m1", "m2", "residual")
    out = {k: np.full(shape, np.nan) for k in keys}
    out["converged"] = np.zeros(shape, bool)
    out["method"] = np.empty(shape, dtype=object)
    szb = np.broadcast_to(sz, shape)
    nd = len(theta.shape)
    pts = list(np.ndindex(*shape)) if shape else [()]

    def tidx(idx):
        sub = idx[len(idx) - nd:] if nd else ()
        return tuple(i if s > 1 else 0 for i, s in zip(sub, theta.shape))

    def work(chunk):
        res, q0 = [], None
        for idx in chunk:
            p = solve_point(theta_point(theta, tidx(idx)), float(szb[idx]), R, settings=settings, tol=tol,
                            q0=q0)
            q0 = p.q_s if np.isfinite(p.q_s) else None
            res.append((idx, p))
        return res

    if len(pts) >= 8:
        chunks = [pts[: len(pts) // 2], pts[len(pts) // 2:]]
        results = [r for part in thread_pool().map(work, chunks) for r in part]
    else:
        results = work(pts)
    for idx, p in results:
        for k in keys:
            out[k][idx] = getattr(p, k)
        out["converged"][idx] = p.converged
        out["method"][idx] = p.method
    return out


#: points per stacked evaluation (memory: ~B n max(n_f, n_c) order doubles per operator)
CHUNK = 256


def _gauss_G(th, q, R, nodes=24):
    """Eq. (6)'s G(Q_h) with the cell state replaced by a Gaussian of the perpetuity's mean and
    variance (no grid): the cheap model behind :func:`_q_guess`."""
    xf, wf = xg, wg = xo, wo = xz, wz = gauss_hermite(nodes)
    v = {k: np.sqrt(gate_moment(th[k], q, R))[:, None] for k in "ifro"}
    F = sigmoid(th["f"]["mu"][:, None] + v["f"] * xf)
    EF, EF2 = F @ wf, F**2 @ wf
    X = sigmoid(th["i"]["mu"][:, None] + v["i"] * xg)
    Y = np.tanh(th["r"]["mu"][:, None] + v["r"] * xg)
    EG, EG2 = (X @ wg) * (Y @ wg), (X**2 @ wg) * (Y**2 @ wg)
    m = EG / (1.0 - EF)
    sd = np.sqrt(np.maximum((EG2 + 2.0 * EF * EG * m) / (1.0 - EF2) - m * m, 0.0))
    so2 = sigmoid(th["o"]["mu"][:, None] + v["o"] * xo) ** 2 @ wo
    return so2 * (np.tanh(m[:, None] + sd[:, None] * xz) ** 2 @ wz)


def _q_guess(th, R, iters=12, h=1e-4):
    """A cheap start for the Q-iteration, by a few Picard steps of :func:`_gauss_G`, and that
    model's slope dG/dQ there (a central difference), which the first step of
    :func:`solve_batch` uses in place of the true one. Only a start: the secant iteration
    removes its error."""
    q = np.full(th["f"]["mu"].shape, 0.25)
    for _ in range(iters):
        q = _gauss_G(th, q, R)
    q = np.clip(q, 1e-12, 1.0)
    lo, hi = np.maximum(q - h, 1e-12), np.minimum(q + h, 1.0)
    slope = (_gauss_G(th, hi, R) - _gauss_G(th, lo, R)) / (hi - lo)
    return q, slope


def solve_batch(th, R, st, *, tol=1e-12, max_iter=60, q0=None, chi_mask=None, orders=None):
    """The two-state theory at B points ``th = {gate: {field: array (B,)}}``.

    Q_h* = G(Q_h*) (eq. (6)) by the safeguarded secant iteration of
    :func:`~rnn_mft.theory.lstm_cellstate.solve_q`, point by point under a mask: a point leaves
    the iteration when its residual |G(q) - q| <= tol max(1, q), and its fixed point, moments and chi are
    computed from the model of that last evaluation (no rebuild). Returns a dict of arrays
    (B,): ``q_s, mu_s, residual, converged, m1, m2, boundary_mass`` and ``chi`` (the Perron root
    at Sigma_z = 1, before the chi <= 1 check of the caller; NaN where ``chi_mask`` is False).
    Orders (n_f, n_g, n_o) of the Gauss-Hermite rules: ``orders``, or the largest of
    :func:`point_orders` over the batch; start ``q0``, or :func:`_q_guess`."""
    B = th["f"]["mu"].shape[0]
    orders = orders or tuple(int(np.max(o)) for o in point_orders(th, R, st))
    slope = None
    if q0 is None:
        q0, slope = _q_guess(th, R)
    want_chi = np.ones(B, bool) if chi_mask is None else np.asarray(chi_mask, bool)
    out = {k: np.full(B, np.nan) for k in ("q_s", "mu_s", "residual", "m1", "m2", "boundary_mass", "chi")}
    out["converged"] = np.zeros(B, bool)

    def finish(ix, mod, pi, r):
        """Outputs of the points ix (indices into the batch) from their model and law."""
        q = mod.q
        out["q_s"][ix], out["residual"][ix] = q, np.abs(r)
        out["converged"][ix] = (np.abs(r) <= max(tol, 1e-10) * np.maximum(1.0, q)) & np.isfinite(q) & (q > 0)
        out["mu_s"][ix] = mod.Eo["s"] * np.einsum("bj,bj->b", pi, np.tanh(mod.grid.c))
        out["boundary_mass"][ix] = np.abs(pi[:, :2]).sum(-1) + np.abs(pi[:, -2:]).sum(-1)
        out["m1"][ix], out["m2"][ix] = jacobian_moments_batch(mod, pi, mod.th)
        wc = want_chi[ix]
        if wc.all():
            out["chi"][ix] = chi_identical_inputs_batch(mod, pi, mod.th)
        elif wc.any():
            sub = mod.take(wc)
            out["chi"][ix[wc]] = chi_identical_inputs_batch(sub, pi[wc], sub.th)

    def evaluate(ix, q):
        mod = BatchCellStateModel(sub_points(th, ix), q, R, st, orders)
        pi = mod.stationary()
        g = mod.Eo["s2"] * np.einsum("bj,bj->b", pi, np.tanh(mod.grid.c) ** 2)
        return mod, pi, g

    q = np.array(np.broadcast_to(q0, (B,)), float)
    ix = np.arange(B)
    mod, pi, g = evaluate(ix, q)
    best_r, best_q = np.abs(g - q), q.copy()
    q_prev, r_prev = q.copy(), g - q
    # the first step: Newton's with the Gaussian model's slope where it is below 1 (the fixed
    # point attracts), else a Picard step, as the single-point path; the secant steps follow
    q = g.copy()
    if slope is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            qn = q_prev + r_prev / (1.0 - slope)
        use = (slope < 0.98) & np.isfinite(qn) & (qn > 0) & (qn <= 1.0)
        q[use] = qn[use]
    for _ in range(max_iter):
        if ix.size == 0:
            break
        qa = q[ix]
        mod, pi, g = evaluate(ix, qa)
        r = g - qa
        better = np.abs(r) < best_r[ix]
        best_r[ix[better]], best_q[ix[better]] = np.abs(r)[better], qa[better]
        conv = np.abs(r) <= tol * np.maximum(1.0, qa)
        if conv.any():
            sub = mod if conv.all() else mod.take(conv)
            finish(ix[conv], sub, pi[conv], r[conv])
        qp, rp = q_prev[ix], r_prev[ix]
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(qa != qp, (r - rp) / (qa - qp), 0.0)
            qn = np.where(d < 0, qa - r / d, g)
        qn = np.where(np.isfinite(qn) & (qn > 0), qn, g)
        q_prev[ix], r_prev[ix], q[ix] = qa, r, qn
        ix = ix[~conv]
    if ix.size:                                   # not converged: the best iterate
        mod, pi, g = evaluate(ix, best_q[ix])
        finish(ix, mod, pi, g - best_q[ix])
    return out


#: Gauss-Hermite orders are rounded up to these levels, so that a point's orders (and with them
#: its numbers) depend on that point only, whichever batch it is solved in
_LEVELS = (48, 64, 96, 128, 160, 192, 256, 320, 400)


_LEVELS_F = (16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 400)


def _level(n, levels=_LEVELS):
    """The smallest level >= n, elementwise (beyond the last level: ceil(n))."""
    n = np.asarray(n, float)
    lv = np.asarray(levels)
    i = np.searchsorted(lv, n, side="left")
    return np.where(i < lv.size, lv[np.minimum(i, lv.size - 1)], np.ceil(n)).astype(int)


#: u_f's rule weighs phi(F c) at every grid node; its order grows with the variance bound of
#: u_f: at least 16 and NF_PER_VAR per unit of variance (measured: 16 nodes at variance 6.3 put
#: 2e-5 into chi, 48 nodes 1.5e-8; at variance 3 and below 16 nodes give 2e-8)
NF_PER_VAR = 6.0


#: the (u_i, u_r) rule is compressed to the law of G, whose high moments need more nodes than
#: one expectation: n_g follows nodes_for at this multiple of the variance bound (1: the bound at
#: Q_h = 1 and the rounding up to a level leave enough margin on the test set)
NG_FACTOR = 1.0


def point_orders(th, R, st):
    """Gauss-Hermite orders (n_f, n_g, n_o) of each point (arrays (B,)): the fixed settings, or
    the library's rule (:func:`meanfield.nodes_for`, at least 48) at the largest variance the
    point can reach (Q_h <= 1), rounded up to a level of ``_LEVELS``."""
    vmax = {k: gate_moment(th[k], 1.0, R) for k in "ifro"}            # eq. (4a) at the bound Q_h <= 1
    vg = np.maximum(vmax["i"], vmax["r"])

    def rule(name, v):
        fixed = getattr(st, name)
        v = np.asarray(v, float)
        if fixed is not None:
            return np.full(v.shape, int(fixed))
        v = np.where(np.isfinite(v), v, 1.0)                           # as meanfield.nodes_for
        if name == "n_f":
            return _level(np.maximum(16.0, NF_PER_VAR * v), _LEVELS_F)
        return _level(np.maximum(48.0, node_rule(v)))

    return rule("n_f", vmax["f"]), rule("n_g", NG_FACTOR * vg), rule("n_o", vmax["o"])


def fixed_point_batched(pts, sz, R, st, tol=1e-12, max_iter=60):
    """The two-state theory at P points ``pts = {gate: {field: array (P,)}}`` with input
    correlations ``sz`` (P,): the points are grouped by their Gauss-Hermite orders
    (:func:`point_orders`), solved in stacked chunks of :data:`CHUNK` on the library's two
    threads, and checked as :func:`solve_point` checks one point. Returns a dict of arrays (P,) ``mu_s, q_s, c_s, chi, m1, m2, converged, residual, method``."""
    P = sz.shape[0]
    of, og, oo = point_orders(pts, R, st)
    keys = np.stack([of, og, oo], 1)
    groups = {}
    for i, kk in enumerate(map(tuple, keys)):
        groups.setdefault(kk, []).append(i)
    # the costliest orders first, so that the pool's last tasks are the cheapest
    tasks = [(kk, np.array(ix[s:s + CHUNK])) for kk, ix in sorted(groups.items(), key=lambda g: g[0][::-1], reverse=True)
             for s in range(0, len(ix), CHUNK)]
    need_chi = sz == 1.0

    def work(task):
        kk, ix = task
        return ix, solve_batch(sub_points(pts, ix), R, st, tol=tol, max_iter=max_iter,
                               orders=tuple(int(x) for x in kk), chi_mask=need_chi[ix])

    results = list(thread_pool().map(work, tasks)) if len(tasks) > 1 else [work(t) for t in tasks]
    nan = np.nan
    out = {k: np.full(P, nan) for k in ("mu_s", "q_s", "c_s", "chi", "m1", "m2", "residual")}
    out["converged"] = np.zeros(P, bool)
    out["method"] = np.empty(P, dtype=object)
    for ix, r in results:
        for k in ("mu_s", "q_s", "m1", "m2", "residual", "chi"):
            out[k][ix] = r[k]
        out["converged"][ix] = r["converged"]
    # Sigma_z = 1: C* = 1 is the stable fixed point where chi <= 1
    one = sz == 1.0
    ok = one & (out["chi"] <= 1.0)
    out["c_s"][ok], out["method"][ok] = 1.0, "two-state, C*=1"
    bad = one & ~ok
    out["chi"][bad], out["converged"][bad], out["method"][bad] = nan, False, "not covered (C*=1 unstable)"
    out["chi"][~one] = nan
    for i in np.flatnonzero(~one):
        th = {k: {f: float(v[i]) for f, v in d.items()} for k, d in pts.items()}
        indep = sz[i] == 0.0 and all(th[k]["rho2"] == 0 for k in "ifro") and abs(out["mu_s"][i]) < 1e-9
        if indep:
            # the renewal equation stays per point, at the batch's Q*
            so = Settings(n=st.n, n_f=int(keys[i, 0]), n_g=int(keys[i, 1]), n_o=int(keys[i, 2]),
                          n_c=st.n_c, width=st.width, order=st.order)
            mod = CellStateModel(th, float(out["q_s"][i]), R, so)
            chi = chi_independent_copies(mod, mod.stationary(), th)
            if chi < 1.0:
                out["c_s"][i], out["chi"][i], out["method"][i] = 0.0, chi, "two-state, C*=0"
            else:
                out["converged"][i], out["method"][i] = False, "not covered (C*=0 unstable)"
        else:
            # 0 <= Sigma_z < 1, 0 < C* < 1: the joint (c_a, c_b) law, per point, at the batch's Q*
            jp = solve_joint(th, float(sz[i]), R, q=float(out["q_s"][i]), mu_h=float(out["mu_s"][i]))
            out["c_s"][i], out["method"][i] = jp.c_star, jp.method
            if jp.stable:
                out["chi"][i] = jp.chi
                out["converged"][i] = out["converged"][i] and jp.converged
                out["residual"][i] = max(out["residual"][i], jp.residual)
            else:
                out["converged"][i] = False
    return out
