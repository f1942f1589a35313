r"""Dynamical isometry solver (beyond the paper): an initialization with a prescribed time scale.

Given a target :math:`\xi` (eq. (9)) or :math:`\chi = 1 - \delta`, :func:`solve_for_timescale`
searches the box ``bounds`` (``{"gate.field": (lo, hi)}``, every other field fixed at
``base``) for :math:`\Theta` with :math:`\chi(\Theta) = \chi_{target}` and, among those, the
smallest

.. math:: L = \sigma_{JJ^T} + w\,(m_1 - 1)^2

i.e. condition (15c) first, (15b) second, while (15a) is replaced by the target (Section 4.4:
the best :math:`\chi` for a task need not be 1). The search is vectorised: the free parameters
other than the *key* (default ``f.mu``, along which :math:`\chi` is monotone) are laid on a
grid, and on every grid line the key is found by a bracketed secant (Illinois) search, all
grid lines at once; the best line wins. Default: ``base = Theta.critical(arch)`` and
``bounds = {"f.mu": (-5, 30)}``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from . import lstm as _lstm
from . import meanfield as _mf
from .. import arch as _arch
from .analysis import analyze, xi_from_one_minus_chi
from .theta import ARCHS, FIELDS, Theta, check_arch

__all__ = ["SolveResult", "solve_for_timescale"]


@dataclass(frozen=True)
class SolveResult:
    """The chosen Theta and what it achieves (chi, xi, m1, m2, var); ``target_chi`` is the goal.

    ``one_minus_chi`` (1 - chi without cancellation where the architecture allows, see
    :func:`rnn_mft.theory.analyze`), ``xi_rel_err`` (the relative error of the achieved xi from
    float64 rounding and, for Algorithm 1, one Monte Carlo standard error) and ``target_xi``."""

    theta: Theta
    chi: float
    xi: float
    m1: float
    m2: float
    var: float
    target_chi: float
    params: dict
    one_minus_chi: float = float("nan")
    xi_rel_err: float = float("nan")
    target_xi: float = float("nan")

    def __iter__(self):            # allows ``theta, info = solve_for_timescale(...)``-free use
        return iter((self.theta, self))


def _real(v):
    """``float(v)``, or None when ``v`` is not a real number (a bool or a text is not)."""
    if isinstance(v, (bool, np.bool_, str, bytes)):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _check_bounds(arch, bounds):
    if not isinstance(bounds, Mapping):
        raise ValueError(f'bounds={bounds!r} must be a mapping {{"gate.field": (lo, hi)}}')
    out = {}
    for key, b in bounds.items():
        gate, _, fld = str(key).partition(".")
        if gate not in ARCHS[arch]:
            raise ValueError(f"unknown gate {gate!r} in bounds key {key!r}; allowed gates: {', '.join(ARCHS[arch])}")
        if fld not in FIELDS:
            raise ValueError(f"unknown field {fld!r} in bounds key {key!r}; allowed fields: {', '.join(FIELDS)}")
        try:
            lo, hi = (float(v) for v in b)
        except (TypeError, ValueError):
            raise ValueError(f"bounds[{key!r}]={b!r} must be a pair (lo, hi)") from None
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
            raise ValueError(f"bounds[{key!r}]=({lo}, {hi}) must be finite with lo <= hi")
        if fld != "mu" and lo < 0:
            raise ValueError(f"bounds[{key!r}]=({lo}, {hi}): {fld} is a variance, allowed range [0, inf)")
        out[key] = (lo, hi)
    return out


def solve_for_timescale(arch: str, xi: float | None = None, chi: float | None = None, bounds: dict | None = None,
                        *, base: Theta | None = None, key: str | None = None, sigma_z: float = 1.0, R: float = 1.0,
                        n_grid: int = 6, m1_weight: float = 1.0, tol: float = 1e-8, n_s: int | None = None,
                        n_iters: int | None = None, seed: int = 0, xi_rtol: float = 1e-4,
                        method: str | None = None) -> SolveResult:
    r"""Find :math:`\Theta` with :math:`\xi(\Theta) = \xi` (or :math:`\chi(\Theta) = \chi`) and the
    smallest Jacobian variance (15c) and :math:`|m_1 - 1|` (15b) within ``bounds``.

    Parameters
    ----------
    arch : str
        Architecture (all of Table 1).
    xi : float > 0, optional
        Target time scale (eq. (9)); e.g. the task's sequence length.
    chi : float in (0, 1), optional
        Target :math:`\chi = 1 - \delta` instead of ``xi`` (give exactly one of them).
    bounds : dict, optional
        ``{"gate.field": (lo, hi)}`` of free hyperparameters; default ``{"f.mu": (-5, 15)}``.
    base : Theta, optional
        Values of the fields that are not free; default :meth:`Theta.critical`.
    key : str, optional
        The free parameter tuned to hit the target on each grid line (default ``"f.mu"`` if
        free, else the first key of ``bounds``); :math:`\chi` should be monotone along it.
    sigma_z, R : float
        Input statistics at which :math:`\chi` is evaluated (default: identical inputs, where
        :math:`\chi = m_1` by Lemma 1).
    n_grid : int
        Grid points per other free parameter.
    m1_weight : float
        Weight :math:`w` of :math:`(m_1 - 1)^2` in the objective.
    tol : float
        Largest error in chi at which the search along ``key`` stops (it also stops at
        ``xi_rtol / 10`` relative error in xi, whichever is smaller).
    xi_rtol : float
        Largest relative error ``|xi_achieved / xi - 1|`` accepted (default 1e-4; relative in
        xi, so that long time scales, where chi is within 1/xi of 1, are held to the same
        standard as short ones). The search works on 1 - chi (computed without cancellation
        where the architecture allows: minimal, GRU, peephole LSTM reach any xi their bounds
        reach), and the target's 1 - chi = -expm1(-1/xi) is exact. A target that the method cannot
        meet that well, because float64 does not resolve 1 - chi there to ``xi_rtol`` (vanilla,
        the LSTM: beyond xi ~ xi_rtol / (1e-13)) or the search missed it, raises ``ValueError``
        naming the target and the largest xi the setting resolves; one outside the bounds' reach
        names the range of xi it does reach.
    method : {"two_state", "paper"}, optional
        LSTM only: the theory whose chi is matched (see :func:`analyze`). The default, the
        two-state theory, is deterministic and agrees with simulated networks; ``"paper"`` uses
        Algorithm 1 and Appendix A.2.3 (for comparison: its xi is not the network's).
    n_s, n_iters, seed : int
        LSTM sampling settings of ``method="paper"`` (Algorithm 1); by default those of :func:`analyze`, so that
        ``analyze("lstm", result.theta)`` reproduces the achieved ``xi``. Algorithm 1's common
        random numbers make both deterministic, but the sampled chi carries Monte-Carlo error of
        order :math:`1/\sqrt{n_s}`; since :math:`\xi = -1/\log\chi`, long targets
        (:math:`1 - \chi \lesssim 1/\sqrt{n_s}`) are resolved only roughly, and
        ``n_iters`` should exceed a few times the cell state's memory :math:`1/(1 - \sigma(\mu_f))`.

    Returns
    -------
    SolveResult
        ``theta`` and the achieved ``chi, xi, m1, m2, var``.
    """
    check_arch(arch)
    if isinstance(n_grid, bool) or not isinstance(n_grid, (int, np.integer)) or n_grid < 1:
        raise ValueError(f"n_grid={n_grid!r} must be an int >= 1 (grid points per free parameter)")
    try:
        xi_rtol = float(xi_rtol)
    except (TypeError, ValueError):
        xi_rtol = float("nan")
    if not (np.isfinite(xi_rtol) and 0 < xi_rtol < 1):
        raise ValueError(f"xi_rtol={xi_rtol!r} must lie in (0, 1)")
    if _real(tol) is None or not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol={tol!r} must be a finite number > 0")
    n_s = _lstm.DEFAULT_NS if n_s is None else n_s
    n_iters = _lstm.DEFAULT_ITERS if n_iters is None else n_iters
    if (xi is None) == (chi is None):
        raise ValueError("give exactly one of xi (> 0) and chi (in (0, 1))")
    for name, v in (("xi", xi), ("chi", chi)):
        if v is not None and _real(v) is None:
            raise ValueError(f"{name}={v!r} must be a number " + ("> 0" if name == "xi" else "in (0, 1)"))
    if xi is not None:
        xi = float(xi)
        if not np.isfinite(xi) or xi <= 0:
            raise ValueError(f"xi={xi!r} must be a finite number > 0")
        omc_t = float(-np.expm1(-1.0 / xi))          # 1 - chi of the target, exact (chi itself rounds)
    else:
        c = float(chi)
        if not np.isfinite(c) or not 0 < c < 1:
            raise ValueError(f"chi={chi!r} must lie in (0, 1)")
        omc_t = 1.0 - c
    target = 1.0 - omc_t
    cell_theory = _arch.get(arch).theory != "closed_form"     # analyze, not the closed-form map
    if base is None:       # the critical preset, or the standard one for an architecture registered without
        base = Theta.critical(arch) if _arch.get(arch).critical is not None else Theta.standard(arch)
    if not isinstance(base, Theta) or base.arch != arch or base.shape != ():
        raise ValueError("base must be a scalar Theta of the same architecture")
    if bounds is None:
        # the architecture's default search box (Architecture.solve_bounds): the forget-gate bias;
        # the vanilla RNN has no gate, and chi -> 1 at sigma_f^2 = 1 as the input variance vanishes
        bounds = dict(_arch.get(arch).solve_bounds)
    bounds = _check_bounds(arch, bounds)
    if not bounds:
        raise ValueError("bounds must name at least one free hyperparameter")
    if key is None:
        key = "f.mu" if "f.mu" in bounds else next(iter(bounds))
    if key not in bounds:
        raise ValueError(f"key={key!r} must be one of the bounds keys: {', '.join(bounds)}")
    others = [k for k in bounds if k != key and bounds[k][0] < bounds[k][1]]
    fixed = {k: bounds[k][0] for k in bounds if k != key and k not in others}
    # grid over the other free parameters (log-spaced for variances with lo > 0)
    axes = {}
    for k in others:
        lo, hi = bounds[k]
        if not k.endswith(".mu") and lo > 0:
            axes[k] = np.geomspace(lo, hi, n_grid)
        else:
            axes[k] = np.linspace(lo, hi, n_grid)
    base = base.replace(fixed) if fixed else base
    grid = Theta.grid(base, axes) if axes else base
    shape = grid.shape

    def omc_of(kv):
        """1 - chi along the key (NaN where the theory has no converged fixed point)."""
        th = grid.replace({key: kv})
        if cell_theory:            # Algorithm 1's estimate is matched as the (CRN) function of Theta it is
            return analyze(arch, th, sigma_z, R, n_s=n_s, n_iters=n_iters, seed=seed, method=method,
                           mc_rtol=np.inf, xi_rtol=np.inf).one_minus_chi
        return _mf.fixed_point(th, sigma_z, R=R).one_minus_chi

    # the search runs on F = log(1 - chi_t) - log(1 - chi), which has the sign of chi - chi_t and is
    # about linear in mu_f (1 - chi ~ exp(-mu_f)); chi >= 1 counts as far above the target
    log_t = float(np.log(omc_t))

    def fval(kv):
        d = omc_of(kv)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d > 0, log_t - np.log(np.where(d > 0, d, 1.0)), np.where(np.isnan(d), np.nan, 1e3))

    def omc_from_f(f):
        return np.exp(log_t - f)

    lo = np.full(shape, bounds[key][0])
    hi = np.full(shape, bounds[key][1])
    flo, fhi = fval(lo), fval(hi)
    # an end of the box may have no converged fixed point (e.g. an LSTM memory longer than
    # Algorithm 1's n_iters): pull that end towards the other until the theory converges there
    for _ in range(40):
        bad_hi, bad_lo = ~np.isfinite(fhi), ~np.isfinite(flo)
        if not (np.any(bad_hi & np.isfinite(flo)) or np.any(bad_lo & np.isfinite(fhi))):
            break
        hi = np.where(bad_hi, lo + 0.8 * (hi - lo), hi)
        lo = np.where(bad_lo & ~bad_hi, hi + 0.8 * (lo - hi), lo)
        flo, fhi = fval(lo), fval(hi)
    # the direction of monotonicity may be either way: orient so that f(lo) < 0 < f(hi)
    swap = flo > fhi
    lo, hi = np.where(swap, hi, lo), np.where(swap, lo, hi)
    flo, fhi = np.where(swap, fhi, flo), np.where(swap, flo, fhi)
    fends = np.concatenate([np.ravel(flo), np.ravel(fhi)])
    ends = omc_from_f(fends[np.isfinite(fends)])                   # 1 - chi at the ends
    # the stopping tolerance in F that is xi_rtol / 10 in xi (d xi / xi = d omc / ((1 - omc) |log(1 - omc)|),
    # d F = d omc / omc) and tol in chi
    with np.errstate(divide="ignore", invalid="ignore"):       # omc_t = 1 (xi -> 0): the chi tolerance rules
        ctol = min(tol / omc_t, 0.1 * xi_rtol * (1.0 - omc_t) * -np.log1p(-omc_t) / omc_t)
    feasible = (flo <= 0) & (fhi >= 0) & np.isfinite(flo) & np.isfinite(fhi)
    asked = f"xi={xi:.6g}" if xi is not None else f"chi={float(chi):.12g}"
    asked += f" (1 - chi = {omc_t:.6g}" + (f", xi = {float(xi_from_one_minus_chi(omc_t)):.6g})" if xi is None else ")")
    if not np.any(feasible):
        rng = (f"chi in [{1 - ends.max():.6g}, {1 - ends.min():.6g}] (1 - chi in [{ends.min():.6g}, {ends.max():.6g}], "
               f"xi in [{float(xi_from_one_minus_chi(ends.max())):.4g}, "
               f"{float(xi_from_one_minus_chi(ends.min())):.4g}])") if ends.size else \
            "nothing (no fixed point converged)"
        raise ValueError(f"target {asked} is not reachable within bounds {bounds}; reachable: {rng}")
    x = np.where(feasible, 0.5 * (lo + hi), np.nan)
    side = np.zeros(shape)
    for _ in range(80):
        with np.errstate(divide="ignore", invalid="ignore"):
            xs = (lo * fhi - hi * flo) / (fhi - flo)
        xs = np.where(np.isfinite(xs) & (np.minimum(lo, hi) < xs) & (xs < np.maximum(lo, hi)), xs, 0.5 * (lo + hi))
        xs = np.where(feasible, xs, lo)
        fx = fval(xs)
        # no converged fixed point there: treat as beyond the target (long memories fail first)
        fx = np.where(np.isfinite(fx), fx, np.where(swap, -1.0, 1.0))
        left = fx < 0
        lo, flo_n = np.where(left, xs, lo), np.where(left, fx, flo)
        hi, fhi_n = np.where(left, hi, xs), np.where(left, fhi, fx)
        fhi_n = np.where(left & (side > 0), 0.5 * fhi_n, fhi_n)
        flo_n = np.where(~left & (side < 0), 0.5 * flo_n, flo_n)
        side = np.where(left, 1.0, -1.0)
        flo, fhi = flo_n, fhi_n
        x = np.where(feasible, xs, np.nan)
        if np.all(~feasible | (np.abs(fx) < ctol) | (np.abs(hi - lo) < 1e-13 * (1 + np.abs(lo)))):
            break
    xsafe = np.where(feasible, x, bounds[key][0])
    th = grid.replace({key: xsafe})
    # Algorithm 1: its estimate is matched (mc_rtol = inf), its Monte Carlo error reported in the result
    r = analyze(arch, th, sigma_z, R, n_s=n_s, n_iters=n_iters, seed=seed, xi_rtol=xi_rtol,
                **({"method": method, "mc_rtol": np.inf} if cell_theory else {}))
    loss = r.var + m1_weight * (r.m1 - 1.0) ** 2
    xi_t = float(xi_from_one_minus_chi(omc_t))
    # float64 rounding of 1 - chi alone (not Algorithm 1's Monte Carlo error: its estimate is the function matched)
    rel_round = np.asarray(r.one_minus_chi_err, float) / np.abs(np.asarray(r.one_minus_chi, float))
    with np.errstate(all="ignore"):
        rel = np.abs(np.asarray(r.xi, float) / xi_t - 1.0)
    # r.xi is NaN where float64 does not resolve it to xi_rtol (analyze's xi_rtol)
    ok = feasible & np.isfinite(loss) & (rel <= xi_rtol) & (rel_round <= xi_rtol)
    if not np.any(ok):
        got = np.where(feasible & np.isfinite(r.xi), r.xi, np.nan)
        near = (f"; the closest solution found has xi={float(np.nanmin(np.where(rel == np.nanmin(rel), got, np.inf))):.6g} "
                f"({float(np.nanmin(rel)):.2%} off)") if np.any(np.isfinite(got) & np.isfinite(rel)) else ""
        # the largest xi float64 resolves to xi_rtol here: 1 - chi at least err / xi_rtol, with err the float64
        # error bound of 1 - chi at the points found (about the same along the key)
        err = np.asarray(r.one_minus_chi_err, float)[feasible & np.isfinite(r.one_minus_chi_err)]
        cap = float(xi_from_one_minus_chi(float(err.min()) / xi_rtol)) if err.size else np.inf
        top = float(xi_from_one_minus_chi(ends.min())) if ends.size else np.nan
        why = (f"float64 resolves 1 - chi here only to {float(err.min()):.2g}: the largest xi it resolves to "
               f"xi_rtol={xi_rtol:g} is about {cap:.4g}") if err.size else "no converged solution"
        reach = (f"xi in [{float(xi_from_one_minus_chi(ends.max())):.6g}, {min(top, cap):.6g}]" if ends.size
                 else "nothing")
        extra = (" (Algorithm 1's Monte-Carlo chi, n_s={}, n_iters={}, resolves xi only up to about "
                 "sqrt(n_s) and n_iters)".format(n_s, n_iters)) if cell_theory and method == "paper" else ""
        raise ValueError(f"target {asked} cannot be met to relative accuracy xi_rtol={xi_rtol:g} within bounds "
                         f"{bounds}: {why}{near}; reachable to that accuracy: {reach}{extra}")
    j = np.unravel_index(np.argmin(np.where(ok, loss, np.inf)), shape) if shape else ()
    best = th.index(j) if shape else th
    pick = lambda a: float(np.asarray(a)[j]) if shape else float(a)  # noqa: E731
    params = {key: pick(xsafe)}
    params.update({k: pick(np.broadcast_to(getattr(best[k.split('.')[0]], k.split('.')[1]), ())) if not shape
                   else float(getattr(best[k.split('.')[0]], k.split('.')[1])) for k in others})
    return SolveResult(best, pick(r.chi), pick(r.xi), pick(r.m1), pick(r.m2), pick(r.var), target, params,
                       pick(r.one_minus_chi), pick(r.xi_rel_err), xi_t)
