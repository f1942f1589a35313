"""Figures of the training experiments: Figures 2 and 6 (accuracy over T and alpha with 3xi and
6xi), Figure 1 (accuracy against the sequence length) and Figure 4 (training curves)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from . import COLORS

__all__ = ["plot_trainability", "plot_sequence_length", "plot_training_curves_grid"]


def plot_trainability(maps: dict, overlays: dict, Ts, title: str = ""):
    """``maps[arch]``: accuracy ``(len(Ts), n_alpha)``; ``overlays[arch]``: dict with ``alpha``,
    ``3xi``, ``6xi`` (from :func:`rnn_mft.experiments.training.trainability.overlay`). T on a log axis."""
    archs = list(maps)
    Ts = np.asarray(Ts, float)
    fig, axes = plt.subplots(1, len(archs), figsize=(2.9 * len(archs), 2.8), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        ov = overlays[arch]
        a = np.asarray(ov["alpha"], float)
        acc = np.asarray(maps[arch], float)
        im = ax.pcolormesh(a, Ts, acc, shading="nearest", cmap="viridis", vmin=0.0, vmax=1.0)
        for key, ls in (("3xi", "-"), ("6xi", "--")):
            ax.plot(a, ov[key], ls, color="lime", lw=1.6, label=key.replace("xi", r"$\xi$"))
        ax.set_yscale("log")
        lo, hi = Ts[0] / 1.25, Ts[-1] * 1.25
        ax.set_ylim(lo, hi)
        ax.set_xlim(a[0] - 0.5 * (a[1] - a[0]), a[-1] + 0.5 * (a[1] - a[0]))
        ax.set(xlabel=r"$\alpha$", ylabel="sequence length $T$", title=arch)
        top = ax.secondary_xaxis("top", functions=(lambda x, a=a, m=ov["mu_f"]: np.interp(x, a, m),
                                                   lambda m, a=a, mm=ov["mu_f"]: np.interp(m, mm, a)))
        top.set_xlabel(r"$\mu_f$", fontsize=7)
        top.tick_params(labelsize=6)
    axes[0, 0].legend(loc="upper left", fontsize=7, framealpha=0.7)
    fig.colorbar(im, ax=axes[0, -1], label="training accuracy")
    if title:
        fig.suptitle(title)
    return fig


def plot_sequence_length(Ts, acc: dict, n_out: int = 10, title: str = ""):
    """``acc``: ``{init: accuracy per T}``; chance level marked."""
    fig, ax = plt.subplots(figsize=(4.2, 2.9))
    for name, v in acc.items():
        ax.plot(Ts, v, "o-", color=COLORS.get(name), label=f"{name} init")
    ax.axhline(1 / n_out, color="k", lw=0.8, ls=":", label="chance")
    ax.set_xscale("log")
    ax.set(xlabel="sequence length $T$", ylabel="test accuracy", ylim=(0, 1.02))
    ax.legend(loc="lower left")
    if title:
        ax.set_title(title)
    return fig


def plot_training_curves_grid(panels: dict, rows: list, titles: dict | None = None):
    """``panels[(row, length)]``: ``{init: dict(step, acc, lr)}`` (best lr of each init), drawn as
    one row per task and one column per length; chance is ``1/num_classes`` (``panel["chance"]``)."""
    ncol = max(sum(1 for k in panels if k[0] == r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.7 * ncol, 2.4 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        keys = [k for k in panels if k[0] == row]
        for j, key in enumerate(keys):
            ax = axes[i, j]
            p = panels[key]
            for name, c in p["curves"].items():
                ax.plot(c["step"], c["acc"], color=COLORS.get(name), label=f"{name} (lr {c['lr']:.1e})")
            ax.axhline(p["chance"], color="k", lw=0.8, ls=":")
            ax.set(ylim=(0, 1.02), xlabel="training step", title=(titles or {}).get(key, str(key)))
            if j == 0:
                ax.set_ylabel("training accuracy")
            ax.legend(loc="upper left", fontsize=6)
        for j in range(len(keys), ncol):
            axes[i, j].set_visible(False)
    return fig
