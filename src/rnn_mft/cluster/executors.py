"""Executors: run a profile's missing training runs in this process, on this machine's GPUs (or N
processes), or as one SLURM job array through submitit, and wait for them.

* ``inline``: one after another in this process (what ``make reproduce`` always did);
* ``local``: one worker process per visible GPU, each with its own ``CUDA_VISIBLE_DEVICES``; on a
  machine without GPUs ``jobs`` processes (default: the number of CPUs). Logs per run in
  ``<jobs>/<profile>/local/``. Each worker gets its run named in JSON on its standard
  input (:meth:`~rnn_mft.cluster.runs.RunUnit.to_json`, with this process's settings,
  :mod:`rnn_mft.settings`), and finds it again among the profile's runs: nothing is unpickled;
* ``slurm``: one job array through submitit's ``map_array`` (``pip install rnn_mft[cluster]``);
  logs in ``<jobs>/<profile>/submitit/``. Each job gets its :class:`~rnn_mft.cluster.runs.RunUnit`
  (pickled by submitit; the experiment's functions by reference) carrying the submitting
  process's settings. A job with a time limit trains until a few minutes before it (its
  ``deadline`` setting), checkpoints, and submits its continuation itself, until the run is
  done. A preempted job (or one signalled ahead of its limit) is requeued the submitit way
  (:class:`Job` is checkpointable) and resumes from its last checkpoint. ``submitit-local``: the same through submitit's local executor (no SLURM).

Runs already in the store (done: complete and verified) are skipped, and so are runs whose job is
alive (two jobs never write the same run; a lock on each run makes sure); broken runs are trained
again. Every run ends ``done``, ``failed`` (with its log path), ``broken``, ``missing`` (stopped
by a budget or data not available: said so) or is still ``running`` (``wait=False``); nothing
is dropped silently. See README, "Running on a cluster".
"""
from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..settings import Settings, current as current_settings
from ..train.results import ResultsStore
from .runs import (STATES, RunUnit, UnitFailed, collect_runs, jobs_dir, read_status, run_states, run_unit,
                   write_status)

__all__ = ["EXECUTORS", "SlurmSettings", "Report", "execute", "visible_gpus"]

EXECUTORS = ("inline", "local", "slurm", "submitit-local")


#: partition, account, qos, job name: letters, digits and ``_ . , : + = @ -`` (a name, or names
#: joined by commas)
SLURM_NAME = re.compile(r"^[A-Za-z0-9_.,:+=@-]+$")
#: constraint: the same and SLURM's feature operators ``& | [ ] * ( )`` (e.g. ``a100&(ib|eth)``,
#: ``[rack1*2&rack2*4]``)
SLURM_CONSTRAINT = re.compile(r"^[A-Za-z0-9_.,:+=@&|\[\]*()-]+$")
#: characters a setup line may not hold (one line is one shell command of the job script)
_NOT_IN_SETUP = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass
class SlurmSettings:
    """What each job asks SLURM for; every field also comes from ``$RNN_MFT_SLURM_<FIELD>``
    (e.g. ``RNN_MFT_SLURM_PARTITION=gpu``; read into the ``slurm`` setting of
    :mod:`rnn_mft.settings`). ``time_min``: the job's time limit in minutes (a run that needs
    longer checkpoints and resubmits itself); ``array_parallelism``: at most that many
    jobs of the array at once.

    Every value that reaches the job script is checked when the settings are made (a
    ``ValueError`` names the value and what is allowed): ``partition``, ``account``, ``qos`` and
    ``job_name`` must match :data:`SLURM_NAME`, ``constraint`` :data:`SLURM_CONSTRAINT`. These go
    to ``#SBATCH --<option>=<value>`` lines, which the shell reads as comments and sbatch splits
    at whitespace and quotes only: the patterns leave out whitespace, quotes, ``$ ` ; # \\`` and
    every control character, so that no value can start another line or another option.

    ``setup``: lines the job script runs **as shell commands** before the job (submitit's
    ``slurm_setup``, e.g. ``module load cuda/12``), in order. They are taken only from this
    argument, ``tools/reproduce.py --slurm-setup LINE`` (repeatable) or ``$RNN_MFT_SLURM_SETUP``
    (one command per line: lines separated by newlines); each must be a single line (no newline,
    carriage return, NUL or other control character but tab)."""

    partition: str | None = None
    gpus: int = 0
    cpus: int = 1
    time_min: int = 60
    array_parallelism: int = 64
    mem_gb: float | None = None
    budget_min: float | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    job_name: str = "rnn_mft"
    setup: tuple = ()

    #: field -> type of its ``$RNN_MFT_SLURM_<FIELD>`` value (setup: newline-separated lines)
    _ENV = {"partition": str, "gpus": int, "cpus": int, "time_min": int, "array_parallelism": int,
            "mem_gb": float, "budget_min": float, "account": str, "qos": str, "constraint": str,
            "job_name": str, "setup": tuple}

    def __post_init__(self):
        if isinstance(self.setup, list):
            self.setup = tuple(self.setup)
        for name in self._ENV:
            _check_slurm_option(name, getattr(self, name), f"slurm {name}")
        if self.budget_min is not None and not self.budget_min <= self.time_min:
            raise ValueError(f"slurm budget_min={self.budget_min!r} must be in (0, time_min={self.time_min}]")

    @classmethod
    def from_env(cls, settings: Settings | None = None, **over) -> "SlurmSettings":
        """Settings from ``$RNN_MFT_SLURM_<FIELD>`` (the ``slurm`` setting of ``settings``, default
        the current ones), overridden by the ``over`` that are not None."""
        given = dict((settings if settings is not None else current_settings()).slurm)
        kw = {}
        for name, typ in cls._ENV.items():
            var = f"RNN_MFT_SLURM_{name.upper()}"
            raw = given.get(name, "").strip()
            if not raw:
                continue
            if typ is tuple:                            # setup: one shell command per line
                v = tuple(line for line in raw.split("\n") if line.strip())
            else:
                try:
                    v = typ(raw)
                except ValueError:
                    raise ValueError(f"{var}={raw!r} must be a {typ.__name__}") from None
            _check_slurm_option(name, v, var)
            kw[name] = v
        kw.update({k: v for k, v in over.items() if v is not None})
        return cls(**kw)

    def budget_s(self) -> float:
        """Seconds a job trains before it checkpoints and resubmits itself: ``budget_min``, or the
        time limit less a margin (10 %, at least 30 s, at most 5 min) for loading data, writing
        the checkpoint and resubmitting."""
        if self.budget_min is not None:
            return 60.0 * self.budget_min
        t = 60.0 * self.time_min
        return t - min(300.0, max(30.0, 0.1 * t))

    def submitit_parameters(self) -> dict:
        """The parameters of submitit's ``AutoExecutor.update_parameters`` (checked values only)."""
        p = dict(timeout_min=int(self.time_min), cpus_per_task=int(self.cpus), name=self.job_name,
                 slurm_array_parallelism=int(self.array_parallelism))
        if self.gpus:
            p["gpus_per_node"] = int(self.gpus)
        if self.mem_gb:
            p["mem_gb"] = float(self.mem_gb)
        for name in ("partition", "account", "qos", "constraint"):
            if getattr(self, name):
                p[f"slurm_{name}"] = getattr(self, name)
        if self.setup:
            p["slurm_setup"] = list(self.setup)
        return p


def _check_slurm_option(name: str, v, where: str) -> None:
    """``ValueError`` naming ``where`` (``slurm <field>`` or the environment variable), the value
    and what is allowed, unless ``v`` is a valid value of the :class:`SlurmSettings` field ``name``."""
    if name in ("gpus", "cpus", "time_min", "array_parallelism"):
        lo = 0 if name == "gpus" else 1
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"{where}={v!r} must be an int (at least {lo})")
        if v < lo:
            raise ValueError(f"{where}={v!r} must be at least {lo}")
    elif name in ("mem_gb", "budget_min"):
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v < float("inf")):
            raise ValueError(f"{where}={v!r} must be a number > 0")
    elif name == "setup":
        if not isinstance(v, tuple) or not all(isinstance(line, str) for line in v):
            raise ValueError(f"{where}={v!r} must be a list of lines (str), one shell command each")
        for line in v:
            if _NOT_IN_SETUP.search(line):
                raise ValueError(f"{where}: the line {line!r} holds a newline, carriage return, NUL or other "
                                 f"control character; allowed: one shell command per line (each line is run "
                                 f"as shell by the job script)")
    elif v is not None or name == "job_name":
        pattern = SLURM_CONSTRAINT if name == "constraint" else SLURM_NAME
        if not isinstance(v, str) or not pattern.fullmatch(v):
            raise ValueError(f"{where}={v!r} is refused; allowed: {pattern.pattern} (no whitespace, quotes, "
                             f"newlines or shell characters: it goes into the job script)")


@dataclass
class Report:
    """What an :func:`execute` call did: runs per final state (``run_states``), and how many were
    found stored or submitted."""

    profile: str
    executor: str
    total: int = 0
    stored_before: int = 0
    submitted: int = 0
    states: list = field(default_factory=list)

    def by_state(self, state: str) -> list:
        return [s for s in self.states if s["state"] == state]

    @property
    def ok(self) -> bool:
        return not self.by_state("failed")

    def summary(self) -> str:
        lines = [f"{self.executor}: {self.total} runs at profile {self.profile}: {self.stored_before} already "
                 f"stored, {self.submitted} submitted; now "
                 + ", ".join(f"{len(self.by_state(s))} {s}" for s in STATES)]
        for s in self.states:
            if s["state"] != "done":
                lines.append(f"  {s['state'].upper():8s} {s['experiment']}/{s['name']}"
                             + (f": {s['detail']}" if s["detail"] else ""))
        return "\n".join(lines)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (empty: none)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch
        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # pragma: no cover
        return []


def execute(profile: str, executor: str = "inline", *, wait: bool = True, jobs: int | None = None,
            slurm: SlurmSettings | None = None, budget_min: float | None = None, units: list | None = None,
            log=print, poll_s: float = 2.0, store=None) -> Report:
    """Run every run of ``profile`` that is not in the store yet (``units``: these instead of
    :func:`~rnn_mft.cluster.collect_runs`), with ``executor`` (one of :data:`EXECUTORS`).

    ``wait=False`` returns once the runs are submitted (``local``: a detached pool process).
    ``budget_min`` (inline, local): a time budget for all runs; what it stops resumes later.
    Returns a :class:`Report`; failed runs are in it with their log, never dropped.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r}; allowed: {', '.join(EXECUTORS)}")
    store = store or ResultsStore(readonly=False)
    units = collect_runs(profile) if units is None else list(units)
    before = {u.id: s for s, u in zip(run_states(profile, store, units), units)}
    todo = [u for u in units if before[u.id]["state"] not in ("done", "running")]
    rep = Report(profile, executor, total=len(units),
                 stored_before=sum(1 for s in before.values() if s["state"] == "done"), submitted=len(todo))
    busy = [k for k, s in before.items() if s["state"] == "running"]
    if busy:
        log(f"{len(busy)} run(s) already running elsewhere, not submitted again: " + ", ".join(busy))
    log(f"{executor}: {len(units)} runs at profile {profile}; {rep.stored_before} stored, {len(todo)} to run")
    deadline = time.time() + 60.0 * float(budget_min) if budget_min is not None else None
    if todo:
        if executor == "inline":
            for u in todo:
                try:
                    out = run_unit(u, budget_s=None if deadline is None else deadline - time.time(),
                                   results_root=str(store.root))
                    log(f"  {out['state']}: {out['run']}")
                except UnitFailed as exc:
                    log(f"  FAILED: {exc}")
        elif executor == "local":
            n = _local_slots(jobs)
            if wait:
                _local_pool(todo, n, store, deadline, log)
            else:
                _local_detached(profile, todo, n, store, deadline, log)
        else:
            _submitit(profile, todo, executor, slurm or SlurmSettings.from_env(), store, log)
    if wait and executor != "inline":
        _wait(profile, units, store, log, poll_s)
    rep.states = run_states(profile, store, units)
    return rep


def _wait(profile, units, store, log, poll_s):
    last = None
    while True:
        st = run_states(profile, store, units)
        running = [s for s in st if s["state"] == "running"]
        counts = {k: sum(1 for s in st if s["state"] == k) for k in STATES}
        if counts != last:
            log("  " + ", ".join(f"{v} {k}" for k, v in counts.items()), flush=True)
            last = counts
        if not running:
            return st
        time.sleep(poll_s)


# ----------------------------------------------------------------------------- local

def _local_slots(jobs: int | None) -> list[str | None]:
    gpus = visible_gpus()
    if gpus:
        return gpus[:jobs] if jobs else gpus
    n = int(jobs) if jobs else (os.cpu_count() or 1)
    if n < 1:
        raise ValueError(f"jobs={jobs!r} must be at least 1")
    return [None] * n


def _worker_cmd(logfile: Path, store, deadline) -> list[str]:
    """The command of a worker process; its run comes as JSON on its standard input."""
    cmd = [sys.executable, "-m", "rnn_mft.cluster.worker", "--unit", "-", "--log", str(logfile),
           "--results", str(store.root)]
    if deadline is not None:
        cmd += ["--deadline", repr(float(deadline))]
    return cmd


def _local_pool(todo: list, slots: list, store, deadline, log=print) -> None:
    """Run ``todo`` on ``len(slots)`` worker processes; slot ``i`` sees only GPU ``slots[i]``
    (``CUDA_VISIBLE_DEVICES``), or, on a CPU machine, gets its share of the cores. Each run goes
    with its own settings, else this process's, and the slot as ``worker``."""
    logdir = jobs_dir(todo[0].profile, store) / "local"
    logdir.mkdir(parents=True, exist_ok=True)
    here = current_settings()
    for u in todo:
        write_status(u, "queued", store, host=socket.gethostname(), pid=os.getpid(),
                     log=str(logdir / f"{u.experiment}-{u.name}.log"))
    q: queue.Queue = queue.Queue()
    for u in todo:
        q.put(u)
    threads = max(1, (os.cpu_count() or 1) // len(slots))

    def worker(i, slot):
        env = dict(os.environ, RNN_MFT_WORKER=str(i))
        if slot is not None:
            env["CUDA_VISIBLE_DEVICES"] = slot
        else:
            env.setdefault("OMP_NUM_THREADS", str(threads))
        while True:
            try:
                u = q.get_nowait()
            except queue.Empty:
                return
            lf = logdir / f"{u.experiment}-{u.name}.log"
            unit = u.with_settings((u.settings or here).replace(worker=str(i)))
            with open(lf, "w") as fh:
                rc = subprocess.run(_worker_cmd(lf, store, deadline), env=env, stdout=fh, stderr=subprocess.STDOUT,
                                    input=json.dumps(unit.to_json()).encode()).returncode
            if rc != 0 and (read_status(u, store) or {}).get("state") == "queued":
                # the worker ended before the run started (it refused the run, or was killed): the run
                # failed, and says so, rather than staying queued for ever
                write_status(u, "failed", store, log=str(lf), host=socket.gethostname(),
                             error=f"the worker process exited with status {rc} before the run started")
            where = f"GPU {slot}" if slot is not None else "CPU"
            log(f"  {'finished' if rc == 0 else f'FAILED (exit {rc})'}: {u.id} ({where}; log {lf})", flush=True)

    ts = [threading.Thread(target=worker, args=(i, s), daemon=True) for i, s in enumerate(slots)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def _local_detached(profile, todo, slots, store, deadline, log) -> None:
    d = jobs_dir(profile, store) / "local"
    d.mkdir(parents=True, exist_ok=True)
    lf = d / f"pool-{int(time.time())}-{os.getpid()}.log"
    here = current_settings()
    spec = {"units": [(u if u.settings is not None else u.with_settings(here)).to_json() for u in todo],
            "slots": slots, "deadline": deadline}
    with open(lf, "w") as fh:        # the runs go as JSON on the pool's standard input (nothing to plant in a file)
        p = subprocess.Popen([sys.executable, "-m", "rnn_mft.cluster.worker", "--pool", "-", "--results",
                              str(store.root)], stdin=subprocess.PIPE, stdout=fh, stderr=subprocess.STDOUT,
                             start_new_session=True)
        p.stdin.write(json.dumps(spec).encode())
        p.stdin.close()
    for u in todo:    # the pool process is what keeps them alive until each worker takes its run
        write_status(u, "queued", store, host=socket.gethostname(), pid=p.pid, log=str(lf))
    log(f"local pool started in the background (pid {p.pid}, log {lf}); `rnn-mft runs --profile {profile}` "
        f"shows where the runs stand")


# ----------------------------------------------------------------------------- submitit

def _import_submitit():
    try:
        import submitit
    except ImportError:
        raise ImportError("the slurm executor needs submitit: pip install 'rnn_mft[cluster]'") from None
    return submitit


def _executor(folder: Path, executor: str, slurm: SlurmSettings):
    submitit = _import_submitit()
    ex = submitit.AutoExecutor(folder=str(folder), cluster="local" if executor == "submitit-local" else "slurm")
    ex.update_parameters(**slurm.submitit_parameters())
    return ex


def _submitit(profile, todo, executor, slurm: SlurmSettings, store, log) -> list:
    folder = jobs_dir(profile, store) / "submitit"
    ex = _executor(folder, executor, slurm)
    spec = {"folder": str(folder), "executor": executor, "settings": slurm.__dict__,
            "results": str(store.root)}
    here = current_settings()            # each job runs under the settings of the process that submits it
    todo = [u if u.settings is not None else u.with_settings(here) for u in todo]
    jobs = ex.map_array(Job(), todo, [spec] * len(todo))
    for u, j in zip(todo, jobs):
        write_status(u, "queued", store, job_id=str(j.job_id), log=str(j.paths.stderr),
                     **({"slurm_job_id": str(j.job_id)} if executor == "slurm" else _local_job_info(j)))
    log(f"submitted {len(jobs)} job(s) through submitit ({executor}): array {jobs[0].job_id.split('_')[0]}; "
        f"logs in {folder}")
    return jobs


class Job:
    """The submitit callable of one run (:func:`job`), *checkpointable* in submitit's sense: on
    preemption or a timeout signal (submitit's ``--signal``, USR2 ahead of the limit) submitit
    calls :meth:`checkpoint`, which hands back the same run, and requeues the job (same job id).
    The requeued job resumes the run from its last periodic checkpoint (``checkpoint_every``
    steps of the experiment's config, or the ``checkpoint_every`` setting), bitwise."""

    def __call__(self, u: RunUnit, spec: dict) -> dict:
        return job(u, spec)

    def checkpoint(self, u: RunUnit, spec: dict):
        submitit = _import_submitit()
        try:
            write_status(u, "queued", ResultsStore(spec["results"], readonly=False),
                         detail="requeued after preemption or a timeout signal; resumes from its last checkpoint")
        except OSError:
            pass
        print(f"rnn_mft job: {u.id} is requeued (preemption or timeout); it resumes from its last checkpoint",
              flush=True)
        return submitit.helpers.DelayedSubmission(self, u, spec)


def _local_job_info(j) -> dict:
    return {"host": socket.gethostname(), "pid": int(str(j.job_id).split("_")[0])}


def job(u: RunUnit, spec: dict) -> dict:
    """One submitit job: :func:`~rnn_mft.cluster.run_unit` with the job's time budget; if the
    budget stops the run, the job submits its own continuation (same record and settings) and
    says so. ``spec``: the submitit folder, the executor, the SLURM settings (``settings``, as a
    dict) and the results store's root."""
    slurm = SlurmSettings(**spec["settings"])
    log = None
    try:
        import submitit
        env = submitit.JobEnvironment()
        log = str(env.paths.stderr).replace("%j", str(env.job_id)).replace("%t", "0")
    except Exception:
        pass
    out = run_unit(u, log=log, budget_s=slurm.budget_s(), results_root=spec["results"])
    if out["state"] == "budget" and out["step"] <= spec.get("step", -1):
        err = (f"no training step fitted in a job's budget ({slurm.budget_s():.0f} s; still at step "
               f"{out['step']}): raise the time limit (--time-min)")
        write_status(u, "failed", ResultsStore(spec["results"], readonly=False), log=log, error=err)
        raise UnitFailed(f"run {u.id} failed: {err}")
    if out["state"] == "budget":
        spec = dict(spec, step=out["step"])
        ex = _executor(Path(spec["folder"]), spec["executor"], slurm)
        nxt = ex.submit(Job(), u, spec)
        store = ResultsStore(spec["results"], readonly=False)
        write_status(u, "queued", store, job_id=str(nxt.job_id), log=str(nxt.paths.stderr),
                     detail=f"continuation of {out.get('detail', '')}",
                     **({"slurm_job_id": str(nxt.job_id)} if spec["executor"] == "slurm" else _local_job_info(nxt)))
        print(f"rnn_mft job: {u.id} continues in job {nxt.job_id}", flush=True)
        out["continued_in"] = str(nxt.job_id)
    return out
