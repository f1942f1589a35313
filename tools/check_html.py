#!/usr/bin/env python
"""Check a built book: every page of _toc.yml (chapters, API reference, references), every image
non-empty, no errors in any cell output, API pages with documented objects and links from the
chapters, every cited work listed."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnn_mft.book import check_build


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default="_build", type=Path)
    a = ap.parse_args(argv)
    problems = check_build(a.build)
    for p in problems:
        print(f"HTML CHECK: {p}", file=sys.stderr)
    if problems:
        return 1
    figs = sorted((a.build / "figures").glob("*"))
    print(f"HTML check passed: all pages present (chapters, API reference, references), {len(figs)} figure files non-empty, no errors in outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
