"""The results store: one ``<run>.json`` (config, final metrics, provenance) and one ``<run>.npz``
(curves) per run under ``<root>/<profile>/<experiment>/``, written atomically.

``root`` is ``$RNN_MFT_RESULTS`` when set, else ``data/results`` of the repository (the
directory holding ``pyproject.toml`` above this package), else ``./data/results``. With
``$RNN_MFT_RESULTS_READONLY=1`` (``make figures``) nothing is written and
:meth:`ResultsStore.load_or_run` refuses to train a run that is not stored.

The ``.npz`` is written first and the ``.json`` last, each to a temporary file in the same
folder and then moved into place with :func:`os.replace`, so a reader never sees a partial
file and a ``.json`` always has its curves beside it.
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from .._io import atomic_write_bytes

__all__ = ["RunResult", "ResultsStore", "results_root", "code_version", "atomic_write_bytes", "StoredResultError"]


class StoredResultError(ValueError):
    """A stored result that cannot be read (corrupt JSON or curves, curves missing); names the file."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")


def _repo_root() -> Path | None:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "src" / "rnn_mft").exists():
            return parent
    return None


def results_root() -> Path:
    env = os.environ.get("RNN_MFT_RESULTS")
    if env:
        return Path(env)
    repo = _repo_root()
    return (repo if repo is not None else Path.cwd()) / "data" / "results"


@lru_cache(maxsize=1)
def code_version() -> str:
    """``git:<commit>`` (``+dirty`` when tracked files changed) or ``rnn_mft <version>``."""
    repo = _repo_root()
    if repo is not None:
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                    timeout=10).stdout.strip()
            if commit:
                dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                       capture_output=True, text=True, timeout=10).stdout.strip()
                return f"git:{commit}" + ("+dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        from importlib.metadata import version
        return f"rnn_mft {version('rnn_mft')}"
    except Exception:  # pragma: no cover
        return "unknown"



def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if np.isfinite(x) else str(x)      # JSON has no NaN/inf: "nan", "inf"
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    return x


@dataclass
class RunResult:
    """What one training run (one network or one ensemble) produced.

    ``curves``: arrays, e.g. ``train_loss (steps, M)``, ``eval_step (E,)``, ``eval_acc (E, M)``.
    ``final``: final metrics (lists with one value per member). ``config``: the run's settings.
    ``meta``: seed, code version, torch version, device, wall time, diverged flags, labels.
    """

    curves: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def diverged(self) -> list:
        return list(self.meta.get("diverged", []))

    def member(self, k: int) -> "RunResult":
        """The result of member ``k`` alone (arrays indexed on their member axis)."""
        M = int(self.meta.get("members", 1))
        curves = {n: (a[:, k:k + 1] if a.ndim == 2 and a.shape[1] == M else a) for n, a in self.curves.items()}
        final = {n: ([v[k]] if isinstance(v, list) and len(v) == M else v) for n, v in self.final.items()}
        meta = dict(self.meta, members=1, member_of_ensemble=k)
        for key in ("diverged", "diverged_step", "labels"):
            if isinstance(meta.get(key), list) and len(meta[key]) == M:
                meta[key] = [meta[key][k]]
        return RunResult({n: np.array(a) for n, a in curves.items()}, final, dict(self.config), meta)

    def select(self, idx) -> "RunResult":
        """The result of the members ``idx`` (a list of member indices, in that order), as if
        they had been an ensemble of their own (used to split a whole-figure ensemble)."""
        M = int(self.meta.get("members", 1))
        idx = [int(k) for k in idx]
        if not idx or min(idx) < 0 or max(idx) >= M:
            raise ValueError(f"idx={idx!r}; allowed: a non-empty list of member indices in [0, {M})")
        curves = {n: (a[:, idx] if a.ndim == 2 and a.shape[1] == M else a) for n, a in self.curves.items()}
        final = {n: ([v[k] for k in idx] if isinstance(v, list) and len(v) == M else v) for n, v in self.final.items()}
        meta = dict(self.meta, members=len(idx), members_of_ensemble=idx)
        for key in ("diverged", "diverged_step", "labels"):
            if isinstance(meta.get(key), list) and len(meta[key]) == M:
                meta[key] = [meta[key][k] for k in idx]
        config = dict(self.config)
        if isinstance(config.get("lr"), list) and len(config["lr"]) == M:
            config["lr"] = [config["lr"][k] for k in idx]
        return RunResult({n: np.array(a) for n, a in curves.items()}, final, config, meta)

    def to_json_dict(self) -> dict:
        return _jsonable({"config": self.config, "final": self.final, "meta": self.meta,
                          "curves": sorted(self.curves)})


def _unjson(x):
    if isinstance(x, dict):
        return {k: _unjson(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_unjson(v) for v in x]
    if x in ("nan", "inf", "-inf"):
        return float(x)
    return x


class ResultsStore:
    """Read and write run results under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None, readonly: bool | None = None):
        self.root = Path(root) if root is not None else results_root()
        if readonly is None:
            readonly = os.environ.get("RNN_MFT_RESULTS_READONLY", "") not in ("", "0", "false", "False")
        self.readonly = bool(readonly)

    def path(self, profile: str, experiment: str, run: str) -> Path:
        """``<root>/<profile>/<experiment>/<run>`` (without suffix)."""
        for name, v in (("profile", profile), ("experiment", experiment), ("run", run)):
            if not isinstance(v, str) or not _NAME.match(v):
                raise ValueError(f"{name}={v!r} must be a plain name of letters, digits and _ . = + -")
        return self.root / profile / experiment / run

    def checkpoint_path(self, profile: str, experiment: str, run: str) -> Path:
        """Where a long run keeps its checkpoint: ``$RNN_MFT_CHECKPOINTS`` or ``<root>/../checkpoints``."""
        base = Path(os.environ.get("RNN_MFT_CHECKPOINTS", self.root.parent / "checkpoints"))
        return base / profile / experiment / f"{self.path(profile, experiment, run).name}.pt"

    def check_writable(self, profile: str, experiment: str) -> Path:
        """Fail fast (before training) when ``<root>/<profile>/<experiment>`` cannot be written:
        ``PermissionError`` naming the folder."""
        d = self.root / profile / experiment
        try:
            d.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=d, prefix=".writable-", suffix=".tmp")
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            raise PermissionError(f"the results store folder {d} is not writable ({exc.strerror or exc}); "
                                  f"nothing was trained. Make it writable or set RNN_MFT_RESULTS to a writable "
                                  f"folder") from None
        return d

    def exists(self, profile: str, experiment: str, run: str) -> bool:
        return self.path(profile, experiment, run).with_suffix(".json").exists()

    def runs(self, profile: str, experiment: str) -> list[str]:
        d = self.root / profile / experiment
        return sorted(p.stem for p in d.glob("*.json")) if d.exists() else []

    def save(self, profile: str, experiment: str, run: str, result: RunResult) -> Path:
        if self.readonly:
            raise PermissionError(f"the results store {self.root} is read-only (RNN_MFT_RESULTS_READONLY); "
                                  f"not writing {profile}/{experiment}/{run}")
        base = self.path(profile, experiment, run)
        result.meta.setdefault("rnn_mft_version", __import__("rnn_mft").__version__)  # provenance
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: np.asarray(v) for k, v in result.curves.items()})
        atomic_write_bytes(base.with_suffix(".npz"), buf.getvalue())
        text = json.dumps(result.to_json_dict(), indent=1, sort_keys=True)
        atomic_write_bytes(base.with_suffix(".json"), (text + "\n").encode())
        return base.with_suffix(".json")

    def load(self, profile: str, experiment: str, run: str) -> RunResult:
        base = self.path(profile, experiment, run)
        js, npz = base.with_suffix(".json"), base.with_suffix(".npz")
        if not js.exists():
            raise FileNotFoundError(f"no stored result {js}")
        hint = "delete the run's .json and .npz to train it again"
        try:
            d = _unjson(json.loads(js.read_text()))
        except (ValueError, UnicodeDecodeError) as exc:
            raise StoredResultError(f"stored result {js} is corrupt ({type(exc).__name__}: {exc}); {hint}") from None
        if not isinstance(d, dict):
            raise StoredResultError(f"stored result {js} is not a JSON object; {hint}")
        if not npz.exists():
            raise StoredResultError(f"stored result {js} has no curves beside it ({npz} is missing); {hint}")
        try:
            with open(npz, "rb") as fh, np.load(fh, allow_pickle=False) as z:
                curves = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise StoredResultError(f"stored curves {npz} are corrupt ({type(exc).__name__}: {exc}); {hint}") from None
        want = d.get("curves")
        if isinstance(want, list) and sorted(want) != sorted(curves):
            raise StoredResultError(f"stored curves {npz} hold {sorted(curves)} but {js} lists {sorted(want)}; {hint}")
        return RunResult(curves, d.get("final", {}), d.get("config", {}), d.get("meta", {}))

    def load_or_run(self, profile: str, experiment: str, run: str, fn: Callable[[], RunResult],
                    rerun: bool = False, checkpoint: str | os.PathLike | None = None) -> RunResult:
        """The stored result if there is one (and not ``rerun``), else ``fn()``, stored.

        The store is checked for writability before ``fn`` runs. With ``checkpoint`` (the path
        ``fn`` trains with), the checkpoint is kept in its final state until the result is
        written and deleted only then; if writing fails, the error names the checkpoint, which
        a rerun resumes without training again.
        """
        if self.exists(profile, experiment, run) and not rerun:
            return self.load(profile, experiment, run)
        if self.readonly:
            raise FileNotFoundError(f"{profile}/{experiment}/{run} is not in the read-only results store "
                                    f"{self.root}; run it first without RNN_MFT_RESULTS_READONLY")
        self.check_writable(profile, experiment)
        if checkpoint is None:
            result = fn()
            self.save(profile, experiment, run, result)
            return result
        from .engine import keep_checkpoint
        ck = Path(checkpoint)
        with keep_checkpoint(ck):
            result = fn()
        try:
            self.save(profile, experiment, run, result)
        except OSError as exc:
            kept = f"the trained state is kept in checkpoint {ck}" if ck.exists() else "no checkpoint was kept"
            raise type(exc)(f"could not write the result {profile}/{experiment}/{run} to {self.root} ({exc}); "
                            f"{kept}: fix the store and rerun, which resumes from it") from exc
        ck.unlink(missing_ok=True)
        return result
