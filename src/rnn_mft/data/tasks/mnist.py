"""The MNIST tasks of Section 5: padded (5.1.1), unrolled (5.2.1), repeated-pixel and
concatenated (5.2.2). See :mod:`rnn_mft.data.tasks`.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..datasets import ImageSet
from .base import _STREAM_DRAW, _STREAM_NOISE, SequenceTask, _check_int

__all__ = ["PaddedMNIST", "UnrolledMNIST", "RepeatedPixelMNIST", "ConcatenatedMNIST"]


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
