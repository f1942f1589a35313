"""One budgeted slice of the ``cpu`` profile (Table 2's MNIST row and Figure 1), trained on this
machine's CPU and recorded, so that the profile is trained once, across sessions, and committed.

    nice -n 19 python tools/cpu_slice.py --budget-min 100        # Table 2 first, then Figure 1
    nice -n 19 python tools/cpu_slice.py --budget-min 30 --experiments sequence_length

Every slice trains with one torch thread (``--threads``): the same arithmetic in every slice, on
any machine with the same kernels, and no CPU time lost to threads waiting on each other beside
other work. A slice stopped by SIGTERM or Ctrl-C still records itself (the run resumes from its
last periodic checkpoint).

Each run of ``collect_runs("cpu")`` that is not yet done trains (or resumes from its checkpoint in
``data/checkpoints/cpu/``) until it is done or the budget is spent; a run stopped by the budget
checkpoints, and the next slice, here or in a later session once the checkpoint is committed,
continues it bitwise. Every slice appends one JSON line per run to
``data/cpu_sessions/slices.jsonl``: the run, start and end (UTC), wall and CPU seconds (this
process and its threads), the training step before and after, the commit (and whether the tree
had uncommitted changes), the machine (CPU model, cores, torch threads) and the outcome. Commit
``data/results/cpu/``, ``data/checkpoints/cpu/`` and ``data/cpu_sessions/`` after a slice.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ("unrolled", "sequence_length")        # Table 2 first: its checkpoint is small (2.6 MiB)


def _git() -> dict:
    def out(*cmd):
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"
    changed = out("diff", "HEAD", "--name-only")
    return {"commit": out("rev-parse", "HEAD"), "uncommitted_changes": bool(changed and changed != "unknown")}


def _machine() -> dict:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch
    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}


def _step(ckpt: Path) -> int | None:
    """The training step a checkpoint holds (None: no checkpoint)."""
    if not ckpt.is_file():
        return None
    from rnn_mft.train.checkpoint import load_checkpoint
    return int(load_checkpoint(ckpt)["step"])


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-min", type=float, required=True, help="minutes of training for this slice (> 0)")
    ap.add_argument("--experiments", nargs="+", default=list(ORDER), choices=ORDER,
                    help="which runs, in this order (default: unrolled sequence_length)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as every slice so far)")
    a = ap.parse_args(argv)
    if not a.budget_min > 0:
        ap.error(f"--budget-min={a.budget_min}; allowed: a number of minutes > 0")
    if a.threads < 1:
        ap.error(f"--threads={a.threads}; allowed: an integer >= 1")
    import torch
    torch.set_num_threads(a.threads)
    stopped = []

    def on_term(*_):                                              # unwinds through the record below
        stopped.append(True)
        sys.exit(143)
    signal.signal(signal.SIGTERM, on_term)
    from rnn_mft.cluster import collect_runs, run_unit
    from rnn_mft.train import ResultsStore
    store = ResultsStore()
    log = store.root.parent / "cpu_sessions" / "slices.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + 60 * a.budget_min
    units = collect_runs("cpu", a.experiments)
    units.sort(key=lambda u: a.experiments.index(u.experiment))
    machine, git = _machine(), _git()
    for u in units:
        left = deadline - time.time()
        if left < 30:
            print(f"budget spent; not started: {u.id}")
            continue
        if store.exists("cpu", u.experiment, u.name):            # done: nothing to train, nothing to log
            print(f"{u.id}: done (stored)")
            continue
        ckpt = store.checkpoint_path("cpu", u.experiment, u.name)
        before = _step(ckpt)
        t0, c0 = time.time(), _cpu_s()
        start = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        state = "interrupted"
        print(f"{u.id}: from step {before or 0}, at most {left / 60:.1f} min", flush=True)
        try:
            state = run_unit(u, budget_s=left)["state"]
        except Exception as exc:  # noqa: BLE001 - recorded in the slice log, then raised
            state = ("interrupted by SIGTERM (resumes from its last checkpoint)" if stopped
                     else f"failed: {type(exc).__name__}: {exc}")
            raise
        finally:
            after = _step(ckpt)
            rec = {"run": u.id, "start": start,
                   "end": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                   "wall_s": round(time.time() - t0, 1), "cpu_s": round(_cpu_s() - c0, 1),
                   "step_before": before, "step_after": after, "outcome": state, **git, **machine}
            with open(log, "a") as f:
                f.write(json.dumps(rec) + "\n")
            reached = after if after is not None else "done" if state == "done" else "no checkpoint"
            print(f"  {state}; step {before or 0} -> {reached}; "
                  f"{rec['wall_s'] / 60:.1f} min wall, {rec['cpu_s'] / 60:.1f} CPU min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
