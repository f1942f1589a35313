#!/usr/bin/env python
"""Execute the book's chapters with papermill and render them with jupyter-book.

    python tools/build_book.py --profile ci                 # the whole book
    python tools/build_book.py --profile smoke --only gru_signal_propagation
    python tools/build_book.py --profile paper --budget-min 9   # stop (exit 0) after 9 minutes;
                                                                # rerun to continue
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnn_mft.book import ChapterError, build
from rnn_mft.train import CheckpointError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="ci", help="smoke, ci or paper (default ci; cpu is shown by the ci book)")
    ap.add_argument("--build", default="_build", type=Path, help="build folder (default _build)")
    ap.add_argument("--only", action="append", help="execute and render only this chapter (repeatable)")
    ap.add_argument("--no-html", action="store_true", help="execute the chapters but do not render HTML")
    ap.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    ap.add_argument("--budget-min", type=float, default=None,
                    help="time budget in minutes: training checkpoints when it runs out, the build stops "
                         "with exit 0 and says what remains; rerun to continue (default: no budget)")
    ap.add_argument("--restart", action="store_true",
                    help="discard checkpoints that cannot be resumed (corrupt, other settings) and retrain")
    a = ap.parse_args(argv)
    try:
        build(a.profile, a.build, only=a.only, html=not a.no_html, timeout=a.timeout, budget_min=a.budget_min,
              restart=a.restart)
    except (ChapterError, ValueError, CheckpointError) as exc:
        print(f"\nBOOK BUILD FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
