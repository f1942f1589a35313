"""Adapter from the library's data sets (:mod:`rnn_mft.data.tasks`) to the training engine.

The engine (:func:`rnn_mft.train.fit`) asks a task for ``train_batch(batch_size, generator)``
and ``eval_data()``. :class:`DatasetTask` answers both from a pair of
:class:`~rnn_mft.data.SequenceTask` objects:

* training minibatches are drawn with replacement, by the engine's generator, from the training
  task; with ``fresh_draws=True`` every minibatch also gets fresh random draws (padding noise,
  digit choices, augmentation): its ``epoch`` (see :meth:`~rnn_mft.data.SequenceTask.set_epoch`)
  is drawn from the same generator. Everything is a function of the engine's generator, so a run
  is a deterministic function of its seed and resumes exactly from a checkpoint;
* the evaluation set is the first ``n_eval`` items of the evaluation task (or of the training
  task itself with ``eval_on="train"``, for the paper's *training* accuracy of Figures 2 and 6),
  built once and kept.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["DatasetTask"]


class DatasetTask:
    """``train_batch``/``eval_data`` over a training task and an evaluation task.

    Parameters
    ----------
    train : SequenceTask
    test : SequenceTask, optional
        Held-out task (same shapes); required unless ``eval_on="train"``.
    n_eval : int, optional
        Number of evaluation items (default: all of them).
    eval_on : {"test", "train"}
        Evaluate on ``test`` (held-out accuracy) or on the first ``n_eval`` training items.
    fresh_draws : bool
        Fresh random draws for every minibatch (see the module docstring); ``False`` keeps the
        draws of epoch 0, i.e. a fixed finite training set.
    """

    def __init__(self, train, test=None, n_eval: int | None = None, eval_on: str = "test",
                 fresh_draws: bool = True):
        if eval_on not in ("test", "train"):
            raise ValueError(f"eval_on={eval_on!r}; allowed: 'test', 'train'")
        if eval_on == "test" and test is None:
            raise ValueError("eval_on='test' needs a test task")
        if test is not None and (test.seq_len, test.input_size) != (train.seq_len, train.input_size):
            raise ValueError(f"test task shape (seq_len={test.seq_len}, input_size={test.input_size}) differs "
                             f"from the training task's ({train.seq_len}, {train.input_size})")
        src = test if eval_on == "test" else train
        n = len(src) if n_eval is None else int(n_eval)
        if not 1 <= n <= len(src):
            raise ValueError(f"n_eval={n_eval!r}; allowed: 1..{len(src)} (items in the {eval_on} task)")
        self.train, self.test, self.eval_on, self.n_eval = train, test, eval_on, n
        self.fresh_draws = bool(fresh_draws)
        self.n_in, self.n_out, self.T = train.input_size, train.num_classes, train.seq_len
        self._eval = None

    def train_batch(self, batch_size: int, generator: torch.Generator):
        idx = torch.randint(len(self.train), (batch_size,), generator=generator).numpy()
        if self.fresh_draws:
            self.train.set_epoch(int(torch.randint(2**31 - 1, (1,), generator=generator)) + 1)
        return self.train.batch(idx)

    def eval_data(self):
        if self._eval is None:
            src = self.test if self.eval_on == "test" else self.train
            epoch = src.epoch
            src.set_epoch(0)
            self._eval = src.batch(np.arange(self.n_eval))
            src.set_epoch(epoch)
        return self._eval

    def describe(self) -> dict:
        d = {"train": self.train.describe(), "eval_on": self.eval_on, "n_eval": self.n_eval}
        if self.test is not None:
            d["test"] = self.test.describe()
        return d
