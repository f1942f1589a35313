"""Training curves (loss and held-out accuracy) of several runs side by side."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from . import COLORS

__all__ = ["plot_training_curves"]


def plot_training_curves(results: dict, n_out: int, title: str = ""):
    """``results``: ``{name: RunResult}`` (member 0 of each); names are looked up in :data:`COLORS`."""
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.8))
    for name, r in results.items():
        color = COLORS.get(name, COLORS["standard"] if name == "default" else None)
        loss = r.curves["train_loss"][:, 0]
        w = max(1, len(loss) // 25)
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
        axes[0].plot(np.arange(len(smooth)) + w, smooth, color=color, label=f"{name} init")
        axes[1].plot(r.curves["eval_step"], r.curves["eval_acc"][:, 0], "o-", ms=3, color=color, label=f"{name} init")
    axes[0].axhline(np.log(n_out), color="k", lw=0.8, ls=":", label="chance")
    axes[1].axhline(1 / n_out, color="k", lw=0.8, ls=":", label="chance")
    axes[0].set(xlabel="training step", ylabel="training loss (running mean)")
    axes[1].set(xlabel="training step", ylabel="held-out accuracy", ylim=(0, 1.02))
    axes[1].legend(loc="upper left")
    if title:
        fig.suptitle(title)
    return fig
