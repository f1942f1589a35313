"""What a job runner tells :func:`rnn_mft.train.fit` through the environment.

* ``$RNN_MFT_DEADLINE``: a time budget (seconds since the epoch); past it a run checkpoints and
  raises :class:`~rnn_mft.train.BudgetExhausted`;
* ``$RNN_MFT_FINISH_BY_DEADLINE``: finish or skip: a run that, timed over its first steps, would
  not finish before ``$RNN_MFT_DEADLINE`` stops at once without a checkpoint (for a machine whose
  checkpoints cannot be carried elsewhere, such as a briefly lent GPU);
* ``$RNN_MFT_CUDA_GRAPHS``: on CUDA, replay the training forward and backward as a captured
  CUDA graph (see :func:`rnn_mft.train.fit`'s ``cuda_graphs``; ignored on a CPU);
* ``$RNN_MFT_RESTART``: discard checkpoints that cannot be resumed;
* ``$RNN_MFT_CHECKPOINT_EVERY``: checkpoint every that many steps (job runners, so that a killed
  job loses at most that many steps; the run's settings are unchanged).

:func:`environ` sets such variables for a block of code and restores them afterwards.
"""
from __future__ import annotations

import contextlib
import math
import os

__all__ = ["deadline_from_env", "restart_from_env", "checkpoint_every_from_env", "finish_by_deadline_from_env",
           "cuda_graphs_from_env", "environ"]


def deadline_from_env() -> float | None:
    """``$RNN_MFT_DEADLINE`` (seconds since the epoch) or None."""
    v = os.environ.get("RNN_MFT_DEADLINE", "").strip()
    if not v:
        return None
    try:
        d = float(v)
    except ValueError:
        raise ValueError(f"RNN_MFT_DEADLINE={v!r} must be a time in seconds since the epoch") from None
    if not math.isfinite(d):
        raise ValueError(f"RNN_MFT_DEADLINE={v!r} must be finite")
    return d


def checkpoint_every_from_env(default: int) -> int:
    """``$RNN_MFT_CHECKPOINT_EVERY`` (a positive number of steps) or ``default``."""
    v = os.environ.get("RNN_MFT_CHECKPOINT_EVERY", "").strip()
    if not v:
        return int(default or 0)
    try:
        n = int(v)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"RNN_MFT_CHECKPOINT_EVERY={v!r} must be a positive whole number of steps")
    return n


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0", "false", "False", "no")


def restart_from_env() -> bool:
    return _flag("RNN_MFT_RESTART")


def finish_by_deadline_from_env() -> bool:
    """``$RNN_MFT_FINISH_BY_DEADLINE`` is set (see :func:`rnn_mft.train.fit`'s ``finish_by_deadline``)."""
    return _flag("RNN_MFT_FINISH_BY_DEADLINE")


def cuda_graphs_from_env() -> bool:
    """``$RNN_MFT_CUDA_GRAPHS`` is set (see :func:`rnn_mft.train.fit`'s ``cuda_graphs``)."""
    return _flag("RNN_MFT_CUDA_GRAPHS")


@contextlib.contextmanager
def environ(**values):
    """Set environment variables for a block (a value ``None`` unsets one), then restore each of
    them to what it was (unset ones unset again); other variables are left as the block leaves
    them."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
