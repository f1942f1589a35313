"""Figure 7: histograms of the stationary LSTM cell state, Algorithm 1 against simulation, and the
two-state theory's deterministic law (a curve)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from . import COLORS

__all__ = ["plot"]


def plot(res: dict):
    fig, axes = plt.subplots(1, len(res), figsize=(3.2 * len(res), 2.6))
    for ax, (name, r) in zip(np.atleast_1d(axes), res.items()):
        lo, hi = np.percentile(np.concatenate([r["theory"], r["sim"]]), [0.2, 99.8])
        bins = np.linspace(lo, hi, 60)
        ax.hist(r["sim"], bins, density=True, color=COLORS["sim"], alpha=0.45, label="simulated LSTM (untied)")
        ax.hist(r["theory"], bins, density=True, histtype="step", color=COLORS["theory"], lw=1.3,
                label="Algorithm 1 samples")
        if "grid_c" in r:
            c, p = r["grid_c"], r["grid_p"]
            dc = np.gradient(c)                  # the grid law's weight per unit length
            keep = (c > lo) & (c < hi)
            ax.plot(c[keep], (p / dc)[keep], color="k", lw=0.9, ls="--", label="two-state theory (grid)")
        ax.set_title(f"{name}: $\\xi$ = {r.get('xi_two_state', r['xi']):.2g}")
        ax.set_xlabel("cell state $c$")
    np.atleast_1d(axes)[0].set_ylabel("density")
    np.atleast_1d(axes)[0].legend(frameon=False, loc="upper left", fontsize=7)
    return fig
