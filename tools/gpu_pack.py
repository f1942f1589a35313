"""Bring a lent GPU session's outputs back through a narrow door, and unpack them here.

A lent GPU machine returns only a few files from its output folder (this workplace's device
tool: at most 8 files, 16 MiB each, 64 MiB in all, no deeper than 2 folders, names of letters,
digits, ``.``, ``_`` and ``-``). The results store (``<root>/<profile>/<experiment>/<run>.json``
and ``.npz``) and checkpoints are deeper and more numerous than that, so ``pack`` turns a
session's staging folder into a fixed set of files, and ``unpack`` checks and restores them in
the repository:

* ``summary.txt``: the steps' exit codes and each log's last lines, plain text;
* ``logs.tgz``: every log, JSON report and provenance file of the staging folder (flat);
* ``payload.tgz.00``, ``.01``, ...: one gzip'd tar of the results store (``results/...``),
  then as many checkpoints (``checkpoints/...``, smallest first) as fit, cut into parts of at
  most ``--part-mib``;
* ``manifest.json`` (written last): size and SHA-256 of every file above, what the payload
  holds, and what was left behind and why (a checkpoint too large to come back).

``unpack FOLDER`` refuses anything that does not match the manifest, any tar member that is not
a regular file or whose path is absolute, climbs out (``..``) or lies outside ``results/`` and
``checkpoints/``, and any existing result or log that differs from the incoming one (``--force``
replaces it). It writes results to ``data/results/``, checkpoints to ``data/checkpoints/`` and
the logs to ``data/gpu_sessions/<start>/``, each file atomically. Nothing is unpickled. A
checkpoint replaces an older one of the same run (the run went on from it; unpack sessions in
the order they ran), and the checkpoint of a run whose result arrives is deleted (the run
finished from it): commit the deletion too, so that what travels to the next GPU stays small.

    python tools/gpu_pack.py pack --stage _build/gpu_stage --out "$OUT"
    python tools/gpu_pack.py unpack /path/to/returned/files [--repo .] [--dry-run] [--force]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath

#: the device tool's limits on what comes back (README of the device tool)
MAX_FILES, MAX_FILE_MIB, MAX_TOTAL_MIB = 8, 16, 64
NAME_OK = re.compile(r"^[A-Za-z0-9._-]+$")
MEMBER_OK = re.compile(r"^[A-Za-z0-9_.=+-]+$")         # a path part inside the payload (the results store's names)
PAYLOAD = "payload.tgz"
ROOTS = ("results", "checkpoints")


def _sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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
    logs = [p for p in sorted(stage.iterdir()) if p.is_file() and not p.is_symlink() and not p.name.startswith(".")
            ] if stage.is_dir() else []             # top-level files only (results/, checkpoints/ are folders)
    part, total = int(part_mib * 2**20), int(total_mib * 2**20)

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
    entries, left, raw = [], [], 0
    groups: dict = {}                            # a run's .json and .npz travel together or not at all
    for p in _files(results, since):
        groups.setdefault(p.with_suffix(""), []).append(
            (str(PurePosixPath("results", *p.relative_to(results).parts)), p))
    cands = list(groups.values())
    cands += [[(str(PurePosixPath("checkpoints", *p.relative_to(checkpoints).parts)), p)]
              for p in sorted(_files(checkpoints, since), key=lambda q: q.stat().st_size)]
    for group in cands:
        size = sum(p.stat().st_size + 1024 for _, p in group)      # + a tar header and padding each
        if raw + size <= budget:
            entries += group
            raw += size
        else:
            left += [{"file": name, "bytes": p.stat().st_size,
                      "why": f"does not fit what can come back ({budget / 2**20:.1f} MiB for the payload)"}
                     for name, p in group]
    blob = _tgz([(n, p.read_bytes()) for n, p in entries])
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
                "payload": [{"file": n, "bytes": p.stat().st_size} for n, p in entries],
                "logs": [p.name for p in logs], "left_behind": left}
    for name, data in written.items():
        _atomic_write(out / name, data)
    _atomic_write(out / "manifest.json", json.dumps(manifest, indent=1).encode())
    keep = set(written) | {"manifest.json"}
    for p in out.iterdir():                      # parts of an earlier, larger pack
        if p.is_file() and p.name.startswith(PAYLOAD + ".") and p.name not in keep:
            p.unlink()
    return manifest


def _safe_member(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] not in ROOTS or len(p.parts) < 2:
        raise ValueError(f"refused payload member {name!r}: allowed are relative paths under "
                         f"{' or '.join(r + '/' for r in ROOTS)} without '..'")
    if any(not MEMBER_OK.match(part) for part in p.parts):
        raise ValueError(f"refused payload member {name!r}: path parts may hold letters, digits and . _ = + -")
    return p


def unpack(folder: Path, repo: Path, dry_run: bool = False, force: bool = False) -> list[str]:
    """Check ``folder`` against its manifest and restore it under ``repo``; returns what was written."""
    folder, repo = Path(folder), Path(repo)
    mpath = folder / "manifest.json"
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath} not found: no packed GPU session in {folder}")
    try:
        man = json.loads(mpath.read_text())
    except ValueError as exc:
        raise ValueError(f"{mpath} is not valid JSON ({exc})") from None
    if man.get("format") != "rnn_mft-gpu-pack" or man.get("version") != 1:
        raise ValueError(f"{mpath}: not a manifest of tools/gpu_pack.py (format {man.get('format')!r}, "
                         f"version {man.get('version')!r})")
    data = {}
    for name, meta in man["files"].items():
        if not NAME_OK.match(name):
            raise ValueError(f"{mpath}: refused file name {name!r}")
        p = folder / name
        if not p.is_file():
            raise FileNotFoundError(f"{p} is listed in the manifest but missing (did every file come back?)")
        b = p.read_bytes()
        if len(b) != meta["bytes"] or _sha256(b) != meta["sha256"]:
            raise ValueError(f"{p}: size or SHA-256 differs from the manifest (a partial or mixed pack); "
                             f"nothing was unpacked")
        data[name] = b
    blob = b"".join(data[n] for n in man["payload_parts"])
    plan = []                                   # (target path, bytes)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tf:
        for m in tf.getmembers():
            if not m.isfile():
                raise ValueError(f"refused payload member {m.name!r}: not a regular file")
            p = _safe_member(m.name)
            plan.append((repo / "data" / Path(*p.parts), tf.extractfile(m).read()))
    stamp = re.sub(r"[^0-9A-Za-z]", "", str(man.get("session_start") or man["packed"]))
    with tarfile.open(fileobj=io.BytesIO(data["logs.tgz"]), mode="r:gz") as tf:
        for m in tf.getmembers():
            if not m.isfile() or "/" in m.name or not NAME_OK.match(m.name):
                raise ValueError(f"refused log member {m.name!r}: logs are flat regular files")
            plan.append((repo / "data" / "gpu_sessions" / stamp / m.name, tf.extractfile(m).read()))
    plan.append((repo / "data" / "gpu_sessions" / stamp / "manifest.json", mpath.read_bytes()))
    ck_root = repo / "data" / "checkpoints"
    clash = [str(t) for t, b in plan if t.exists() and t.read_bytes() != b and ck_root not in t.parents]
    if clash and not force:
        raise FileExistsError("these files exist with other contents (pass --force to replace them): "
                              + ", ".join(clash[:5]) + (" ..." if len(clash) > 5 else ""))
    done = []
    for target, b in plan:
        if target.exists() and target.read_bytes() == b:
            continue
        if not dry_run:
            _atomic_write(target, b)
        done.append(str(target.relative_to(repo)))
    res_root = repo / "data" / "results"
    for target, _ in plan:                      # a result arrived: its run finished, its checkpoint is spent
        if target.suffix == ".json" and res_root in target.parents:
            ck = ck_root / target.parent.relative_to(res_root) / (target.stem + ".pt")
            if ck.is_file() and all(t != ck for t, _ in plan):
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
    u.add_argument("--force", action="store_true", help="replace existing files that differ")
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
            print(f"{verb} {len(done)} files" + "".join(f"\n  {d}" for d in done))
    except (OSError, ValueError, RuntimeError, tarfile.TarError) as exc:
        print(f"gpu_pack.py {a.cmd}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
