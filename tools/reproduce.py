#!/usr/bin/env python
"""Train every run the book's chapters need with an executor, then build the book from the store.

    python tools/reproduce.py --profile paper                          # inline, one after another
    python tools/reproduce.py --profile paper --executor local         # one worker per visible GPU
    python tools/reproduce.py --profile paper --executor slurm --partition gpu --gpus 1 --time-min 240
    python tools/reproduce.py --profile paper --executor slurm --no-wait    # submit and return

It collects the runs the chapters load (rnn_mft.cluster.collect_runs), skips those done in the
results store (complete, verified and agreeing with their names: ResultsStore.check) and those
whose job is running, runs the rest (slurm: one job array through submitit), waits, and then
executes the chapters with the store read-only, as `make figures` does. Broken runs (stored files
that are truncated, incomplete, changed or at odds with their names) are listed with the reason
and trained again, as missing ones are. A failed run, or one still broken, is listed and the
book is not built (exit 1); runs stopped by a time budget are listed and the same command
continues them (exit 0). With RNN_MFT_RESULTS_READONLY set nothing is trained or written: when
every run is done the book is built from the store, else the runs that are not are listed (exit
2). `rnn-mft runs --profile P` shows where each run stands. SLURM settings also come from
RNN_MFT_SLURM_* (README).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _waiting(states: list) -> list:
    """The runs that keep the book from being built: every run not done, except those missing
    only because their data are not available here (the chapter says so itself)."""
    return [s for s in states if s["state"] != "done"
            and not (s["state"] == "missing" and "not available" in s["detail"])]


def main(argv=None) -> int:
    from rnn_mft.cluster import EXECUTORS, SlurmSettings, execute, run_states
    from rnn_mft.settings import export_env
    from rnn_mft.train import ResultsStore

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="paper",
                    help="smoke, ci, cpu or paper (default paper; cpu: Table 2 and Figure 1 only, shown by the ci book)")
    ap.add_argument("--executor", default="inline", choices=EXECUTORS, help="default inline")
    ap.add_argument("--no-wait", action="store_true", help="submit and return; rerun (or make figures) later")
    ap.add_argument("--jobs", type=int, default=None,
                    help="local: worker processes on a machine without GPUs (default: the CPU count); "
                         "with GPUs at most one per visible GPU")
    ap.add_argument("--partition", default=None, help="slurm partition ($RNN_MFT_SLURM_PARTITION)")
    ap.add_argument("--account", default=None, help="slurm account ($RNN_MFT_SLURM_ACCOUNT)")
    ap.add_argument("--qos", default=None, help="slurm quality of service ($RNN_MFT_SLURM_QOS)")
    ap.add_argument("--constraint", default=None,
                    help="slurm node features, e.g. 'a100&ib' ($RNN_MFT_SLURM_CONSTRAINT)")
    ap.add_argument("--slurm-setup", action="append", default=None, metavar="LINE",
                    help="a shell command the job script runs before the job (repeatable, in order; run AS SHELL "
                         "on the cluster); default $RNN_MFT_SLURM_SETUP, one command per line")
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
        export_env(restart=True)                   # $RNN_MFT_RESTART=1, here and in the jobs started here
    export_env(store_smoke=True)                   # a smoke profile run here goes through the store too
    try:
        store = ResultsStore()
        if store.readonly:
            waiting = _waiting(run_states(a.profile, store))
            if waiting:
                print(f"REPRODUCE FAILED: the results store {store.root} is read-only (RNN_MFT_RESULTS_READONLY="
                      f"{os.environ.get('RNN_MFT_RESULTS_READONLY')}): nothing was trained or written, and "
                      f"{len(waiting)} run(s) are not done:\n"
                      + "\n".join(f"  {s['state'].upper():8s} {s['experiment']}/{s['name']}"
                                  + (f": {s['detail']}" if s["detail"] else "") for s in waiting)
                      + "\nunset RNN_MFT_RESULTS_READONLY to train them", file=sys.stderr)
                return 2
            print(f"the results store {store.root} is read-only and holds every run of profile {a.profile}; "
                  f"nothing to train")
            return 0 if a.no_book else _book(a)
        on_slurm = a.executor in ("slurm", "submitit-local")
        slurm = SlurmSettings.from_env(partition=a.partition, gpus=a.gpus, cpus=a.cpus, time_min=a.time_min,
                                       array_parallelism=a.array_parallelism,
                                       budget_min=a.budget_min if on_slurm else None, account=a.account,
                                       qos=a.qos, constraint=a.constraint, setup=a.slurm_setup)
        rep = execute(a.profile, a.executor, wait=not a.no_wait, jobs=a.jobs, slurm=slurm,
                      budget_min=None if on_slurm else a.budget_min, store=store)
    except (ValueError, ImportError) as exc:
        print(f"REPRODUCE FAILED: {exc}", file=sys.stderr)
        return 2
    print(rep.summary())
    if a.no_wait:
        print(f"submitted; `rnn-mft runs --profile {a.profile}` shows progress; rerun this command (it skips "
              f"what is stored) or `make figures PROFILE={a.profile}` once all are done")
        return 0
    bad = rep.by_state("failed") + rep.by_state("broken")
    if bad:
        print(f"\nREPRODUCE FAILED: {len(rep.by_state('failed'))} run(s) failed (logs above) and "
              f"{len(rep.by_state('broken'))} are still broken (reasons above); the book is not built. Fix and "
              f"rerun: stored runs are skipped, killed ones resume from their checkpoints.", file=sys.stderr)
        return 1
    if rep.by_state("missing") or rep.by_state("running"):
        print("\nnot every run is stored yet (see above); rerun the same command to continue")
        if _waiting(rep.states):
            return 0
    if a.no_book:
        return 0
    return _book(a)


def _book(a) -> int:
    """Execute (and render) the chapters of ``a.profile`` from the store, read-only. A stored
    profile that is no book profile (``cpu``) is shown by the ci book instead: nothing is built."""
    from rnn_mft.book import ChapterError, build
    from rnn_mft.experiments import BOOK_PROFILES
    from rnn_mft.settings import export_env
    if a.profile not in BOOK_PROFILES:
        print(f"profile {a.profile} is no book of its own: the ci book shows its stored runs (make book)")
        return 0
    export_env(results_readonly=True)               # as `make figures`: the chapters only read the store
    try:
        build(a.profile, a.build, only=a.only, html=not a.no_html)
    except (ChapterError, ValueError) as exc:
        print(f"\nBOOK BUILD FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
