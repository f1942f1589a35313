"""The runs a profile's chapters need, how one of them is run as a job, and where each one stands.

* :func:`collect_runs`: every stored run the training chapters load at a profile, from each
  training experiment's ``units(profile)`` (plain JSON: experiment, run name, and the call that
  trains it), without training anything;
* :func:`run_unit`: what one job does: train (or find already stored) one run, under an
  exclusive lock on the run (two jobs never write the same run), with a status record beside the
  store saying running / failed (with the log and the error) / stopped by its time budget; in a
  read-only store (``$RNN_MFT_RESULTS_READONLY``) it trains nothing and fails, saying so;
* :func:`run_states`: each run of a profile as ``done``, ``running``, ``failed``, ``broken`` or
  ``missing`` (``rnn-mft runs``).

The results store is the only meeting point: a run is done when its files are complete, verified
and agree with its name (:meth:`rnn_mft.train.ResultsStore.check`, the verdict the book's
``load_or_run`` goes by too); a run with files that are not is broken, and a job trains it again.
Status records and locks live in ``<jobs>/<profile>/`` (``$RNN_MFT_JOBS``, default ``data/jobs``
beside ``data/results``; a file in its place is an error naming it).
"""
from __future__ import annotations

import fcntl
import importlib
import json
import os
import socket
import subprocess
import time
import traceback
from pathlib import Path

from .._io import atomic_write_text, check_folder
from ..experiments import check_profile
from ..experiments.protocol import ProfileNotDeclared
from ..train.jobenv import environ

__all__ = ["TRAINING_EXPERIMENTS", "STATES", "collect_runs", "run_unit", "run_states", "jobs_dir", "UnitFailed",
           "unit_id", "read_status", "write_status"]

#: the training experiments whose runs go through the results store (module names in
#: :mod:`rnn_mft.experiments.training`)
TRAINING_EXPERIMENTS = ("sequence_length", "trainability", "training_curves", "unrolled", "critical_init_your_model")

#: the states of :func:`run_states`, in the order reports count them
STATES = ("done", "running", "failed", "broken", "missing")


def _module(name: str):
    """The module of a unit. Units recorded before the training experiments moved into
    :mod:`rnn_mft.experiments.training` name ``rnn_mft.experiments.<experiment>``; they still run."""
    old = "rnn_mft.experiments."
    if name.startswith(old) and name[len(old):] in TRAINING_EXPERIMENTS:
        name = f"rnn_mft.experiments.training.{name[len(old):]}"
    return importlib.import_module(name)


class UnitFailed(RuntimeError):
    """A run raised; the message names the run, the error and the log."""


def jobs_dir(profile: str, store=None) -> Path:
    """``$RNN_MFT_JOBS/<profile>`` or ``<results root>/../jobs/<profile>``: status records, locks,
    logs and submitit's folder."""
    from ..train import ResultsStore
    check_profile(profile)
    env = os.environ.get("RNN_MFT_JOBS")
    if env:
        return check_folder(env, "RNN_MFT_JOBS") / profile
    return (store or ResultsStore()).root.parent / "jobs" / profile


def unit_id(u: dict) -> str:
    return f"{u['experiment']}/{u['name']}"


def collect_runs(profile: str, experiments=None) -> list[dict]:
    """Every run (a ``unit`` dict) that the training chapters
    load at ``profile``, once each, in chapter order. ``experiments``: a subset of
    :data:`TRAINING_EXPERIMENTS`."""
    check_profile(profile)
    names = TRAINING_EXPERIMENTS if experiments is None else tuple(experiments)
    unknown = [e for e in names if e not in TRAINING_EXPERIMENTS]
    if unknown:
        raise ValueError(f"experiment {unknown[0]!r}; allowed: {', '.join(TRAINING_EXPERIMENTS)}")
    out, seen = [], set()
    for e in names:
        mod = _module(f"rnn_mft.experiments.training.{e}")
        try:
            units = mod.units(profile)
        except ProfileNotDeclared:              # an optional profile (cpu) this chapter does not have
            continue
        for u in units:
            if unit_id(u) not in seen:          # one job per run: two jobs never write the same run
                seen.add(unit_id(u))
                out.append(u)
    return out


# ----------------------------------------------------------------------------- status records

def _status_path(u: dict, store=None) -> Path:
    return jobs_dir(u["profile"], store) / "status" / u["experiment"] / f"{u['name']}.json"


def _lock_path(u: dict, store=None) -> Path:
    return jobs_dir(u["profile"], store) / "locks" / u["experiment"] / f"{u['name']}.lock"


def write_status(u: dict, state: str, store=None, **info) -> None:
    """Record ``state`` (``queued``, ``running``, ``failed``, ``budget``, ``unavailable``, ``done``)."""
    p = _status_path(u, store)
    p.parent.mkdir(parents=True, exist_ok=True)
    rec = dict(info, state=state, run=unit_id(u), time=time.strftime("%Y-%m-%dT%H:%M:%S"))
    atomic_write_text(p, json.dumps(rec, indent=1, sort_keys=True) + "\n")


def read_status(u: dict, store=None) -> dict | None:
    p = _status_path(u, store)
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _lock_held(u: dict, store=None) -> bool:
    """Some process holds the run's lock (a job is training it right now, on this file system)."""
    p = _lock_path(u, store)
    if not p.exists():
        return False
    with open(p, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def _slurm_alive(job_id: str) -> bool | None:
    """Is SLURM job ``job_id`` pending or running? None when squeue cannot tell."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True,
                             timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return False if "Invalid job id" in out.stderr else None
    return any(s.strip() in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
                             "RESIZING", "REQUEUE_HOLD", "REQUEUE_FED") for s in out.stdout.splitlines())


def _alive(rec: dict, u: dict, store=None) -> bool:
    if _lock_held(u, store):
        return True
    if rec.get("host") == socket.gethostname() and rec.get("pid"):
        try:
            os.kill(int(rec["pid"]), 0)
            return True
        except (OSError, ValueError):
            return False
    if rec.get("slurm_job_id"):
        alive = _slurm_alive(rec["slurm_job_id"])
        return True if alive is None else alive
    return False


def run_states(profile: str, store=None, units: list | None = None) -> list[dict]:
    """Each run of ``profile``: ``dict(experiment, name, state, detail, log)`` with ``state`` one
    of :data:`STATES`: ``done`` (complete and verified in the store,
    :meth:`~rnn_mft.train.ResultsStore.check`), ``running`` (queued or training: its job is
    alive), ``failed`` (raised, or its job ended without a result: killed, cancelled, out of
    memory; ``detail`` names the log), ``broken`` (files in the store that are not a complete run
    of this name: ``detail`` names the file and what is wrong; ``tools/reproduce.py`` trains it
    again) and ``missing`` (never submitted, stopped by its time budget, or its data are not
    available here)."""
    from ..train import ResultsStore
    store = store or ResultsStore()
    out = []
    for u in (collect_runs(profile) if units is None else units):
        rec = read_status(u, store) or {}
        log = rec.get("log")
        stored = store.check(profile, u["experiment"], u["name"])
        queued = rec.get("state") in ("queued", "running")
        if stored.state == "done":
            state, detail = "done", ""
        elif queued and _alive(rec, u, store):
            state, detail = "running", f"{rec['state']}" + (f", job {rec['job_id']}" if rec.get("job_id") else "")
        elif stored.state == "broken":
            state, detail = "broken", stored.reason
        elif queued:
            state = "failed"
            detail = (f"its job {rec.get('job_id', '?')} ended without a result (killed, cancelled or out of "
                      f"memory); log: {log or '?'}; resubmit to resume from its checkpoint")
        elif rec.get("state") == "failed":
            state, detail = "failed", f"{rec.get('error', '?')}; log: {log or '?'}"
        elif rec.get("state") == "budget":
            state, detail = "missing", f"stopped by its time budget at {rec.get('detail', '?')}; resubmit to continue"
        elif rec.get("state") == "unavailable":
            state, detail = "missing", str(rec.get("error", "data not available"))
        else:
            state, detail = "missing", ""
        out.append(dict(experiment=u["experiment"], name=u["name"], state=state, detail=detail, log=log))
    return out


# ----------------------------------------------------------------------------- one job

def _job_info() -> dict:
    info = {"host": socket.gethostname(), "pid": os.getpid()}
    for key, var in (("worker", "RNN_MFT_WORKER"), ("cuda_visible_devices", "CUDA_VISIBLE_DEVICES")):
        if os.environ.get(var) is not None:
            info[key] = os.environ[var]
    jid = os.environ.get("SLURM_ARRAY_JOB_ID")
    if jid and os.environ.get("SLURM_ARRAY_TASK_ID"):
        info["slurm_job_id"] = f"{jid}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    elif os.environ.get("SLURM_JOB_ID"):
        info["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    if info.get("slurm_job_id"):
        info["job_id"] = info["slurm_job_id"]
    return info


def run_unit(u: dict, *, log: str | None = None, budget_s: float | None = None, results_root: str | None = None,
             job_id: str | None = None) -> dict:
    """Train (or find stored) the run ``u`` and return ``dict(state=..., run=...)``.

    ``state``: ``done`` (it is in the store now), ``stored`` (it already was), ``busy`` (another
    job holds its lock: two jobs never write the same run), ``budget`` (``budget_s`` seconds ran
    out: the run checkpointed, and the same unit later continues from there) or ``unavailable``
    (its data cannot be had here). A run that raises is recorded as failed with ``log`` and the
    error, and :class:`UnitFailed` is raised; so is a run that a read-only store
    (``$RNN_MFT_RESULTS_READONLY``) lacks, before anything is trained or written there. A broken run
    (:meth:`~rnn_mft.train.ResultsStore.check`) is trained again. Profile ``smoke`` uses the
    store here too (``$RNN_MFT_STORE_SMOKE``).
    """
    env = {"RNN_MFT_STORE_SMOKE": "1"}      # $RNN_MFT_RESULTS_READONLY is left as it is: a read-only store stays so
    if results_root:
        env["RNN_MFT_RESULTS"] = str(results_root)
    if budget_s is not None:
        env["RNN_MFT_DEADLINE"] = repr(time.time() + float(budget_s))
    with environ(**env):                       # restored after: the inline executor runs units in the caller's process
        return _run_unit(u, log, job_id)


def _run_unit(u: dict, log, job_id) -> dict:
    from .. import train
    store = train.ResultsStore()
    profile, exp, name = u["profile"], u["experiment"], u["name"]
    rid = unit_id(u)
    if store.exists(profile, exp, name):
        return {"state": "stored", "run": rid}
    if store.readonly:          # the status record lives in the jobs folder, not in the store
        err = (f"not trained: the results store {store.root} is read-only (RNN_MFT_RESULTS_READONLY="
               f"{os.environ.get('RNN_MFT_RESULTS_READONLY')}); unset it to train")
        write_status(u, "failed", store, log=log, error=err, **_job_info())
        raise UnitFailed(f"run {rid} {err}")
    lock = _lock_path(u, store)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fh = open(lock, "a")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return {"state": "busy", "run": rid}
        if store.exists(profile, exp, name):           # finished while we waited for the lock
            return {"state": "stored", "run": rid}
        info = _job_info()
        if job_id and "job_id" not in info:
            info["job_id"] = job_id
        ck = store.checkpoint_path(profile, exp, name)
        if ck.exists():
            info["resumed_from"] = str(ck)
            print(f"rnn_mft job: {rid} resumes from its checkpoint {ck}", flush=True)
        write_status(u, "running", store, log=log, **info)
        mod = _module(u["module"])
        cfg = mod.config(profile, **u.get("config", {}))
        print(f"rnn_mft job: {rid} on {info['host']} (pid {info['pid']}"
              + (f", SLURM job {info['slurm_job_id']}" if info.get("slurm_job_id") else "") + ")", flush=True)
        try:
            res = getattr(mod, u["call"])(cfg, *u.get("args", []), store=store)
        except train.BudgetExhausted as exc:
            write_status(u, "budget", store, log=log, detail=str(exc), **info)
            print(f"rnn_mft job: {rid} stopped by its time budget: {exc}", flush=True)
            return {"state": "budget", "run": rid, "detail": str(exc), "step": int(exc.step)}
        except BaseException as exc:
            err = f"{type(exc).__name__}: {exc}"
            write_status(u, "failed", store, log=log, error=err, traceback=traceback.format_exc(), **info)
            raise UnitFailed(f"run {rid} failed: {err}" + (f" (log: {log})" if log else "")) from exc
        if isinstance(res, tuple) and len(res) == 2 and res[0] is None:       # unrolled: data not here
            write_status(u, "unavailable", store, log=log, error=str(res[1]), **info)
            return {"state": "unavailable", "run": rid, "detail": str(res[1])}
        if not store.exists(profile, exp, name):
            err = f"the call finished but wrote no {profile}/{rid} into {store.root} (run names out of step?)"
            write_status(u, "failed", store, log=log, error=err, **info)
            raise UnitFailed(f"run {rid} failed: {err}")
        write_status(u, "done", store, log=log, **info)
        print(f"rnn_mft job: {rid} done", flush=True)
        return {"state": "done", "run": rid}
    finally:
        fh.close()
