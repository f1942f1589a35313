r"""The paper's sequence tasks (Section 5) as deterministic torch datasets.

Every task maps an item index to ``(x, y)``: ``x`` a float32 tensor of shape
``(seq_len, input_size)`` (time first, as for ``batch_first=True`` modules after batching) and
``y`` an int64 scalar label. All randomness (padding noise, digit draws, augmentation) is a
function of ``(seed, split, epoch, index)`` only, so an item is the same whichever order,
batch, worker or process produces it; :meth:`SequenceTask.set_epoch` gives fresh draws per epoch.

Equivalent ways to get batches::

    task[i]                                        # one item
    task.batch([3, 1, 4])                          # the items stacked, built with tensor ops
    for x, y in task.batches(128, seed=0): ...     # an epoch of such batches (fastest)
    task.loader(128, num_workers=2)                # a DataLoader of such batches
    DataLoader(task, batch_size=128, shuffle=True) # stock torch (batched __getitems__, then
                                                   # default_collate copies the batch once more)

Normalisation
-------------
The theory (Section 4.2) assumes inputs with zero mean and second moment :math:`R = 1` per
coordinate. Pixels ``v`` in 0..255 are mapped to :math:`z = (v/255 - m)/s` with the mean
:math:`m` and standard deviation :math:`s` of all pixel values of the training images (per
channel for CIFAR-10), so that the average of :math:`z^2` over pixels and images is exactly 1
on the training data; padding noise is :math:`\mathcal{N}(0, 1)`. The test task reuses the
training statistics. ``describe()["input_second_moment"]`` reports the resulting per-step
second moment :math:`\mathbb{E}\,\|z^t\|^2/\text{input\_size}` (its mean over steps is 1;
single-pixel steps vary around it, since border pixels are nearly constant).
"""
from __future__ import annotations

from ..datasets import load_cifar10, mnist_splits
from .base import Normalization, SequenceTask
from .cifar import UnrolledCIFAR10
from .mnist import ConcatenatedMNIST, PaddedMNIST, RepeatedPixelMNIST, UnrolledMNIST

__all__ = ["Normalization", "SequenceTask", "PaddedMNIST", "UnrolledMNIST",
           "RepeatedPixelMNIST", "ConcatenatedMNIST", "UnrolledCIFAR10", "TASKS",
           "load_task", "load_task_pair"]


#: Task name -> (class, data set).
TASKS: dict[str, tuple[type[SequenceTask], str]] = {
    "padded_mnist": (PaddedMNIST, "mnist"),
    "unrolled_mnist": (UnrolledMNIST, "mnist"),
    "repeated_pixel_mnist": (RepeatedPixelMNIST, "mnist"),
    "concatenated_mnist": (ConcatenatedMNIST, "mnist"),
    "unrolled_cifar10": (UnrolledCIFAR10, "cifar10"),
}


def load_task_pair(name: str, *, data_dir=None, mirror=None, download: bool | None = None,
                   allow_test_split: bool = True, split_seed: int = 0, n_heldout: int = 2000,
                   progressbar: bool = True, **task_kwargs) -> tuple[SequenceTask, SequenceTask]:
    """``(train, test)`` tasks on real data; the test task uses the training normalisation.

    Parameters
    ----------
    name : str
        One of :data:`TASKS`.
    data_dir, mirror, download, allow_test_split, split_seed, n_heldout, progressbar
        Passed to :func:`rnn_mft.data.load_mnist` / :func:`rnn_mft.data.load_cifar10`.
    **task_kwargs
        Passed to both task constructors (e.g. ``seq_len=100, seed=0``).
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}")
    cls, dataset = TASKS[name]
    kw = dict(data_dir=data_dir, mirror=mirror, download=download, progressbar=progressbar)
    if dataset == "mnist":
        train_data, test_data = mnist_splits(allow_test_split=allow_test_split,
                                             split_seed=split_seed, n_heldout=n_heldout, **kw)
    else:
        train_data, test_data = load_cifar10("train", **kw), load_cifar10("test", **kw)
    norm = task_kwargs.pop("normalization", "fit")
    train = cls(train_data, normalization=norm, **task_kwargs)
    test = cls(test_data, normalization=train.normalization, **task_kwargs)
    return train, test


def load_task(name: str, split: str = "train", **kwargs) -> SequenceTask:
    """One split of :func:`load_task_pair` (normalised with the training statistics)."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; allowed: 'train', 'test'")
    train, test = load_task_pair(name, **kwargs)
    return train if split == "train" else test
