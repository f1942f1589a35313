"""Figure 3: histograms of the squared singular values of J with empirical and theoretical
mean and standard deviation."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from . import COLORS

__all__ = ["plot", "table"]


def plot(fig3: dict):
    fig, axes = plt.subplots(1, len(fig3), figsize=(3.3 * len(fig3), 2.6))
    for ax, (name, r) in zip(np.atleast_1d(axes), fig3.items()):
        lam = r["lam"]
        ax.hist(lam, 60, density=True, color=COLORS[name] if name in COLORS else "gray", alpha=0.6)
        mu, sd = lam.mean(), lam.std()
        tm, tsd = r["m1"], np.sqrt(max(r["var"], 0.0))
        for x, ls in ((mu, "-"), (mu - sd, "--"), (mu + sd, "--")):
            ax.axvline(x, color=COLORS["sim"], ls=ls, lw=1)
        for x in (tm, tm - tsd, tm + tsd):
            ax.axvline(x, color=COLORS["theory"], ls=":", lw=1.3)
        ax.set_title(f"{name}\nmean {mu:.3g} (theory {tm:.3g})\nsd {sd:.2g} (theory {tsd:.2g})")
        ax.set_xlabel("squared singular value of $J$")
    np.atleast_1d(axes)[0].set_ylabel("density")
    return fig


def table(rows: list) -> str:
    """Markdown table of m1 and m2: simulation, free probability, eq. (14) as printed."""
    out = ["| architecture | $m_1$ sim | $m_1$ theory | $m_2$ sim (± s.e.) | $m_2$ free prob. | $m_2$ eq. (14) printed |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['arch']} | {r['m1_sim']:.4f} | {r['m1_theory']:.4f} | {r['m2_sim']:.4f} ± {r['se']:.4f} "
                   f"| {r['m2_theory']:.4f} | {r['m2_printed']:.4f} |".replace("| nan |", "| n/a |"))
    return "\n".join(out)
