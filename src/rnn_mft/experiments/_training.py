"""Shared pieces of the training experiments (Figures 1, 2, 4, 6 and Table 2).

* :func:`make_ensemble`: an ensemble whose members are initialised each in its own way (a Theta
  drawn with :func:`rnn_mft.nets.init_`, the standard initialization of Appendix C.5, or chrono)
  and share one read-out draw, so that members differ only where the experiment says;
* :func:`train_cfg`: the :class:`~rnn_mft.train.TrainConfig` of an experiment's settings;
* :func:`stored`: train, or load what the results store holds for the same settings (profiles
  ``ci`` and ``paper``; ``smoke`` always trains and writes nothing), with checkpoints for
  long runs;
* :func:`run_key`: a short hash of the settings that produced a run, part of its stored name,
  so that editing a config never silently reuses results of other settings.
"""
from __future__ import annotations

import hashlib
import json
from typing import Callable, Sequence

import torch

from .. import nets, train
from ..theory import Theta

__all__ = ["make_ensemble", "train_cfg", "stored", "run_key", "INIT_KINDS"]

INIT_KINDS = ("theta", "standard", "critical", "chrono")


def run_key(settings: dict) -> str:
    """10 hex digits of the SHA-1 of ``settings`` (JSON, sorted keys; ``profile`` excluded)."""
    d = {k: v for k, v in settings.items() if k != "profile"}
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _init_member(model, spec, generator):
    kind = spec[0]
    if kind in ("theta", "critical"):
        th = spec[1]
        if not isinstance(th, Theta):
            raise ValueError(f"init spec {spec!r}: the second entry must be a Theta")
        nets.init_(model, th, generator=generator)
    elif kind == "standard":
        nets.standard_init_(model, generator=generator)
    elif kind == "chrono":
        nets.chrono_init_(model, t_max=float(spec[1]), generator=generator)
    else:
        raise ValueError(f"unknown initialization kind {kind!r}; allowed: {', '.join(INIT_KINDS)}")


def make_ensemble(arch: str, n_in: int, n_hidden: int, n_out: int, inits: Sequence[tuple], *,
                  untied: int | None = None, hard_sigmoid: bool = False, seed: int = 0):
    """An ensemble of ``len(inits)`` classifiers; member ``m`` is initialised by ``inits[m]``:
    ``("theta", Theta)`` / ``("critical", Theta)`` (:func:`~rnn_mft.nets.init_`),
    ``("standard",)`` (:func:`~rnn_mft.nets.standard_init_`) or ``("chrono", t_max)``
    (:func:`~rnn_mft.nets.chrono_init_`). Member ``m`` draws its recurrent weights from the
    generator seeded ``seed * 1000 + m``; every member gets the same read-out draw (seed
    ``seed``). A single init gives an ensemble of one."""
    inits = list(inits)
    if not inits:
        raise ValueError("inits must hold at least one initialization")
    members = []
    for m, spec in enumerate(inits):
        single = nets.make_classifier(arch, n_in, n_hidden, n_out, untied=untied, hard_sigmoid=hard_sigmoid)
        single.reset_readout(torch.Generator().manual_seed(int(seed)))
        _init_member(single, spec, torch.Generator().manual_seed(int(seed) * 1000 + m))
        members.append(single)
    return nets.stack(members)


def train_cfg(s: dict, **over) -> train.TrainConfig:
    """TrainConfig from an experiment's settings (keys ``steps, batch_size, optimizer, lr, ...``)."""
    keys = ("steps", "batch_size", "optimizer", "lr", "momentum", "clip", "eval_every", "eval_batch_size",
            "checkpoint_every", "seed")
    d = {k: s[k] for k in keys if k in s}
    d.update(over)
    d.setdefault("progress", False)
    return train.TrainConfig(**d)


def stored(profile: str, experiment: str, name: str, fn: Callable[[str | None], train.RunResult],
           store: train.ResultsStore | None = None) -> train.RunResult:
    """``fn(checkpoint_path)`` or the stored result of ``profile/experiment/name``.

    ``smoke``: ``fn(None)``, nothing stored. ``ci``/``paper``: the results store's entry when it
    exists, else ``fn`` with a checkpoint file (resumed if a previous run was interrupted), then
    stored atomically.
    """
    if profile == "smoke":
        return fn(None)
    store = store or train.ResultsStore()
    return store.load_or_run(profile, experiment, name,
                             lambda: fn(str(store.checkpoint_path(profile, experiment, name))))
