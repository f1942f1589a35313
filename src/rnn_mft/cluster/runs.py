"""The runs a profile's chapters need, how one of them is run as a job, and where each one stands.

* :func:`collect_runs`: every stored run the training chapters load at a profile, as typed
  records (:class:`RunUnit`: profile, experiment, run name, the experiment's function that trains
  it with its arguments, and the settings it runs under), made from each training experiment's
  ``units(profile)`` without training anything;
* :func:`run_unit`: what one job does: train (or find already stored) one run, under an
  exclusive lock on the run (two jobs never write the same run), with a status record beside the
  store saying running / failed (with the log and the error) / stopped by its time budget; in a
  read-only store (``$RNN_MFT_RESULTS_READONLY``) it trains nothing and fails, saying so; its job
  settings (time budget, results store, the unit's own :class:`~rnn_mft.settings.Settings`) are
  passed with :func:`rnn_mft.settings.override`, never through the environment;
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
import json
import os
import socket
import subprocess
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping

from .._io import atomic_write_text, check_folder
from ..experiments import check_profile
from ..experiments.protocol import ProfileNotDeclared
from ..experiments.training import (critical_init_your_model, sequence_length, trainability, training_curves,
                                    unrolled)
from ..settings import Settings, current as current_settings, override as override_settings
from ..train.engine import BudgetExhausted
from ..train.results import ResultsStore

__all__ = ["TRAINING_EXPERIMENTS", "EXPERIMENT_MODULES", "STATES", "RunUnit", "unit_record", "collect_runs",
           "run_unit", "run_states", "jobs_dir", "UnitFailed", "unit_id", "read_status", "write_status"]

#: the training experiments whose runs go through the results store: name -> module (in
#: :mod:`rnn_mft.experiments.training`; each lists its runs with ``units(profile)``)
EXPERIMENT_MODULES = {m.__name__.rsplit(".", 1)[1]: m for m in (sequence_length, trainability, training_curves,
                                                                   unrolled, critical_init_your_model)}
#: their names, in chapter order
TRAINING_EXPERIMENTS = tuple(EXPERIMENT_MODULES)

#: the states of :func:`run_states`, in the order reports count them
STATES = ("done", "running", "failed", "broken", "missing")


@dataclass(frozen=True)
class RunUnit:
    """One stored run of a training experiment, as a job runs it: ``fn(config_fn(profile)
    .replace(**config), *args, store=store)`` trains (or loads) exactly the run
    ``profile/experiment/name`` (:meth:`run`).

    ``fn`` and ``config_fn`` are the experiment module's own functions: module-level, so that the
    record pickles by reference and travels as it is to a worker process or a SLURM job.
    ``settings``: the :class:`~rnn_mft.settings.Settings` the run is to see (None: those of the
    process that runs it); an executor that sends the run to another process sets its own there.
    A record without ``fn`` only names a run (what :func:`run_states` and the status records
    need); :func:`run_unit` refuses it."""

    profile: str
    experiment: str
    name: str
    fn: Callable | None = None
    config_fn: Callable | None = None
    args: tuple = ()
    config: dict = field(default_factory=dict)
    settings: Settings | None = None

    def __post_init__(self):
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "config", dict(self.config))
        if self.settings is not None and not isinstance(self.settings, Settings):
            raise ValueError(f"RunUnit settings={self.settings!r}; allowed: None or a rnn_mft.settings.Settings")

    @property
    def id(self) -> str:
        """``experiment/name``."""
        return f"{self.experiment}/{self.name}"

    @property
    def module(self) -> str | None:
        """The name of the module that defines ``fn`` (the experiment's)."""
        return getattr(self.fn, "__module__", None)

    @property
    def call(self) -> str | None:
        """The name of ``fn`` in its module (``run_group``, ``run_one``, ...)."""
        return getattr(self.fn, "__name__", None)

    def with_settings(self, settings: Settings | None) -> "RunUnit":
        """The same run under ``settings``."""
        return replace(self, settings=settings)

    def make_config(self):
        """The experiment's config of this run: ``config_fn(profile).replace(**config)``."""
        if self.fn is None or self.config_fn is None:
            raise ValueError(f"run {self.id} names a run only (no function to train it); "
                             f"allowed: a unit of rnn_mft.cluster.collect_runs")
        return self.config_fn(self.profile).replace(**self.config)

    def run(self, store, cfg=None):
        """Train (or load) the run into ``store``; ``cfg``: :meth:`make_config` unless given."""
        cfg = self.make_config() if cfg is None else cfg
        return self.fn(cfg, *self.args, store=store)

    def to_json(self) -> dict:
        """What names the run, and its settings, as plain JSON data: how a run travels to a worker
        process (:meth:`from_json` finds it again among the profile's runs; nothing is unpickled)."""
        return {"profile": self.profile, "experiment": self.experiment, "name": self.name,
                "settings": None if self.settings is None else self.settings.to_dict()}

    @classmethod
    def from_json(cls, d) -> "RunUnit":
        """The run :meth:`to_json` named: the unit of :func:`collect_runs` with that profile,
        experiment and name, under the settings it carried. A ValueError names a run that the
        profile does not have."""
        if not isinstance(d, Mapping) or not all(isinstance(d.get(k), str) for k in ("profile", "experiment", "name")):
            raise ValueError(f"a run must be a JSON object with profile, experiment and name (str); got {d!r}")
        found = [u for u in collect_runs(d["profile"], [d["experiment"]]) if u.name == d["name"]]
        if not found:
            raise ValueError(f"run {d['experiment']}/{d['name']} is not a run of profile {d['profile']!r}")
        st = d.get("settings")
        return found[0].with_settings(None if st is None else Settings(**st))


def unit_record(module, unit: Mapping) -> RunUnit:
    """The :class:`RunUnit` of ``unit``, a run as the experiment ``module`` lists it (a dict of
    ``units(profile)``: profile, experiment, name, fn (one of the module's functions), args, config)."""
    if unit.get("module", module.__name__) != module.__name__:
        raise ValueError(f"unit {unit.get('experiment')}/{unit.get('name')} names module {unit.get('module')!r}, "
                         f"listed by {module.__name__}")
    fn = unit.get("fn")
    if not callable(fn) or getattr(fn, "__module__", None) != module.__name__:
        raise ValueError(f"unit {unit.get('experiment')}/{unit.get('name')}: fn={fn!r} must be a function of "
                         f"{module.__name__}")
    return RunUnit(unit["profile"], unit["experiment"], unit["name"], fn=fn, config_fn=module.config,
                   args=tuple(unit.get("args", ())), config=dict(unit.get("config") or {}))


class UnitFailed(RuntimeError):
    """A run raised; the message names the run, the error and the log."""


def jobs_dir(profile: str, store=None) -> Path:
    """``<jobs setting>/<profile>`` (``$RNN_MFT_JOBS``) or ``<results root>/../jobs/<profile>``:
    status records, locks, logs and submitit's folder."""
    check_profile(profile)
    env = current_settings().jobs
    if env:
        return check_folder(env, "RNN_MFT_JOBS") / profile
    return (store or ResultsStore()).root.parent / "jobs" / profile


def unit_id(u: RunUnit) -> str:
    """``experiment/name`` of the run ``u``."""
    return u.id


def collect_runs(profile: str, experiments=None) -> list[RunUnit]:
    """Every run (a :class:`RunUnit`) that the training chapters load at ``profile``, once each,
    in chapter order. ``experiments``: a subset of :data:`TRAINING_EXPERIMENTS`."""
    check_profile(profile)
    names = TRAINING_EXPERIMENTS if experiments is None else tuple(experiments)
    unknown = [e for e in names if e not in TRAINING_EXPERIMENTS]
    if unknown:
        raise ValueError(f"experiment {unknown[0]!r}; allowed: {', '.join(TRAINING_EXPERIMENTS)}")
    out, seen = [], set()
    for e in names:
        mod = EXPERIMENT_MODULES[e]
        try:
            units = mod.units(profile)
        except ProfileNotDeclared:              # an optional profile (cpu) this chapter does not have
            continue
        for d in units:
            u = unit_record(mod, d)
            if u.id not in seen:                # one job per run: two jobs never write the same run
                seen.add(u.id)
                out.append(u)
    return out


# ----------------------------------------------------------------------------- status records

def _status_path(u: RunUnit, store=None) -> Path:
    return jobs_dir(u.profile, store) / "status" / u.experiment / f"{u.name}.json"


def _lock_path(u: RunUnit, store=None) -> Path:
    return jobs_dir(u.profile, store) / "locks" / u.experiment / f"{u.name}.lock"


def write_status(u: RunUnit, state: str, store=None, **info) -> None:
    """Record ``state`` (``queued``, ``running``, ``failed``, ``budget``, ``unavailable``, ``done``)."""
    p = _status_path(u, store)
    p.parent.mkdir(parents=True, exist_ok=True)
    rec = dict(info, state=state, run=u.id, time=time.strftime("%Y-%m-%dT%H:%M:%S"))
    atomic_write_text(p, json.dumps(rec, indent=1, sort_keys=True) + "\n")


def read_status(u: RunUnit, store=None) -> dict | None:
    p = _status_path(u, store)
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _lock_held(u: RunUnit, store=None) -> bool:
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


def _alive(rec: dict, u: RunUnit, store=None) -> bool:
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
    available here). ``units``: these :class:`RunUnit` records instead of :func:`collect_runs`."""
    store = store or ResultsStore()
    out = []
    for u in (collect_runs(profile) if units is None else units):
        rec = read_status(u, store) or {}
        log = rec.get("log")
        stored = store.check(profile, u.experiment, u.name)
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
        out.append(dict(experiment=u.experiment, name=u.name, state=state, detail=detail, log=log))
    return out


# ----------------------------------------------------------------------------- one job

def _job_info() -> dict:
    info = {"host": socket.gethostname(), "pid": os.getpid()}
    worker = current_settings().worker                     # the local executor's slot (RNN_MFT_WORKER)
    if worker is not None:
        info["worker"] = worker
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        info["cuda_visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
    jid = os.environ.get("SLURM_ARRAY_JOB_ID")
    if jid and os.environ.get("SLURM_ARRAY_TASK_ID"):
        info["slurm_job_id"] = f"{jid}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    elif os.environ.get("SLURM_JOB_ID"):
        info["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    if info.get("slurm_job_id"):
        info["job_id"] = info["slurm_job_id"]
    return info


def run_unit(u: RunUnit, *, log: str | None = None, budget_s: float | None = None, results_root: str | None = None,
             job_id: str | None = None) -> dict:
    """Train (or find stored) the run ``u`` and return ``dict(state=..., run=...)``.

    ``state``: ``done`` (it is in the store now), ``stored`` (it already was), ``busy`` (another
    job holds its lock: two jobs never write the same run), ``budget`` (``budget_s`` seconds ran
    out: the run checkpointed, and the same unit later continues from there) or ``unavailable``
    (its data cannot be had here). A run that raises is recorded as failed with ``log`` and the
    error, and :class:`UnitFailed` is raised; so is a run that a read-only store
    (``$RNN_MFT_RESULTS_READONLY``) lacks, before anything is trained or written there. A broken run
    (:meth:`~rnn_mft.train.ResultsStore.check`) is trained again. Profile ``smoke`` uses the
    store here too (the ``store_smoke`` setting).

    The run sees the settings of this process, replaced by ``u.settings`` when the unit carries
    its own (an executor's, for a run in another process), with ``store_smoke`` on, ``results``
    = ``results_root`` and ``deadline`` = now + ``budget_s`` when given
    (:func:`rnn_mft.settings.override`: restored after, since the inline executor runs units in
    the caller's process; the environment is not touched).
    """
    if not isinstance(u, RunUnit) or u.fn is None:
        raise ValueError(f"u={u!r}; allowed: a RunUnit of rnn_mft.cluster.collect_runs (with the function "
                         f"that trains it)")
    over = {"store_smoke": True}       # the results_readonly setting is left as it is: a read-only store stays so
    if results_root:
        over["results"] = str(results_root)
    if budget_s is not None:
        over["deadline"] = time.time() + float(budget_s)
    with override_settings(u.settings, **over):
        return _run_unit(u, log, job_id)


def _run_unit(u: RunUnit, log, job_id) -> dict:
    store = ResultsStore()
    profile, exp, name = u.profile, u.experiment, u.name
    rid = u.id
    if store.exists(profile, exp, name):
        return {"state": "stored", "run": rid}
    if store.readonly:          # the status record lives in the jobs folder, not in the store
        err = (f"not trained: the results store {store.root} is read-only (RNN_MFT_RESULTS_READONLY is set); "
               f"unset it to train")
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
        cfg = u.make_config()                  # the experiment's config, with the unit's field overrides
        print(f"rnn_mft job: {rid} on {info['host']} (pid {info['pid']}"
              + (f", SLURM job {info['slurm_job_id']}" if info.get("slurm_job_id") else "") + ")", flush=True)
        try:
            res = u.run(store, cfg)
        except BudgetExhausted as exc:
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
