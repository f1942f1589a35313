"""Image data sets as arrays with provenance: MNIST (with an offline split) and CIFAR-10.

:func:`load_mnist` and :func:`load_cifar10` return an :class:`ImageSet`: uint8 images, int64
labels and a JSON-serialisable ``meta`` dict saying where the data came from. Results should
store ``meta`` (the tasks of :mod:`rnn_mft.data.tasks` copy it into their ``describe()``).

Offline split
-------------
Machines without internet have only the MNIST *test* set (10,000 digits, the offline mirror).
When the 60,000-digit training set cannot be found or downloaded and ``allow_test_split`` is
true, the test set is split, with a seeded permutation, into a training part
(``10000 - n_heldout`` digits) and a disjoint held-out part (``n_heldout`` digits), and
``meta["source"] == "mnist-test-split"`` records it together with the seed, the sizes and a
hash of the chosen indices. Both ``load_mnist("train")`` and ``load_mnist("test")`` make the same
decision, so the two never overlap.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .sources import DataUnavailableError, fetch, resolve_data_dir
from .formats import DataFormatError, read_cifar10_archive, read_idx
from .registry import get_entry

__all__ = ["ImageSet", "load_mnist", "mnist_splits", "load_cifar10", "split_test_set",
           "MNIST_FILES", "SOURCES"]

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

#: Number of digits in each canonical MNIST split (checked after parsing).
_MNIST_SIZES = {"train": 60000, "test": 10000}

#: Values of ``ImageSet.meta["source"]``.
SOURCES = ("mnist", "mnist-test-split", "cifar10", "arrays")


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images, labels and their provenance.

    Attributes
    ----------
    images : ndarray of uint8
        ``(n, 28, 28)`` for MNIST, ``(n, 32, 32, 3)`` for CIFAR-10.
    labels : ndarray of int64, shape (n,)
    meta : dict
        JSON-serialisable provenance: ``dataset``, ``split``, ``source``, ``n``, the files
        and their hashes, and for an offline split ``split_seed``, ``n_train``, ``n_heldout``,
        ``indices_sha256``.
    """

    images: np.ndarray
    labels: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {self.images.dtype}")
        if self.images.ndim not in (3, 4) or len(self.images) != len(self.labels):
            raise ValueError(f"images {self.images.shape} and labels {self.labels.shape} "
                             "must be (n, H, W[, C]) and (n,)")
        self.meta.setdefault("n", int(len(self.labels)))

    @classmethod
    def from_arrays(cls, images, labels, *, dataset: str = "mnist", split: str = "train",
                    **meta) -> "ImageSet":
        """Wrap in-memory arrays (e.g. synthetic data for tests and benchmarks)."""
        images = np.ascontiguousarray(images, np.uint8)
        labels = np.asarray(labels, np.int64)
        return cls(images, labels, {"dataset": dataset, "split": split, "source": "arrays",
                                    "n": int(len(labels)), **meta})

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def split(self) -> str:
        return self.meta.get("split", "train")

    @property
    def source(self) -> str:
        return self.meta.get("source", "arrays")


# ---------------------------------------------------------------------------------- MNIST
_PARSED: dict[tuple, np.ndarray] = {}


def _read_idx_cached(path) -> np.ndarray:
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _PARSED:
        arr = read_idx(path)
        arr.flags.writeable = False
        _PARSED[key] = arr
    return _PARSED[key]


def _mnist_files(split: str, **kw) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fetch, parse and check one canonical MNIST split."""
    img_name, lab_name = MNIST_FILES[split]
    paths = {n: fetch(get_entry("mnist", n), **kw) for n in (img_name, lab_name)}
    images = _read_idx_cached(paths[img_name])
    labels = _read_idx_cached(paths[lab_name])
    n = _MNIST_SIZES[split]
    if images.dtype != np.uint8 or images.shape != (n, 28, 28):
        raise DataFormatError(f"{paths[img_name]}: expected uint8 images of shape ({n}, 28, 28), "
                              f"got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.shape != (n,) or labels.max() > 9:
        raise DataFormatError(f"{paths[lab_name]}: expected {n} uint8 labels in 0..9")
    files = {name: {"hash": get_entry("mnist", name).hash, "found_in": _origin(p, kw)}
             for name, p in paths.items()}
    return images, labels.astype(np.int64), files


def _origin(path, kw) -> str:
    """"cache" or "mirror": where a fetched file was found (no machine-specific paths in meta)."""
    cache = resolve_data_dir(kw.get("data_dir")).resolve()
    try:
        Path(path).resolve().relative_to(cache)
        return "cache"
    except ValueError:
        return "mirror"


def _train_available(**kw) -> bool:
    try:
        for name in MNIST_FILES["train"]:
            fetch(get_entry("mnist", name), **kw)
        return True
    except DataUnavailableError:
        return False


def _check_split_args(split, n_heldout):
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; allowed: 'train', 'test'")
    if not (isinstance(n_heldout, (int, np.integer)) and 1 <= n_heldout <= 9999):
        raise ValueError(f"n_heldout={n_heldout!r}; allowed: an integer in 1..9999")


def split_test_set(images: np.ndarray, labels: np.ndarray, *, seed: int = 0,
                   n_heldout: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Seeded disjoint split of ``range(len(labels))``: ``(train_idx, heldout_idx)``, each sorted.

    The permutation is ``numpy.random.default_rng(seed).permutation(n)``; its first
    ``n_heldout`` entries are held out.
    """
    n = len(labels)
    if not 1 <= n_heldout < n:
        raise ValueError(f"n_heldout={n_heldout}; allowed: 1..{n - 1}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_heldout:]), np.sort(perm[:n_heldout])


def load_mnist(split: str = "train", *, data_dir=None, mirror=None, download: bool | None = None,
               allow_test_split: bool = True, split_seed: int = 0, n_heldout: int = 2000,
               progressbar: bool = True) -> ImageSet:
    """Load MNIST (LeCun et al. 1998), the data of Sections 5.1.1, 5.2.1 and 5.2.2.

    Parameters
    ----------
    split : {"train", "test"}
    data_dir : path, optional
        Cache folder (default ``$RNN_MFT_DATA``, else the user cache).
    mirror : path or False, optional
        Offline mirror searched first (then ``$RNN_MFT_MIRROR``, then ``../shared/data``);
        ``False`` disables mirrors.
    download : bool, optional
        Allow downloads (default: yes, unless ``$RNN_MFT_OFFLINE`` is set).
    allow_test_split : bool
        When the training files cannot be had, split the 10,000 test digits instead (see the
        module docstring). With False, a missing training set raises and ``"test"`` is always
        the full canonical test set.
    split_seed, n_heldout : int
        Seed and held-out size of the offline split (train part: ``10000 - n_heldout``).

    Returns
    -------
    ImageSet
        ``meta["source"]`` is ``"mnist"`` (canonical split) or ``"mnist-test-split"``.

    Raises
    ------
    DataUnavailableError
        A needed file is in no cache or mirror and cannot be downloaded.
    """
    _check_split_args(split, n_heldout)
    kw = dict(data_dir=data_dir, mirror=mirror, download=download, progressbar=progressbar)
    canonical = (not allow_test_split) or _train_available(**kw)
    if canonical:
        images, labels, files = _mnist_files(split, **kw)
        meta = {"dataset": "mnist", "split": split, "source": "mnist", "n": int(len(labels)),
                "files": files}
        return ImageSet(images, labels, meta)
    images, labels, files = _mnist_files("test", **kw)
    tr, ho = split_test_set(images, labels, seed=split_seed, n_heldout=n_heldout)
    idx = tr if split == "train" else ho
    meta = {
        "dataset": "mnist", "split": split, "source": "mnist-test-split", "n": int(len(idx)),
        "split_seed": int(split_seed), "n_train": int(len(tr)), "n_heldout": int(len(ho)),
        "part": "train" if split == "train" else "heldout",
        "indices_sha256": hashlib.sha256(np.asarray(idx, "<i8").tobytes()).hexdigest(),
        "files": files,
        "note": ("the MNIST training set was not available; this is the "
                 f"{'training' if split == 'train' else 'held-out'} part of a seeded split "
                 f"(seed {split_seed}) of the {len(labels):,}-digit canonical test set into "
                 f"{len(tr)} training and {len(ho)} held-out digits"),
    }
    return ImageSet(np.ascontiguousarray(images[idx]), labels[idx], meta)


def mnist_splits(**kwargs) -> tuple[ImageSet, ImageSet]:
    """``(train, test)`` from :func:`load_mnist` with one availability decision for both."""
    train = load_mnist("train", **kwargs)
    if train.source == "mnist-test-split":
        kwargs = {**kwargs, "download": False}  # same decision, no second network attempt
        test = load_mnist("test", **kwargs)
        if test.source != "mnist-test-split":  # the training set appeared in between
            raise RuntimeError("MNIST source changed between the two loads; retry")
    else:
        test = load_mnist("test", **kwargs)
    return train, test


# ------------------------------------------------------------------------------- CIFAR-10
_CIFAR_PARSED: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def load_cifar10(split: str = "train", *, data_dir=None, mirror=None,
                 download: bool | None = None, progressbar: bool = True) -> ImageSet:
    """Load CIFAR-10 (Krizhevsky 2009), binary version, for Section 5.2.1.

    Parameters are those of :func:`load_mnist` (there is no offline split: CIFAR-10 is not
    mirrored here, and an unavailable archive raises :class:`DataUnavailableError`).

    Returns
    -------
    ImageSet
        Images ``(n, 32, 32, 3)`` uint8 (50,000 for train, 10,000 for test).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; allowed: 'train', 'test'")
    entry = get_entry("cifar10", "cifar-10-binary.tar.gz")
    path = fetch(entry, data_dir=data_dir, mirror=mirror, download=download,
                 progressbar=progressbar)
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, split)
    if key not in _CIFAR_PARSED:
        images, labels = read_cifar10_archive(path, split)
        images.flags.writeable = False
        _CIFAR_PARSED[key] = (images, labels)
    images, labels = _CIFAR_PARSED[key]
    meta = {"dataset": "cifar10", "split": split, "source": "cifar10", "n": int(len(labels)),
            "files": {entry.name: {"hash": entry.hash,
                                   "found_in": _origin(path, {"data_dir": data_dir})}}}
    return ImageSet(images, labels.copy(), meta)
