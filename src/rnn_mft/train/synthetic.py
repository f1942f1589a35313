r"""Synthetic long-sequence tasks generated in code (no download).

:class:`CopyMemoryTask` is the copy-memory problem in the classification form that a linear
read-out of the last state can solve, the synthetic analogue of the paper's padded MNIST
(Section 5.1.1): the first ``n_copy`` steps carry one-hot symbols out of ``n_symbols``, the
remaining ``T - n_copy`` steps carry i.i.d. Gaussian noise of standard deviation ``noise`` (zero
for blanks), and the label is the remembered symbol string read as a base-``n_symbols`` number
(``n_symbols ** n_copy`` classes). Success requires information to travel ``T`` steps, so a
network is trainable only when its time scale :math:`\xi` is not much smaller than ``T``.
"""
from __future__ import annotations

import torch

__all__ = ["CopyMemoryTask", "TensorTask"]


class TensorTask:
    """A task from tensors: minibatches are drawn (with replacement) from ``(x_train, y_train)``
    with the generator the engine passes; ``(x_eval, y_eval)`` is the held-out set."""

    def __init__(self, x_train, y_train, x_eval, y_eval, n_out: int | None = None):
        for name, a in (("x_train", x_train), ("x_eval", x_eval)):
            if not isinstance(a, torch.Tensor) or a.dim() != 3:
                raise ValueError(f"{name} must be a (samples, T, n_in) tensor, got "
                                 f"{getattr(a, 'shape', type(a).__name__)}")
        if len(x_train) != len(y_train) or len(x_eval) != len(y_eval):
            raise ValueError("inputs and labels must have the same number of samples")
        self.x_train, self.y_train = x_train.float(), y_train.long()
        self.x_eval, self.y_eval = x_eval.float(), y_eval.long()
        self.n_in = x_train.shape[-1]
        self.T = x_train.shape[1]
        self.n_out = int(n_out if n_out is not None else int(max(y_train.max(), y_eval.max())) + 1)

    def train_batch(self, batch_size: int, generator: torch.Generator):
        idx = torch.randint(len(self.x_train), (batch_size,), generator=generator)
        return self.x_train[idx], self.y_train[idx]

    def eval_data(self):
        return self.x_eval, self.y_eval


class CopyMemoryTask:
    """Copy-memory classification task (see the module docstring).

    Parameters
    ----------
    T : int
        Sequence length (``T > n_copy``).
    n_symbols : int
        Alphabet size (also the input width).
    n_copy : int
        Number of symbols to remember.
    noise : float
        Standard deviation of the Gaussian noise after the symbols (0: blanks).
    n_eval : int
        Size of the held-out set, drawn once from ``eval_seed``.
    """

    def __init__(self, T: int, n_symbols: int = 8, n_copy: int = 1, noise: float = 1.0, n_eval: int = 512,
                 eval_seed: int = 12345):
        if not (isinstance(T, int) and isinstance(n_copy, int) and n_copy >= 1 and T > n_copy):
            raise ValueError(f"T={T!r}, n_copy={n_copy!r}: need ints with 1 <= n_copy < T")
        if not (isinstance(n_symbols, int) and n_symbols >= 2):
            raise ValueError(f"n_symbols={n_symbols!r} must be an int >= 2")
        if not noise >= 0:
            raise ValueError(f"noise={noise!r} must be >= 0")
        self.T, self.n_symbols, self.n_copy, self.noise = T, n_symbols, n_copy, float(noise)
        self.n_in, self.n_out = n_symbols, n_symbols ** n_copy
        g = torch.Generator().manual_seed(eval_seed)
        self._eval = self.sample(n_eval, g)

    def sample(self, n: int, generator: torch.Generator):
        """``n`` sequences ``(n, T, n_symbols)`` and labels ``(n,)``."""
        sym = torch.randint(self.n_symbols, (n, self.n_copy), generator=generator)
        x = torch.randn(n, self.T, self.n_symbols, generator=generator) * self.noise
        x[:, :self.n_copy] = torch.nn.functional.one_hot(sym, self.n_symbols).float()
        base = self.n_symbols ** torch.arange(self.n_copy - 1, -1, -1)
        return x, (sym * base).sum(1)

    def train_batch(self, batch_size: int, generator: torch.Generator):
        return self.sample(batch_size, generator)

    def eval_data(self):
        return self._eval
