"""The chapter *The LSTM has two states*: xi along the C.4 LSTM line, the paper's A.2.3, the
two-state theory and simulated networks."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from . import COLORS

__all__ = ["plot"]


def plot(res: dict):
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    c = res["curve"]
    ax.plot(c["mu_f"], c["xi_two_state"], color=COLORS["theory"], lw=1.5, label="two-state theory")
    xp = np.where(np.isfinite(c["xi_paper"]), c["xi_paper"], np.nan)
    ax.plot(c["mu_f"], xp, color="0.45", lw=1.0, ls="--", marker=".", ms=3,
            label="paper, A.2.3 (Algorithm 1)")
    rows = [r for r in res["table"] if r["name"].startswith("C.4, mu_f=") and "," not in r["name"][5:]]
    if rows:
        mu = np.array([float(r["name"].split("=")[1]) for r in rows])
        xi = np.array([r["xi_sim"] for r in rows])
        lo = np.array([r["xi_lo"] for r in rows])
        hi = np.array([r["xi_hi"] for r in rows])
        ax.errorbar(mu, xi, yerr=[xi - lo, np.where(np.isfinite(hi), hi, xi) - xi], fmt="o", ms=4,
                    color=COLORS["sim"], capsize=2, label="simulated network (2 SE)")
    ax.set_yscale("log")
    ax.set_xlabel(r"forget-gate bias mean $\mu_f$ (C.4 LSTM)")
    ax.set_ylabel(r"$\xi$ at $\Sigma_z = 1$")
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    return fig
