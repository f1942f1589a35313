"""Learning-rate scans (Appendix C.5.1) and plain sweeps of runs, built on :func:`rnn_mft.train.fit`.

Defined here only (import them from here or from :mod:`rnn_mft.train`); :mod:`rnn_mft.train.engine`
does not import this module, so that no import circle runs through it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch

from .engine import TrainConfig, default_lrs, fit
from .results import RunResult

__all__ = ["ScanResult", "lr_scan", "sweep"]


@dataclass
class ScanResult:
    """A learning-rate scan: ``lrs``, one :class:`RunResult` per lr, and the best lr."""

    lrs: np.ndarray
    results: list
    best_lr: float | None
    best_index: int | None = None
    metric: str = "eval_acc"
    extra: dict = field(default_factory=dict)


def _pick_best(lrs, results, metric):
    best, best_i = None, None
    for i, r in enumerate(results):
        if not r.diverged or r.diverged[0]:      # diverged (or no record of it): never picked
            continue
        v = r.final[metric][0]
        key = (v if metric.endswith("acc") else -v, -r.final["eval_loss"][0])
        if not np.isfinite(key[0]):
            continue
        if best is None or key > best:
            best, best_i = key, i
    return best_i


def lr_scan(build: Callable[[int | None], torch.nn.Module], task, cfg: TrainConfig | dict,
            lrs: Sequence[float] | None = None, ensemble: bool = True, metric: str = "eval_acc") -> ScanResult:
    """Learning-rate scan (Appendix C.5.1): train one network per lr and pick the best.

    ``build(members)`` returns an initialised model: with ``ensemble=True`` an ensemble of
    ``len(lrs)`` members trained at once with one lr each (``build`` should give every member
    the same initial weights, or different draws, as the experiment wants); with
    ``ensemble=False`` ``build(None)`` is called once per lr and the runs go one after another.
    ``lrs`` defaults to :func:`default_lrs` (8 points, 1e-5 .. 1e-2). Diverged runs are kept,
    flagged, and never picked. ``metric``: ``"eval_acc"`` (max) or ``"eval_loss"``/``"train_loss"`` (min).
    """
    if isinstance(cfg, dict):
        cfg = TrainConfig.from_dict(cfg)
    lrs = np.asarray(default_lrs() if lrs is None else lrs, dtype=float)
    if lrs.ndim != 1 or len(lrs) < 1 or not np.all(lrs > 0):
        raise ValueError(f"lrs={lrs!r} must be a non-empty 1-d sequence of positive floats")
    if metric not in ("eval_acc", "eval_loss", "train_loss"):
        raise ValueError(f"metric={metric!r}; allowed: eval_acc, eval_loss, train_loss")
    if ensemble:
        model = build(len(lrs))
        res = fit(model, task, replace(cfg, lr=lrs.tolist()), labels=[f"lr={v:.3g}" for v in lrs], desc="lr scan")
        results = [res.member(i) for i in range(len(lrs))]
    else:
        results = [fit(build(None), task, replace(cfg, lr=float(v)), labels=[f"lr={v:.3g}"], desc=f"lr={v:.2g}")
                   for v in lrs]
    i = _pick_best(lrs, results, metric)
    return ScanResult(lrs, results, None if i is None else float(lrs[i]), i, metric)


def sweep(runs: dict[str, Callable[[], RunResult]], store=None, profile: str | None = None,
          experiment: str | None = None, rerun: bool = False) -> dict[str, RunResult]:
    """Run ``{name: fn}`` one after another, each ``fn()`` returning a :class:`RunResult`
    (typically a :func:`fit`); with a ``store`` results are loaded when present and saved when
    new. Diverged runs are recorded (``meta["diverged"]``) and the sweep goes on."""
    out = {}
    for name, fn in runs.items():
        if store is not None:
            out[name] = store.load_or_run(profile, experiment, name, fn, rerun=rerun)
        else:
            out[name] = fn()
    return out
