"""Process settings: every ``RNN_MFT_*`` environment variable, read once, as one typed record.

The environment is the interface of the outermost entry points (the ``rnn-mft`` command line,
``tools/``, the book's chapters run by papermill, the SLURM and local workers). Library code
never reads it: it asks :func:`current` for a :class:`Settings`, which :meth:`Settings.from_env`
makes from the environment the first time it is asked for (this module holds the package's only
reads of ``RNN_MFT_*``), and keeps for the rest of the process.

In code, settings are passed explicitly:

* ``with settings.override(deadline=t, store_smoke=True): ...`` (or ``override(a_settings)``)
  changes what :func:`current` returns inside the block (nested blocks stack; the environment is
  left alone). ``rnn_mft.train.fit(..., settings=s)`` and the cluster's run records
  (:class:`rnn_mft.cluster.runs.RunUnit`) take a :class:`Settings` too;
* :func:`export_env` writes fields into ``os.environ`` for child processes (the chapters' kernels)
  and reloads this process's settings to match;
* :func:`reload` forgets what was read, so that the next :func:`current` reads the environment
  again (what a test does after ``monkeypatch.setenv``; ``tests/conftest.py`` does it for every
  ``setenv``/``delenv`` of an ``RNN_MFT_*`` variable).

A malformed value (``RNN_MFT_DEADLINE=soon``) is a ``ValueError`` naming the variable, raised by
the first :func:`current` after it was set. The fields, their variables and what they do:

========================  ==============================  ==================================================
field                     variable                        meaning
========================  ==============================  ==================================================
``results``               ``RNN_MFT_RESULTS``             the results store's folder (default ``data/results``)
``results_readonly``      ``RNN_MFT_RESULTS_READONLY``    nothing is written to the store; missing runs raise
``checkpoints``           ``RNN_MFT_CHECKPOINTS``         checkpoints' folder (default ``<results>/../checkpoints``)
``jobs``                  ``RNN_MFT_JOBS``                job status, locks and logs (default ``<results>/../jobs``)
``deadline``              ``RNN_MFT_DEADLINE``            time budget, seconds since the epoch: past it a run
                                                          checkpoints and raises ``BudgetExhausted``
``finish_by_deadline``    ``RNN_MFT_FINISH_BY_DEADLINE``  finish or skip: a run projected past the deadline
                                                          stops at once, without a checkpoint
``checkpoint_every``      ``RNN_MFT_CHECKPOINT_EVERY``    checkpoint every that many steps (job runners; the
                                                          run's settings are unchanged)
``restart``               ``RNN_MFT_RESTART``             discard checkpoints that cannot be resumed
``store_smoke``           ``RNN_MFT_STORE_SMOKE``         profile ``smoke`` uses the results store too
``progress``              ``RNN_MFT_PROGRESS``            progress bars and runs' progress lines: off (0);
                                                          bars forced on (1); unset: bars on a terminal or
                                                          in Jupyter, lines always
``cuda_graphs``           ``RNN_MFT_CUDA_GRAPHS``         replay the training step as captured CUDA graphs
``triton``                ``RNN_MFT_TRITON``              the LSTMs' fused Triton steps: ``"off"``, ``"on"``
                                                          (variable ``1``: CUDA) or ``"interpret"`` (CPU too)
``data``                  ``RNN_MFT_DATA``                data cache folder (default: the user cache)
``mirror``                ``RNN_MFT_MIRROR``              offline mirror folders (``os.pathsep``-separated)
``offline``               ``RNN_MFT_OFFLINE``             never download data
``figures_dir``           ``RNN_MFT_FIGURES_DIR``         where ``rnn_mft.plotting.savefig`` writes (``figures``)
``repo_url``              ``RNN_MFT_REPO_URL``            the repository the book's Colab cell clones
``worker``                ``RNN_MFT_WORKER``              the local executor's worker slot (status records)
``slurm``                 ``RNN_MFT_SLURM_<FIELD>``       raw values of ``rnn_mft.cluster.SlurmSettings``
                                                          fields, as ``(field, text)`` pairs (checked there)
``test_step_delay_s``     ``RNN_MFT_TEST_STEP_DELAY_S``   **test hook only**: seconds of sleep per training
                                                          step, so that a test can kill a job mid-run
========================  ==============================  ==================================================

Flags are on for any value but empty, ``0``, ``false``, ``False`` or ``no`` (the results store's
read-only flag: any but empty, ``0``, ``false``, ``False``; ``RNN_MFT_OFFLINE``: ``1``, ``true``,
``yes`` or ``on``, in any case), as they always were.
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
from dataclasses import dataclass, fields, replace
from typing import Callable, Iterator, Mapping

__all__ = ["Settings", "current", "reload", "override", "export_env", "ENV"]

#: field -> its environment variable (``slurm``: the prefix of one variable per SlurmSettings field)
ENV = {"results": "RNN_MFT_RESULTS", "results_readonly": "RNN_MFT_RESULTS_READONLY",
       "checkpoints": "RNN_MFT_CHECKPOINTS", "jobs": "RNN_MFT_JOBS", "deadline": "RNN_MFT_DEADLINE",
       "finish_by_deadline": "RNN_MFT_FINISH_BY_DEADLINE", "checkpoint_every": "RNN_MFT_CHECKPOINT_EVERY",
       "restart": "RNN_MFT_RESTART", "store_smoke": "RNN_MFT_STORE_SMOKE", "progress": "RNN_MFT_PROGRESS",
       "cuda_graphs": "RNN_MFT_CUDA_GRAPHS", "triton": "RNN_MFT_TRITON", "data": "RNN_MFT_DATA",
       "mirror": "RNN_MFT_MIRROR", "offline": "RNN_MFT_OFFLINE", "figures_dir": "RNN_MFT_FIGURES_DIR",
       "repo_url": "RNN_MFT_REPO_URL", "worker": "RNN_MFT_WORKER", "slurm": "RNN_MFT_SLURM_",
       "test_step_delay_s": "RNN_MFT_TEST_STEP_DELAY_S"}

_OFF = ("", "0", "false", "False", "no")
_OFF_READONLY = ("", "0", "false", "False")
_ON_OFFLINE = ("1", "true", "yes", "on")
TRITON_MODES = ("off", "on", "interpret")

_BOOLS = ("results_readonly", "finish_by_deadline", "restart", "store_smoke", "cuda_graphs", "offline")
_TEXTS = ("results", "checkpoints", "jobs", "data", "figures_dir", "repo_url", "worker")


@dataclass(frozen=True)
class Settings:
    """Every ``RNN_MFT_*`` setting of a process (see the module docstring for each field).

    Paths are kept as the text given (``None``: not set); the code that uses one checks it
    (``RNN_MFT_RESULTS`` pointing at a file is an error naming it when the store is opened).
    Frozen: :meth:`replace` (or :func:`override`) makes a changed copy; picklable, so that it
    travels to a job with its run."""

    results: str | None = None
    results_readonly: bool = False
    checkpoints: str | None = None
    jobs: str | None = None
    deadline: float | None = None
    finish_by_deadline: bool = False
    checkpoint_every: int | None = None
    restart: bool = False
    store_smoke: bool = False
    progress: bool | None = None
    cuda_graphs: bool = False
    triton: str = "off"
    data: str | None = None
    mirror: tuple = ()
    offline: bool = False
    figures_dir: str | None = None
    repo_url: str | None = None
    worker: str | None = None
    slurm: tuple = ()
    #: test hook only: seconds of sleep after every training step (a test kills a job mid-run)
    test_step_delay_s: float = 0.0

    def __post_init__(self):
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen: normalise in place)
        for name in _BOOLS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"settings {name}={getattr(self, name)!r}; allowed: True or False")
        for name in _TEXTS:
            v = getattr(self, name)
            if v is not None:
                if not isinstance(v, (str, os.PathLike)):
                    raise ValueError(f"settings {name}={v!r}; allowed: None or a str (a path)")
                put(name, os.fspath(v))
        if self.deadline is not None:
            d = self.deadline
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d):
                raise ValueError(f"settings deadline={d!r}; allowed: None or a finite time in seconds since the epoch")
            put("deadline", float(d))
        n = self.checkpoint_every
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"settings checkpoint_every={n!r}; allowed: None or a positive whole number of steps")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ValueError(f"settings progress={self.progress!r}; allowed: None, True or False")
        if self.triton not in TRITON_MODES:
            raise ValueError(f"settings triton={self.triton!r}; allowed: {', '.join(TRITON_MODES)}")
        if isinstance(self.mirror, (str, os.PathLike)):
            raise ValueError(f"settings mirror={self.mirror!r}; allowed: a sequence of folders")
        put("mirror", tuple(os.fspath(p) for p in self.mirror))
        pairs = self.slurm.items() if isinstance(self.slurm, Mapping) else self.slurm
        pairs = tuple((str(k), str(v)) for k, v in pairs)
        put("slurm", pairs)
        s = self.test_step_delay_s
        if isinstance(s, bool) or not isinstance(s, (int, float)):
            raise ValueError(f"settings test_step_delay_s={s!r}; allowed: a number of seconds (> 0: sleep)")
        put("test_step_delay_s", float(s))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """The settings the environment (``environ``, default ``os.environ``) gives: the package's
        only reading of ``RNN_MFT_*`` variables. A malformed value is a ``ValueError`` naming it."""
        env = os.environ if environ is None else environ

        def flag(name, off=_OFF):
            return env.get(ENV[name], "").strip() not in off

        deadline = None
        v = env.get("RNN_MFT_DEADLINE", "").strip()
        if v:
            try:
                deadline = float(v)
            except ValueError:
                raise ValueError(f"RNN_MFT_DEADLINE={v!r} must be a time in seconds since the epoch") from None
            if not math.isfinite(deadline):
                raise ValueError(f"RNN_MFT_DEADLINE={v!r} must be finite")
        every = None
        v = env.get("RNN_MFT_CHECKPOINT_EVERY", "").strip()
        if v:
            try:
                every = int(v)
            except ValueError:
                every = 0
            if every < 1:
                raise ValueError(f"RNN_MFT_CHECKPOINT_EVERY={v!r} must be a positive whole number of steps")
        progress = env.get("RNN_MFT_PROGRESS")
        progress = None if progress is None or progress == "" else progress not in ("0", "false", "False", "no")
        triton = env.get("RNN_MFT_TRITON", "").strip()
        triton = "off" if triton in _OFF else "interpret" if triton == "interpret" else "on"
        mirror = env.get("RNN_MFT_MIRROR", "").strip()
        delay = env.get("RNN_MFT_TEST_STEP_DELAY_S") or "0"
        try:
            delay_s = float(delay)
        except ValueError:
            raise ValueError(f"RNN_MFT_TEST_STEP_DELAY_S={delay!r} must be a number of seconds") from None
        prefix = ENV["slurm"]
        slurm = tuple(sorted((k[len(prefix):].lower(), v.strip()) for k, v in env.items()
                             if k.startswith(prefix) and v.strip()))
        return cls(results=env.get("RNN_MFT_RESULTS") or None,
                   results_readonly=flag("results_readonly", _OFF_READONLY),
                   checkpoints=env.get("RNN_MFT_CHECKPOINTS"),
                   jobs=env.get("RNN_MFT_JOBS") or None,
                   deadline=deadline,
                   finish_by_deadline=flag("finish_by_deadline"),
                   checkpoint_every=every,
                   restart=flag("restart"),
                   store_smoke=flag("store_smoke"),
                   progress=progress,
                   cuda_graphs=flag("cuda_graphs"),
                   triton=triton,
                   data=env.get("RNN_MFT_DATA", "").strip() or None,
                   mirror=tuple(p for p in mirror.split(os.pathsep) if p.strip()) if mirror else (),
                   offline=env.get("RNN_MFT_OFFLINE", "").strip().lower() in _ON_OFFLINE,
                   figures_dir=env.get("RNN_MFT_FIGURES_DIR"),
                   repo_url=env.get("RNN_MFT_REPO_URL"),
                   worker=env.get("RNN_MFT_WORKER"),
                   slurm=slurm,
                   test_step_delay_s=delay_s)

    def replace(self, **changes) -> "Settings":
        """A copy with ``changes``; an unknown field is a ``ValueError`` naming the allowed ones."""
        _check_names(changes)
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Every field, as plain data (tuples as lists); ``Settings(**d)`` makes it again."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["mirror"] = list(self.mirror)
        d["slurm"] = [list(p) for p in self.slurm]
        return d

    def env_text(self, name: str) -> str | None:
        """The value of field ``name`` as its environment variable would say it (None: unset)."""
        _check_names({name: None})
        if name == "slurm":
            raise ValueError("settings slurm has one variable per field (RNN_MFT_SLURM_<FIELD>); set those")
        v = getattr(self, name)
        if v is None:
            return None
        if isinstance(v, bool):
            return "1" if v else "0"
        if name == "triton":
            return {"off": "0", "on": "1"}.get(v, v)
        if name == "mirror":
            return os.pathsep.join(v) if v else None
        if isinstance(v, float):
            return repr(v)
        return str(v)


def _check_names(changes: Mapping) -> None:
    known = {f.name for f in fields(Settings)}
    bad = [k for k in changes if k not in known]
    if bad:
        raise ValueError(f"unknown setting {bad[0]!r}; allowed: {', '.join(sorted(known))}")


_lock = threading.RLock()
_read: Settings | None = None            # what the environment gave (None: not read yet)
_stack: list = []                        # the overrides in force, innermost last
_current: Settings | None = None         # _read with _stack applied


def current() -> Settings:
    """The settings in force: the environment's (read on first use, then kept) with the
    :func:`override` blocks in force applied."""
    global _read
    s = _current
    if s is None:
        with _lock:
            if _read is None:
                _read = Settings.from_env()
            s = _read
            for over in _stack:
                s = over if isinstance(over, Settings) else replace(s, **over)
            _set_current(s)
    return s


def _set_current(s: Settings | None) -> None:
    global _current
    _current = s


def reload() -> None:
    """Forget the environment's settings: the next :func:`current` reads the environment again
    (overrides in force still apply on top)."""
    global _read
    with _lock:
        _read = None
        _set_current(None)


@contextlib.contextmanager
def override(settings: Settings | None = None, /, **changes) -> Iterator[Settings]:
    """Within the block, :func:`current` is ``settings`` (default: the current ones) with
    ``changes``; yields that. Nested blocks stack; the environment is not touched."""
    _check_names(changes)
    if settings is not None and not isinstance(settings, Settings):
        raise ValueError(f"override({settings!r}): allowed a Settings or None, then field=value changes")
    entries = ([settings] if settings is not None else []) + ([dict(changes)] if changes else [])
    with _lock:
        _stack.extend(entries)
        _set_current(None)
    try:
        s = current()
        yield s
    finally:
        with _lock:
            for e in entries:
                for i in range(len(_stack) - 1, -1, -1):
                    if _stack[i] is e:
                        del _stack[i]
                        break
            _set_current(None)


def export_env(**changes) -> Callable[[], None]:
    """Set the environment variables of these fields (a value None unsets one) for this process
    and its children, and reload the settings; returns a function that restores the variables
    as they were (and reloads again). What an entry point uses to hand settings to processes it
    starts (the book's chapter kernels)."""
    _check_names(changes)
    probe = Settings().replace(**{k: v for k, v in changes.items() if v is not None})   # checked, normalised
    values = {ENV[k]: None if v is None else probe.env_text(k) for k, v in changes.items()}
    before = {k: os.environ.get(k) for k in values}

    def put(vals):
        for k, v in vals.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reload()

    put(values)
    return lambda: put(before)
