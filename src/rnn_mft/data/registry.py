"""The data registry: every file the project can use, with its canonical URLs and hashes.

The registry is the single source of truth for what a valid data file is. ``data/registry.json``
at the repository root is an export of :data:`REGISTRY` for tools and readers (the test suite
checks that the two agree); :func:`registry_json` writes it.

Hashes
------
Each file carries the hash that is checked (``"sha256:..."``) and, for reference, the md5 that
the distributors publish. The sha256 values of the MNIST test files are those of the offline
mirror (``../shared/data/README.md``); the sha256 values of the MNIST training files and of
``cifar-10-binary.tar.gz`` are the widely published ones, cross-checked against several
independent public sources, and the published md5 values agree with the same files.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from .._io import atomic_write_text

__all__ = ["REGISTRY", "FileEntry", "get_entry", "dataset_files", "registry_json"]

_MNIST_URLS = (
    "http://yann.lecun.com/exdb/mnist/{name}",                      # canonical (LeCun et al.)
    "https://ossci-datasets.s3.amazonaws.com/mnist/{name}",         # mirror used by torchvision
    "https://storage.googleapis.com/cvdf-datasets/mnist/{name}",    # mirror used by TensorFlow
)


def _mnist(name: str, sha256: str, md5: str, size: int, role: str) -> dict[str, Any]:
    return {"urls": [u.format(name=name) for u in _MNIST_URLS], "hash": f"sha256:{sha256}",
            "md5": md5, "bytes": size, "role": role}


#: ``{dataset: {"subdir", "description", "homepage", "files": {name: {...}}}}``.
REGISTRY: dict[str, dict[str, Any]] = {
    "mnist": {
        "subdir": "mnist",
        "description": "MNIST handwritten digits, the four canonical IDX files (gzip)",
        "homepage": "http://yann.lecun.com/exdb/mnist/",
        "files": {
            "train-images-idx3-ubyte.gz": _mnist(
                "train-images-idx3-ubyte.gz",
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422, "train-images"),
            "train-labels-idx1-ubyte.gz": _mnist(
                "train-labels-idx1-ubyte.gz",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                "d53e105ee54ea40749a09fcbcd1e9432", 28881, "train-labels"),
            "t10k-images-idx3-ubyte.gz": _mnist(
                "t10k-images-idx3-ubyte.gz",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "9fb629c4189551a2d022fa330f9573f3", 1648877, "test-images"),
            "t10k-labels-idx1-ubyte.gz": _mnist(
                "t10k-labels-idx1-ubyte.gz",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                "ec29112dd5afa0611ce80d1b7f02629c", 4542, "test-labels"),
        },
    },
    "cifar10": {
        "subdir": "cifar10",
        "description": "CIFAR-10, the canonical binary version (fixed-length records; nothing is unpickled)",
        "homepage": "https://www.cs.toronto.edu/~kriz/cifar.html",
        "files": {
            "cifar-10-binary.tar.gz": {
                "urls": ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"],
                "hash": "sha256:c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
                "md5": "c32a1d4ab5d03f1284b67883e8d87530",
                "bytes": 170052171,
                "role": "archive",
            },
        },
    },
}


@dataclass(frozen=True)
class FileEntry:
    """One registered file.

    Attributes
    ----------
    dataset : str
        Registry key of the data set (``"mnist"``, ``"cifar10"``).
    name : str
        File name, byte for byte as distributed.
    subdir : str
        Sub-folder of the cache and of each mirror that holds the file.
    hash : str
        ``"<alg>:<hex>"`` checked on every file that is used (``sha256`` or ``md5``).
    urls : tuple of str
        Download locations, tried in order.
    bytes : int or None
        Size as distributed, for messages.
    """

    dataset: str
    name: str
    subdir: str
    hash: str
    urls: tuple[str, ...] = ()
    bytes: int | None = None

    def __post_init__(self):
        alg, sep, hexd = self.hash.partition(":")
        if not sep or alg not in ("sha256", "md5") or not hexd or any(
                c not in "0123456789abcdef" for c in hexd.lower()):
            raise ValueError(f"hash={self.hash!r} must be 'sha256:<hex>' or 'md5:<hex>'")
        if not self.name or os.sep in self.name or self.name.startswith("."):
            raise ValueError(f"file name {self.name!r} must be a plain file name")


def get_entry(dataset: str, name: str) -> FileEntry:
    """The :class:`FileEntry` of file ``name`` of ``dataset``; ValueError naming the choices."""
    if dataset not in REGISTRY:
        raise ValueError(f"unknown dataset={dataset!r}; allowed: {', '.join(REGISTRY)}")
    files = REGISTRY[dataset]["files"]
    if name not in files:
        raise ValueError(f"unknown file {name!r} of dataset {dataset!r}; allowed: {', '.join(files)}")
    f = files[name]
    return FileEntry(dataset=dataset, name=name, subdir=REGISTRY[dataset]["subdir"],
                     hash=f["hash"], urls=tuple(f["urls"]), bytes=f.get("bytes"))


def dataset_files(dataset: str) -> list[FileEntry]:
    """All registered files of ``dataset``."""
    if dataset not in REGISTRY:
        raise ValueError(f"unknown dataset={dataset!r}; allowed: {', '.join(REGISTRY)}")
    return [get_entry(dataset, n) for n in REGISTRY[dataset]["files"]]


def registry_json(path: str | os.PathLike | None = None) -> str:
    """The registry as JSON text; when ``path`` is given, also write it there (atomically)."""
    text = json.dumps(REGISTRY, indent=2, sort_keys=False) + "\n"
    if path is not None:
        atomic_write_text(path, text)
    return text
