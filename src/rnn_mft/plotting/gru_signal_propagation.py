"""Figure 5: C^t of the GRU (theory against untied and tied simulations) and C* against mu_f."""
from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from . import COLORS

if TYPE_CHECKING:
    from ..experiments.theory_chapters.gru_signal_propagation import GRUSignalConfig

__all__ = ["plot_figure5"]


def plot_figure5(res: dict, cfg: GRUSignalConfig):
    """Two rows (dynamics, fixed point) and two columns (untied, tied), as the paper's Figure 5."""
    fig, axes = plt.subplots(2, 2, figsize=(8.0, 5.6), sharey="row")
    shades = plt.cm.Reds(np.linspace(0.45, 0.95, len(res["mu_f"])))
    for col, key in enumerate(("untied", "tied")):
        ax = axes[0, col]
        for j, m in enumerate(res["mu_f"]):
            mean, sem = res[f"{key}_c"][:, j], res[f"{key}_c_sem"][:, j]
            ax.plot(res["t"], mean, color=shades[j], lw=1.6, label=f"simulation, $\\mu_f={m:g}$")
            if np.all(np.isfinite(sem)):
                ax.fill_between(res["t"], mean - 2 * sem, mean + 2 * sem, color=shades[j], alpha=0.25, lw=0)
            ax.plot(res["t"], res["theory_c"][:, j], ls="--", color=COLORS["theory"], lw=1.1,
                    label="mean-field theory" if j == 0 else None)
        ax.axvline(cfg.t_switch, color="0.6", lw=0.8, ls=":")
        n, seeds = (cfg.N_tied, cfg.tied_seeds) if key == "tied" else (cfg.N, cfg.n_seeds)
        ax.set_title(f"{key} weights, N = {n}, {seeds} seeds")
        ax.set_xlabel("time step $t$")
        ax.set_ylim(-0.05, 1.05)
        ax = axes[1, col]
        ax.plot(res["fp_grid"], res["fp_theory"], ls="--", color=COLORS["theory"], lw=1.1,
                label="mean-field fixed point $C^*$")
        sem = res[f"fp_{key}_sem"]
        ax.errorbar(res["fp_mu_f"], res[f"fp_{key}"], yerr=2 * np.nan_to_num(sem), fmt="o", ms=4,
                    color=COLORS["sim"], label="simulation (time average)")
        ax.set_xlabel("forget-gate bias mean $\\mu_f$")
        ax.set_title(f"{key}: fixed point at $\\Sigma_z = {cfg.fp_sigma_z:g}$")
    axes[0, 0].set_ylabel("correlation $C_s^t$")
    axes[1, 0].set_ylabel("$C_s^*$")
    axes[0, 0].legend(loc="lower right", fontsize=7)
    axes[1, 0].legend(loc="best", fontsize=7)
    return fig
