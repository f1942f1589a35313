"""Train a budgeted slice of the paper profile's runs and write what came out, with provenance,
under ``--out``.

The runs go in the order of issue 13: Figures 6 and 2 (trainability: the tied whole-figure
ensembles first, one per architecture, then the untied groups), Figure 1 (sequence_length),
Table 2 (unrolled: MNIST; CIFAR-10 is recorded as unavailable where its data cannot be had) and
Figure 4 (training_curves); ``--experiments`` picks and orders them. A run that the results
store already holds is not trained again (recorded as "stored"), so the same command on the
next GPU continues where the last one stopped. No new run starts once ``--budget-min`` minutes
have passed since the start, and the one in training stops at that deadline: the engine reads
``RNN_MFT_DEADLINE`` (exported here), checkpoints and raises ``BudgetExhausted``, recorded as
"stopped at the budget". With profile ``paper`` that checkpoint is kept
(``data/checkpoints/paper/``, or ``$RNN_MFT_CHECKPOINTS``), so running the slice again on the
same disk resumes it.

``--finish-or-skip`` (what ``tools/gpu_run.sh`` passes on a lent GPU, whose disk is gone after
the call and whose outputs come back through a narrow door: a paper-scale ensemble's checkpoint
is up to 36 GiB) sets ``RNN_MFT_FINISH_BY_DEADLINE=1`` for each run: it times its first steps
and, if it would not finish before the deadline, stops at once without a checkpoint ("skipped:
would not finish", with the measured seconds per step), and the slice goes on with the next one,
which may fit. With ``--checkpoint-mib X`` a run whose checkpoint is at most X MiB (small enough
to come back through that door and to travel with the repository: Figure 4's panels) instead
stops at the deadline with a checkpoint, as without ``--finish-or-skip``; ``tools/gpu_pack.py``
brings it back, it is committed under ``data/checkpoints/paper/``, and the next session resumes
it. A run that an earlier session (``--sessions``, default ``data/gpu_sessions``: the
``slice.json`` files that ``tools/gpu_pack.py unpack`` commits) measured on the same GPU model
is skipped without starting when its steps at that speed would not finish in the time left
("skipped: measured earlier"), so a lent GPU's minutes are not spent probing it again. Either
way every run that trained records its measured seconds per training step.

Results: ``ci``/``paper`` runs go to the results store (``$RNN_MFT_RESULTS``, default
``<out>/results``); every profile also writes ``<out>/slice.json`` (per run: its stored name,
status, wall time, final accuracy per member) and ``<out>/provenance.json`` (git commit, device
and GPU name, torch version, start and end time, budget).

    python tools/gpu_slice.py --budget-min 60 [--profile paper] [--out _build/gpu_out]
           [--experiments trainability sequence_length unrolled training_curves] [--archs gru ...]
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


def _git_changes() -> dict:
    """What the working tree changes against the commit (tracked files only): the files and a
    SHA-256 of ``git diff HEAD``, so that a session run from an uncommitted tree says so."""
    import hashlib
    here = Path(__file__).resolve().parent
    try:
        files = subprocess.run(["git", "diff", "HEAD", "--name-only"], capture_output=True, text=True, check=True,
                               cwd=here).stdout.split()
        diff = subprocess.run(["git", "diff", "HEAD"], capture_output=True, check=True, cwd=here).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"git_changed_files": "unknown"}
    return {"git_changed_files": files, "git_diff_sha256": hashlib.sha256(diff).hexdigest() if files else None}


def _write(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    tmp.replace(path)


#: the order of issue 13: Figures 2 and 6, Figure 1, Table 2, Figure 4
EXPERIMENTS = ("trainability", "sequence_length", "unrolled", "training_curves")
MARGIN = 1.15            # what the engine's finish-or-skip projection allows (rnn_mft.train.engine)


def plan(profile: str, experiments=EXPERIMENTS, archs=None) -> list[tuple]:
    """``(module, unit, ensemble)`` of every run of ``experiments`` at ``profile``, in that order
    (trainability: tied first); ``unit`` as ``units(profile)`` lists it, ``ensemble`` its shapes
    and steps as ``ensembles(cfg)`` does. ``archs`` filters Figures 2 and 6."""
    import importlib
    out = []
    for name in experiments:
        mod = importlib.import_module(f"rnn_mft.experiments.training.{name}")
        units = mod.units(profile)
        if name == "trainability":
            ens = [e for tied in (False, True) for e in mod.ensembles(mod.config(profile).replace(tied=tied))]
        else:
            ens = mod.ensembles(mod.config(profile))
        if len(ens) != len(units):
            raise RuntimeError(f"{name}: {len(units)} units but {len(ens)} ensembles at profile {profile}")
        rows = list(zip(units, ens))
        for u, e in rows:                              # the two listings go in step
            if u["args"] and isinstance(u["args"][-1], list) and sorted(e["Ts"]) != u["args"][-1]:
                raise RuntimeError(f"{name}: unit {u['name']} paired with the ensemble of T={e['Ts']}")
        if name == "trainability":
            tied = [r for r in rows if r[0]["config"].get("tied")]
            rows = tied + [r for r in rows if not r[0]["config"].get("tied")]
            if archs:
                rows = [r for r in rows if r[0]["args"][0] in archs]
        out += [(mod, u, e) for u, e in rows]
    return out


def label(u: dict, e: dict) -> str:
    """A short readable name of a run (its stored name without the settings hash)."""
    if u["experiment"] == "trainability":
        return f"{'tied' if e['tied'] else 'untied'} {e['arch']} T={','.join(map(str, e['Ts']))}"
    from rnn_mft.experiments.training.common import short_name
    return f"{u['experiment']} {short_name(u['name'])}"


def measured_speeds(sessions: Path, gpu: str | None) -> dict:
    """``{run name: (seconds per training step, session folder)}`` from the ``slice.json`` of
    earlier sessions under ``sessions`` on the GPU model ``gpu`` (the newest measurement wins)."""
    out = {}
    if not gpu or not sessions.is_dir():
        return out
    for f in sorted(sessions.glob("*/slice.json")):
        try:
            prov = json.loads((f.parent / "provenance.json").read_text())
            rows = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if prov.get("gpu") != gpu:
            continue
        for r in rows:
            if r.get("run") and r.get("s_per_step"):
                out[r["run"]] = (float(r["s_per_step"]), f.parent.name)
    return out


def _outcome(res):
    """``(status, {key: final accuracy per member})`` of what a unit's call returned: ``{T:
    RunResult}`` (Figures 1, 2, 6), a ``RunResult`` (Figure 4) or ``(RunResult or None, reason)``
    (Table 2)."""
    if isinstance(res, tuple) and len(res) == 2:
        if res[0] is None:
            return f"unavailable: {res[1]}", None
        res = res[0]
    if isinstance(res, dict):
        return "done", {str(k): r for k, r in res.items()}
    return "done", {"all": res}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-min", type=float, required=True, help="start no new run after this many minutes")
    ap.add_argument("--profile", default="paper", help="smoke, ci or paper (default paper)")
    ap.add_argument("--out", default=os.environ.get("OUT", "_build/gpu_out"), help="output folder")
    ap.add_argument("--experiments", nargs="*", default=list(EXPERIMENTS),
                    help=f"which training experiments, in this order (default: {' '.join(EXPERIMENTS)})")
    ap.add_argument("--archs", nargs="*", help="only these architectures (Figures 2 and 6)")
    ap.add_argument("--sessions", default="data/gpu_sessions",
                    help="earlier sessions' slice.json (their measured speeds; default data/gpu_sessions)")
    ap.add_argument("--finish-or-skip", action="store_true",
                    help="skip (without a checkpoint) a run that would not finish before the deadline")
    ap.add_argument("--checkpoint-mib", type=float, default=0.0,
                    help="with --finish-or-skip: a run whose checkpoint is at most this many MiB stops at the "
                         "deadline with a checkpoint instead (default 0: none does)")
    a = ap.parse_args(argv)
    if not a.checkpoint_mib >= 0:
        ap.error(f"--checkpoint-mib={a.checkpoint_mib}; allowed: 0 or more MiB")
    if not a.budget_min > 0:
        ap.error(f"--budget-min={a.budget_min}; allowed: a positive number of minutes")
    from rnn_mft.experiments import PROFILES
    if a.profile not in PROFILES:
        ap.error(f"--profile={a.profile!r}; allowed: {', '.join(PROFILES)}")
    bad = [e for e in a.experiments if e not in EXPERIMENTS]
    if bad or not a.experiments:
        ap.error(f"--experiments {' '.join(bad) or '(none)'}; allowed: one or more of {', '.join(EXPERIMENTS)}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RNN_MFT_RESULTS", str(out / "results"))
    t0 = time.time()
    deadline = t0 + 60 * a.budget_min
    os.environ["RNN_MFT_DEADLINE"] = str(int(deadline))
    from rnn_mft import settings
    settings.reload()                                  # this process reads the two variables just set

    import torch

    from rnn_mft.train import BudgetExhausted, ResultsStore
    from rnn_mft.train.ensembles import checkpoint_bytes_of, format_bytes
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = torch.cuda.get_device_name(0) if dev == "cuda" else None
    prov = {"git_commit": _git_commit(), **_git_changes(), "device": dev, "gpu": gpu, "torch": torch.__version__,
            "profile": a.profile, "budget_min": a.budget_min, "finish_or_skip": a.finish_or_skip,
            "checkpoint_mib": a.checkpoint_mib,
            "experiments": list(a.experiments), "results_store": os.environ["RNN_MFT_RESULTS"],
            "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)), "end": None}
    _write(out / "provenance.json", prov)
    speeds = measured_speeds(Path(a.sessions), gpu) if a.finish_or_skip else {}
    store = ResultsStore()
    if store.readonly:
        print("gpu_slice: RNN_MFT_RESULTS_READONLY is set, and this tool trains into the results store; nothing "
              "was trained (unset it to train)", file=sys.stderr)
        return 2
    report = []
    for mod, u, e in plan(a.profile, a.experiments, a.archs):
        name = label(u, e)
        base = dict(ensemble=name, run=u["name"], experiment=u["experiment"], members=e["members"], steps=e["steps"])
        if store.exists(u["profile"], u["experiment"], u["name"]):
            print(f"stored already: {name}", flush=True)
            report.append(dict(base, status="stored"))
            continue
        ck = checkpoint_bytes_of(e)
        # finish or skip, unless the run's checkpoint is small enough to come back and travel
        skip_mode = a.finish_or_skip and ck > a.checkpoint_mib * 2**20
        base.update(checkpoint_bytes=ck, mode="finish or skip" if skip_mode else "checkpoint at the deadline")
        left = deadline - time.time()
        if left <= 0:
            print(f"not started (budget of {a.budget_min:g} min spent): {name}", flush=True)
            report.append(dict(base, status="not started: budget spent"))
            continue
        if skip_mode and u["name"] in speeds:
            sps, where = speeds[u["name"]]
            need = MARGIN * sps * e["steps"]
            if need > left:
                status = (f"skipped: measured earlier ({sps:.3g} s per step on {gpu}, session {where}): "
                          f"{e['steps']} steps need {need / 60:.1f} min, {left / 60:.1f} min left")
                print(f"{name}: {status}", flush=True)
                report.append(dict(base, status=status, s_per_step=sps, projected_s=need, left_s=left))
                _write(out / "slice.json", report)
                continue
        mem = (e.get("bytes") or {}).get("total")
        print(f"training {name}: {e['members']} members, {e['steps']} steps"
              + (f", memory estimate {format_bytes(mem)}" if mem else "")
              + ("" if skip_mode or not a.finish_or_skip else f"; checkpoint {format_bytes(ck)}: stops at the "
                 "deadline with it"), flush=True)
        ts = time.time()
        extra, results = {}, None
        try:
            cfg = mod.config(a.profile).replace(**u["config"])
            with settings.override(finish_by_deadline=skip_mode):
                status, results = _outcome(u["fn"](cfg, *u["args"]))
        except BudgetExhausted as exc:
            if exc.projected_s is not None:                # finish or skip: nothing saved, go on with the next
                status = f"skipped: {' '.join(str(exc).split())}"
                extra = dict(s_per_step=exc.step_s, projected_s=exc.projected_s, left_s=exc.left_s)
            else:                                          # checkpointed; the next slice resumes it
                status = f"stopped at the budget: {' '.join(str(exc).split())}"
            print(f"  {status}", flush=True)
        except Exception as exc:                           # noqa: BLE001 (record it, go on with the next)
            status = f"failed: {type(exc).__name__}: {exc}"
            print(f"  {status}", flush=True)
        row = dict(base, status=status, wall_s=time.time() - ts, memory_estimate_bytes=mem, **extra)
        if results:
            row["final_acc"] = {k: r.final["eval_acc"] for k, r in results.items()}
            meta = next(iter(results.values())).meta
            row["train_wall_s"] = meta.get("wall_time_s")
            row["s_per_step"] = (meta.get("wall_time_s") or 0.0) / max(1, meta.get("steps_run") or e["steps"])
            row["device"] = meta.get("device")
            print(f"  done in {row['wall_s']:.0f} s; final accuracy (mean over members): "
                  + ", ".join(f"{k}: {sum(v) / len(v):.2f}" for k, v in row["final_acc"].items()), flush=True)
        elif status.startswith("unavailable"):
            print(f"  {status}", flush=True)
        report.append(row)
        _write(out / "slice.json", report)
        results = None
        if dev == "cuda":                                  # the next ensemble may need most of the memory
            import gc
            gc.collect()
            torch.cuda.empty_cache()
    prov["end"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    prov["wall_min"] = (time.time() - t0) / 60
    for key, what in (("done", "done"), ("stored_before", "stored"), ("skipped", "skipped"),
                      ("unavailable", "unavailable")):
        prov[f"runs_{key}"] = sum(r["status"].startswith(what) for r in report)
    prov["runs_planned"] = len(report)
    _write(out / "slice.json", report)
    _write(out / "provenance.json", prov)
    print(f"slice: {prov['runs_done']} of {len(report)} runs done in {prov['wall_min']:.1f} min "
          f"({prov['runs_stored_before']} stored before, {prov['runs_skipped']} skipped); written to {out}", flush=True)
    return 0 if all(not r["status"].startswith("failed") for r in report) else 1


if __name__ == "__main__":
    sys.exit(main())
