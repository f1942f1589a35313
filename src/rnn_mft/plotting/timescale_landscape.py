"""xi and var heatmaps per architecture with the standard and critical initializations marked."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from . import COLORS

__all__ = ["plot"]


def plot(res: dict):
    archs = list(res)
    fig, axes = plt.subplots(2, len(archs), figsize=(2.7 * len(archs), 4.9), squeeze=False)
    for j, arch in enumerate(archs):
        r = res[arch]
        for i, (key, lab) in enumerate((("xi", r"$\log_{10}\xi$"), ("var", r"$\log_{10}\sigma_{JJ^T}$"))):
            ax = axes[i, j]
            v = np.asarray(r[key], float)
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.log10(np.clip(v, 1e-12, 1e12))
            im = ax.pcolormesh(r["x"], r["y"], z.T, shading="nearest", cmap="viridis")
            fig.colorbar(im, ax=ax, label=lab)
            ax.plot(*r["standard"], "o", color="white", mec="k", label="standard (C.5)")
            ax.plot(*r["critical"], "*", color=COLORS["critical"], mec="k", ms=9, label="critical (C.4)")
            ax.set_xlabel(r["xlabel"])
            ax.set_ylabel(r["ylabel"])         # the axes differ between architectures
            if i == 0:
                ax.set_title(arch)
    axes[0, 0].legend(fontsize=6, loc="lower left")
    fig.text(0.5, -0.01, "White cells: the fixed-point solver did not converge there (reported as NaN, "
             "never as a value). Colour scales are clipped at 1e12.", ha="center", fontsize=7)
    return fig
