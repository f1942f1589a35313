#!/usr/bin/env python
"""Train every run the book's chapters need with an executor, then build the book from the store.

    python tools/reproduce.py --profile paper                          # inline, one after another
    python tools/reproduce.py --profile paper --executor local         # one worker per visible GPU
    python tools/reproduce.py --profile paper --executor slurm --partition gpu --gpus 1 --time-min 240
    python tools/reproduce.py --profile paper --executor slurm --no-wait    # submit and return

It collects the runs the chapters load (rnn_mft.cluster.collect_runs), skips those already in the
results store and those whose job is running, runs the rest (slurm: one job array through
submitit), waits, and then executes the chapters with the store read-only, as `make figures`
does. A failed run is listed with its log and the book is not built (exit 1); runs stopped by a
time budget are listed and the same command continues them (exit 0). `rnn-mft runs --profile P`
shows where each run stands. SLURM settings also come from RNN_MFT_SLURM_* (README).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv=None) -> int:
    from rnn_mft.cluster import EXECUTORS, SlurmSettings, execute

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="paper", help="smoke, ci or paper (default paper)")
    ap.add_argument("--executor", default="inline", choices=EXECUTORS, help="default inline")
    ap.add_argument("--no-wait", action="store_true", help="submit and return; rerun (or make figures) later")
    ap.add_argument("--jobs", type=int, default=None,
                    help="local: worker processes on a machine without GPUs (default: the CPU count); "
                         "with GPUs at most one per visible GPU")
    ap.add_argument("--partition", default=None, help="slurm partition ($RNN_MFT_SLURM_PARTITION)")
    ap.add_argument("--gpus", type=int, default=None, help="GPUs per job ($RNN_MFT_SLURM_GPUS, default 0)")
    ap.add_argument("--cpus", type=int, default=None, help="CPUs per job ($RNN_MFT_SLURM_CPUS, default 1)")
    ap.add_argument("--time-min", type=int, default=None,
                    help="time limit per job in minutes ($RNN_MFT_SLURM_TIME_MIN, default 60); a longer run "
                         "checkpoints before it and resubmits itself")
    ap.add_argument("--array-parallelism", type=int, default=None,
                    help="jobs of the array at once ($RNN_MFT_SLURM_ARRAY_PARALLELISM, default 64)")
    ap.add_argument("--budget-min", type=float, default=None,
                    help="inline/local: stop training after this many minutes (checkpointed); rerun to continue. "
                         "slurm: each job trains this long, then checkpoints and resubmits itself "
                         "($RNN_MFT_SLURM_BUDGET_MIN; default: the time limit less a margin)")
    ap.add_argument("--restart", action="store_true", help="discard checkpoints that cannot be resumed")
    ap.add_argument("--build", default="_build", type=Path, help="build folder (default _build)")
    ap.add_argument("--no-html", action="store_true", help="execute the chapters but do not render HTML")
    ap.add_argument("--no-book", action="store_true", help="only train; do not build the book")
    ap.add_argument("--only", action="append", help="build only this chapter (repeatable)")
    a = ap.parse_args(argv)

    if a.restart:
        os.environ["RNN_MFT_RESTART"] = "1"
    os.environ["RNN_MFT_STORE_SMOKE"] = "1"        # a smoke profile run here goes through the store too
    try:
        on_slurm = a.executor in ("slurm", "submitit-local")
        slurm = SlurmSettings.from_env(partition=a.partition, gpus=a.gpus, cpus=a.cpus, time_min=a.time_min,
                                       array_parallelism=a.array_parallelism,
                                       budget_min=a.budget_min if on_slurm else None)
        rep = execute(a.profile, a.executor, wait=not a.no_wait, jobs=a.jobs, slurm=slurm,
                      budget_min=None if on_slurm else a.budget_min)
    except (ValueError, ImportError) as exc:
        print(f"REPRODUCE FAILED: {exc}", file=sys.stderr)
        return 2
    print(rep.summary())
    if a.no_wait:
        print(f"submitted; `rnn-mft runs --profile {a.profile}` shows progress; rerun this command (it skips "
              f"what is stored) or `make figures PROFILE={a.profile}` once all are done")
        return 0
    if rep.by_state("failed"):
        print(f"\nREPRODUCE FAILED: {len(rep.by_state('failed'))} run(s) failed (logs above); the book is not "
              f"built. Fix and rerun: stored runs are skipped, killed ones resume from their checkpoints.",
              file=sys.stderr)
        return 1
    if rep.by_state("missing") or rep.by_state("running"):
        print("\nnot every run is stored yet (see above); rerun the same command to continue")
        missing_only_data = all("not available" in s["detail"] for s in rep.by_state("missing"))
        if not missing_only_data or rep.by_state("running"):
            return 0
    if a.no_book:
        return 0
    from rnn_mft.book import ChapterError, build
    os.environ["RNN_MFT_RESULTS_READONLY"] = "1"    # as `make figures`: the chapters only read the store
    try:
        build(a.profile, a.build, only=a.only, html=not a.no_html)
    except (ChapterError, ValueError) as exc:
        print(f"\nBOOK BUILD FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
