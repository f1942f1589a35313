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

import copy
import hashlib
import operator
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import (BatchSampler, DataLoader, Dataset, RandomSampler,
                              SequentialSampler)

from .datasets import ImageSet, load_cifar10, mnist_splits

__all__ = ["Normalization", "SequenceTask", "PaddedMNIST", "UnrolledMNIST",
           "RepeatedPixelMNIST", "ConcatenatedMNIST", "UnrolledCIFAR10", "TASKS",
           "load_task", "load_task_pair"]

_SPLIT_CODES = {"train": 0, "test": 1}
_STREAM_SHUFFLE, _STREAM_NOISE, _STREAM_DRAW, _STREAM_AUGMENT = 1, 2, 3, 4


def _check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (
            hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name}={value!r}; allowed: an integer {rng}")
    return int(value)


@dataclass(frozen=True)
class Normalization:
    """Per-channel affine map of pixel values: ``z = (v/255 - mean[c]) / std[c]``.

    Attributes
    ----------
    mean, std : tuple of float
        One value per channel (1 for MNIST, 3 for CIFAR-10), on the 0..1 pixel scale.
    fitted_on : str
        What the statistics were computed from (recorded in ``describe()``).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    fitted_on: str = ""

    def __post_init__(self):
        if len(self.mean) != len(self.std) or not all(s > 0 for s in self.std):
            raise ValueError(f"mean={self.mean} and std={self.std} need equal length and std > 0")

    @classmethod
    def fit(cls, images, fitted_on: str = "", weights=None) -> "Normalization":
        """Exact mean and std of ``images / 255`` (per channel if the last axis has 3).

        ``images`` may be a list of arrays, mixed with ``weights`` (default: by their sizes),
        e.g. two digit classes that a task draws with equal probability.
        """
        groups = list(images) if isinstance(images, (list, tuple)) else [images]
        groups = [np.asarray(g) for g in groups]
        if weights is None:
            weights = [len(g) for g in groups]
        weights = np.asarray(weights, np.float64) / np.sum(weights)
        nch = 3 if groups[0].ndim == 4 else 1
        v = np.arange(256) / 255.0
        means, stds = [], []
        for c in range(nch):
            hist = np.zeros(256)
            for g, w in zip(groups, weights):
                ch = g[..., c] if nch == 3 else g
                counts = np.bincount(np.ascontiguousarray(ch).ravel(), minlength=256)
                hist += w * counts / max(counts.sum(), 1)
            m = float(hist @ v)
            var = float(hist @ (v - m) ** 2)
            means.append(m)
            stds.append(float(np.sqrt(var)) if var > 0 else 1.0)
        return cls(tuple(means), tuple(stds), fitted_on)

    @classmethod
    def identity(cls, channels: int = 1) -> "Normalization":
        """``z = v/255`` (no standardisation)."""
        return cls((0.0,) * channels, (1.0,) * channels, "none (z = v/255)")

    def lut(self) -> np.ndarray:
        """Lookup table ``(256, channels)`` float32: ``lut[v, c]`` is the normalised value."""
        v = np.arange(256, dtype=np.float64)[:, None] / 255.0
        return ((v - np.array(self.mean)) / np.array(self.std)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "z = (v/255 - mean) / std per channel", "mean": list(self.mean),
                "std": list(self.std), "fitted_on": self.fitted_on}


class SequenceTask(Dataset):
    """Base class: a map-style torch dataset of ``(x, y)`` with ``x`` of shape (seq_len, input_size).

    Subclasses implement :meth:`_make` (a whole batch from index arrays) and
    :meth:`_step_second_moments`. Items are deterministic functions of
    ``(seed, split, epoch, index)``.
    """

    name = "task"
    paper_section = ""
    _channels = 1
    _image_shape: tuple[int, ...] = (28, 28)

    def __init__(self, data: ImageSet, *, seed: int = 0,
                 normalization: Normalization | str | None = "fit"):
        if not isinstance(data, ImageSet):
            raise ValueError(f"data must be an ImageSet (see rnn_mft.data.load_mnist), got "
                             f"{type(data).__name__}")
        if data.images.shape[1:] != self._image_shape:
            raise ValueError(f"{type(self).__name__} needs images of shape (n, "
                             f"{', '.join(map(str, self._image_shape))}), got {data.images.shape}")
        self.data = data
        self.seed = _check_int("seed", seed, 0)
        self.epoch = 0
        self._split_code = _SPLIT_CODES.get(data.split, 2)
        if isinstance(normalization, str) and normalization == "fit":
            fit, weights = self._fit_images()
            n_fit = sum(len(f) for f in fit)
            normalization = Normalization.fit(
                fit, f"{data.meta.get('source')}/{data.split} ({n_fit} images"
                + (", classes weighted equally)" if weights is not None else ")"), weights)
        elif normalization is None or (isinstance(normalization, str) and normalization == "none"):
            normalization = Normalization.identity(self._channels)
        elif not isinstance(normalization, Normalization):
            raise ValueError(f"normalization={normalization!r}; allowed: 'fit', None, or a "
                             "Normalization (e.g. the training task's .normalization)")
        if len(normalization.mean) != self._channels:
            raise ValueError(f"normalization has {len(normalization.mean)} channels, "
                             f"{type(self).__name__} needs {self._channels}")
        self.normalization = normalization
        self._lut = normalization.lut()
        if self._channels == 1:
            self._lut = self._lut[:, 0]
        self._moments = None

    # -- to override --------------------------------------------------------------------
    seq_len: int
    input_size: int
    num_classes: int = 10

    def _fit_images(self) -> tuple[list[np.ndarray], list[float] | None]:
        """Images the statistics are fitted on, and their mixing weights (None: by size)."""
        return [self.data.images], None

    def _make(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _step_second_moments(self) -> np.ndarray:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        return {}

    # -- public -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.data)

    def set_epoch(self, epoch: int) -> None:
        """Use the random draws (noise, digit choices, augmentation) of epoch ``epoch``."""
        self.epoch = _check_int("epoch", epoch, 0)

    def _indices(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        idx = np.where(idx < 0, idx + n, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = np.asarray(indices).reshape(-1)[(idx < 0) | (idx >= n)][0]
            raise IndexError(f"index {bad} out of range for {self.name} of length {n}")
        return idx

    def _seq(self, index: int, stream: int) -> np.random.SeedSequence:
        return np.random.SeedSequence([self.seed, self._split_code, self.epoch, int(index), stream])

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng(self._seq(index, stream))

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` for ``indices``: x ``(B, seq_len, input_size)`` float32, y ``(B,)`` int64."""
        return self._make(self._indices(indices))

    def __getitem__(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        """Item ``index``; a 1-d sequence of indices gives a whole batch (see :meth:`loader`)."""
        if isinstance(index, (list, tuple, np.ndarray, torch.Tensor)) and np.ndim(index) == 1:
            return self._make(self._indices(np.asarray(index)))
        x, y = self._make(self._indices([operator.index(index)]))
        return x[0], y[0]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # Used by torch's DataLoader (>= 2.0) to fetch a whole batch with one call.
        x, y = self._make(self._indices(indices))
        return list(zip(x.unbind(0), y.unbind(0)))

    def loader(self, batch_size: int, *, shuffle: bool = True, seed: int | None = None,
               drop_last: bool = False, **kwargs) -> DataLoader:
        """A torch ``DataLoader`` that builds each batch with one batched call (no per-item
        work, no re-stacking); ``kwargs`` go to ``DataLoader`` (e.g. ``num_workers``).

        The order is drawn by torch from ``seed`` (default: the task's seed); items are the
        same as ``task[i]`` whatever the order or the worker.
        """
        batch_size = _check_int("batch_size", batch_size, 1)
        if shuffle:
            g = torch.Generator().manual_seed(self.seed if seed is None else seed)
            sampler = RandomSampler(self, generator=g)
        else:
            sampler = SequentialSampler(self)
        return DataLoader(self, sampler=BatchSampler(sampler, batch_size, drop_last),
                          batch_size=None, **kwargs)

    def batches(self, batch_size: int, *, shuffle: bool = True, seed: int | None = None,
                drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of batches built with tensor ops (the fast path).

        Parameters
        ----------
        batch_size : int
        shuffle : bool
            Visit items in a permutation determined by ``(seed, split, epoch)``.
        seed : int, optional
            Seed of the order (default: the task's seed).
        drop_last : bool
            Skip a final incomplete batch.
        """
        batch_size = _check_int("batch_size", batch_size, 1)
        n = len(self)
        if shuffle:
            s = self.seed if seed is None else _check_int("seed", seed, 0)
            ss = np.random.SeedSequence([s, self._split_code, self.epoch, 0, _STREAM_SHUFFLE])
            order = np.random.default_rng(ss).permutation(n)
        else:
            order = np.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if drop_last and len(idx) < batch_size:
                break
            yield self._make(idx)

    def input_second_moments(self) -> np.ndarray:
        r"""Per-step :math:`\mathbb{E}\|z^t\|^2/\text{input\_size}` over the data set, shape (seq_len,)."""
        if self._moments is None:
            self._moments = np.asarray(self._step_second_moments(), np.float64)
        return self._moments

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable record of the task: what it is, its data, and what it did."""
        m2 = self.input_second_moments()
        return {
            "task": self.name, "paper_section": self.paper_section,
            "seq_len": int(self.seq_len), "input_size": int(self.input_size),
            "num_classes": int(self.num_classes), "n": len(self), "seed": self.seed,
            "epoch": self.epoch, **self._params(),
            "normalization": self.normalization.to_dict(),
            "input_second_moment": {
                "definition": "E|z_t|^2 / input_size per step t over the data set; the theory "
                              "assumes 1",
                "mean": round(float(m2.mean()), 6), "min": round(float(m2.min()), 6),
                "max": round(float(m2.max()), 6), "first_step": round(float(m2[0]), 6)},
            "data": copy.deepcopy(self.data.meta),
        }

    @property
    def meta(self) -> dict[str, Any]:
        """Same as :meth:`describe`."""
        return self.describe()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n={len(self)}, seq_len={self.seq_len}, "
                f"input_size={self.input_size}, source={self.data.source!r}, "
                f"split={self.data.split!r})")

    # -- helpers ------------------------------------------------------------------------
    def _z(self, images: np.ndarray) -> np.ndarray:
        """Normalised float32 values of uint8 ``images`` (same shape)."""
        if self._channels == 1:
            return self._lut[images]
        return self._lut[images, np.arange(self._channels)]

    def _pixels(self, idx: np.ndarray) -> np.ndarray:
        """Normalised flattened MNIST pixels ``(B, 784)`` float32."""
        return self._lut[self.data.images[idx].reshape(len(idx), -1)]

    def _pixel_second_moments(self, images: np.ndarray | None = None) -> np.ndarray:
        """Mean over images of z^2 per pixel position (flattened; channels averaged)."""
        images = self.data.images if images is None else images
        acc = np.zeros(int(np.prod(images.shape[1:])), np.float64)
        for s in range(0, len(images), 5000):
            z = self._z(images[s:s + 5000]).astype(np.float64)
            acc += (z ** 2).reshape(len(z), -1).sum(0)
        acc /= max(len(images), 1)
        return acc.reshape(-1, self._channels).mean(1)

    def _labels(self, idx) -> torch.Tensor:
        return torch.from_numpy(self.data.labels[idx].astype(np.int64))


class PaddedMNIST(SequenceTask):
    """Padded MNIST (Section 5.1.1): a digit, then ``seq_len - 1`` steps of Gaussian noise.

    Step 1 is the normalised, flattened digit (784 inputs); steps 2..T are i.i.d.
    :math:`\\mathcal{N}(0, \\text{noise\\_std}^2)` vectors of the same size, drawn from a
    generator seeded by ``(seed, split, epoch, index)``. The target is the digit's label, so
    the network must carry information from the first step to the last.

    Parameters
    ----------
    data : ImageSet
        MNIST images (see :func:`rnn_mft.data.load_mnist`).
    seq_len : int
        T >= 1, the total number of steps.
    seed : int
    noise_std : float
        Standard deviation of the padding noise (1 matches the theory's R = 1).
    normalization : "fit", None or Normalization
    """

    name = "padded_mnist"
    paper_section = "5.1.1"
    input_size = 784

    def __init__(self, data: ImageSet, seq_len: int = 10, *, seed: int = 0,
                 noise_std: float = 1.0, normalization="fit"):
        self.seq_len = _check_int("seq_len", seq_len, 1)
        if not (np.isfinite(noise_std) and noise_std >= 0):
            raise ValueError(f"noise_std={noise_std!r}; allowed: a finite number >= 0")
        self.noise_std = float(noise_std)
        super().__init__(data, seed=seed, normalization=normalization)

    def _params(self):
        return {"noise_std": self.noise_std,
                "noise": "i.i.d. N(0, noise_std^2) in steps 2..T, seeded by (seed, split, "
                         "epoch, index)"}

    def _make(self, idx):
        B, T = len(idx), self.seq_len
        x = torch.empty((B, T, 784), dtype=torch.float32)
        x[:, 0] = torch.from_numpy(self._pixels(idx))
        if T > 1:
            g = torch.Generator()
            for b, i in enumerate(idx):
                g.manual_seed(int(self._seq(i, _STREAM_NOISE).generate_state(1, np.uint64)[0]))
                torch.randn((T - 1, 784), generator=g, out=x[b, 1:])
            if self.noise_std != 1.0:
                x[:, 1:] *= self.noise_std
        return x, self._labels(idx)

    def _step_second_moments(self):
        m = np.full(self.seq_len, self.noise_std ** 2)
        m[0] = self._pixel_second_moments().mean()
        return m


class UnrolledMNIST(SequenceTask):
    """Unrolled (pixel-by-pixel) MNIST (Section 5.2.1): 784 steps of one pixel each.

    Parameters
    ----------
    data : ImageSet
    permutation : None, "random" or sequence of 784 ints
        Reading order of the pixels: row-major (None), a fixed random permutation drawn from
        ``permutation_seed`` (the "permuted MNIST" variant), or an explicit order. The same
        permutation is used for every item and split.
    permutation_seed : int
    seed : int
    normalization : "fit", None or Normalization
    """

    name = "unrolled_mnist"
    paper_section = "5.2.1"
    seq_len = 784
    input_size = 1

    def __init__(self, data: ImageSet, *, permutation=None, permutation_seed: int = 0,
                 seed: int = 0, normalization="fit"):
        super().__init__(data, seed=seed, normalization=normalization)
        self.permutation_seed = _check_int("permutation_seed", permutation_seed, 0)
        if permutation is None:
            self.permutation, kind = None, "none (row-major)"
        elif isinstance(permutation, str) and permutation == "random":
            self.permutation = np.random.default_rng(self.permutation_seed).permutation(784)
            kind = f"random, seed {self.permutation_seed}"
        elif isinstance(permutation, str):
            raise ValueError(f"permutation={permutation!r}; allowed: None, 'random', or a "
                             "permutation of range(784)")
        else:
            p = np.asarray(permutation, dtype=np.int64)
            if p.shape != (784,) or not np.array_equal(np.sort(p), np.arange(784)):
                raise ValueError("permutation must be None, 'random', or a permutation of "
                                 "range(784)")
            self.permutation, kind = p, "explicit"
        self._perm_kind = kind

    def _params(self):
        out = {"permutation": self._perm_kind}
        if self.permutation is not None:
            out["permutation_sha256"] = hashlib.sha256(
                self.permutation.astype("<i8").tobytes()).hexdigest()
        return out

    def _make(self, idx):
        z = self._pixels(idx)
        if self.permutation is not None:
            z = z[:, self.permutation]
        return torch.from_numpy(np.ascontiguousarray(z)).unsqueeze(-1), self._labels(idx)

    def _step_second_moments(self):
        m = self._pixel_second_moments()
        return m if self.permutation is None else m[self.permutation]


class RepeatedPixelMNIST(SequenceTask):
    """Repeated-pixel MNIST (Section 5.2.2): 784/input_size steps of input_size pixels, each
    step repeated ``repeat`` times in a row, so ``seq_len = (784 / input_size) * repeat``
    (112 r with the paper's input size 7).

    Parameters
    ----------
    data : ImageSet
    repeat : int
        r >= 1, times each step is repeated.
    input_size : int
        Pixels per step (a divisor of 784; the paper uses 7).
    seed : int
    normalization : "fit", None or Normalization
    """

    name = "repeated_pixel_mnist"
    paper_section = "5.2.2"

    def __init__(self, data: ImageSet, repeat: int = 1, *, input_size: int = 7, seed: int = 0,
                 normalization="fit"):
        self.repeat = _check_int("repeat", repeat, 1)
        self.input_size = _check_int("input_size", input_size, 1, 784)
        if 784 % self.input_size:
            raise ValueError(f"input_size={input_size}; allowed: a divisor of 784 "
                             "(1, 2, 4, 7, 8, 14, 16, 28, 49, 56, 98, 112, 196, 392, 784)")
        self.seq_len = 784 // self.input_size * self.repeat
        super().__init__(data, seed=seed, normalization=normalization)

    def _params(self):
        return {"repeat": self.repeat, "steps_per_image": 784 // self.input_size}

    def _make(self, idx):
        z = self._pixels(idx).reshape(len(idx), 784 // self.input_size, self.input_size)
        if self.repeat > 1:
            z = np.repeat(z, self.repeat, axis=1)
        return torch.from_numpy(np.ascontiguousarray(z)), self._labels(idx)

    def _step_second_moments(self):
        m = self._pixel_second_moments().reshape(-1, self.input_size).mean(1)
        return np.repeat(m, self.repeat)


class ConcatenatedMNIST(SequenceTask):
    """Concatenated (multiple-digit) MNIST (Section 5.2.2).

    Each item is ``n_digits`` MNIST digits, each drawn from the images of the digits in
    ``digits`` (0s and 1s), fed one after the other, ``784/input_size`` steps of
    ``input_size`` pixels per digit (7 steps of 112 with the paper's input size), every step
    repeated ``repeat`` times (10 in the paper): ``seq_len = n_digits * (784/input_size) *
    repeat``. The class of each digit is a fair coin and its image a uniform draw among the
    images of that class, both seeded by ``(seed, split, epoch, index)``.

    The label is "the product of the original labels". With ``label_mode="tuple"`` (default)
    it is the tuple of the digits' labels, i.e. an element of the Cartesian product, encoded as
    the binary number they spell (first digit most significant), so ``num_classes =
    2**n_digits``: the paper notes that the label space of this task is exponential in the
    number of digits. ``label_mode="product"`` gives the arithmetic product (2 classes: 1 iff
    every digit is a 1).

    Parameters
    ----------
    data : ImageSet
    n_digits : int
        Digits per sequence, 1..30.
    repeat : int
        Times each step is repeated (paper: 10).
    input_size : int
        Pixels per step (a divisor of 784; paper: 112).
    length : int, optional
        Items in the data set (default: the number of eligible images in ``data``).
    digits : pair of int
        The two digit classes used (paper: 0 and 1).
    label_mode : {"tuple", "product"}
    seed : int
    normalization : "fit" (fitted on the eligible images), None or Normalization
    """

    name = "concatenated_mnist"
    paper_section = "5.2.2"

    def __init__(self, data: ImageSet, n_digits: int = 2, *, repeat: int = 10,
                 input_size: int = 112, length: int | None = None, digits=(0, 1),
                 label_mode: str = "tuple", seed: int = 0, normalization="fit"):
        self.n_digits = _check_int("n_digits", n_digits, 1, 30)
        self.repeat = _check_int("repeat", repeat, 1)
        self.input_size = _check_int("input_size", input_size, 1, 784)
        if 784 % self.input_size:
            raise ValueError(f"input_size={input_size}; allowed: a divisor of 784")
        if label_mode not in ("tuple", "product"):
            raise ValueError(f"label_mode={label_mode!r}; allowed: 'tuple', 'product'")
        digits = tuple(int(d) for d in digits)
        if len(digits) != 2 or digits[0] == digits[1] or not all(0 <= d <= 9 for d in digits):
            raise ValueError(f"digits={digits}; allowed: two different digits in 0..9")
        self.digits, self.label_mode = digits, label_mode
        self._pools = [np.flatnonzero(data.labels == d) for d in digits]
        for d, p in zip(digits, self._pools):
            if len(p) == 0:
                raise ValueError(f"data has no image of digit {d}")
        self.length = (sum(len(p) for p in self._pools) if length is None
                       else _check_int("length", length, 1))
        self.steps_per_digit = 784 // self.input_size
        self.seq_len = self.n_digits * self.steps_per_digit * self.repeat
        self.num_classes = 2 ** self.n_digits if label_mode == "tuple" else 2
        super().__init__(data, seed=seed, normalization=normalization)

    def _fit_images(self):
        # each digit class is a fair coin: weight the two classes equally
        return [self.data.images[p] for p in self._pools], [0.5, 0.5]

    def __len__(self):
        return self.length

    def _params(self):
        return {"n_digits": self.n_digits, "repeat": self.repeat, "digits": list(self.digits),
                "label_mode": self.label_mode, "steps_per_digit": self.steps_per_digit,
                "pool_sizes": [int(len(p)) for p in self._pools]}

    def draws(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(bits, image_indices)`` of item ``index``: which class (0/1 into ``digits``) and
        which image of ``data`` each of its digits is."""
        i = int(self._indices([index])[0])
        rng = self._rng(i, _STREAM_DRAW)
        bits = rng.integers(0, 2, self.n_digits)
        u = rng.random(self.n_digits)
        sizes = np.array([len(p) for p in self._pools])
        pos = np.minimum((u * sizes[bits]).astype(np.int64), sizes[bits] - 1)
        imgs = np.array([self._pools[b][k] for b, k in zip(bits, pos)], dtype=np.int64)
        return bits, imgs

    def _make(self, idx):
        B, n = len(idx), self.n_digits
        bits = np.empty((B, n), np.int64)
        imgs = np.empty((B, n), np.int64)
        for b, i in enumerate(idx):
            bits[b], imgs[b] = self.draws(i)
        z = self._lut[self.data.images[imgs.reshape(-1)].reshape(B, n * self.steps_per_digit,
                                                                 self.input_size)]
        if self.repeat > 1:
            z = np.repeat(z, self.repeat, axis=1)
        if self.label_mode == "tuple":
            y = bits @ (1 << np.arange(n - 1, -1, -1, dtype=np.int64))
        else:
            y = bits.prod(1)
        return torch.from_numpy(np.ascontiguousarray(z)), torch.from_numpy(y.astype(np.int64))

    def _step_second_moments(self):
        per_class = [self._pixel_second_moments(self.data.images[p]) for p in self._pools]
        m = 0.5 * (per_class[0] + per_class[1])  # each class is a fair coin
        m = np.repeat(m.reshape(-1, self.input_size).mean(1), self.repeat)
        return np.tile(m, self.n_digits)


class UnrolledCIFAR10(SequenceTask):
    """Unrolled CIFAR-10 (Section 5.2.1): 1024 steps of 3 values (one pixel's RGB channels,
    row-major).

    With ``augment`` (default: on for the training split only) each image is first padded with
    ``pad`` black pixels on every side and randomly cropped back to 32x32, then flipped
    horizontally with probability 1/2, the standard CIFAR-10 augmentation; the crop offsets and
    the flip are seeded by ``(seed, split, epoch, index)``. Channels are normalised separately.

    Parameters
    ----------
    data : ImageSet
        CIFAR-10 images ``(n, 32, 32, 3)`` (see :func:`rnn_mft.data.load_cifar10`).
    augment : bool, optional
    pad : int
        Padding of the random crop (4).
    seed : int
    normalization : "fit", None or Normalization
    """

    name = "unrolled_cifar10"
    paper_section = "5.2.1"
    seq_len = 1024
    input_size = 3
    _channels = 3
    _image_shape = (32, 32, 3)

    def __init__(self, data: ImageSet, *, augment: bool | None = None, pad: int = 4,
                 seed: int = 0, normalization="fit"):
        super().__init__(data, seed=seed, normalization=normalization)
        self.augment = (data.split == "train") if augment is None else bool(augment)
        self.pad = _check_int("pad", pad, 0, 32)
        self._ar = np.arange(32)

    def _params(self):
        return {"augment": self.augment,
                "augmentation": (f"random crop after {self.pad}-pixel zero padding, horizontal "
                                 "flip with p=1/2, seeded by (seed, split, epoch, index)")
                if self.augment else "none"}

    def _make(self, idx):
        B = len(idx)
        imgs = self.data.images[idx]
        if self.augment:
            p = self.pad
            off = np.empty((B, 2), np.int64)
            flip = np.empty(B, bool)
            for b, i in enumerate(idx):
                rng = self._rng(i, _STREAM_AUGMENT)
                off[b] = rng.integers(0, 2 * p + 1, 2)
                flip[b] = rng.random() < 0.5
            padded = np.zeros((B, 32 + 2 * p, 32 + 2 * p, 3), np.uint8)
            padded[:, p:p + 32, p:p + 32] = imgs
            rows = off[:, 0:1] + self._ar                       # (B, 32)
            cols = off[:, 1:2] + self._ar                       # (B, 32)
            cols = np.where(flip[:, None], cols[:, ::-1], cols)
            imgs = padded[np.arange(B)[:, None, None], rows[:, :, None], cols[:, None, :]]
        z = self._z(imgs.reshape(B, 1024, 3))
        return torch.from_numpy(np.ascontiguousarray(z)), self._labels(idx)

    def _step_second_moments(self):
        return self._pixel_second_moments()


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
