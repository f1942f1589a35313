r"""The training engine shared by every experiment of the book.

:func:`fit` trains one network or one ensemble (:func:`rnn_mft.nets.stack`,
``make_classifier(..., members=M)``) with cross-entropy on the read-out of the last step:

* optimizers of :mod:`rnn_mft.train.optim` (SGD with momentum, Adam, RMSprop), with one
  learning rate per member if wanted, optional per-member gradient-norm clipping;
* held-out evaluation every ``eval_every`` steps and at the end;
* divergence: a member whose loss becomes NaN or infinite, or exceeds ``diverge_factor``
  (default 100) times its loss at the first step, is recorded as diverged (step and flag) and
  frozen; the others go on. A single network that diverges stops there. Nothing is raised, so
  sweeps continue, and :func:`lr_scan` never picks a diverged member;
* checkpoints every ``checkpoint_every`` steps (model, optimizer, data generator and RNG states,
  curves so far) in the format of :mod:`rnn_mft.train.checkpoint` (tensors and plain data only,
  never unpickled; hashed; the run's settings inside), written atomically; :func:`fit` with the
  same ``checkpoint`` path resumes and, on CPU, ends bitwise identical to an uninterrupted run.
  ``$RNN_MFT_CHECKPOINT_EVERY`` (set by job runners, :mod:`rnn_mft.cluster`) checkpoints every
  that many steps instead, without changing the run's settings, so that a job killed by its
  scheduler loses at most that many steps.
  A corrupt checkpoint or one of other settings raises :class:`CheckpointError` naming the file;
  ``restart=True`` (or ``RNN_MFT_RESTART=1``) discards such a file and starts afresh;
* a time budget: past ``deadline`` (seconds since the epoch; default ``$RNN_MFT_DEADLINE``)
  the run checkpoints at the current step and raises :class:`BudgetExhausted`; the same call
  later continues from there. With ``finish_by_deadline`` (``$RNN_MFT_FINISH_BY_DEADLINE``) a
  run that, timed over its first steps, would not finish before the deadline stops at once,
  without a checkpoint (finish or skip: for a machine whose checkpoints cannot travel);
* ``device="auto"``: CUDA when present, else CPU; ``amp=True`` runs the read-out (and stock
  modules) in bfloat16 autocast on CUDA; our cells' input projection and recurrence stay in
  float32 (the projection is fused into the recurrence); ``tf32=True`` (default off) lets the
  matrix products on CUDA use TF32 (10-bit mantissa inputs, float32 accumulation) for the run;
* ``$RNN_MFT_TRITON=1`` (default off): the LSTMs' element-wise steps run as fused Triton kernels
  on CUDA (``rnn_mft.nets._triton``; same float32 arithmetic up to rounding);
  ``meta["fused_lstm_steps"]`` says whether they were on;
* ``cuda_graphs=True`` (or ``$RNN_MFT_CUDA_GRAPHS``; default off): on CUDA the model's training
  forward and backward are captured once as CUDA graphs (``torch.cuda.make_graphed_callables``)
  and replayed every step, which removes the per-kernel launch cost of the Python time loops;
  the arithmetic is the same. Not with h-detach (its mask is drawn on the host every step); a
  capture that fails falls back to the ordinary path. ``meta["cuda_graphs"]`` says which ran;
* progress bars (tqdm) only on a terminal: off when stderr is not a TTY (papermill, CI logs) or
  when ``RNN_MFT_PROGRESS=0``; ``RNN_MFT_PROGRESS=1`` forces them on.

A *task* is any object with ``train_batch(batch_size, generator) -> (x, y)`` and
``eval_data() -> (x, y)`` (see :mod:`rnn_mft.train.synthetic`).
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..nets import flush_denormal, fused_lstm_steps_on
from .checkpoint import CheckpointError, check_checkpoint_path, load_checkpoint, save_checkpoint
from .optim import OPTIMIZERS, MemberOptimizer, check_hyperparameters, clip_grad_norm_members_
from .jobenv import (checkpoint_every_from_env, cuda_graphs_from_env, deadline_from_env, finish_by_deadline_from_env,
                     restart_from_env)
from .results import RunResult, code_version

__all__ = ["TrainConfig", "fit", "evaluate", "lr_scan", "ScanResult", "sweep", "default_lrs", "pick_device",
           "progress_enabled", "BudgetExhausted", "CheckpointError", "deadline_from_env", "restart_from_env",
           "keep_checkpoint"]

#: the clock the time budget is measured with (tests replace it by a counter)
_clock = time.time

#: finish or skip (``fit(finish_by_deadline=True)``): untimed steps, then timed steps, then the
#: safety factor on the projected time of the remaining steps
PROBE_WARMUP, PROBE_STEPS, PROBE_MARGIN = 2, 3, 1.15

#: checkpoint paths whose final state is kept after the run (see :func:`keep_checkpoint`)
_KEEP: set = set()


class BudgetExhausted(Exception):
    """The time budget ran out: the run was checkpointed (``checkpoint``, at ``step`` of ``steps``);
    calling the same :func:`fit` again continues from there.

    With ``finish_by_deadline`` the run may stop before the deadline: ``projected_s`` is then the
    time it was projected to need for its remaining steps, ``left_s`` the time that was left,
    ``step_s`` the measured seconds per step, and ``checkpoint`` is None (nothing was saved)."""

    def __init__(self, checkpoint, step: int, steps: int, projected_s: float | None = None,
                 left_s: float | None = None, step_s: float | None = None):
        self.checkpoint, self.step, self.steps = checkpoint, step, steps
        self.projected_s, self.left_s, self.step_s = projected_s, left_s, step_s
        where = f"checkpoint {checkpoint}" if checkpoint is not None else "no checkpoint (the run restarts)"
        if projected_s is None:
            super().__init__(f"time budget exhausted at step {step} of {steps}; {where}")
        else:
            super().__init__(f"would not finish before the deadline: after step {step} of {steps} "
                             f"({step_s:.3g} s per step) the remaining steps were projected to take "
                             f"{projected_s:.0f} s with {left_s:.0f} s left; stopped, {where}")


class keep_checkpoint:
    """Context manager: :func:`fit` with checkpoint ``path`` keeps its final state there instead of
    deleting it, so that the caller deletes it only once the result is safely written."""

    def __init__(self, path):
        self.key = str(Path(path).resolve())

    def __enter__(self):
        _KEEP.add(self.key)
        return self

    def __exit__(self, *exc):
        _KEEP.discard(self.key)
        return False


def default_lrs(n: int = 8, low: float = 1e-5, high: float = 1e-2) -> np.ndarray:
    """``n`` log-spaced learning rates in ``[low, high]`` (Appendix C.5.1: 8 in [1e-5, 1e-2])."""
    return np.logspace(math.log10(low), math.log10(high), n)


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not allowed; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None


def progress_enabled(flag: bool | None = None) -> bool:
    """Whether to draw progress bars (see the module docstring)."""
    if flag is not None:
        return bool(flag)
    env = os.environ.get("RNN_MFT_PROGRESS")
    if env is not None and env != "":
        return env not in ("0", "false", "False", "no")
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass
class TrainConfig:
    """Settings of one run. ``lr`` may be a list with one value per ensemble member."""

    steps: int = 100
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float | Sequence[float] = 1e-3
    momentum: float = 0.9
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    alpha: float = 0.99
    clip: float | None = None
    eval_every: int = 0
    eval_batch_size: int = 1024
    checkpoint_every: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    progress: bool | None = None
    diverge_factor: float = 100.0
    tf32: bool = False

    def __post_init__(self):
        for name in ("steps", "batch_size", "eval_batch_size"):
            v = getattr(self, name)
            ok = (int, np.integer) if name == "eval_batch_size" else int
            if isinstance(v, bool) or not (isinstance(v, ok) and v >= 1):
                raise ValueError(f"{name}={v!r} must be a positive int")
        if isinstance(self.seed, bool) or not (isinstance(self.seed, (int, np.integer)) and self.seed >= 0):
            raise ValueError(f"seed={self.seed!r} must be an int >= 0")
        if self.device != "auto":
            pick_device(self.device)            # a ValueError naming the device and the allowed ones
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer={self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
        try:
            lrs = None if np.asarray(self.lr).dtype.kind in "bUSc" else np.asarray(self.lr, dtype=float)
        except (TypeError, ValueError):
            lrs = None
        if lrs is None or lrs.ndim > 1 or lrs.size == 0 or not np.all(np.isfinite(lrs)) or np.any(lrs < 0):
            raise ValueError(f"lr={self.lr!r} must be a finite number >= 0, or a list of them (one per member)")
        if self.clip is not None and (isinstance(self.clip, (bool, str, bytes)) or not self.clip > 0):
            raise ValueError(f"clip={self.clip!r} must be None or > 0")
        for name in ("tf32", "amp"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: True or False")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ValueError(f"progress={self.progress!r}; allowed: None, True or False")
        for name in ("eval_every", "checkpoint_every"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 0):
                raise ValueError(f"{name}={v!r} must be an int >= 0 (0: never / only at the end)")
        check_hyperparameters(self.momentum, self.betas, self.eps, self.alpha)
        try:
            f = float(self.diverge_factor)
        except (TypeError, ValueError):
            f = float("nan")
        if not (math.isfinite(f) and f > 1):
            raise ValueError(f"diverge_factor={self.diverge_factor!r} must be a finite number > 1")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        if not isinstance(d, Mapping):
            raise ValueError(f"training settings must be a mapping name -> value, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        bad = [k for k in d if k not in known]
        if bad:
            raise ValueError(f"unknown training setting {bad[0]!r}; allowed: {', '.join(sorted(known))}")
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        if isinstance(self.lr, np.ndarray):
            d["lr"] = self.lr.tolist()
        d["betas"] = list(self.betas)
        return d


def _members(model) -> int | None:
    return getattr(model, "members", None) if getattr(model, "is_ensemble", False) else None


def _logits(model, x) -> torch.Tensor:
    """``(M, B, C)`` logits for our classifiers (any M) and stock wrappers (M=1)."""
    if hasattr(model, "forward_members"):
        return model.forward_members(x)
    return model(x).unsqueeze(0)


def _per_member_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    M, B, C = logits.shape
    return F.cross_entropy(logits.float().reshape(M * B, C), y.repeat(M), reduction="none").view(M, B).mean(1)


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024, device=None, amp: bool = False):
    """Mean cross-entropy and accuracy per member on ``(x, y)``: two arrays ``(M,)``."""
    device = device or next(model.parameters()).device
    tot_loss, tot_acc, n = 0.0, 0.0, 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            lg = _logits(model, xb)
        M, B, C = lg.shape
        tot_loss = tot_loss + F.cross_entropy(lg.float().reshape(M * B, C), yb.repeat(M),
                                              reduction="none").view(M, B).sum(1).double()
        tot_acc = tot_acc + (lg.argmax(-1) == yb).sum(1).double()
        n += B
    return (tot_loss / n).cpu().numpy(), (tot_acc / n).cpu().numpy()


def _run_settings(cfg: TrainConfig, model, M: int, labels, task) -> dict:
    """What defines a run, as stored in (and compared with) its checkpoint."""
    d = cfg.to_dict()
    d.pop("progress", None)
    shapes = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    return {"train_config": d, "members": M, "model": repr(getattr(model, "cell", model)).replace("\n", " "),
            "parameters": shapes, "labels": [str(x) for x in labels] if labels is not None else None,
            "task": type(task).__name__}


def _state_tensors(step, model, opt, gen, elapsed, train_loss, train_acc, grad_norm, ev_step, ev_loss, ev_acc,
                   diverged, diverged_step, init_loss, done):
    t = lambda a: torch.from_numpy(np.array(a))  # noqa: E731  (a copy; float64/bool/int64 kept)
    ost = opt.state_dict()
    lr = ost["lr"]
    return {"step": int(step), "done": bool(done), "elapsed": float(elapsed),
            "model": dict(model.state_dict()),
            "opt": {"step_count": int(ost["step_count"]), "lr": lr if isinstance(lr, torch.Tensor) else float(lr),
                    "state": ost["state"]},
            "gen": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "train_loss": t(train_loss[:step]), "train_acc": t(train_acc[:step]), "grad_norm": t(grad_norm[:step]),
            "ev_step": [int(v) for v in ev_step],
            "ev_loss": t(np.asarray(ev_loss, dtype=float).reshape(len(ev_loss), len(diverged))),
            "ev_acc": t(np.asarray(ev_acc, dtype=float).reshape(len(ev_acc), len(diverged))),
            "diverged": t(diverged), "diverged_step": t(diverged_step.astype(np.int64)),
            "init_loss": t(init_loss)}


def fit(model, task, cfg: TrainConfig | dict, checkpoint: str | os.PathLike | None = None,
        hook: Callable[[int, dict], None] | None = None, labels: Sequence | None = None,
        desc: str | None = None, *, restart: bool | None = None, deadline: float | None = None,
        finish_by_deadline: bool | None = None, cuda_graphs: bool | None = None) -> RunResult:
    """Train ``model`` on ``task`` for ``cfg.steps`` steps; returns a :class:`RunResult`.

    Parameters
    ----------
    model : SequenceClassifier (single or ensemble) or StockSequenceClassifier
        Initialised by the caller (the engine does not draw weights).
    task : object with ``train_batch(batch_size, generator)`` and ``eval_data()``
    cfg : TrainConfig or dict
    checkpoint : path, optional
        Checkpoint file; an existing one is resumed (after checking its hash and that it holds
        this run's settings: else :class:`CheckpointError`). Written every
        ``cfg.checkpoint_every`` steps and when the time budget runs out; deleted when the run
        completes (kept, in its final state, inside :class:`keep_checkpoint`). A path that is a
        folder, or whose folder lies under a file, is a ``ValueError`` naming it, before any step.
    restart : bool, optional
        Discard a checkpoint that cannot be resumed (corrupt, truncated, other settings) and
        start afresh instead of raising. Default ``$RNN_MFT_RESTART``. A sound checkpoint of
        the same settings is resumed either way (the result is bitwise the same).
    deadline : float, optional
        Seconds since the epoch (``time.time()``); default ``$RNN_MFT_DEADLINE``. Once past it,
        the run checkpoints and raises :class:`BudgetExhausted`.
    finish_by_deadline : bool, optional
        Finish or skip (default ``$RNN_MFT_FINISH_BY_DEADLINE``; only with a ``deadline``): after
        ``PROBE_STEPS`` timed steps (following ``PROBE_WARMUP`` untimed ones) the run projects the
        time of its remaining steps (times ``PROBE_MARGIN``); if that ends past the deadline it
        stops at once and raises :class:`BudgetExhausted` without writing a checkpoint. For a
        machine whose checkpoints cannot be carried elsewhere (a briefly lent GPU): the time
        goes to runs that can finish there. Such a run writes no checkpoints at all (an existing
        one is still resumed).
    cuda_graphs : bool, optional
        Replay the training forward and backward as CUDA graphs (default
        ``$RNN_MFT_CUDA_GRAPHS``, which a CPU run ignores; ``True`` on a CPU raises). Captured on
        the first training batch; batches of another shape take the ordinary path. Off for
        h-detach models; a failed capture falls back to the ordinary path with a warning.
        ``meta["cuda_graphs"]``: ``"on"`` or ``"off: <why>"``. The run's settings (and so its
        checkpoint and stored name) are the same either way.
    hook : callable, optional
        ``hook(step, info)`` after every step (``info``: per-member losses); may raise to
        interrupt the run (used by the tests).
    labels : sequence, optional
        One label per member (e.g. the Theta or learning rate), stored in ``meta``.

    Notes
    -----
    Curves (``RunResult.curves``): ``train_loss``/``train_acc`` ``(steps, M)``, ``eval_step``
    ``(E,)``, ``eval_loss``/``eval_acc`` ``(E, M)``, ``grad_norm (steps, M)``. Final metrics:
    ``train_loss`` (mean of the last 10 steps), ``eval_loss``, ``eval_acc`` per member.
    """
    if isinstance(cfg, dict):
        cfg = TrainConfig.from_dict(cfg)
    if not hasattr(task, "train_batch") or not hasattr(task, "eval_data"):
        raise ValueError(f"task must provide train_batch(batch_size, generator) and eval_data(); got "
                         f"{type(task).__name__}")
    ckpt = check_checkpoint_path(checkpoint) if checkpoint is not None else None     # before any step
    device = pick_device(cfg.device)
    amp = bool(cfg.amp and device.type == "cuda")
    model.to(device)
    members = _members(model)
    M = members or 1
    if labels is not None and len(labels) != M:
        raise ValueError(f"labels has {len(labels)} entries; allowed: one per member ({M})")
    lr = cfg.lr
    if isinstance(lr, (list, tuple, np.ndarray)) and members is None:
        if len(lr) != 1:
            raise ValueError(f"lr={list(lr)!r}: a list of learning rates needs an ensemble; this model is single")
        lr = float(lr[0])
    opt = MemberOptimizer(model.parameters(), cfg.optimizer, lr, members=members, momentum=cfg.momentum,
                          betas=cfg.betas, eps=cfg.eps, alpha=cfg.alpha)
    restart = restart_from_env() if restart is None else bool(restart)
    deadline = deadline_from_env() if deadline is None else float(deadline)
    finish = finish_by_deadline_from_env() if finish_by_deadline is None else bool(finish_by_deadline)
    graphs = _graphs_plan(model, device, cuda_graphs)
    settings = _run_settings(cfg, model, M, labels, task)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    torch.manual_seed(int(cfg.seed))

    S = cfg.steps
    train_loss = np.full((S, M), np.nan)
    train_acc = np.full((S, M), np.nan)
    grad_norm = np.full((S, M), np.nan)
    ev_step, ev_loss, ev_acc = [], [], []
    diverged = np.zeros(M, dtype=bool)
    diverged_step = np.full(M, -1)
    init_loss = np.full(M, np.nan)
    start, elapsed, done = 0, 0.0, False

    if ckpt is not None and ckpt.exists():
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        try:
            st = load_checkpoint(ckpt, settings)
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["opt"])
            gen.set_state(st["gen"])
            torch.set_rng_state(st["torch_rng"])
            start, elapsed, done = int(st["step"]), float(st["elapsed"]), bool(st["done"])
            train_loss[:start], train_acc[:start], grad_norm[:start] = (st["train_loss"].numpy(),
                                                                          st["train_acc"].numpy(),
                                                                          st["grad_norm"].numpy())
            ev_step = list(st["ev_step"])
            ev_loss, ev_acc = list(st["ev_loss"].numpy()), list(st["ev_acc"].numpy())
            diverged, diverged_step = st["diverged"].numpy().copy(), st["diverged_step"].numpy().copy()
            init_loss = st["init_loss"].numpy().copy()
        except CheckpointError:
            if not restart:
                raise
            ckpt.unlink(missing_ok=True)
            print(f"rnn_mft: discarded checkpoint {ckpt} (restart) and started the run afresh", file=sys.stderr)
            return fit(model, task, cfg, checkpoint, hook, labels, desc, restart=False, deadline=deadline,
                       finish_by_deadline=finish, cuda_graphs=cuda_graphs)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            model.load_state_dict(before)         # the caller's weights, not half of the checkpoint's
            err = CheckpointError(ckpt, f"does not fit this run ({type(exc).__name__}: {exc})")
            if not restart:
                raise err from None
            ckpt.unlink(missing_ok=True)
            return fit(model, task, cfg, checkpoint, hook, labels, desc, restart=False, deadline=deadline,
                       finish_by_deadline=finish, cuda_graphs=cuda_graphs)

    x_eval, y_eval = task.eval_data()

    def do_eval(step):
        model.eval()
        l, a = evaluate(model, x_eval, y_eval, cfg.eval_batch_size, device, amp)
        model.train()
        l = np.where(diverged, np.nan, l)
        ev_step.append(step)
        ev_loss.append(l)
        ev_acc.append(np.where(diverged, np.nan, a))

    ftz = flush_denormal()           # vanishing gradients must not fall into slow denormal arithmetic
    ftz.__enter__()
    tf32_was = torch.backends.cuda.matmul.allow_tf32
    if device.type == "cuda":        # TF32 matrix products (opt-in; cfg.tf32): on CUDA only, for this run only
        torch.backends.cuda.matmul.allow_tf32 = bool(cfg.tf32)
    try:
        return _loop(model, task, cfg, hook, labels, desc, device, amp, members, M, opt, gen, train_loss, train_acc,
                     grad_norm, ev_step, ev_loss, ev_acc, diverged, diverged_step, start, elapsed, ckpt, do_eval,
                     init_loss, done, settings, deadline, finish, graphs)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32_was
        ftz.__exit__(None, None, None)


class _NoBar:
    def __init__(self, *args, **kwargs):
        pass

    def update(self, n=1):
        pass

    def close(self):
        pass


def _loop(model, task, cfg, hook, labels, desc, device, amp, members, M, opt, gen, train_loss, train_acc, grad_norm,
          ev_step, ev_loss, ev_acc, diverged, diverged_step, start, elapsed, ckpt, do_eval, init_loss, done,
          settings, deadline, finish=False, graphs=None):
    S = cfg.steps
    graphs = graphs if graphs is not None else {"note": "off"}
    try:
        from tqdm import tqdm
    except ImportError:              # tqdm is only for progress bars; machines without it train without them
        tqdm = _NoBar
    t0 = time.perf_counter()

    def save(step, finished):
        save_checkpoint(ckpt, settings, _state_tensors(
            step, model, opt, gen, elapsed + time.perf_counter() - t0, train_loss, train_acc, grad_norm, ev_step,
            ev_loss, ev_acc, diverged, diverged_step, init_loss, finished))

    every = checkpoint_every_from_env(cfg.checkpoint_every)
    # tests of job runners only: seconds of sleep per step, so that a job can be killed mid-run
    delay = float(os.environ.get("RNN_MFT_TEST_STEP_DELAY_S") or 0.0)
    stopped_at = S
    if done:                                  # a finished run whose result was not yet stored
        stopped_at, start = start, S
    now = _clock() if deadline is not None else None
    if deadline is not None and start < S and now >= deadline:
        raise BudgetExhausted(ckpt if ckpt is not None and ckpt.exists() else None, start, S)
    probe_from = start + PROBE_WARMUP           # finish or skip: steps [probe_from, probe_to) are timed
    probe_to = probe_from + PROBE_STEPS
    probe_t0 = now
    bar = tqdm(total=S, initial=start, desc=desc, disable=not progress_enabled(cfg.progress), leave=False)
    model.train()
    for step in range(start, S):
        x, y = task.train_batch(cfg.batch_size, gen)
        x, y = x.to(device), y.to(device)
        # autocast's weight cache cannot live across graph replays
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp, cache_enabled=not graphs.get("want")):
            if graphs.get("want") and graphs.get("fwd") is None:
                _capture(graphs, model, x)
            if graphs.get("fwd") is not None and x.shape == graphs["shape"]:
                logits = graphs["fwd"](x)
            else:
                logits = _logits(model, x)
        losses = _per_member_ce(logits, y)                       # (M,)
        lv = losses.detach().double().cpu().numpy()
        first = np.isnan(init_loss) & np.isfinite(lv)
        init_loss[first] = lv[first]
        with np.errstate(invalid="ignore"):
            blown = ~np.isfinite(lv) | (lv > cfg.diverge_factor * init_loss)
        newly = blown & ~diverged
        diverged_step[newly] = step
        diverged |= newly
        active = torch.from_numpy(~diverged).to(device)
        total = torch.where(active, losses, torch.zeros_like(losses)).sum()
        opt.zero_grad()
        if bool(active.any()):
            total.backward()
            if cfg.clip is not None:
                gn = clip_grad_norm_members_(opt.params, cfg.clip, members)
            else:
                gn = _grad_norms(opt.params, members)
            opt.step(active if members is not None else None)
            grad_norm[step] = np.broadcast_to(gn.detach().double().cpu().numpy(), (M,))
        train_loss[step] = np.where(diverged, np.nan, lv)
        train_acc[step] = np.where(diverged, np.nan, (logits.detach().argmax(-1) == y).double().mean(1).cpu().numpy())
        bar.update(1)
        if hook is not None:
            hook(step, {"loss": lv, "diverged": diverged.copy()})
        if diverged.all():
            stopped_at = step + 1
            break
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < S:
            do_eval(step + 1)
        if delay > 0:
            time.sleep(delay)
        if ckpt is not None and every and not finish and (step + 1) % every == 0 and step + 1 < S:
            save(step + 1, False)
        if deadline is not None and step + 1 < S:
            now = _clock()
            if finish and step + 1 == probe_from:
                probe_t0 = now
            if finish and step + 1 == probe_to:
                step_s = (now - probe_t0) / PROBE_STEPS
                need = (S - step - 1) * step_s * PROBE_MARGIN
                if now + need > deadline:
                    bar.close()
                    raise BudgetExhausted(None, step + 1, S, projected_s=need, left_s=deadline - now, step_s=step_s)
        if deadline is not None and step + 1 < S and now >= deadline:
            bar.close()
            if ckpt is not None and not finish:
                save(step + 1, False)
            raise BudgetExhausted(None if finish else ckpt, step + 1, S)
    bar.close()
    keep = ckpt is not None and str(ckpt.resolve()) in _KEEP
    if keep and not done and not finish:
        save(stopped_at, True)                # the caller removes it once the result is written
    do_eval(stopped_at)
    wall = elapsed + time.perf_counter() - t0
    if ckpt is not None and not keep and ckpt.exists():
        ckpt.unlink()

    last = train_loss[max(0, stopped_at - 10):stopped_at]
    with np.errstate(all="ignore"):
        final_train = np.where(diverged, np.nan, np.nanmean(np.where(np.isfinite(last), last, np.nan), 0)
                               if len(last) else np.nan)
    curves = {"train_loss": train_loss, "train_acc": train_acc, "grad_norm": grad_norm,
              "eval_step": np.asarray(ev_step), "eval_loss": np.asarray(ev_loss).reshape(-1, M),
              "eval_acc": np.asarray(ev_acc).reshape(-1, M)}
    final = {"train_loss": final_train.tolist(), "eval_loss": curves["eval_loss"][-1].tolist(),
             "eval_acc": curves["eval_acc"][-1].tolist()}
    meta = {"seed": int(cfg.seed), "code_version": code_version(), "torch_version": torch.__version__,
            "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
            "wall_time_s": wall, "members": M, "diverged": diverged.tolist(),
            "diverged_step": diverged_step.tolist(), "steps_run": stopped_at, "resumed_from": start,
            "model": repr(getattr(model, "cell", model)).replace("\n", " "), "cuda_graphs": graphs["note"],
            "fused_lstm_steps": "triton" if fused_lstm_steps_on(device) else "off",
            "labels": list(labels) if labels is not None else None,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return RunResult(curves, final, cfg.to_dict(), meta)


class _MembersForward(torch.nn.Module):
    """``(M, B, C)`` logits of ``model`` as a module's forward (what the CUDA graph captures)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return _logits(self.model, x)


def _graphs_plan(model, device, cuda_graphs) -> dict:
    """Whether this run captures CUDA graphs: ``{"want": bool, "note": "on" | "off: <why>"}``."""
    explicit = cuda_graphs is not None
    want = bool(cuda_graphs) if explicit else cuda_graphs_from_env()
    if not want:
        return {"want": False, "note": "off"}
    if device.type != "cuda":
        if explicit:
            raise ValueError(f"cuda_graphs=True needs a CUDA device; this run is on {device}")
        return {"want": False, "note": f"off: needs CUDA (this run is on {device})"}
    if any(getattr(getattr(model, "cell", None), "h_detach", ()) or ()):
        return {"want": False, "note": "off: h-detach draws its mask on the host every step"}
    return {"want": True, "note": "off: not captured yet", "fwd": None}


def _capture(graphs: dict, model, x) -> None:
    """Capture the training forward and backward on the batch ``x`` (``graphs`` updated in place);
    a failure falls back to the ordinary path, with a warning."""
    try:
        graphs["fwd"] = torch.cuda.make_graphed_callables(_MembersForward(model), (x,))
        graphs["shape"] = x.shape
        graphs["note"] = "on"
    except Exception as exc:                      # noqa: BLE001 (any capture failure: run without graphs)
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        graphs.update(want=False, fwd=None, note=f"off: capture failed ({type(exc).__name__}: {first})")
        print(f"rnn_mft: CUDA graph capture failed, training without graphs: {type(exc).__name__}: {first}",
              file=sys.stderr)


@torch.no_grad()
def _grad_norms(params, members):
    params = [p for p in params if p.grad is not None]
    # per-tensor norms in the gradients' own precision (one pass, no float64 copy of every
    # gradient: that copy cost more than the optimizer step on large untied models), summed in float64
    if members is None:
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad).double() for p in params]))
    return sum(torch.linalg.vector_norm(p.grad.reshape(members, -1), dim=1).double().pow(2) for p in params).sqrt()


# lr_scan, ScanResult and sweep live in rnn_mft.train.sweep (re-exported here for old imports)
from .sweep import ScanResult, lr_scan, sweep  # noqa: E402,F401
