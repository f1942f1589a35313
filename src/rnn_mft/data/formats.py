"""Parsers for the two on-disk formats: IDX (MNIST, optionally gzip) and CIFAR-10 binary.

Every parser checks magic numbers, dimensions and sizes before touching the payload, so a
truncated or malformed file raises :class:`DataFormatError` (a ``ValueError``) that names the
file and what is wrong, never a reshape exception. Nothing is ever unpickled.

IDX (LeCun et al.): two zero bytes, a type code (``0x08`` unsigned byte, ``0x09`` signed byte,
``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the number of dimensions,
then one big-endian uint32 per dimension, then the data in C order, big-endian.

CIFAR-10 binary (Krizhevsky 2009): each record is 1 label byte (0..9) followed by 3072 pixel
bytes, the 1024 red values of the 32x32 image in row-major order, then green, then blue. The
canonical archive ``cifar-10-binary.tar.gz`` holds ``cifar-10-batches-bin/data_batch_{1..5}.bin``
(training, 10,000 records each) and ``test_batch.bin``; members are read from the archive in
memory, never extracted.
"""
from __future__ import annotations

import math

import gzip
import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from .._io import atomic_write_bytes

__all__ = ["DataFormatError", "parse_idx", "read_idx", "encode_idx", "write_idx",
           "parse_cifar10_batch", "encode_cifar10_batch", "read_cifar10_archive",
           "CIFAR10_TRAIN_MEMBERS", "CIFAR10_TEST_MEMBERS", "CIFAR10_RECORD_BYTES"]


class DataFormatError(ValueError):
    """A data file is truncated or malformed."""


_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}


def parse_idx(data: bytes, *, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes (already decompressed) into a numpy array in native byte order.

    Raises
    ------
    DataFormatError
        Bad magic number, unknown type code, zero dimensions, or a payload whose length is not
        the product of the dimensions times the item size.
    """
    if len(data) < 4:
        raise DataFormatError(f"{name}: {len(data)} bytes, too short for an IDX header (4 bytes)")
    if data[0] != 0 or data[1] != 0:
        raise DataFormatError(f"{name}: bad IDX magic number {data[:4].hex()} "
                              "(must start with two zero bytes)")
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise DataFormatError(f"{name}: unknown IDX type code 0x{code:02x}; allowed: "
                              + ", ".join(f"0x{c:02x}" for c in _IDX_TYPES))
    if ndim == 0:
        raise DataFormatError(f"{name}: IDX header declares 0 dimensions")
    head = 4 + 4 * ndim
    if len(data) < head:
        raise DataFormatError(f"{name}: truncated IDX header: {len(data)} bytes, "
                              f"{ndim} dimensions need {head}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[code]
    expected = head + math.prod(dims) * dtype.itemsize       # Python ints: no overflow
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataFormatError(f"{name}: IDX file {what}: header says shape {dims} of "
                              f"{dtype.name} ({expected} bytes in all) but the file has "
                              f"{len(data)} bytes")
    arr = np.frombuffer(data, dtype, offset=head).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def _read_maybe_gzip(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        if path.suffix == ".gz":
            raise DataFormatError(f"{path}: not a gzip file (magic {raw[:2].hex() or 'empty'}, "
                                  "expected 1f8b)")
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataFormatError(f"{path}: corrupt or truncated gzip stream ({exc})") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed (detected by its magic bytes) or not."""
    path = Path(path)
    return parse_idx(_read_maybe_gzip(path), name=str(path))


def encode_idx(arr: np.ndarray) -> bytes:
    """IDX bytes (uncompressed) of ``arr``; the inverse of :func:`parse_idx`."""
    arr = np.asarray(arr)
    key = arr.dtype.newbyteorder("=")
    if key not in _IDX_CODES:
        raise ValueError(f"dtype {arr.dtype} has no IDX type code; allowed: uint8, int8, "
                         "int16, int32, float32, float64")
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"arr.ndim={arr.ndim}; allowed 1..255")
    code = _IDX_CODES[key]
    head = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    return head + np.ascontiguousarray(arr, _IDX_TYPES[code]).tobytes()


def write_idx(path: str | os.PathLike, arr: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``arr`` as an IDX file (gzip when ``compress`` or the name ends in ``.gz``), atomically."""
    path = Path(path)
    data = encode_idx(arr)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    return atomic_write_bytes(path, data)


CIFAR10_RECORD_BYTES = 1 + 3 * 32 * 32
CIFAR10_TRAIN_MEMBERS = tuple(f"cifar-10-batches-bin/data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_MEMBERS = ("cifar-10-batches-bin/test_batch.bin",)


def parse_cifar10_batch(data: bytes, *, name: str = "<bytes>",
                        expected_records: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode one CIFAR-10 binary batch into ``(images, labels)``.

    Returns
    -------
    images : ndarray of uint8, shape (n, 32, 32, 3)
        Height, width, channel (RGB).
    labels : ndarray of int64, shape (n,)

    Raises
    ------
    DataFormatError
        Empty data, a length that is not a whole number of 3073-byte records (truncated),
        a record count different from ``expected_records``, or a label outside 0..9.
    """
    n, rest = divmod(len(data), CIFAR10_RECORD_BYTES)
    if len(data) == 0:
        raise DataFormatError(f"{name}: empty CIFAR-10 batch")
    if rest:
        raise DataFormatError(f"{name}: {len(data)} bytes is not a whole number of "
                              f"{CIFAR10_RECORD_BYTES}-byte CIFAR-10 records (truncated? "
                              f"{n} full records and {rest} extra bytes)")
    if expected_records is not None and n != expected_records:
        raise DataFormatError(f"{name}: {n} CIFAR-10 records, expected {expected_records}")
    rec = np.frombuffer(data, np.uint8).reshape(n, CIFAR10_RECORD_BYTES)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DataFormatError(f"{name}: record {bad} has label {labels[bad]}; allowed 0..9 "
                              "(is this the CIFAR-100 or a non-CIFAR file?)")
    images = rec[:, 1:].reshape(n, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return images, labels


def encode_cifar10_batch(images: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10 binary bytes of ``images`` (n, 32, 32, 3) uint8 and ``labels`` (n,) in 0..9."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 of shape (n, 32, 32, 3), got {images.dtype} "
                         f"{images.shape}")
    if labels.shape != images.shape[:1] or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise ValueError("labels must have shape (n,) and values in 0..9")
    rec = np.empty((len(images), CIFAR10_RECORD_BYTES), np.uint8)
    rec[:, 0] = labels
    rec[:, 1:] = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return rec.tobytes()


def read_cifar10_archive(path: str | os.PathLike, split: str, *,
                         expected_records: int | None = 10000) -> tuple[np.ndarray, np.ndarray]:
    """Read the ``"train"`` or ``"test"`` batches of ``cifar-10-binary.tar.gz`` in memory.

    Parameters
    ----------
    path : path
        The archive (gzip-compressed tar).
    split : {"train", "test"}
    expected_records : int or None
        Records per batch file (10,000 in the canonical archive); None skips the check.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; allowed: 'train', 'test'")
    path = Path(path)
    members = CIFAR10_TRAIN_MEMBERS if split == "train" else CIFAR10_TEST_MEMBERS
    imgs, labs = [], []
    try:
        with tarfile.open(path, "r:gz") as tar:
            for m in members:
                try:
                    info = tar.getmember(m)
                except KeyError:
                    raise DataFormatError(f"{path}: archive has no member {m!r} (is this the "
                                          "CIFAR-10 *binary* version?)") from None
                if not info.isfile():
                    raise DataFormatError(f"{path}: member {m!r} is not a regular file")
                data = tar.extractfile(info).read()
                if len(data) != info.size:
                    raise DataFormatError(f"{path}: member {m!r} is truncated "
                                          f"({len(data)} of {info.size} bytes)")
                im, lb = parse_cifar10_batch(data, name=f"{path}:{m}",
                                             expected_records=expected_records)
                imgs.append(im)
                labs.append(lb)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataFormatError(f"{path}: corrupt or truncated archive ({type(exc).__name__}: "
                              f"{exc})") from None
    return np.concatenate(imgs), np.concatenate(labs)
