"""Atomic file writes: a reader never sees a partial file.

The data go to a uniquely named temporary file in the target's folder, are flushed to disk, and
the file is then moved into place with :func:`os.replace` (atomic on POSIX and Windows). On any
error the temporary file is removed and the target is left as it was. The file gets the mode an
ordinary ``open(path, "w")`` would give (0666 less the umask, e.g. 0644), not ``mkstemp``'s 0600.

:func:`check_folder` checks, before any work, that a path can be (or is) a folder: a file in its
place or above it is an error naming the path, not a failure later, midway.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "default_file_mode", "check_folder"]


def default_file_mode() -> int:
    """0666 less the process umask: the mode ``open(path, "w")`` creates files with."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creating the parent folder) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, default_file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def check_folder(path, what: str) -> Path:
    """``path`` if it is a folder or can be made one; else ``ValueError`` naming ``what`` (e.g.
    ``"RNN_MFT_RESULTS"``), the path and the file in the way. Nothing is created."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.is_dir():
            return path
        if os.path.lexists(p):
            where = "is a file" if p == path else f"lies under {p}, which is a file"
            raise ValueError(f"{what}={str(path)!r} {where}; allowed: a folder, or a path where one can be made")
    return path
