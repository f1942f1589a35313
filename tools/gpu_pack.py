"""Bring a lent GPU session's outputs back through a narrow door, and unpack them here.

A lent GPU machine returns only a few files from its output folder (this workplace's device
tool: at most 8 files, 16 MiB each, 64 MiB in all, no deeper than 2 folders, names of letters,
digits, ``.``, ``_`` and ``-``). The results store (``<root>/<profile>/<experiment>/<run>.json``
and its other files) and checkpoints are deeper and more numerous than that, so ``pack`` turns a
session's staging folder into a fixed set of files, and ``unpack`` checks and restores them in
the repository:

* ``summary.txt``: the steps' exit codes and each log's last lines, plain text;
* ``logs.tgz``: every log, JSON report and provenance file of the staging folder (flat; logs
  beyond :data:`MAX_LOGS_MIB` in all stay behind);
* ``payload.tgz.00``, ``.01``, ...: one gzip'd tar of the results store (``results/...``),
  then as many checkpoints (``checkpoints/...``, smallest first) as fit, cut into parts of at
  most ``--part-mib``;
* ``manifest.json`` (written last): size and SHA-256 of every file above, what the payload
  holds (each file's size), and what was left behind and why (a checkpoint too large to come back).

``unpack FOLDER`` writes nothing unless the whole pack passes these checks:

* every file matches the manifest (size, SHA-256), within the device tool's limits;
* the payload holds exactly the files the manifest lists, each once, with the sizes it lists,
  all regular files at ``results/<profile>/<experiment>/<file>`` or
  ``checkpoints/<profile>/<experiment>/<run>.pt`` (no absolute paths, no ``..``); logs are
  flat regular files, each once. A path that is a folder here, or lies under a file here, is
  refused. Decompression is bounded: the payload's tar may expand to the sizes the manifest
  declares (at most :data:`MAX_TOTAL_MIB` MiB, :data:`MAX_MEMBERS` files, plus tar headers),
  the logs' to :data:`MAX_LOGS_MIB` MiB, a result's curves to :data:`MAX_CURVES_MIB` MiB, and
  every member is streamed to a temporary file in chunks, never read whole;
* every incoming result loads (``rnn_mft.train.ResultsStore.load``: its JSON parses, its
  ``.npz``, from the pack or already here, opens with ``allow_pickle=False``, ...), and every
  incoming checkpoint is a sound one (``rnn_mft.train.checkpoint.read_checkpoint``: tensors and
  plain data, hash checked; nothing is unpickled);
* an existing result or log that differs from the incoming one is a clash (``--force``
  replaces it).

A checkpoint replaces one here only when it is later (a higher step) of the same settings, or
when the one here is not a sound checkpoint; an earlier or equal one leaves the one here in place
(said in the report, whatever ``--force``); one of other settings is a clash (``--force``
replaces it). The checkpoint of a run whose result arrives is deleted (the run finished from it;
the result loaded first): commit the deletion too, so that what travels to the next GPU stays
small. Results go to ``data/results/``, checkpoints to ``data/checkpoints/``, the logs to
``data/gpu_sessions/<start>/``, each file atomically.

    python tools/gpu_pack.py pack --stage _build/gpu_stage --out "$OUT"
    python tools/gpu_pack.py unpack /path/to/returned/files [--repo .] [--dry-run] [--force]
"""
from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath

#: the device tool's limits on what comes back (README of the device tool)
MAX_FILES, MAX_FILE_MIB, MAX_TOTAL_MIB = 8, 16, 64
#: at most this many files in the payload or the logs (pack leaves the rest behind)
MAX_MEMBERS = 10_000
#: the logs' tar expands to at most this (text compresses well; pack leaves logs beyond it behind)
MAX_LOGS_MIB = 256
#: a result's curves (its ``.npz``) expand to at most this
MAX_CURVES_MIB = 512
#: tar bytes allowed per payload file beyond its data: header, a long name's pax header, padding
TAR_OVERHEAD = 4096
NAME_OK = re.compile(r"^[A-Za-z0-9._-]+$")
MEMBER_OK = re.compile(r"^[A-Za-z0-9_.=+-]+$")         # a path part inside the payload (the results store's names)
PAYLOAD = "payload.tgz"
ROOTS = ("results", "checkpoints")
CHUNK = 1 << 20
#: the order in which a run's files are written, as the results store writes them (its manifest last)
_WRITE_ORDER = {".npz": 0, ".json": 1, ".manifest": 2}


class TooLarge(ValueError):
    """A tar that expands beyond its limit (a decompression bomb, or a pack not made by ``pack``)."""


def _sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _atomic_write(path: Path, data: bytes | Path) -> None:
    """Write ``data`` (bytes, or the file at that path, copied in chunks) to ``path`` atomically:
    a temporary file in the same folder, flushed to disk, then moved into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            if isinstance(data, Path):
                with open(data, "rb") as src:
                    shutil.copyfileobj(src, fh, CHUNK)
            else:
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _files(root: Path | None, since: float | None = None) -> list[Path]:
    """Regular files under ``root`` (no links, no hidden or temporary files), modified at or after
    ``since`` (seconds since the epoch) when given."""
    if root is None or not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and not p.name.startswith(".")
                  and (since is None or p.stat().st_mtime >= since))


def _tail(path: Path, n: int = 6) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + ln[:200] for ln in lines[-n:])


def _tgz(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def pack(stage: Path, out: Path, results: Path | None = None, checkpoints: Path | None = None,
         part_mib: float = 15.0, total_mib: float = 60.0, max_files: int = MAX_FILES,
         since: float | None = None) -> dict:
    """Pack ``stage`` (logs; ``results``/``checkpoints`` default to ``stage/results`` and
    ``stage/checkpoints``; with ``since``, only their files written at or after that time, i.e.
    this session's) into ``out`` within the limits; returns the manifest."""
    if not 0 < part_mib <= MAX_FILE_MIB:
        raise ValueError(f"part_mib={part_mib}; allowed: 0 < part_mib <= {MAX_FILE_MIB}")
    if not 0 < total_mib <= MAX_TOTAL_MIB:
        raise ValueError(f"total_mib={total_mib}; allowed: 0 < total_mib <= {MAX_TOTAL_MIB}")
    if not 4 <= max_files <= MAX_FILES:
        raise ValueError(f"max_files={max_files}; allowed: 4 to {MAX_FILES}")
    stage, out = Path(stage), Path(out)
    results = Path(results) if results is not None else stage / "results"
    checkpoints = Path(checkpoints) if checkpoints is not None else stage / "checkpoints"
    out.mkdir(parents=True, exist_ok=True)
    part, total = int(part_mib * 2**20), int(total_mib * 2**20)
    left = []                                   # what stays behind, and why

    # logs: the stage's top-level files (results/, checkpoints/ are folders), while unpack takes them
    logs, raw = [], 0
    for p in (sorted(stage.iterdir()) if stage.is_dir() else []):
        if p.is_file() and not p.is_symlink() and not p.name.startswith("."):
            size = p.stat().st_size + TAR_OVERHEAD
            if raw + size <= MAX_LOGS_MIB * 2**20 - 65536 and len(logs) < MAX_MEMBERS:   # room for the tar's end
                logs.append(p)
                raw += size
            else:
                left.append({"file": p.name, "bytes": size - TAR_OVERHEAD,
                             "why": f"the logs hold at most {MAX_LOGS_MIB} MiB and {MAX_MEMBERS} files"})

    # summary.txt: readable without unpacking anything
    lines = [f"GPU session outputs, packed {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"]
    steps = stage / "steps.txt"
    if steps.is_file():
        lines += ["steps:", *("  " + ln for ln in steps.read_text().splitlines())]
    for p in logs:
        if p.suffix == ".txt" and p.name != "steps.txt":
            lines += [f"{p.name} (last lines):", _tail(p)]
    written = {"summary.txt": "\n".join(lines).encode() + b"\n"}
    written["logs.tgz"] = _tgz([(p.name, p.read_bytes()) for p in logs])

    # payload: the results store, then checkpoints smallest first, each while it fits (raw bytes
    # are counted: gzip saves little on float tensors, so the packed payload is never larger)
    budget = total - sum(len(v) for v in written.values()) - 64 * 1024        # the manifest's room
    budget = min(budget, part * (max_files - 3))                               # summary, logs, manifest
    budget = int(0.99 * budget)                  # gzip of incompressible bytes adds ~0.02%: never a part too many
    entries, raw = [], 0
    groups: dict = {}                            # a run's files travel together or not at all
    for p in _files(results, since):
        groups.setdefault(p.with_suffix(""), []).append(
            (str(PurePosixPath("results", *p.relative_to(results).parts)), p))
    cands = list(groups.values())
    cands += [[(str(PurePosixPath("checkpoints", *p.relative_to(checkpoints).parts)), p)]
              for p in sorted(_files(checkpoints, since), key=lambda q: q.stat().st_size)]
    for group in cands:
        size = sum(p.stat().st_size + 1024 for _, p in group)      # + a tar header and padding each
        if raw + size <= budget and len(entries) + len(group) <= MAX_MEMBERS:
            entries += group
            raw += size
        else:
            left += [{"file": name, "bytes": p.stat().st_size,
                      "why": f"does not fit what can come back ({budget / 2**20:.1f} MiB and {MAX_MEMBERS} "
                             f"files for the payload)"}
                     for name, p in group]
    chosen = [(n, p.read_bytes()) for n, p in entries]       # read once: the manifest lists what was packed
    blob = _tgz(chosen)
    parts = [blob[i:i + part] for i in range(0, len(blob), part)] or [b""]
    for i, chunk in enumerate(parts):
        written[f"{PAYLOAD}.{i:02d}"] = chunk

    start = None
    prov = stage / "provenance.json"
    if prov.is_file():
        try:
            start = json.loads(prov.read_text()).get("start")
        except (OSError, ValueError):
            start = None
    manifest = {"format": "rnn_mft-gpu-pack", "version": 1,
                "packed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "session_start": start,
                "files": {k: {"bytes": len(v), "sha256": _sha256(v)} for k, v in written.items()},
                "payload_parts": [f"{PAYLOAD}.{i:02d}" for i in range(len(parts))],
                "payload": [{"file": n, "bytes": len(b)} for n, b in chosen],
                "logs": [p.name for p in logs], "left_behind": left}
    for name, data in written.items():
        _atomic_write(out / name, data)
    _atomic_write(out / "manifest.json", json.dumps(manifest, indent=1).encode())
    keep = set(written) | {"manifest.json"}
    for p in out.iterdir():                      # parts of an earlier, larger pack
        if p.is_file() and p.name.startswith(PAYLOAD + ".") and p.name not in keep:
            p.unlink()
    return manifest


# ----------------------------------------------------------------------------- unpack

def _read_pack(folder: Path) -> tuple[dict, dict]:
    """``(manifest, {file name: bytes})`` of the pack in ``folder``, every file checked against the
    manifest (size and SHA-256) and the device tool's limits before it is read."""
    mpath = folder / "manifest.json"
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"{folder} {what}; allowed: the folder of a packed GPU session (with manifest.json)")
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath} not found: no packed GPU session in {folder}")
    if mpath.stat().st_size > MAX_FILE_MIB * 2**20:
        raise ValueError(f"{mpath} holds {mpath.stat().st_size} bytes; a manifest of tools/gpu_pack.py is at most "
                         f"{MAX_FILE_MIB} MiB")
    raw = mpath.read_bytes()
    try:
        man = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{mpath} is not valid JSON ({exc})") from None
    if not isinstance(man, dict) or man.get("format") != "rnn_mft-gpu-pack" or man.get("version") != 1:
        got = (man.get("format"), man.get("version")) if isinstance(man, dict) else type(man).__name__
        raise ValueError(f"{mpath}: not a manifest of tools/gpu_pack.py (format, version {got!r}; "
                         f"allowed: 'rnn_mft-gpu-pack', 1)")

    def bad(what: str):
        return ValueError(f"{mpath}: {what}; nothing was unpacked")

    files, parts = man.get("files"), man.get("payload_parts")
    if not isinstance(files, dict) or not 0 < len(files) < MAX_FILES or "logs.tgz" not in files:
        raise bad(f"'files' must map 1 to {MAX_FILES - 1} file names, logs.tgz among them, to their size and SHA-256")
    if not isinstance(parts, list) or not parts or any(not isinstance(n, str) or n not in files for n in parts):
        raise bad("'payload_parts' must list files of 'files'")
    if not isinstance(man.get("payload"), list) or not isinstance(man.get("logs"), list):
        raise bad("'payload' and 'logs' must be lists")
    limit, sizes = MAX_FILE_MIB * 2**20, {}
    for name, meta in files.items():
        if not NAME_OK.fullmatch(name) or name == "manifest.json":
            raise bad(f"refused file name {name!r}")
        n = meta.get("bytes") if isinstance(meta, dict) else None
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= limit:
            raise bad(f"{name}: bytes={n!r}; allowed: 0 to {limit} (the device tool's {MAX_FILE_MIB} MiB)")
        sizes[name] = n
    if sum(sizes.values()) > MAX_TOTAL_MIB * 2**20:
        raise bad(f"its files hold {sum(sizes.values())} bytes; allowed: at most {MAX_TOTAL_MIB} MiB")
    data = {}
    for name in files:
        p = folder / name
        if not p.is_file():
            raise FileNotFoundError(f"{p} is listed in the manifest but missing (did every file come back?)")
        with open(p, "rb") as fh:
            b = fh.read(sizes[name] + 1)            # never more than the manifest says (+1: a longer file shows)
        if len(b) != sizes[name] or _sha256(b) != files[name].get("sha256"):
            raise ValueError(f"{p}: size or SHA-256 differs from the manifest (a partial or mixed pack); "
                             f"nothing was unpacked")
        data[name] = b
    data[mpath.name] = raw
    return man, data


def _declared_payload(man: dict) -> dict[str, int]:
    """``{member: bytes}`` the manifest declares for the payload, checked against the limits."""
    out = {}
    for e in man["payload"]:
        name, n = (e.get("file"), e.get("bytes")) if isinstance(e, dict) else (None, None)
        if not isinstance(name, str) or not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"manifest.json: payload entry {e!r}; allowed: {{'file': str, 'bytes': int >= 0}}")
        key = str(_safe_member(name))
        if key in out:
            raise ValueError(f"manifest.json lists payload member {name!r} twice")
        out[key] = n
    if len(out) > MAX_MEMBERS or sum(out.values()) > MAX_TOTAL_MIB * 2**20:
        raise TooLarge(f"manifest.json declares {len(out)} payload files of {sum(out.values())} bytes; allowed: at "
                       f"most {MAX_MEMBERS} files and {MAX_TOTAL_MIB} MiB (what can come back)")
    return out


class _Bounded(io.RawIOBase):
    """The decompressed bytes of the gzip ``blob``, as a stream that raises :class:`TooLarge`
    once more than ``limit`` bytes were read from it (so memory and time stay bounded)."""

    def __init__(self, blob: bytes, limit: int, what: str):
        self._raw, self._limit, self._what, self._count = gzip.GzipFile(fileobj=io.BytesIO(blob)), limit, what, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        room = self._limit - self._count + 1
        b = self._raw.read(room if n is None or n < 0 else min(n, room))
        self._count += len(b)
        if self._count > self._limit:
            raise TooLarge(f"{self._what} expands to more than {self._limit} bytes (its limit): refused, "
                           f"nothing was unpacked")
        return b


def _untar(blob: bytes, what: str, limit: int, dest: Path, place) -> list[tuple[str, Path]]:
    """Stream the gzip'd tar ``blob`` (at most ``limit`` bytes decompressed) into ``dest``:
    ``[(member path, its temporary file)]``. ``place(member)`` returns the member's checked path
    (a :class:`~pathlib.PurePosixPath` of a fixed depth, so that no file is a folder of another)
    or raises ``ValueError``. Refused: a member that is not a regular file, one that appears twice,
    more than :data:`MAX_MEMBERS`. Each is copied in chunks, never read whole."""
    out = {}
    try:
        with tarfile.open(fileobj=_Bounded(blob, limit, what), mode="r|") as tf:
            for m in tf:
                if not m.isfile():
                    raise ValueError(f"refused {what} member {m.name!r}: not a regular file")
                rel = place(m)
                key = str(rel)
                if key in out:
                    raise ValueError(f"refused {what} member {m.name!r}: it appears twice (which one is meant?)")
                if len(out) >= MAX_MEMBERS:
                    raise TooLarge(f"{what} holds more than {MAX_MEMBERS} files: refused, nothing was unpacked")
                path = dest.joinpath(*rel.parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(m) as src, open(path, "xb") as fh:
                    shutil.copyfileobj(src, fh, CHUNK)
                out[key] = path
    except (EOFError, zlib.error) as exc:
        raise ValueError(f"{what} is not a readable gzip'd tar ({type(exc).__name__}: {exc})") from None
    return list(out.items())


def _safe_member(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if (p.is_absolute() or ".." in p.parts or len(p.parts) != 4 or p.parts[0] not in ROOTS
            or (p.parts[0] == "checkpoints" and p.suffix != ".pt")):
        raise ValueError(f"refused payload member {name!r}: allowed are results/<profile>/<experiment>/<file> "
                         f"and checkpoints/<profile>/<experiment>/<run>.pt, without '..'")
    if any(not MEMBER_OK.fullmatch(part) for part in p.parts):
        raise ValueError(f"refused payload member {name!r}: path parts may hold letters, digits and . _ = + -")
    return p


def _check_place(name: str, target: Path, repo: Path) -> None:
    """``target`` can take a file: it is no folder here, and no file here lies in its way."""
    if target.is_dir():
        raise ValueError(f"refused {name!r}: {target} is a folder here; a file cannot replace it")
    for q in target.parents:
        if q == repo or repo not in q.parents:
            break
        if q.exists() and not q.is_dir():
            raise ValueError(f"refused {name!r}: {q} is a file here, not a folder; nothing was unpacked")


def _same(src: Path, target: Path) -> bool:
    """``target`` exists and holds the bytes of ``src`` (compared in chunks)."""
    if not target.is_file() or target.stat().st_size != src.stat().st_size:
        return False
    with open(src, "rb") as a, open(target, "rb") as b:
        while True:
            x, y = a.read(CHUNK), b.read(CHUNK)
            if x != y:
                return False
            if not x:
                return True


def _verify_results(plan: list, res_root: Path, tmp: Path) -> None:
    """Every run with a file in ``plan`` must load, with its files from the pack and, for the
    others, the ones here: ``ResultsStore.load`` on a copy. ``ValueError`` naming the run otherwise."""
    from rnn_mft.train import ResultsStore, StoredResultError
    runs: dict = {}
    for name, target, src in plan:
        if res_root in target.parents:
            runs.setdefault(target.with_suffix(""), {})[target.name] = (name, src)
    for i, (base, incoming) in enumerate(runs.items()):
        profile, experiment = base.parent.parent.name, base.parent.name
        where = tmp / "verify" / str(i) / profile / experiment
        where.mkdir(parents=True)
        here = base.parent.glob(glob.escape(base.name) + ".*") if base.parent.is_dir() else []
        for p in (p for p in here if p.is_file()):
            shutil.copyfile(p, where / p.name)
        for fname, (_, src) in incoming.items():
            shutil.copyfile(src, where / fname)
        names = ", ".join(repr(n) for n, _ in incoming.values())
        try:
            npz = where / (base.name + ".npz")
            if npz.is_file() and zipfile.is_zipfile(npz):
                with zipfile.ZipFile(npz) as z:
                    size = sum(info.file_size for info in z.infolist())
                if size > MAX_CURVES_MIB * 2**20:
                    raise TooLarge(f"its curves {npz.name} expand to {size} bytes; allowed: at most "
                                   f"{MAX_CURVES_MIB} MiB")
            ResultsStore(tmp / "verify" / str(i), readonly=True).load(profile, experiment, base.name)
        except (StoredResultError, FileNotFoundError, ValueError, zipfile.BadZipFile) as exc:
            why = str(exc).replace(str(where), f"results/{profile}/{experiment}")     # no temporary paths
            raise ValueError(f"refused payload {names}: the result {profile}/{experiment}/{base.name} does not load "
                             f"({why}); nothing was unpacked") from None


def _checkpoint(path: Path) -> tuple[int, dict]:
    """``(step, settings)`` of the sound checkpoint at ``path``, else ``CheckpointError``: format,
    version and hash checked by ``rnn_mft.train.checkpoint.read_checkpoint`` (tensors and plain
    data only: nothing is unpickled beyond them)."""
    from rnn_mft.train.checkpoint import CheckpointError, read_checkpoint
    settings, state = read_checkpoint(path)
    step = state.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(path, f"holds no step count (step={step!r})")
    return step, settings


def _checkpoint_verdict(name: str, src: Path, target: Path, shown: str) -> tuple[str, str]:
    """What the incoming checkpoint ``src`` (payload member ``name``) does to ``target``:
    ``("write", "")``, ``("keep", why)`` (the one here is as late or later) or ``("clash", why)``
    (the one here has other settings); ``shown``: how the messages name ``target``. ``ValueError``
    when ``src`` is not a sound checkpoint."""
    from rnn_mft.train.checkpoint import DISCARD_HINT, CheckpointError
    try:
        step, settings = _checkpoint(src)
    except CheckpointError as exc:
        why = str(exc).replace(f"checkpoint {src}: ", "").replace(f"; {DISCARD_HINT}", "")
        raise ValueError(f"refused payload member {name!r}: not a sound checkpoint ({why}); nothing was "
                         f"unpacked") from None
    if not target.exists() or _same(src, target):
        return "write", ""
    try:
        step_here, settings_here = _checkpoint(target)
    except CheckpointError:
        return "write", ""                        # the one here cannot be resumed: the sound one replaces it
    if settings != settings_here:
        keys = sorted(k for k in set(settings) | set(settings_here) if settings.get(k) != settings_here.get(k))
        return "clash", f"{shown} (a checkpoint of other settings: {', '.join(keys)} differ)"
    if step <= step_here:
        return "keep", (f"kept {shown} (step {step_here}; the pack's {name} is step {step}, not later: "
                        f"unpack sessions in the order they ran)")
    return "write", ""


def unpack(folder: Path, repo: Path, dry_run: bool = False, force: bool = False) -> list[str]:
    """Check ``folder`` against its manifest and restore it under ``repo`` (see the module
    docstring: nothing is written unless every check passes); returns what was written, kept
    and deleted."""
    folder, repo = Path(folder), Path(repo)
    man, data = _read_pack(folder)
    declared = _declared_payload(man)
    logs_listed = {n for n in man["logs"] if isinstance(n, str)}
    data_root = repo / "data"
    res_root, ck_root = data_root / "results", data_root / "checkpoints"
    stamp = re.sub(r"[^0-9A-Za-z]", "", str(man.get("session_start") or man.get("packed")))[:64]
    if not stamp:
        raise ValueError("manifest.json: neither 'session_start' nor 'packed' names the session")

    def payload_member(m: tarfile.TarInfo) -> PurePosixPath:
        p = _safe_member(m.name)
        if declared.get(str(p)) != m.size:
            raise ValueError(f"refused payload member {m.name!r} of {m.size} bytes: the manifest declares "
                             f"{declared.get(str(p), 'no such file')} (a forged or mixed pack)")
        return p

    def log_member(m: tarfile.TarInfo) -> PurePosixPath:
        if not NAME_OK.fullmatch(m.name) or m.name not in logs_listed:
            raise ValueError(f"refused log member {m.name!r}: logs are flat regular files the manifest lists")
        return PurePosixPath(m.name)

    with tempfile.TemporaryDirectory(prefix="gpu_pack-unpack-") as tmp:
        tmp = Path(tmp)
        blob = b"".join(data[n] for n in man["payload_parts"])
        limit = sum(declared.values()) + TAR_OVERHEAD * (len(declared) + 4)   # + the end blocks and padding
        plan = [(name, data_root / Path(*PurePosixPath(name).parts), src)
                for name, src in _untar(blob, "payload", limit, tmp / "payload", payload_member)]
        missing = sorted(set(declared) - {name for name, _, _ in plan})
        if missing:
            raise ValueError(f"the payload lacks {', '.join(missing[:5])}, which the manifest lists (a mixed pack)")
        plan += [(f"logs.tgz:{name}", data_root / "gpu_sessions" / stamp / name, src)
                 for name, src in _untar(data["logs.tgz"], "logs", MAX_LOGS_MIB * 2**20, tmp / "logs", log_member)]
        (tmp / "manifest.json").write_bytes(data["manifest.json"])
        plan.append(("manifest.json", data_root / "gpu_sessions" / stamp / "manifest.json", tmp / "manifest.json"))
        for name, target, _ in plan:
            _check_place(name, target, repo)
        _verify_results(plan, res_root, tmp)

        clash, kept, writes = [], [], []
        for name, target, src in plan:
            if ck_root in target.parents:
                verdict, why = _checkpoint_verdict(name, src, target, str(target.relative_to(repo)))
                if verdict == "keep":
                    kept.append(why)
                    continue
                if verdict == "clash":
                    clash.append(why)
            elif target.exists() and not _same(src, target):
                clash.append(str(target))
            writes.append((name, target, src))
        if clash and not force:
            raise FileExistsError("these files exist with other contents (pass --force to replace them): "
                                  + ", ".join(clash[:5]) + (" ..." if len(clash) > 5 else ""))
        done = []
        writes.sort(key=lambda e: (res_root not in e[1].parents, str(e[1].with_suffix("")),
                                   _WRITE_ORDER.get(e[1].suffix, -1)))
        for _, target, src in writes:
            if _same(src, target):
                continue
            if not dry_run:
                _atomic_write(target, src)
            done.append(str(target.relative_to(repo)))
    done += kept
    planned = {target for _, target, _ in plan}
    for _, target, _ in plan:                   # a result arrived (and loaded): its run finished, its checkpoint spent
        if target.suffix == ".json" and res_root in target.parents:
            ck = ck_root / target.parent.relative_to(res_root) / (target.stem + ".pt")
            if ck.is_file() and ck not in planned:
                if not dry_run:
                    ck.unlink()
                done.append(f"deleted {ck.relative_to(repo)} (its run finished)")
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="pack a staging folder into the output folder")
    p.add_argument("--stage", required=True, help="the session's staging folder (logs, reports)")
    p.add_argument("--out", required=True, help="the folder that comes back ($OUT)")
    p.add_argument("--results", help="results store root (default STAGE/results)")
    p.add_argument("--checkpoints", help="checkpoint root (default STAGE/checkpoints)")
    p.add_argument("--since", type=float, help="only results and checkpoints written at or after this time "
                   "(seconds since the epoch: the session's start)")
    p.add_argument("--part-mib", type=float, default=15.0, help=f"largest file (default 15; at most {MAX_FILE_MIB})")
    p.add_argument("--total-mib", type=float, default=60.0, help=f"all files (default 60; at most {MAX_TOTAL_MIB})")
    u = sub.add_parser("unpack", help="check and restore a returned folder into the repository")
    u.add_argument("folder")
    u.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    u.add_argument("--dry-run", action="store_true")
    u.add_argument("--force", action="store_true",
                   help="replace existing results and logs that differ, and checkpoints of other settings "
                        "(never a later checkpoint by an earlier one)")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "pack":
            man = pack(Path(a.stage), Path(a.out), a.results and Path(a.results), a.checkpoints and Path(a.checkpoints),
                       a.part_mib, a.total_mib, since=a.since)
            n = len(man["files"]) + 1
            size = sum(f["bytes"] for f in man["files"].values())
            print(f"packed {len(man['payload'])} payload files and {len(man['logs'])} logs into {n} files "
                  f"({size / 2**20:.2f} MiB) in {a.out}"
                  + (f"; left behind: {len(man['left_behind'])} (see manifest.json)" if man["left_behind"] else ""))
        else:
            done = unpack(Path(a.folder), Path(a.repo), a.dry_run, a.force)
            verb = "would write" if a.dry_run else "wrote"
            n = sum(1 for d in done if not d.startswith(("kept ", "deleted ")))
            print(f"{verb} {n} files" + "".join(f"\n  {d}" for d in done))
    except (OSError, ValueError, RuntimeError, tarfile.TarError) as exc:
        print(f"gpu_pack.py {a.cmd}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
