r"""Figure 4: training curves of a peephole LSTM, standard against critical initialization, on
concatenated-digit MNIST (top row) and repeated-pixel MNIST (bottom row) at three sequence
lengths, each curve with its best learning rate.

Choices the paper leaves open, kept here in one place:

* **Tasks** (Section 5.2.2). Repeated-pixel MNIST: ``pixels_per_step`` pixels per step (the
  paper: 7, :math:`T = 112 r`; profile ``ci``: 28, a row per step, :math:`T = 28 r`, because at 7
  pixels per step nothing learns within a CPU budget), every step repeated ``repeat`` times.
  Concatenated MNIST: ``n_digits`` digits, each a 0 or a 1, 112 pixels per step, every step
  repeated 10 times, :math:`T = 70 n`; the label is the tuple of digits (:math:`2^n` classes,
  "exponential in the number of digits" as the paper says).
* **Optimizer.** SGD with momentum 0.9 (as the paper), gradients clipped at norm ``clip``; the
  learning-rate scan of Appendix C.5.1: ``n_lr`` rates log-spaced in [1e-5, 1e-2]. Every
  (initialization, learning rate) pair of one sequence length trains as one ensemble member, so
  a whole panel is one batched model.
* **One ensemble per panel.** The lengths of one task cannot share an ensemble as in Figures 1,
  2 and 6: a repeated-pixel sequence with ``r`` repeats is not a prefix of the one with more
  repeats, and concatenated MNIST with ``n`` digits has its own label space (:math:`2^n`
  classes, so its own read-out). Within a panel all (initialization, learning rate) pairs are
  one ensemble.
* **Best learning rate** per curve: the one with the highest final training accuracy (measured
  on ``n_eval`` training sequences); ties go to the lower final training loss.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ... import train
from ...theory import Theta
from ...train import default_lrs
from ..protocol import Config, doc
from ._common import load_pair, make_ensemble, paper_note, run_key, stored, stored_paper, sweep, train_cfg, unit

__all__ = ["INITS", "TASKS", "TrainingCurvesConfig", "best_curves", "comparison", "config", "cost",
           "ensembles", "lrs", "paper_note", "profile_numbers", "report", "run", "run_name",
           "run_one", "seq_len", "steps_to", "stored_paper_results", "units"]

EXPERIMENT = "training_curves"
INITS = ("standard", "critical")
ARCH = "peephole_lstm"
TASKS = {"concatenated_mnist": "n_digits", "repeated_pixel_mnist": "repeat"}

@dataclass(frozen=True)
class TrainingCurvesConfig(Config):
    """Settings of the chapter "Three regimes of sequence length (Figure 4)"."""

    # ci: repeated-pixel MNIST row by row (28 pixels per step, T = 28 r): at 7 pixels per step
    # (T >= 112) neither initialization learns anything within a CPU budget
    lengths: dict = doc({"concatenated_mnist": [1, 2, 3], "repeated_pixel_mnist": [1, 4, 12]},
                        "per task, the lengths of its panels (digits n; repeats r)")
    width: int = doc(32, "width N of the peephole LSTM")
    batch_size: int = doc(32, "minibatch size")
    steps: int = doc(250, "training steps")
    n_lr: int = doc(8, "learning rates of the scan (Appendix C.5.1), log-spaced in lr_range")
    n_eval: int = doc(500, "training sequences the training accuracy is measured on")
    eval_every: int = doc(25, "steps between evaluations")
    repeat_concat: int = doc(10, "repeats of every step of concatenated MNIST")
    pixels_per_step: int = doc(28, "pixels per step of repeated-pixel MNIST (the paper: 7)")
    optimizer: str = doc("sgd", "optimizer (SGD with momentum, as the paper)")
    momentum: float = doc(0.9, "momentum")
    clip: float = doc(1.0, "gradients clipped at this norm")
    seed: int = doc(0, "seed of the weights, the read-out and the minibatches")
    lr_range: list = doc([1e-5, 1e-2], "range of the learning-rate scan")
    PROFILES = {
        "smoke": dict(lengths={"concatenated_mnist": [1, 2], "repeated_pixel_mnist": [1]}, width=8, batch_size=8,
                      steps=4, n_lr=2, n_eval=32, eval_every=2, repeat_concat=1, pixels_per_step=28),
        "ci": {},
        "paper": dict(lengths={"concatenated_mnist": [1, 4, 10], "repeated_pixel_mnist": [1, 5, 20]}, width=128,
                      batch_size=64, steps=10000, n_lr=8, n_eval=2000, eval_every=200, repeat_concat=10,
                      pixels_per_step=7),
    }


def config(profile: str) -> TrainingCurvesConfig:
    """The settings at ``profile`` (smoke, ci or paper)."""
    return TrainingCurvesConfig.for_profile(profile)


def lrs(cfg: TrainingCurvesConfig) -> np.ndarray:
    return default_lrs(cfg.n_lr, *cfg.lr_range)


def _tasks(cfg: TrainingCurvesConfig, task: str, length: int):
    if task == "concatenated_mnist":
        return load_pair(task, n_digits=length, repeat=cfg.repeat_concat)
    if task == "repeated_pixel_mnist":
        return load_pair(task, repeat=length, input_size=cfg.pixels_per_step)
    raise ValueError(f"task={task!r}; allowed: {', '.join(TASKS)}")


def _settings(cfg: TrainingCurvesConfig, task: str, length: int) -> dict:
    s = {k: getattr(cfg, k) for k in ("width", "batch_size", "steps", "n_lr", "n_eval", "eval_every", "optimizer",
                                      "momentum", "clip", "seed", "lr_range", "repeat_concat", "pixels_per_step")}
    s.update(task=task, length=int(length), arch=ARCH, inits=list(INITS))
    return s


def run_name(cfg: TrainingCurvesConfig, task: str, length: int) -> str:
    """The stored name of the panel ``task`` at ``length``."""
    return f"{task}-{TASKS[task]}{length}-{run_key(_settings(cfg, task, length))}"


def units(profile: str) -> list[dict]:
    """Every stored run the chapter loads at ``profile`` (one per panel), without training."""
    cfg = config(profile)
    return [unit(profile, EXPERIMENT, run_name(cfg, task, L), run_one, [task, int(L)])
            for task in TASKS for L in cfg.lengths[task]]


def run_one(cfg: TrainingCurvesConfig, task: str, length: int, store=None) -> train.RunResult:
    """One panel: ``len(INITS) * n_lr`` members (init-major), trained together."""
    s = _settings(cfg, task, length)
    name = run_name(cfg, task, length)

    def fn(ckpt):
        tr, _ = _tasks(cfg, task, length)
        dt = train.DatasetTask(tr, None, n_eval=min(cfg.n_eval, len(tr)), eval_on="train")
        lr = lrs(cfg)
        specs = []
        for name_ in INITS:
            spec = ("standard",) if name_ == "standard" else ("critical", Theta.critical(ARCH))
            specs += [spec] * len(lr)
        model = make_ensemble(ARCH, dt.n_in, cfg.width, dt.n_out, specs, seed=cfg.seed)
        tc = train_cfg(s, lr=np.tile(lr, len(INITS)).tolist(),
                       checkpoint_every=500 if cfg.profile == "paper" else 0)
        labels = [f"{n}, lr={v:.3g}" for n in INITS for v in lr]
        res = train.fit(model, dt, tc, checkpoint=ckpt, labels=labels, desc=f"{task} {length}")
        res.meta["settings"] = s
        res.meta["task"] = {k: v for k, v in tr.describe().items()
                            if k in ("task", "seq_len", "input_size", "num_classes", "n", "data")}
        return res

    return stored(cfg.profile, EXPERIMENT, name, fn, store)


def run(cfg: TrainingCurvesConfig, store=None) -> dict:
    """``{(task, length): RunResult}`` for every panel."""
    with sweep(EXPERIMENT, sum(len(cfg.lengths[task]) for task in TASKS)):
        return {(task, L): run_one(cfg, task, L, store) for task in TASKS for L in cfg.lengths[task]}


def best_curves(res: train.RunResult, cfg: TrainingCurvesConfig) -> dict:
    """``{init: dict(lr, step, acc, final_acc, diverged)}``: the best learning rate of each
    initialization and its training-accuracy curve (evaluations on training sequences)."""
    lr = lrs(cfg)
    n = len(lr)
    acc = np.asarray(res.curves["eval_acc"], float)
    loss = np.asarray(res.final["train_loss"], float)
    out = {}
    for j, name in enumerate(INITS):
        idx = np.arange(j * n, (j + 1) * n)
        final = acc[-1, idx]
        key = np.where(np.isfinite(final), final, -np.inf) - 1e-9 * np.where(np.isfinite(loss[idx]), loss[idx], 1e9)
        b = int(idx[int(np.argmax(key))])
        out[name] = dict(lr=float(lr[b - j * n]), step=np.asarray(res.curves["eval_step"]), acc=acc[:, b],
                         final_acc=float(acc[-1, b]), all_final=final, diverged=bool(res.meta["diverged"][b]))
    return out


def steps_to(step, acc, level: float):
    """First evaluation step at which ``acc`` reaches ``level`` (None if never)."""
    acc = np.asarray(acc, float)
    hit = np.flatnonzero(np.isfinite(acc) & (acc >= level))
    return int(np.asarray(step)[hit[0]]) if hit.size else None


def comparison(results: dict, cfg: TrainingCurvesConfig) -> str:
    """Markdown: per panel, final training accuracy and steps to reach halfway between chance and
    1 for both initializations, beside what the paper's Figure 4 shows for that column."""
    paper = {0: "short: both initializations train alike", 1: "middle: critical trains much faster",
             2: "long: standard fails, critical trains"}
    rows = ["| task | length | $T$ | the paper | standard: final (steps to half-way) | "
            "critical: final (steps to half-way) |", "|---|---|---|---|---|---|"]
    for task in TASKS:
        for j, L in enumerate(cfg.lengths[task]):
            res = results.get((task, L))
            if res is None:
                rows.append(f"| {task} | {TASKS[task]} = {L} | | {paper.get(j, '')} | not stored yet | "
                            "not stored yet |")
                continue
            nc = int(res.meta["task"]["num_classes"])
            level = 1 / nc + 0.5 * (1 - 1 / nc)
            bc = best_curves(res, cfg)
            cells = []
            for name in INITS:
                c = bc[name]
                s = steps_to(c["step"], c["acc"], level)
                cells.append(f"{c['final_acc']:.2f} ({s if s is not None else 'not reached'})")
            rows.append(f"| {task} | {TASKS[task]} = {L} | {res.meta['task']['seq_len']} | {paper.get(j, '')} | "
                        + " | ".join(cells) + " |")
    return "\n".join(rows)


def report(cfg: TrainingCurvesConfig, result: dict) -> dict:
    """The numbers of the page's prose: the settings (``width``, ``steps``, ``momentum``, the
    lengths of each task as text, ``T_per_digit`` and ``T_per_repeat``), and over the panels
    (``n_panels``) those where the critical initialization reaches half-way between chance and 1
    in fewer steps than the standard one (``n_critical_faster``, a panel where only critical gets
    there included), where only the critical one gets there (``n_only_critical``) and where
    only the standard one does (``n_only_standard``)."""
    out = dict(profile=cfg.profile, width=cfg.width, steps=cfg.steps, momentum=cfg.momentum, clip=cfg.clip,
               batch_size=cfg.batch_size, n_lr=cfg.n_lr, lr_lo=cfg.lr_range[0], lr_hi=cfg.lr_range[1],
               n_eval=cfg.n_eval, eval_every=cfg.eval_every, pixels_per_step=cfg.pixels_per_step,
               T_per_digit=7 * cfg.repeat_concat, T_per_repeat=784 // cfg.pixels_per_step,
               lengths_concat=", ".join(map(str, cfg.lengths["concatenated_mnist"])),
               lengths_repeat=", ".join(map(str, cfg.lengths["repeated_pixel_mnist"])), n_panels=len(result))
    faster = only_c = only_s = 0
    for res in result.values():
        nc = int(res.meta["task"]["num_classes"])
        level = 1 / nc + 0.5 * (1 - 1 / nc)
        bc = best_curves(res, cfg)
        s, c = (steps_to(bc[n]["step"], bc[n]["acc"], level) for n in ("standard", "critical"))
        faster += c is not None and (s is None or c < s)
        only_c += c is not None and s is None
        only_s += s is not None and c is None
    out.update(n_critical_faster=int(faster), n_only_critical=int(only_c), n_only_standard=int(only_s))
    return out


def seq_len(cfg: TrainingCurvesConfig, task: str, length: int) -> int:
    """The sequence length T of ``task`` at ``length`` (digits n or repeats r) under ``cfg``:
    ``7 * repeat_concat * n`` for concatenated MNIST, ``784 // pixels_per_step * r`` for
    repeated-pixel MNIST."""
    if task == "concatenated_mnist":
        return int(length) * 7 * cfg.repeat_concat
    if task == "repeated_pixel_mnist":
        return 784 // cfg.pixels_per_step * int(length)
    raise ValueError(f"task={task!r}; allowed: {', '.join(TASKS)}")


def profile_numbers() -> dict:
    """The other profiles' settings that the chapter's prose names, by name: profile ``ci``'s
    pixels per step of repeated-pixel MNIST (``ci_pixels_per_step``, ``ci_T_per_repeat``), its
    longest sequence (``ci_T_max``) and steps (``ci_steps``); profile ``paper``'s pixels per step,
    lengths (text), steps and width (``paper_...``)."""
    ci, paper = config("ci"), config("paper")
    return dict(ci_pixels_per_step=ci.pixels_per_step, ci_T_per_repeat=seq_len(ci, "repeated_pixel_mnist", 1),
                ci_T_max=max(seq_len(ci, task, L) for task in TASKS for L in ci.lengths[task]),
                ci_steps=ci.steps, paper_pixels_per_step=paper.pixels_per_step,
                paper_lengths_repeat=", ".join(map(str, paper.lengths["repeated_pixel_mnist"])),
                paper_lengths_concat=", ".join(map(str, paper.lengths["concatenated_mnist"])),
                paper_steps=paper.steps, paper_width=paper.width)


def stored_paper_results():
    """The paper profile's runs that the results store holds (nothing trained), as a
    :class:`~rnn_mft.experiments.training._common.StoredPaper` whose ``results`` is
    ``{(task, length): RunResult}`` over the stored panels, or None when none is stored."""
    return stored_paper(sys.modules[__name__],
                        lambda loaded: {(u["args"][0], u["args"][1]): res for u, res in loaded})


def ensembles(cfg: TrainingCurvesConfig) -> list[dict]:
    """Every ensemble ``cfg`` trains (one per panel: the lengths of a task are not prefixes of one
    another, so panels cannot share an ensemble; see the module docstring), with its shapes."""
    out = []
    for task in TASKS:
        for L in cfg.lengths[task]:
            if task == "concatenated_mnist":
                T, n_in, n_out = L * 7 * cfg.repeat_concat, 112, 2 ** L
            else:
                T, n_in, n_out = 784 // cfg.pixels_per_step * L, cfg.pixels_per_step, 10
            M = len(INITS) * cfg.n_lr
            out.append(dict(name=f"{task} {TASKS[task]}={L}", arch=ARCH, tied=True, Ts=[T], members=M,
                            lengths=[T] * M, steps=cfg.steps, width=cfg.width, batch_size=cfg.batch_size,
                            n_in=n_in, n_out=n_out, optimizer=cfg.optimizer, clip=cfg.clip))
    return out


def cost(cfg: TrainingCurvesConfig) -> dict:
    """Ensemble runs and sequential time steps (training steps x sequence length, summed)."""
    T = {"concatenated_mnist": lambda n: n * 7 * cfg.repeat_concat,
         "repeated_pixel_mnist": lambda r: 784 // cfg.pixels_per_step * r}
    seq = sum(cfg.steps * T[t](L) for t in TASKS for L in cfg.lengths[t])
    return {"runs": sum(len(cfg.lengths[t]) for t in TASKS), "sequential_steps": seq}
