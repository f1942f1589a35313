"""The book's figure style, and where figures are written.

Every chapter draws with :func:`style` applied and saves each figure with :func:`savefig`, which
writes ``<name>.png`` and ``<name>.pdf`` into one figures folder: ``$RNN_MFT_FIGURES_DIR`` when
set (the book build sets it to ``_build/figures``), else ``./figures``.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

from .._io import atomic_write_bytes
from ..settings import current as current_settings

__all__ = ["style", "figures_dir", "savefig", "COLORS"]

#: Colours used consistently across chapters.
COLORS = {"theory": "black", "sim": "tab:red", "tied": "tab:blue", "untied": "tab:red",
          "critical": "tab:green", "standard": "tab:gray", "chrono": "tab:purple"}


def style() -> None:
    """Apply the book's matplotlib style (small, clean, readable in HTML and PDF)."""
    matplotlib.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
        "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
        "axes.spines.top": False, "axes.spines.right": False, "figure.constrained_layout.use": True,
        "pdf.fonttype": 42,
    })


def figures_dir() -> Path:
    env = current_settings().figures_dir          # RNN_MFT_FIGURES_DIR
    d = Path(env if env is not None else "figures")
    d.mkdir(parents=True, exist_ok=True)
    return d


def savefig(fig, name: str) -> list[Path]:
    """Save ``fig`` as ``<figures_dir>/<name>.png`` and ``.pdf`` (atomically) and return the paths."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"figure name {name!r} must be a plain file stem such as 'fig5_gru'")
    out = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext)
        out.append(atomic_write_bytes(figures_dir() / f"{name}.{ext}", buf.getvalue()))
    return out
