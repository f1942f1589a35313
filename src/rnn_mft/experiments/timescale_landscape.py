"""The theory half of Figure 2: xi (eq. (9)) and var (Section 4.3) over two hyperparameters per
architecture, with the standard (C.5) and critical (C.4) initializations marked.

Axes: the forget-gate bias mean mu_f and log10 of a common recurrent variance sigma^2 of all
gates (other fields at their standard values, nu^2 from C.5); for the vanilla RNN, sigma_f^2
and log10 nu_f^2. The whole grid is one vectorised call of :func:`rnn_mft.theory.analyze` (for the
LSTM its default, the deterministic two-state theory; ``n_s``/``n_iters`` are kept in the config
for the paper's method but not used).
"""
from __future__ import annotations

import numpy as np

from . import check_profile
from ..theory import ARCHS, Theta, analyze

__all__ = ["config", "run", "grid_for"]


def config(profile: str) -> dict:
    check_profile(profile)
    return {"smoke": dict(n=8, n_lstm=5, n_s=100, n_iters=60, sigma_z=1.0),
            "ci": dict(n=60, n_lstm=16, n_s=300, n_iters=150, sigma_z=1.0),
            "paper": dict(n=200, n_lstm=50, n_s=1000, n_iters=300, sigma_z=1.0)}[profile] | {"profile": profile}


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


def run(cfg: dict) -> dict:
    out = {}
    for arch in ARCHS:
        n = cfg["n_lstm"] if arch == "lstm" else cfg["n"]
        th, xs, ys, xl, yl, std, cr = grid_for(arch, n)
        r = analyze(arch, th, cfg["sigma_z"], n_s=cfg["n_s"], n_iters=cfg["n_iters"])
        out[arch] = dict(xi=r.xi, var=r.var, converged=r.converged, x=xs, y=ys, xlabel=xl, ylabel=yl,
                         standard=std, critical=cr)
    return out
