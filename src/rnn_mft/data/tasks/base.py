r"""The base class of the paper's sequence tasks: :class:`SequenceTask` (deterministic items,
batches, loaders, the input second moments) and :class:`Normalization` (pixels to
:math:`z` with :math:`\mathbb{E} z^2 = 1`, Section 4.2). See :mod:`rnn_mft.data.tasks`.
"""
from __future__ import annotations

import copy
import operator
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import (BatchSampler, DataLoader, Dataset, RandomSampler,
                              SequentialSampler)

from ..datasets import ImageSet

__all__ = ["Normalization", "SequenceTask"]

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
    def normalize(self, images: np.ndarray) -> np.ndarray:
        """Normalised float32 values :math:`z = (v/255 - m)/s` of uint8 ``images`` (same shape;
        the last axis is the channel for CIFAR-10), with this task's :attr:`normalization`."""
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
            z = self.normalize(images[s:s + 5000]).astype(np.float64)
            acc += (z ** 2).reshape(len(z), -1).sum(0)
        acc /= max(len(images), 1)
        return acc.reshape(-1, self._channels).mean(1)

    def _labels(self, idx) -> torch.Tensor:
        return torch.from_numpy(self.data.labels[idx].astype(np.int64))
