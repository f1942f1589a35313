"""Data: registry, hash-checked download, offline mirror, parsers, and the paper's tasks.

Data sets (:mod:`.datasets`)
    :func:`load_mnist`, :func:`mnist_splits`, :func:`load_cifar10` return an
    :class:`ImageSet` (uint8 images, labels, provenance ``meta``).
Tasks (:mod:`.tasks`, Section 5 of the paper)
    :class:`PaddedMNIST` (5.1.1), :class:`UnrolledMNIST` (5.2.1),
    :class:`RepeatedPixelMNIST` (5.2.2), :class:`ConcatenatedMNIST` (5.2.2),
    :class:`UnrolledCIFAR10` (5.2.1); :func:`load_task_pair` / :func:`load_task` build them on
    real data.
Files (:mod:`.registry`, :mod:`.sources`, :mod:`.formats`)
    :data:`REGISTRY`, :func:`fetch` (cache, then mirror, then download), :func:`read_idx`,
    :func:`read_cifar10_archive`.

Environment variables
    ``RNN_MFT_DATA``: cache folder for downloads (default: the user cache folder);
    ``RNN_MFT_MIRROR``: offline mirror folder(s) holding ``mnist/`` and ``cifar10/``
    (default: ``../shared/data`` beside the repository);
    ``RNN_MFT_OFFLINE``: set to 1 to never download.
"""
from .._deps import require_torch

require_torch(__name__)      # without torch: an ImportError naming the extra [torch]

from .datasets import SOURCES, ImageSet, load_cifar10, load_mnist, mnist_splits, split_test_set
from .sources import (DataUnavailableError, HashMismatchError, data_dir, fetch, file_hash,
                    mirror_dirs, verify)
from .formats import (DataFormatError, encode_cifar10_batch, encode_idx, parse_cifar10_batch,
                      parse_idx, read_cifar10_archive, read_idx, write_idx)
from .registry import REGISTRY, FileEntry, dataset_files, get_entry, registry_json
from .tasks import (TASKS, ConcatenatedMNIST, Normalization, PaddedMNIST, RepeatedPixelMNIST,
                    SequenceTask, UnrolledCIFAR10, UnrolledMNIST, load_task, load_task_pair)

__all__ = [
    "ImageSet", "load_mnist", "mnist_splits", "load_cifar10", "split_test_set", "SOURCES",
    "DataUnavailableError", "HashMismatchError", "DataFormatError", "data_dir", "fetch",
    "file_hash", "mirror_dirs", "verify",
    "parse_idx", "read_idx", "encode_idx", "write_idx", "parse_cifar10_batch",
    "encode_cifar10_batch", "read_cifar10_archive",
    "REGISTRY", "FileEntry", "get_entry", "dataset_files", "registry_json",
    "TASKS", "SequenceTask", "Normalization", "PaddedMNIST", "UnrolledMNIST",
    "RepeatedPixelMNIST", "ConcatenatedMNIST", "UnrolledCIFAR10", "load_task", "load_task_pair",
]
