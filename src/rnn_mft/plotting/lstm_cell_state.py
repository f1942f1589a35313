"""Figure 7: histograms of the stationary LSTM cell state, Algorithm 1 against simulation."""
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
        ax.set_title(f"{name}: $\\xi$ = {r['xi']:.2g}")
        ax.set_xlabel("cell state $c$")
    np.atleast_1d(axes)[0].set_ylabel("density")
    np.atleast_1d(axes)[0].legend(frameon=False, loc="upper left", fontsize=7)
    return fig
