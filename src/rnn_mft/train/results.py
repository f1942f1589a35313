"""The results store: per run, under ``<root>/<profile>/<experiment>/``, three files written
atomically and in this order:

* ``<run>.npz``: the curves (arrays only; read back with ``allow_pickle=False``);
* ``<run>.json``: config, final metrics, provenance, the curve names, and the store format
  (``"format": "rnn_mft-result"``, ``"format_version"``);
* ``<run>.manifest``, last: JSON ``{format, version, run: "<profile>/<experiment>/<run>", files:
  {<name>: {sha256, bytes}}}`` over the ``.npz`` and the ``.json``.

A run is **done** only when its files are complete and agree with each other and with the run's
name (:meth:`ResultsStore.check`): the manifest names this run, both files have the size and
SHA-256 it lists, the ``.json`` lists the curves the ``.npz`` holds, and where the name ends in a
settings hash (:func:`settings_key`, what the experiments' ``run_key`` makes names with) the
stored ``meta.settings`` hash to it and the stored ``config`` agrees with them. A run with some
files but not that is **broken**, with the reason naming the file; a run with no files is
**missing**. A result stored before manifests existed (its ``.json`` has no ``format``) counts as
done when its ``.json`` parses, its ``.npz`` opens and every array reads, and it agrees with its
name as above.

``root`` is ``$RNN_MFT_RESULTS`` when set, else ``data/results`` of the repository (the
directory holding ``pyproject.toml`` above this package), else ``./data/results``; a file in its
place is an error naming it. With ``$RNN_MFT_RESULTS_READONLY=1`` (``make figures``) nothing is
written: :meth:`ResultsStore.load_or_run` refuses to train a run that is missing or broken.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

import rnn_mft

from .._io import atomic_write_bytes, check_folder
from ..settings import current as current_settings
from .checkpoint import keep_checkpoint

__all__ = ["RunResult", "ResultsStore", "results_root", "code_version", "atomic_write_bytes", "StoredResultError",
           "RunCheck", "settings_key", "readonly_from_env", "FORMAT", "FORMAT_VERSION", "MANIFEST_FORMAT"]

FORMAT = "rnn_mft-result"
MANIFEST_FORMAT = "rnn_mft-result-manifest"
#: the store format this code writes, and the newest it reads (1: the manifest; results without
#: any ``format`` are the older, manifest-less layout, still read)
FORMAT_VERSION = 1

RETRAIN_HINT = ("tools/reproduce.py (`make reproduce`) and load_or_run with a writable store train it again; "
                "so does deleting its .json, .npz and .manifest")

#: the training settings an experiment's stored ``meta.settings`` and its ``config`` both hold
_SHARED_KEYS = ("steps", "batch_size", "optimizer", "lr", "momentum", "clip", "eval_every", "eval_batch_size", "seed")
#: a run name made by ``run_key``: ``...-<10 hex digits of the settings hash>``
_KEYED_NAME = re.compile(r"-([0-9a-f]{10})$")


class StoredResultError(ValueError):
    """A stored result that is broken: corrupt, incomplete, changed after it was written, or at
    odds with its name. ``run`` (``profile/experiment/run``), ``path`` (the file at fault) and
    ``reason`` (naming that file) are kept; the message says how to train it again."""

    def __init__(self, run: str, path, reason: str):
        self.run, self.path, self.reason = run, Path(path), reason
        super().__init__(f"stored result {run} is broken: {reason}; {RETRAIN_HINT}")


class RunCheck(NamedTuple):
    """Where a run stands in the store: ``state`` ``done``, ``broken`` or ``missing``; ``reason``
    (broken only) names the file and what is wrong with it."""

    state: str
    reason: str = ""


def settings_key(settings: dict) -> str:
    """10 hex digits of the SHA-1 of ``settings`` (JSON, sorted keys; ``profile`` excluded): the
    hash that ends a run's stored name (``rnn_mft.experiments.training._common.run_key``)."""
    d = {k: v for k, v in settings.items() if k != "profile"}
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:10]


def readonly_from_env() -> bool:
    """The ``results_readonly`` setting: ``$RNN_MFT_RESULTS_READONLY`` is set (to anything but
    empty, 0 or false; see :mod:`rnn_mft.settings`)."""
    return current_settings().results_readonly

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")


def _repo_root() -> Path | None:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "src" / "rnn_mft").exists():
            return parent
    return None


def results_root() -> Path:
    """The ``results`` setting, ``$RNN_MFT_RESULTS`` (checked to be a folder or a place for one),
    else the repository's ``data/results``."""
    env = current_settings().results
    if env:
        return check_folder(env, "RNN_MFT_RESULTS")
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


def _disagreements(run: str, doc: dict) -> list[str]:
    """How the stored ``doc`` (the JSON of a result, as written) disagrees with the name ``run``:
    its ``meta.settings`` do not hash (:func:`settings_key`) to the hash ending the name, or its
    ``config`` holds another value of a training setting than those settings. Empty when it agrees,
    and when the name carries no settings hash or the result no settings (nothing to compare)."""
    m = _KEYED_NAME.search(run)
    meta = doc.get("meta")
    settings = meta.get("settings") if isinstance(meta, dict) else None
    if m is None or not isinstance(settings, dict):
        return []
    out = []
    key = settings_key(settings)
    if key != m.group(1):
        out.append(f"its settings (meta.settings) hash to {key}, not to {m.group(1)} as its name says")
    config = doc.get("config")
    if isinstance(config, dict):
        out += [f"config.{k}={config[k]!r} disagrees with the settings its name was made from ({k}={settings[k]!r})"
                for k in _SHARED_KEYS if k in config and k in settings and config[k] != settings[k]]
    return out


def _file_entry(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


class ResultsStore:
    """Read and write run results under ``root`` (see the module docstring).

    ``readonly``: default ``$RNN_MFT_RESULTS_READONLY``. ``root``: default :func:`results_root`;
    a file in its place is a ``ValueError`` naming it."""

    def __init__(self, root: str | os.PathLike | None = None, readonly: bool | None = None):
        if root is not None and (not isinstance(root, (str, os.PathLike)) or not os.fspath(root)):
            raise ValueError(f"root={root!r} must be a folder path (str or os.PathLike, not empty) or None "
                             f"(then $RNN_MFT_RESULTS)")
        self.root = check_folder(root, "root") if root is not None else results_root()
        self.readonly = readonly_from_env() if readonly is None else bool(readonly)

    def path(self, profile: str, experiment: str, run: str) -> Path:
        """``<root>/<profile>/<experiment>/<run>`` (without suffix)."""
        for name, v in (("profile", profile), ("experiment", experiment), ("run", run)):
            if not isinstance(v, str) or not _NAME.match(v):
                raise ValueError(f"{name}={v!r} must be a plain name of letters, digits and _ . = + -")
        return self.root / profile / experiment / run

    def files(self, profile: str, experiment: str, run: str) -> tuple[Path, Path, Path]:
        """The run's ``(.json, .npz, .manifest)`` paths."""
        base = self.path(profile, experiment, run)
        return base.with_suffix(".json"), base.with_suffix(".npz"), base.with_suffix(".manifest")

    def checkpoint_path(self, profile: str, experiment: str, run: str) -> Path:
        """Where a long run keeps its checkpoint: the ``checkpoints`` setting (``$RNN_MFT_CHECKPOINTS``)
        or ``<root>/../checkpoints``."""
        env = current_settings().checkpoints
        base = Path(env) if env is not None else self.root.parent / "checkpoints"
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

    def check(self, profile: str, experiment: str, run: str) -> RunCheck:
        """``done``, ``broken`` (with the reason, naming the file) or ``missing``: the one
        verdict that :meth:`exists`, :meth:`load`, :meth:`load_or_run`, ``rnn-mft runs`` and
        ``tools/reproduce.py`` all go by (see the module docstring)."""
        try:
            self._read(profile, experiment, run, curves=False)
        except FileNotFoundError:
            return RunCheck("missing")
        except StoredResultError as exc:
            return RunCheck("broken", exc.reason)
        return RunCheck("done")

    def exists(self, profile: str, experiment: str, run: str) -> bool:
        """The run is done: complete, verified and in agreement with its name (:meth:`check`)."""
        return self.check(profile, experiment, run).state == "done"

    def runs(self, profile: str, experiment: str) -> list[str]:
        """The names of the runs with a ``.json`` in ``<profile>/<experiment>`` (done or not)."""
        d = self.root / profile / experiment
        return sorted(p.stem for p in d.glob("*.json")) if d.exists() else []

    def save(self, profile: str, experiment: str, run: str, result: RunResult) -> Path:
        """Write ``result`` as the run's ``.npz``, ``.json`` and, last, ``.manifest`` (each
        atomically; the old manifest and ``.json`` are removed first, so that an interrupted
        write leaves a broken run, never a done one of mixed files). A result whose settings
        disagree with ``run`` is refused (``ValueError``) before anything is written."""
        if self.readonly:
            raise PermissionError(f"the results store {self.root} is read-only (RNN_MFT_RESULTS_READONLY); "
                                  f"not writing {profile}/{experiment}/{run}")
        js, npz, man = self.files(profile, experiment, run)
        if not isinstance(result, RunResult):
            raise ValueError(f"result must be a rnn_mft.train.RunResult, got {type(result).__name__}")
        result.meta.setdefault("rnn_mft_version", rnn_mft.__version__)  # provenance
        doc = dict(result.to_json_dict(), format=FORMAT, format_version=FORMAT_VERSION)
        bad = _disagreements(run, doc)
        if bad:
            raise ValueError(f"not storing {profile}/{experiment}/{run}: " + "; ".join(bad)
                             + " (a run's name must be made from the settings it stores)")
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: np.asarray(v) for k, v in result.curves.items()})
        npz_bytes = buf.getvalue()
        js_bytes = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
        for old in (man, js):
            old.unlink(missing_ok=True)
        atomic_write_bytes(npz, npz_bytes)
        atomic_write_bytes(js, js_bytes)
        manifest = {"format": MANIFEST_FORMAT, "version": FORMAT_VERSION, "run": f"{profile}/{experiment}/{run}",
                    "files": {npz.name: _file_entry(npz_bytes), js.name: _file_entry(js_bytes)}}
        atomic_write_bytes(man, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
        return js

    def load(self, profile: str, experiment: str, run: str) -> RunResult:
        """The stored result of a done run. ``FileNotFoundError`` when the run has no files,
        :class:`StoredResultError` (naming the file and what is wrong) when it is broken."""
        doc, curves = self._read(profile, experiment, run, curves=True)
        doc = _unjson(doc)
        return RunResult(curves, doc.get("final", {}), doc.get("config", {}), doc.get("meta", {}))

    def _read(self, profile: str, experiment: str, run: str, curves: bool) -> tuple[dict, dict | None]:
        """``(json document as written, curves or None)`` of a verified run; ``curves=False``
        skips decompressing arrays whose bytes the manifest already vouches for."""
        js, npz, man = self.files(profile, experiment, run)
        rid = f"{profile}/{experiment}/{run}"
        if not any(os.path.lexists(p) for p in (js, npz, man)):
            raise FileNotFoundError(f"no stored result {js}")

        def read(p: Path, what: str) -> bytes:
            if not p.exists():
                raise StoredResultError(rid, p, f"{what} {p} is missing (an interrupted write, or deleted)")
            try:
                return p.read_bytes()
            except OSError as exc:
                raise StoredResultError(rid, p, f"{what} {p} cannot be read ({exc.strerror or exc})") from None

        js_bytes = read(js, "its result")
        try:
            doc = json.loads(js_bytes.decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise StoredResultError(rid, js, f"{js} is not valid JSON, truncated or corrupt "
                                             f"({type(exc).__name__}: {exc})") from None
        if not isinstance(doc, dict):
            raise StoredResultError(rid, js, f"{js} is not a JSON object")
        bad = _disagreements(run, doc)

        def broken(p: Path, reason: str) -> StoredResultError:
            return StoredResultError(rid, p, "; ".join([reason] + [f"{js}: {b}" for b in bad]))

        fmt, version = doc.get("format"), doc.get("format_version")
        if fmt is not None and (fmt != FORMAT or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION):
            raise broken(js, f"{js} has store format {fmt!r} version {version!r}; this code reads {FORMAT!r} "
                             f"versions 1 to {FORMAT_VERSION}")
        if fmt is None and not os.path.lexists(man):
            npz_bytes = read(npz, "its curves")          # a result stored before manifests: read it all
            arrays = self._arrays(rid, npz, npz_bytes)
        else:
            mf = read(man, "its manifest")
            try:
                m = json.loads(mf.decode())
            except (ValueError, UnicodeDecodeError) as exc:
                raise broken(man, f"{man} is not valid JSON, truncated or corrupt "
                                  f"({type(exc).__name__}: {exc})") from None
            if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT or m.get("version") != FORMAT_VERSION:
                got = (m.get("format"), m.get("version")) if isinstance(m, dict) else type(m).__name__
                raise broken(man, f"{man} is not a manifest this code reads (format, version {got!r}; "
                                  f"allowed: {MANIFEST_FORMAT!r}, {FORMAT_VERSION})")
            if m.get("run") != rid:
                raise broken(man, f"{man} is the manifest of {m.get('run')!r}, not of {rid} (files copied or renamed)")
            listed = m.get("files") if isinstance(m.get("files"), dict) else {}
            npz_bytes = read(npz, "its curves")
            for p, data in ((npz, npz_bytes), (js, js_bytes)):
                want, have = listed.get(p.name), _file_entry(data)
                if want != have:
                    say = (f"the manifest lists {want.get('bytes')} bytes, SHA-256 {str(want.get('sha256'))[:16]}"
                           if isinstance(want, dict) else "the manifest does not list it")
                    raise broken(p, f"{p} does not match its manifest {man} ({have['bytes']} bytes, SHA-256 "
                                    f"{have['sha256'][:16]}; {say}): truncated, or changed after it was written")
            arrays = self._arrays(rid, npz, npz_bytes) if curves else None
        if bad:
            raise broken(js, f"{js} disagrees with its name")
        want = doc.get("curves")
        if arrays is not None and isinstance(want, list) and sorted(want) != sorted(arrays):
            raise StoredResultError(rid, npz, f"{npz} holds {sorted(arrays)} but {js} lists {sorted(want)}")
        return doc, arrays

    @staticmethod
    def _arrays(rid: str, npz: Path, data: bytes) -> dict:
        """Every array of the ``.npz`` bytes ``data`` (no pickles), or :class:`StoredResultError`."""
        if not data.startswith(b"PK"):
            raise StoredResultError(rid, npz, f"{npz} is not an .npz archive")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise StoredResultError(rid, npz, f"{npz} is corrupt ({type(exc).__name__}: {exc})") from None

    def load_or_run(self, profile: str, experiment: str, run: str, fn: Callable[[], RunResult],
                    rerun: bool = False, checkpoint: str | os.PathLike | None = None) -> RunResult:
        """The stored result if the run is done (and not ``rerun``), else ``fn()``, stored.

        A **broken** run (:meth:`check`) is trained again, with a line on stderr saying why;
        in a read-only store it raises :class:`StoredResultError` naming the broken file, and
        a missing run raises ``FileNotFoundError``. The store is checked for writability before
        ``fn`` runs. With ``checkpoint`` (the path ``fn`` trains with), the checkpoint is kept
        in its final state until the result is written and deleted only then; if writing fails,
        the error names the checkpoint, which a rerun resumes without training again.
        """
        rid = f"{profile}/{experiment}/{run}"
        if not rerun:
            try:
                return self.load(profile, experiment, run)
            except FileNotFoundError:
                pass
            except StoredResultError as exc:
                if self.readonly:
                    raise
                print(f"rnn_mft: training {rid} again: {exc.reason}", file=sys.stderr)
        if self.readonly:
            if rerun:
                raise PermissionError(f"cannot train {rid} again: the results store {self.root} is read-only "
                                      f"(RNN_MFT_RESULTS_READONLY)")
            raise FileNotFoundError(f"{rid} is not in the read-only results store "
                                    f"{self.root}; run it first without RNN_MFT_RESULTS_READONLY")
        self.check_writable(profile, experiment)
        if checkpoint is None:
            result = fn()
            self.save(profile, experiment, run, result)
            return result
        ck = Path(checkpoint)
        with keep_checkpoint(ck):
            result = fn()
        try:
            self.save(profile, experiment, run, result)
        except OSError as exc:
            kept = f"the trained state is kept in checkpoint {ck}" if ck.exists() else "no checkpoint was kept"
            raise type(exc)(f"could not write the result {rid} to {self.root} ({exc}); "
                            f"{kept}: fix the store and rerun, which resumes from it") from exc
        ck.unlink(missing_ok=True)
        return result
