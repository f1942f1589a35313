"""The theory half of Figure 2: xi (eq. (9)) and var (Section 4.3) over two hyperparameters per
architecture, with the standard (C.5) and critical (C.4) initializations marked.

Axes: the forget-gate bias mean mu_f and log10 of a common recurrent variance sigma^2 of all
gates (other fields at their standard values, nu^2 from C.5); for the vanilla RNN, sigma_f^2
and log10 nu_f^2. The whole grid is one vectorised call of :func:`rnn_mft.theory.analyze` (for the
LSTM its default, the deterministic two-state theory; ``n_s``/``n_iters`` are kept in the config
for the paper's method but not used).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..protocol import Config, doc
from ...theory import ARCHS, Theta, analyze

__all__ = ["LandscapeConfig", "config", "run", "report", "grid_for"]


@dataclass(frozen=True)
class LandscapeConfig(Config):
    """Settings of the chapter "The time-scale landscape"; defaults are ``ci``."""

    n: int = doc(60, "grid points per axis (every architecture but the LSTM)")
    n_lstm: int = doc(16, "grid points per axis for the LSTM (two-state theory)")
    n_s: int = doc(300, "Algorithm 1's samples (LSTM, paper's method only; not used here)")
    n_iters: int = doc(150, "Algorithm 1's iterations (LSTM, paper's method only; not used here)")
    sigma_z: float = doc(1.0, "input correlation Sigma_z")
    PROFILES = {"smoke": dict(n=8, n_lstm=5, n_s=100, n_iters=60), "ci": {},
                "paper": dict(n=200, n_lstm=50, n_s=1000, n_iters=300)}


def config(profile: str) -> LandscapeConfig:
    """The settings at ``profile`` (smoke, ci or paper)."""
    return LandscapeConfig.for_profile(profile)


def grid_for(arch: str, n: int):
    """(Theta grid, x values, y values, x label, y label, standard point, critical point)."""
    if arch == "vanilla":
        xs, ys = np.linspace(0.2, 3.0, n), np.linspace(-5, 0, n)
        base = Theta.standard("vanilla")
        th = Theta.grid(base, {"f.sigma2": xs, "f.nu2": 10.0 ** ys})
        std = (float(base["f"].sigma2), float(np.log10(base["f"].nu2)))
        cr = Theta.critical("vanilla")
        return th, xs, ys, r"$\sigma_f^2$", r"$\log_{10}\nu_f^2$", std, (float(cr["f"].sigma2), float(np.log10(cr["f"].nu2)))
    xs, ys = np.linspace(-2, 8, n), np.linspace(-5, 0.5, n)
    base = Theta.standard(arch)
    mesh_x, mesh_y = np.meshgrid(xs, 10.0 ** ys, indexing="ij")
    th = base.replace({"f.mu": mesh_x, **{f"{g}.sigma2": mesh_y for g in ARCHS[arch]}})
    cr = Theta.critical(arch)
    return (th, xs, ys, r"$\mu_f$", r"$\log_{10}\sigma^2$ (all gates)", (1.0, 0.0),
            (float(cr["f"].mu), float(np.log10(cr["f"].sigma2))))


def run(cfg: LandscapeConfig, store=None) -> dict:
    """xi and the Jacobian's variance over each architecture's grid (``store`` is not used)."""
    out = {}
    for arch in ARCHS:
        n = cfg.n_lstm if arch == "lstm" else cfg.n
        th, xs, ys, xl, yl, std, cr = grid_for(arch, n)
        r = analyze(arch, th, cfg.sigma_z, n_s=cfg.n_s, n_iters=cfg.n_iters)
        out[arch] = dict(xi=r.xi, var=r.var, converged=r.converged, x=xs, y=ys, xlabel=xl, ylabel=yl,
                         standard=std, critical=cr)
    return out


def report(cfg: LandscapeConfig, res: dict) -> dict:
    """The numbers of the page's prose: per architecture xi and the variance at the standard
    (C.5) and critical (C.4) initializations (``xi_std_<arch>``, ``var_std_<arch>``,
    ``xi_crit_<arch>``, ``var_crit_<arch>``), their ranges over the gated architectures, the
    share of the grid that converged (``conv_<arch>``), and the settings (``cfg_<field>``)."""
    out = {f"cfg_{k}": v for k, v in cfg.to_dict().items()}
    for arch, r in res.items():
        for tag, th in (("std", Theta.standard(arch)), ("crit", Theta.critical(arch))):
            a = analyze(arch, th, cfg.sigma_z, n_s=cfg.n_s, n_iters=cfg.n_iters)
            out[f"xi_{tag}_{arch}"], out[f"var_{tag}_{arch}"] = float(a.xi), float(a.var)
        out[f"conv_{arch}"] = float(np.mean(r["converged"]))
    gated = [a for a in res if a != "vanilla"]
    for key in ("xi_std", "var_std"):
        vals = [out[f"{key}_{a}"] for a in gated]
        out[f"{key}_min"], out[f"{key}_max"] = float(np.nanmin(vals)), float(np.nanmax(vals))
    return out
