"""Figure 5: forward signal propagation in the GRU, mean-field theory against simulation.

Two copies of a GRU with identical weights are fed i.i.d. Gaussian inputs whose cross-copy
correlation is :math:`\\Sigma_z^t = 0` for :math:`t < t_{switch}` and 1 afterwards (Appendix C.1).
The theory (:func:`rnn_mft.theory.gru.trajectory`) predicts the state correlation
:math:`C_s^t`; finite-width networks with untied and tied weights (:func:`rnn_mft.sim.simulate_pair`)
measure it. The second half compares the fixed point :math:`C^*` at a constant
:math:`\\Sigma_z` over a range of forget-gate bias means :math:`\\mu_f`.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np

from ...sim import simulate_pair
from ...theory import Theta, gru
from ..protocol import Config, doc

__all__ = ["TOL_SIGMAS", "GRUSignalConfig", "config", "theta_for", "sigma_z_schedule", "run", "agreement",
           "report", "theta_table", "agreement_table"]

# Theta is not stated in the paper beyond three values of mu_f; we choose unit recurrent and
# input variances for every gate, a small bias variance (so that the two copies share some
# structure through their common biases) and zero bias means except mu_f.
_BASE = {"f": dict(sigma2=1.0, nu2=1.0, rho2=0.1, mu=0.0),
         "r": dict(sigma2=1.0, nu2=1.0, rho2=0.1, mu=0.0),
         "r2": dict(sigma2=1.0, nu2=1.0, rho2=0.1, mu=0.0)}


@dataclass(frozen=True)
class GRUSignalConfig(Config):
    """Settings of the chapter "Signal propagation in the GRU (Figure 5)"; defaults are ``ci``."""

    N: int = doc(2000, "width of the untied networks (and of their inputs)")
    n_seeds: int = doc(8, "untied networks per curve and per fixed-point point")
    N_tied: int = doc(1000, "width of the tied networks (their N x N weights are kept in memory)")
    tied_seeds: int = doc(4, "tied networks per curve")
    T: int = doc(60, "steps of the trajectory panel")
    t_switch: int = doc(10, "first step with Sigma_z = 1 (Sigma_z = 0 before it)")
    mu_f: list = doc([0.0, 2.0, 4.0], "forget-gate bias means of the trajectory panel")
    fp_sigma_z: float = doc(0.5, "Sigma_z of the fixed-point panel")
    fp_mu_f: list = doc([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0], "mu_f of the fixed-point panel's simulated points")
    fp_T: int = doc(200, "steps of each fixed-point run (from C = 1)")
    fp_avg: int = doc(50, "last steps averaged for the simulated C*")
    fp_tied_seeds: int = doc(2, "tied networks per fixed-point point")
    seed: int = doc(0, "base seed; every run's seed is derived from it")
    theta: dict = doc(_BASE, "the GRU's Theta except mu_f (per gate: sigma2, nu2, rho2, mu)")
    # Untied networks are simulated with the O(N) sampler, so they can be wide and many; tied
    # networks need their N x N matrices in memory and every step reads them all (memory-bound),
    # so they use a smaller width (N_tied) and fewer seeds.
    PROFILES = {
        "smoke": dict(N=200, n_seeds=2, N_tied=100, tied_seeds=2, T=24, t_switch=10, mu_f=[0.0, 2.0, 4.0],
                      fp_sigma_z=0.5, fp_mu_f=[-2.0, 0.0, 2.0], fp_T=60, fp_avg=20, fp_tied_seeds=2, seed=0),
        "ci": dict(N=2000, n_seeds=8, N_tied=1000, tied_seeds=4, T=60, t_switch=10, mu_f=[0.0, 2.0, 4.0],
                   fp_sigma_z=0.5, fp_mu_f=[-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0], fp_T=200, fp_avg=50,
                   fp_tied_seeds=2, seed=0),
        "paper": dict(N=4000, n_seeds=16, N_tied=2000, tied_seeds=8, T=80, t_switch=10, mu_f=[0.0, 2.0, 4.0],
                      fp_sigma_z=0.5, fp_mu_f=list(np.linspace(-2.0, 4.0, 13)), fp_T=300, fp_avg=100,
                      fp_tied_seeds=4, seed=0),
    }

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "theta", copy.deepcopy(self.theta))


def config(profile: str) -> GRUSignalConfig:
    """The settings for ``profile``: widths, lengths, seeds, and the base Theta."""
    return GRUSignalConfig.for_profile(profile)


def theta_for(cfg: GRUSignalConfig, mu_f) -> Theta:
    """The GRU Theta of ``cfg`` with forget-gate bias mean ``mu_f`` (scalar or array)."""
    return Theta("gru", cfg.theta).replace({"f.mu": mu_f})


def sigma_z_schedule(T: int, t_switch: int) -> np.ndarray:
    """Sigma_z^t for t = 1..T: 0 for t < t_switch, 1 from t_switch on (Appendix C.1)."""
    t = np.arange(1, T + 1)
    return (t >= t_switch).astype(float)


def run(cfg: GRUSignalConfig, store=None) -> dict:
    """Theory and simulation for both panels of Figure 5. Returns plain arrays (see keys).
    Nothing is stored (``store`` is not used): the page recomputes it in a minute."""
    t0 = time.perf_counter()
    sz = sigma_z_schedule(cfg.T, cfg.t_switch)
    mu_f = np.asarray(cfg.mu_f, dtype=float)
    theory = gru.trajectory(theta_for(cfg, mu_f), sz)           # (T+1, len(mu_f))
    out = {"t": np.arange(cfg.T + 1), "sigma_z": sz, "mu_f": mu_f, "theory_c": theory.c_s,
           "theory_q": theory.q_s}
    for tied in (False, True):
        key = "tied" if tied else "untied"
        means, sems = [], []
        for j, m in enumerate(mu_f):
            r = simulate_pair("gru", theta_for(cfg, float(m)), cfg.N_tied if tied else cfg.N, sz,
                              tied=tied, n_seeds=cfg.tied_seeds if tied else cfg.n_seeds,
                              seed=cfg.seed + 1000 * j + (500 if tied else 0))
            means.append(r.mean("c_s"))
            sems.append(r.sem("c_s"))
        out[f"{key}_c"] = np.stack(means, axis=1)
        out[f"{key}_c_sem"] = np.stack(sems, axis=1)

    # Fixed point C* against mu_f at constant Sigma_z.
    grid = np.linspace(min(cfg.fp_mu_f), max(cfg.fp_mu_f), 61)
    fp = gru.fixed_point(theta_for(cfg, grid), cfg.fp_sigma_z)
    out.update(fp_grid=grid, fp_theory=fp.c_s, fp_converged=fp.converged,
               fp_mu_f=np.asarray(cfg.fp_mu_f, dtype=float))
    szc = np.full(cfg.fp_T, cfg.fp_sigma_z)
    for tied in (False, True):
        key = "tied" if tied else "untied"
        seeds = cfg.fp_tied_seeds if tied else cfg.n_seeds
        means, sems = [], []
        for j, m in enumerate(cfg.fp_mu_f):
            r = simulate_pair("gru", theta_for(cfg, float(m)), cfg.N_tied if tied else cfg.N, szc,
                              tied=tied, n_seeds=seeds,
                              seed=cfg.seed + 7000 + 100 * j + (50 if tied else 0))
            per_seed = r.c_s[-cfg.fp_avg:].mean(axis=0)          # time average, per seed
            means.append(per_seed.mean())
            sems.append(per_seed.std(ddof=1) / np.sqrt(seeds) if seeds > 1 else np.nan)
        out[f"fp_{key}"] = np.array(means)
        out[f"fp_{key}_sem"] = np.array(sems)
    out["fp_theory_at_points"] = gru.fixed_point(theta_for(cfg, out["fp_mu_f"]), cfg.fp_sigma_z).c_s
    out["seconds"] = time.perf_counter() - t0
    return out


#: the tolerance of :func:`agreement`, in bounds of the standard error: TOL_SIGMAS sqrt(2/(N n_seeds))
TOL_SIGMAS = 5


def agreement(cfg: GRUSignalConfig, res: dict) -> dict:
    """Largest |simulation - theory| of C, untied and tied, against the tolerance
    TOL_SIGMAS sqrt(2/(N n_seeds)) (:data:`TOL_SIGMAS` = 5).

    The empirical correlation of N units has a standard error of about sqrt((1 + C^2)/N) <=
    sqrt(2/N) per network (per-unit products of standardized states have variance ~ 1 + C^2),
    so an average over n_seeds networks is within 5 sqrt(2/(N n_seeds)) of its mean with
    overwhelming probability; the finite-N bias is O(1/N), far smaller.
    """
    tol = TOL_SIGMAS * np.sqrt(2.0 / (cfg.N * cfg.n_seeds))
    d = {k: float(np.nanmax(np.abs(res[f"{k}_c"] - res["theory_c"]))) for k in ("untied", "tied")}
    fp = {k: float(np.nanmax(np.abs(res[f"fp_{k}"] - res["fp_theory_at_points"]))) for k in ("untied", "tied")}
    return {"tolerance": float(tol), "trajectory_max_abs_dev": d, "fixed_point_max_abs_dev": fp}


def report(cfg: GRUSignalConfig, res: dict) -> dict:
    """The numbers of the page's prose: the largest deviations of :func:`agreement` and the
    tolerance (and its factor ``tol_sigmas``), their ratio for the untied networks, the tied networks' mean excess of C* over the
    theory, the run time, and the settings (``cfg_<field>``, lists as comma-separated text)."""
    ag = agreement(cfg, res)
    tr, fp = ag["trajectory_max_abs_dev"], ag["fixed_point_max_abs_dev"]
    out = {"tolerance": ag["tolerance"], "tol_sigmas": TOL_SIGMAS, "traj_dev_untied": tr["untied"], "traj_dev_tied": tr["tied"],
           "fp_dev_untied": fp["untied"], "fp_dev_tied": fp["tied"],
           "untied_dev_over_tol": max(tr["untied"], fp["untied"]) / ag["tolerance"],
           "tied_fp_excess": float(np.nanmean(res["fp_tied"] - res["fp_theory_at_points"])),
           "seconds": float(res["seconds"])}
    for k, v in cfg.to_dict().items():
        if k != "theta":
            out[f"cfg_{k}"] = ", ".join(f"{x:g}" for x in v) if isinstance(v, (list, tuple)) else v
    return out


def theta_table(cfg: GRUSignalConfig) -> str:
    """Markdown table of the base Theta (mu_f is varied)."""
    theta = theta_for(cfg, 0.0).to_dict()
    rows = "\n".join(f"| {g} | {p['sigma2']:g} | {p['nu2']:g} | {p['rho2']:g} | "
                     f"{'varied' if g == 'f' else format(p['mu'], 'g')} |" for g, p in theta.items())
    return ("| gate $k$ | $\\sigma_k^2$ | $\\nu_k^2$ | $\\rho_k^2$ | $\\mu_k$ |\n"
            "| --- | --- | --- | --- | --- |\n" + rows)


def agreement_table(cfg: GRUSignalConfig, res: dict) -> str:
    """Markdown table of the largest deviations between simulation and theory (see :func:`agreement`)."""
    ag = agreement(cfg, res)
    tr, fp = ag["trajectory_max_abs_dev"], ag["fixed_point_max_abs_dev"]
    return f"""| | untied | tied |
| --- | --- | --- |
| largest $\\lvert C^t_{{sim}} - C^t_{{theory}}\\rvert$ over $t$ and $\\mu_f$ | {tr['untied']:.4f} | {tr['tied']:.4f} |
| largest $\\lvert C^*_{{sim}} - C^*_{{theory}}\\rvert$ over $\\mu_f$ | {fp['untied']:.4f} | {fp['tied']:.4f} |
"""
