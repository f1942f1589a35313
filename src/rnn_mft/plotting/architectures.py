"""Table 1 rendered from the library's own definitions (Markdown with LaTeX)."""
from __future__ import annotations

from ..theory.architectures import TABLE1

__all__ = ["table1", "checks_table"]


def table1() -> str:
    archs = list(TABLE1)
    head = "| | " + " | ".join(f"{TABLE1[a].name} ({TABLE1[a].citation})" for a in archs) + " |"
    out = [head, "|---" * (len(archs) + 1) + "|"]
    for row, label in (("state", r"$\mathbf{s}^t$"), ("K", "$K$"), ("p", r"$\mathbf{p}$"),
                       ("g", r"$\mathbf{g}_k$"), ("f", r"$\mathbf{f}$")):
        cells = []
        for a in archs:
            v = getattr(TABLE1[a], row)
            cells.append(v if v == "." else f"${v}$")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def checks_table(rows: list) -> str:
    out = ["| architecture | check | max abs. difference |", "|---|---|---|"]
    for r in rows:
        for k, v in r["checks"].items():
            out.append(f"| {r['arch']} | reference_step vs {k} | {v:.1e} |")
    return "\n".join(out)
