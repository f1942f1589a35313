r"""Performance scheduling of the closed-form theory: grid points split into groups, two threads.

:func:`solve_grid` computes exactly what :func:`rnn_mft.theory.meanfield.closed_form_fixed_point`
and :func:`~rnn_mft.theory.meanfield.closed_form_jacobian_moments` compute on a whole grid, but
faster on large grids, by two devices that change no equation:

* **Quadrature buckets.** The automatic Gauss-Hermite order grows with the largest
  pre-activation variance (the rule of :func:`~rnn_mft.theory.meanfield.nodes_for`); one point
  with a large variance (e.g. the peephole cell state at mu_f >> 0) would otherwise set it for
  the whole grid. A cheap low-order solve (:func:`~rnn_mft.theory.meanfield.solve_q` at order
  32) estimates each point's (mu*, Q*) and largest variance. For an architecture whose state
  is not bounded (``bounded=False`` in :mod:`rnn_mft.arch`, the peephole LSTM), points are
  bucketed by the order that variance calls for (:func:`~rnn_mft.theory.meanfield.node_rule`
  with the C map's floor :data:`~rnn_mft.theory.meanfield.C_MIN_ORDER`, bucket bounds
  :data:`BUCKETS`), and each bucket is solved on its own, with the order again chosen
  automatically from that bucket's (exact) variances, so every point gets at least the order the
  rule asks for at its own variance. For a bounded state (|s| <= 1) Q* <= 1 bounds every variance
  and one order serves all.
* **Two threads.** A grid of at least :data:`SPLIT_MIN` points is cut into two halves (or the
  buckets are taken two at a time) and solved on the two threads of the theory's pool (numpy
  releases the GIL); the largest bucket goes first so that the threads balance.

Either way the groups start from the low-order (mu*, Q*) (``q_init``). With an explicit
``order``, a small grid (< 64 points) or an array ``sigma_z`` the whole grid is solved at once.
"""
from __future__ import annotations

import numpy as np

from .. import arch as _arch
from . import lstm as _lstm
from . import meanfield as _mf
from .theta import ARCHS

__all__ = ["solve_grid", "solve_whole", "BUCKETS", "SPLIT_MIN"]

#: Gauss-Hermite orders that bound the buckets of grid points
BUCKETS = (96, 128, 176, 240, 320)
#: grids of at least this many points are solved as two halves (or buckets) on two threads
SPLIT_MIN = 2048
#: below this many points the grid is solved at once
SMALL = 64


def solve_whole(theta, sz, R, tol, order, q_init=None):
    """Fixed point, chi and Jacobian moments of the whole grid at once (no scheduling).

    Returns ``(FixedPointResult, m1, m2, m2_printed, order)``.
    """
    fp = _mf.closed_form_fixed_point(theta, sz, R=R, tol=tol, n=order, q_init=q_init)
    cm = fp.cmap
    # (mu*, Q*) live on theta's grid (they do not depend on Sigma_z). The Jacobian moments use the
    # C map's nodes (meanfield.C_NODES_FACTOR x the rule's order: m2, through the stationary
    # moments E[s^p], p <= 4, converges more slowly in the order than a single expectation, and
    # m1 = chi at C* = 1 (Lemma 1) holds to rounding) and reuse its gate values there.
    m1, m2, m2p = _mf.closed_form_jacobian_moments(theta, cm.mu, cm.q, R, n=cm.nq, values=cm.values)
    return fp, m1, m2, m2p, cm.order


def _bucket_orders(flat, q0, bad, R):
    """The order each point calls for: the node rule (with the C map's floor) at its largest
    gate variance, estimated with a margin from the low-order Q (400 where that failed)."""
    P = q0.shape[0]
    vmax = np.zeros(P)
    for k in ARCHS[flat.arch]:
        if k == "r2":
            continue
        vmax = np.maximum(vmax, _mf.gate_moment(flat[k], 1.25 * q0 + 0.05, R))
    return np.where(bad, 400, np.maximum(_mf.node_rule(vmax), _mf.C_MIN_ORDER))


def solve_grid(theta, sz, R, tol, order):
    """:func:`solve_whole`'s results, computed per group of grid points on two threads (see the
    module docstring). Returns ``(FixedPointResult, m1, m2, m2_printed, order)``."""
    shape = theta.shape
    P = int(np.prod(shape))
    if order is not None or np.size(sz) != 1 or P < SMALL:
        return solve_whole(theta, sz, R, tol, order)
    flat = _mf._flat(theta, shape)
    pool = _lstm.thread_pool()
    halves = np.array_split(np.arange(P), 2) if P >= SPLIT_MIN else [np.arange(P)]

    def low_order(idx):
        th = flat if idx.size == P else _mf._take(flat, idx)
        return _mf.solve_q(th, R, n=32, tol=1e-6, max_iter=12)[1]

    q0 = np.concatenate(list(pool.map(low_order, halves)))
    bad = ~np.isfinite(q0) | (q0 <= 0)
    q0 = np.where(bad, 1.0, q0)
    if _arch.get(theta.arch).bounded:
        groups = halves
    else:
        need = _bucket_orders(flat, q0, bad, R)
        b = np.searchsorted(np.asarray(BUCKETS), need)      # bucket index per point
        groups = [np.flatnonzero(b == lab) for lab in np.unique(b)]
        # the largest bucket first (its work: points x order), so that the two threads balance
        groups.sort(key=lambda idx: -idx.size * need[idx].max())
    if len(groups) == 1:
        return solve_whole(theta, sz, R, tol, order, q_init=q0.reshape(shape))
    szs = np.reshape(sz, ())
    fields = ("mu_s", "q_s", "c_s", "chi", "residual", "one_minus_chi", "one_minus_chi_err")
    out = {f: np.full(P, np.nan) for f in fields}
    conv = np.zeros(P, dtype=bool)
    m1, m2, m2p = np.full(P, np.nan), np.full(P, np.nan), np.full(P, np.nan)
    its, nqs, direct = 0, [], False

    def solve(idx):
        return solve_whole(_mf._take(flat, idx), szs, R, tol, None, q_init=q0[idx])

    # the groups are independent: two at a time on two threads (numpy releases the GIL)
    for idx, (fp, a1, a2, a2p, nq) in zip(groups, pool.map(solve, groups)):
        for f in fields:
            out[f][idx] = getattr(fp, f)
        conv[idx] = fp.converged
        m1[idx], m2[idx], m2p[idx] = a1, a2, a2p
        its = max(its, fp.iterations)
        nqs.append(nq)
        direct = fp.direct
    r = lambda a: a.reshape(shape)  # noqa: E731
    fp = _mf.FixedPointResult(r(out["mu_s"]), r(out["q_s"]), r(out["c_s"]), r(out["chi"]), r(conv),
                              r(out["residual"]), its, None, r(out["one_minus_chi"]), r(out["one_minus_chi_err"]),
                              direct)
    return fp, r(m1), r(m2), r(m2p), max(nqs)
