"""The records of one training run of :func:`rnn_mft.train.fit`: what it works with
(:class:`RunContext`) and where it stands (:class:`TrainState`).

A checkpoint (:mod:`rnn_mft.train.checkpoint`) holds a :class:`TrainState` beside the model's,
the optimizer's and the random generators' states: :meth:`TrainState.checkpoint_state` writes it,
:meth:`TrainState.resume` reads it back. The file's format is the one checkpoints always had
(same keys, order, dtypes), so that a run resumes bitwise from a checkpoint written before.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from ..settings import Settings
from .optim import MemberOptimizer

if TYPE_CHECKING:                      # annotations only: the engine imports this module
    from .engine import TrainConfig

__all__ = ["TrainState", "RunContext", "run_identity"]


@dataclass
class TrainState:
    """Where a run stands. ``train_loss``, ``train_acc``, ``grad_norm``: ``(steps, M)`` (NaN where
    not run yet); ``ev_step``, ``ev_loss``, ``ev_acc``: the evaluations so far (one ``(M,)`` row
    each); ``diverged`` ``(M,)`` and ``diverged_step`` (-1: never); ``init_loss``: each member's
    first finite loss (what divergence is measured against). ``step``: the step this call starts
    from; ``elapsed``: wall seconds of training before this call; ``done``: the run had finished
    (its result not yet stored) when it was checkpointed."""

    train_loss: np.ndarray
    train_acc: np.ndarray
    grad_norm: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    init_loss: np.ndarray
    ev_step: list = field(default_factory=list)
    ev_loss: list = field(default_factory=list)
    ev_acc: list = field(default_factory=list)
    step: int = 0
    elapsed: float = 0.0
    done: bool = False

    @classmethod
    def fresh(cls, steps: int, members: int) -> "TrainState":
        """A run of ``steps`` steps and ``members`` members that has not started."""
        return cls(train_loss=np.full((steps, members), np.nan), train_acc=np.full((steps, members), np.nan),
                   grad_norm=np.full((steps, members), np.nan), diverged=np.zeros(members, dtype=bool),
                   diverged_step=np.full(members, -1), init_loss=np.full(members, np.nan))

    @classmethod
    def resume(cls, st: dict, steps: int, members: int, model, opt, gen: torch.Generator) -> "TrainState":
        """Load a checkpoint's ``state`` ``st`` into ``model``, ``opt``, ``gen`` and torch's global
        generator, and return the run's state from it. A checkpoint of another shape raises
        (``KeyError``, ``TypeError``, ``ValueError``, ``RuntimeError``) with the caller's objects
        possibly half loaded: :func:`rnn_mft.train.fit` restores the model's weights then."""
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        gen.set_state(st["gen"])
        torch.set_rng_state(st["torch_rng"])
        s = cls.fresh(steps, members)
        s.step, s.elapsed, s.done = int(st["step"]), float(st["elapsed"]), bool(st["done"])
        s.train_loss[:s.step], s.train_acc[:s.step], s.grad_norm[:s.step] = (st["train_loss"].numpy(),
                                                                             st["train_acc"].numpy(),
                                                                             st["grad_norm"].numpy())
        s.ev_step = list(st["ev_step"])
        s.ev_loss, s.ev_acc = list(st["ev_loss"].numpy()), list(st["ev_acc"].numpy())
        s.diverged, s.diverged_step = st["diverged"].numpy().copy(), st["diverged_step"].numpy().copy()
        s.init_loss = st["init_loss"].numpy().copy()
        return s

    def checkpoint_state(self, step: int, elapsed: float, done: bool, model, opt, gen: torch.Generator) -> dict:
        """The ``state`` a checkpoint holds at ``step`` (``elapsed`` wall seconds in all; ``done``:
        finished): this record's curves up to ``step``, the model, optimizer and generators."""
        t = lambda a: torch.from_numpy(np.array(a))  # noqa: E731  (a copy; float64/bool/int64 kept)
        ost = opt.state_dict()
        lr = ost["lr"]
        M = len(self.diverged)
        return {"step": int(step), "done": bool(done), "elapsed": float(elapsed),
                "model": dict(model.state_dict()),
                "opt": {"step_count": int(ost["step_count"]), "lr": lr if isinstance(lr, torch.Tensor) else float(lr),
                        "state": ost["state"]},
                "gen": gen.get_state(), "torch_rng": torch.get_rng_state(),
                "train_loss": t(self.train_loss[:step]), "train_acc": t(self.train_acc[:step]),
                "grad_norm": t(self.grad_norm[:step]),
                "ev_step": [int(v) for v in self.ev_step],
                "ev_loss": t(np.asarray(self.ev_loss, dtype=float).reshape(len(self.ev_loss), M)),
                "ev_acc": t(np.asarray(self.ev_acc, dtype=float).reshape(len(self.ev_acc), M)),
                "diverged": t(self.diverged), "diverged_step": t(self.diverged_step.astype(np.int64)),
                "init_loss": t(self.init_loss)}


@dataclass(frozen=True)
class RunContext:
    """What a run works with, fixed while it runs: ``model`` and ``task``; ``cfg`` (its
    :class:`~rnn_mft.train.TrainConfig`); ``device`` and ``amp`` (bfloat16 autocast, CUDA only);
    ``members`` (None: a single network); the optimizer ``opt`` and the data generator ``gen``;
    the ``checkpoint`` path (None: none) and ``identity``, what defines the run in it
    (:func:`run_identity`); the job settings it runs under (``settings``, and from them or fit's
    arguments ``deadline``, ``finish`` (finish or skip) and ``checkpoint_every``); the CUDA-graph
    plan ``graphs`` (:mod:`rnn_mft.train.graphs`, updated in place once captured); the held-out
    data ``eval_data``; ``hook``, ``labels`` and ``desc`` as given to fit."""

    model: torch.nn.Module
    task: object
    cfg: "TrainConfig"
    device: torch.device
    amp: bool
    members: int | None
    opt: MemberOptimizer
    gen: torch.Generator
    checkpoint: Path | None
    identity: dict
    settings: Settings
    deadline: float | None
    finish: bool
    checkpoint_every: int
    graphs: dict
    eval_data: tuple
    hook: Callable[[int, dict], None] | None = None
    labels: Sequence | None = None
    desc: str | None = None

    @property
    def M(self) -> int:
        """Members (1 for a single network)."""
        return self.members or 1


def run_identity(cfg: "TrainConfig", model, M: int, labels, task) -> dict:
    """What defines a run, as stored in (and compared with) its checkpoint (its ``settings``)."""
    d = cfg.to_dict()
    d.pop("progress", None)
    shapes = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    return {"train_config": d, "members": M, "model": repr(getattr(model, "cell", model)).replace("\n", " "),
            "parameters": shapes, "labels": [str(x) for x in labels] if labels is not None else None,
            "task": type(task).__name__}
