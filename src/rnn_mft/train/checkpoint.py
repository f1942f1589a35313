"""Checkpoint files: tensors and plain data only, hashed, never unpickled.

A checkpoint is one file written atomically (:func:`rnn_mft._io.atomic_write_bytes`) with
``torch.save`` of a dict holding only tensors, dicts, lists, str, int, float, bool and None. It is
read back with ``torch.load(..., weights_only=True)``, which refuses any other object, so a
planted or corrupted file can never run code. Inside the file:

* ``format``/``version``: ``"rnn_mft-checkpoint"``, 1;
* ``settings``: what defines the run (the :class:`~rnn_mft.train.TrainConfig`, the model, the
  members); a resume with other settings is refused;
* ``state``: model, optimizer, random-number-generator states, curves so far;
* ``sha256``: over the bytes of every tensor of ``state``/``settings`` (in a fixed order, with
  dtype and shape) and the JSON of all the rest; checked on load.

Every problem (unreadable, truncated, empty, not ours, hash or settings mismatch) raises
:class:`CheckpointError` (a ``ValueError``) naming the file and saying how to discard it. A path
where no checkpoint can be written (a folder, or under a file) is a ``ValueError`` naming it from
:func:`check_checkpoint_path`, which :func:`rnn_mft.train.fit` calls before its first step.

A finished run deletes its checkpoint, unless the path is inside a :class:`keep_checkpoint` block
(:meth:`rnn_mft.train.ResultsStore.load_or_run`: kept until the result is written).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path

import torch

from .._io import atomic_write_bytes, check_folder

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "read_checkpoint", "content_hash",
           "check_checkpoint_path", "keep_checkpoint", "kept", "FORMAT", "VERSION", "DISCARD_HINT"]

FORMAT = "rnn_mft-checkpoint"
VERSION = 1
DISCARD_HINT = ("delete the file, or rerun with restart=True (fit), RNN_MFT_RESTART=1 or "
                "`tools/build_book.py --restart`, which discard an unusable checkpoint and start the run afresh")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed; the message names the file and how to discard it."""

    def __init__(self, path, why: str):
        self.path = Path(path)
        super().__init__(f"checkpoint {self.path}: {why}; {DISCARD_HINT}")


#: checkpoint paths whose final state is kept after the run (see :class:`keep_checkpoint`)
_KEEP: set = set()


class keep_checkpoint:
    """Context manager: :func:`rnn_mft.train.fit` with checkpoint ``path`` keeps its final state
    there instead of deleting it, so that the caller deletes it only once the result is safely
    written."""

    def __init__(self, path):
        self.key = str(Path(path).resolve())

    def __enter__(self):
        _KEEP.add(self.key)
        return self

    def __exit__(self, *exc):
        _KEEP.discard(self.key)
        return False


def kept(path) -> bool:
    """``path`` is inside a :class:`keep_checkpoint` block."""
    return str(Path(path).resolve()) in _KEEP


_PLAIN = (str, int, float, bool, type(None))


def _walk(x, tensors: list, where: str = ""):
    """JSON-able skeleton of ``x`` with tensors replaced by ``{"__tensor__": i}`` (appended)."""
    if isinstance(x, torch.Tensor):
        tensors.append(x)
        return {"__tensor__": len(tensors) - 1}
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            if not isinstance(k, str):
                raise TypeError(f"checkpoint key {where}{k!r} must be a str")
            out[k] = _walk(v, tensors, f"{where}{k}.")
        return out
    if isinstance(x, (list, tuple)):
        return [_walk(v, tensors, f"{where}{i}.") for i, v in enumerate(x)]
    if isinstance(x, float) and x != x:
        return {"__float__": "nan"}
    if isinstance(x, float) and x in (float("inf"), float("-inf")):
        return {"__float__": str(x)}
    if isinstance(x, _PLAIN):
        return x
    raise TypeError(f"checkpoint entry {where.rstrip('.')} is a {type(x).__name__}; allowed: tensors and plain data")


def content_hash(payload: dict) -> str:
    """SHA-256 over the JSON skeleton of ``payload`` and the dtype, shape and bytes of its tensors."""
    tensors: list = []
    skeleton = _walk(payload, tensors)
    h = hashlib.sha256(json.dumps(skeleton, sort_keys=True, separators=(",", ":")).encode())
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def check_checkpoint_path(path) -> Path:
    """``path`` as a :class:`~pathlib.Path` when a checkpoint file can be kept there; a
    ``ValueError`` naming it when it is a folder or its folder lies under a file (what would
    otherwise fail only at the first checkpoint, or when a restart deletes it). Nothing is created."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint={str(path)!r} is a folder; allowed: the path of a file (made there, "
                         f"in an existing folder or one that can be made)")
    check_folder(path.parent, f"checkpoint={str(path)!r}: its folder")
    return path


def save_checkpoint(path, settings: dict, state: dict) -> Path:
    """Write ``{format, version, settings, state, sha256}`` to ``path`` atomically."""
    state = _to_cpu(state)
    payload = {"settings": settings, "state": state}
    doc = {"format": FORMAT, "version": VERSION, "sha256": content_hash(payload), **payload}
    buf = io.BytesIO()
    torch.save(doc, buf)
    return atomic_write_bytes(path, buf.getvalue())


def _to_cpu(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: _to_cpu(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_cpu(v) for v in x]
    return x


def _plain(x):
    """Settings as JSON would compare them (tuples -> lists, numpy scalars -> python)."""
    return json.loads(json.dumps(x, sort_keys=True, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def load_checkpoint(path, settings: dict | None = None) -> dict:
    """The ``state`` of the checkpoint at ``path``, after checking format, hash and ``settings``.

    Raises :class:`CheckpointError` for anything that is not a sound checkpoint of these settings.
    Nothing in the file is unpickled beyond tensors and plain data (``weights_only=True``).
    """
    return read_checkpoint(path, settings)[1]


def read_checkpoint(path, settings: dict | None = None) -> tuple[dict, dict]:
    """``(settings, state)`` of the checkpoint at ``path``, checked as :func:`load_checkpoint`
    checks it (one read of the file)."""
    path = Path(path)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise CheckpointError(path, f"cannot be read ({exc.strerror})") from None
    if size == 0:
        raise CheckpointError(path, "is empty")
    try:
        with warnings.catch_warnings():        # torch's notes on foreign pickle protocols: the error says it
            warnings.simplefilter("ignore")
            doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is a bad file, never code to run
        msg = " ".join(str(exc).split())[:300]
        raise CheckpointError(path, f"is not a readable checkpoint of tensors and plain data "
                                    f"({type(exc).__name__}: {msg})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(path, f"is not an rnn_mft checkpoint (no format {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise CheckpointError(path, f"has format version {doc.get('version')!r}; this code reads version {VERSION}")
    if not isinstance(doc.get("state"), dict) or "settings" not in doc:
        raise CheckpointError(path, "lacks its state or settings")
    try:
        h = content_hash({"settings": doc["settings"], "state": doc["state"]})
    except (TypeError, RuntimeError) as exc:
        raise CheckpointError(path, f"holds an entry that is not plain data ({exc})") from None
    if h != doc.get("sha256"):
        raise CheckpointError(path, "fails its integrity check (SHA-256 of the content differs from the one "
                                    "stored: the file is corrupt)")
    if settings is not None:
        want, have = _plain(settings), _plain(doc["settings"])
        if want != have:
            keys = sorted(set(want) | set(have))
            diff = [f"{k}: checkpoint {have.get(k)!r}, now {want.get(k)!r}" for k in keys if want.get(k) != have.get(k)]
            raise CheckpointError(path, "was written with other settings (" + "; ".join(diff)[:600] + ")")
    return doc["settings"], doc["state"]
