"""Train a budgeted slice of Figures 2 and 6 (trainability) and write what came out, with
provenance, under ``--out``.

The ensembles of :func:`rnn_mft.experiments.training.trainability.ensembles` run one after another: the
tied ones first (Figure 6: one whole-figure ensemble per architecture), then the untied groups
of Figure 2. No new ensemble starts once ``--budget-min`` minutes have passed since the start,
and the one in training stops at that deadline: the engine reads ``RNN_MFT_DEADLINE`` (exported
here), checkpoints and raises ``BudgetExhausted``, recorded as "stopped at the budget". With
profile ``paper`` that checkpoint is kept (``data/checkpoints/paper/``, or
``$RNN_MFT_CHECKPOINTS``), so running the slice again on the same disk resumes it.

``--finish-or-skip`` (what ``tools/gpu_run.sh`` passes on a lent GPU, whose disk is gone after
the call and whose outputs come back through a narrow door: a paper-scale ensemble's checkpoint
is 1-36 GiB) exports ``RNN_MFT_FINISH_BY_DEADLINE=1``: an ensemble times its first steps and, if
it would not finish before the deadline, stops at once without a checkpoint ("skipped: would not
finish", with the measured seconds per step), and the slice goes on with the next one, which may
fit. Either way every ensemble that ran records its measured seconds per training step.

Results: ``ci``/``paper`` runs go to the results store (``$RNN_MFT_RESULTS``, default
``<out>/results``); every profile also writes ``<out>/slice.json`` (per ensemble: status, wall
time, final training accuracy per member) and ``<out>/provenance.json`` (git commit, device and
GPU name, torch version, start and end time, budget).

    python tools/gpu_slice.py --budget-min 60 [--profile paper] [--out _build/gpu_out]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _write(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    tmp.replace(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-min", type=float, required=True, help="start no new ensemble after this many minutes")
    ap.add_argument("--profile", default="paper", help="smoke, ci or paper (default paper)")
    ap.add_argument("--out", default=os.environ.get("OUT", "_build/gpu_out"), help="output folder")
    ap.add_argument("--archs", nargs="*", help="only these architectures")
    ap.add_argument("--finish-or-skip", action="store_true",
                    help="skip (without a checkpoint) an ensemble that would not finish before the deadline")
    a = ap.parse_args(argv)
    if not a.budget_min > 0:
        ap.error(f"--budget-min={a.budget_min}; allowed: a positive number of minutes")
    if a.profile not in ("smoke", "ci", "paper"):
        ap.error(f"--profile={a.profile!r}; allowed: smoke, ci, paper")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RNN_MFT_RESULTS", str(out / "results"))
    t0 = time.time()
    deadline = t0 + 60 * a.budget_min
    os.environ["RNN_MFT_DEADLINE"] = str(int(deadline))
    if a.finish_or_skip:
        os.environ["RNN_MFT_FINISH_BY_DEADLINE"] = "1"

    import torch

    from rnn_mft.experiments.training import trainability
    from rnn_mft.train import BudgetExhausted
    from rnn_mft.train.ensembles import format_bytes
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    prov = {"git_commit": _git_commit(), "device": dev,
            "gpu": torch.cuda.get_device_name(0) if dev == "cuda" else None, "torch": torch.__version__,
            "profile": a.profile, "budget_min": a.budget_min, "finish_or_skip": a.finish_or_skip,
            "results_store": os.environ["RNN_MFT_RESULTS"],
            "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)), "end": None}
    _write(out / "provenance.json", prov)
    plan = []
    for tied in (True, False):
        cfg = trainability.config(a.profile, tied=tied)
        for e in trainability.ensembles(cfg):
            if a.archs and e["arch"] not in a.archs:
                continue
            plan.append((cfg, e))
    report = []
    for cfg, e in plan:
        name = f"{'tied' if e['tied'] else 'untied'} {e['arch']} T={','.join(map(str, e['Ts']))}"
        if time.time() >= deadline:
            print(f"not started (budget of {a.budget_min:g} min spent): {name}", flush=True)
            report.append(dict(ensemble=name, status="not started: budget spent"))
            continue
        print(f"training {name}: {e['members']} members, {e['steps']} steps, memory estimate "
              f"{format_bytes(e['bytes']['total'])}", flush=True)
        ts = time.time()
        extra = {}
        try:
            res = trainability.run_group(cfg, e["arch"], e["Ts"])
            status = "done"
        except BudgetExhausted as exc:
            res = None
            if exc.projected_s is not None:                # finish or skip: nothing saved, go on with the next
                status = f"skipped: {' '.join(str(exc).split())}"
                extra = dict(s_per_step=exc.step_s, projected_s=exc.projected_s, left_s=exc.left_s)
            else:                                          # checkpointed; the next slice resumes it
                status = f"stopped at the budget: {' '.join(str(exc).split())}"
            print(f"  {status}", flush=True)
        except Exception as exc:                           # noqa: BLE001 (record it, go on with the next)
            res, status = None, f"failed: {type(exc).__name__}: {exc}"
            print(f"  {status}", flush=True)
        row = dict(ensemble=name, status=status, wall_s=time.time() - ts, members=e["members"], steps=e["steps"],
                   memory_estimate_bytes=e["bytes"]["total"], **extra)
        if res is not None:
            row["train_acc"] = {str(T): r.final["eval_acc"] for T, r in res.items()}
            meta = next(iter(res.values())).meta
            row["train_wall_s"] = meta.get("wall_time_s")
            row["s_per_step"] = (meta.get("wall_time_s") or 0.0) / max(1, meta.get("steps_run") or e["steps"])
            row["device"] = meta.get("device")
            print(f"  done in {row['wall_s']:.0f} s; training accuracy per T (mean over alpha): "
                  + ", ".join(f"T={T}: {sum(v) / len(v):.2f}" for T, v in row["train_acc"].items()), flush=True)
        report.append(row)
        _write(out / "slice.json", report)
    prov["end"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    prov["wall_min"] = (time.time() - t0) / 60
    prov["ensembles_done"] = sum(r["status"] == "done" for r in report)
    prov["ensembles_skipped"] = sum(r["status"].startswith("skipped") for r in report)
    prov["ensembles_planned"] = len(report)
    _write(out / "slice.json", report)
    _write(out / "provenance.json", prov)
    print(f"slice: {prov['ensembles_done']} of {len(report)} ensembles done in {prov['wall_min']:.1f} min; "
          f"written to {out}", flush=True)
    return 0 if all(not r["status"].startswith("failed") for r in report) else 1


if __name__ == "__main__":
    sys.exit(main())
