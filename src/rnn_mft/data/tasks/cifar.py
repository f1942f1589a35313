"""The CIFAR-10 task of Section 5.2.1: unrolled CIFAR-10 with the standard augmentation.
See :mod:`rnn_mft.data.tasks`.
"""
from __future__ import annotations

import numpy as np
import torch

from ..datasets import ImageSet
from .base import _STREAM_AUGMENT, SequenceTask, _check_int

__all__ = ["UnrolledCIFAR10"]


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
        z = self.normalize(imgs.reshape(B, 1024, 3))
        return torch.from_numpy(np.ascontiguousarray(z)), self._labels(idx)

    def _step_second_moments(self):
        return self._pixel_second_moments()
