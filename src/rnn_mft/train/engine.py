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
* progress bars (``tqdm.auto``: a widget in Jupyter when ipywidgets is installed, text
  otherwise) on a terminal and inside a Jupyter kernel (a notebook, papermill, the book's
  build); off when stderr is not a terminal outside Jupyter (CI logs, job workers). Bars are
  cleared when a run ends (``leave=False``) and, off a terminal, redrawn at most every 5 s.
  ``RNN_MFT_PROGRESS=0`` turns them off, ``RNN_MFT_PROGRESS=1`` forces them on.

The ``$RNN_MFT_*`` variables above are read once per process into :mod:`rnn_mft.settings`;
``fit(..., settings=s)`` runs under the :class:`~rnn_mft.settings.Settings` ``s`` instead.
A *task* is any object with ``train_batch(batch_size, generator) -> (x, y)`` and
``eval_data() -> (x, y)`` (see :mod:`rnn_mft.train.synthetic`). A run is two records
(:mod:`rnn_mft.train.state`): :class:`~rnn_mft.train.state.RunContext` (what it works with) and
:class:`~rnn_mft.train.state.TrainState` (where it stands: what a checkpoint holds); CUDA-graph
capture is :mod:`rnn_mft.train.graphs`, losses, evaluation and gradient norms :mod:`rnn_mft.train.metrics`.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..nets import flush_denormal, fused_lstm_steps_on
from ..settings import Settings, current as current_settings, override as override_settings
from . import graphs as cuda_graphs_
from .checkpoint import CheckpointError, check_checkpoint_path, kept, load_checkpoint, save_checkpoint
from .metrics import evaluate, grad_norms, member_logits, per_member_ce
from .progress import progress_bar, progress_enabled
from .optim import OPTIMIZERS, MemberOptimizer, check_hyperparameters, clip_grad_norm_members_
from .results import RunResult, code_version
from .state import RunContext, TrainState, run_identity

__all__ = ["TrainConfig", "fit", "default_lrs", "pick_device", "BudgetExhausted"]

#: the clock the time budget is measured with (tests replace it by a counter)
_clock = time.time

#: finish or skip (``fit(finish_by_deadline=True)``): untimed steps, then timed steps, then the
#: safety factor on the projected time of the remaining steps
PROBE_WARMUP, PROBE_STEPS, PROBE_MARGIN = 2, 3, 1.15

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


def fit(model, task, cfg: TrainConfig | dict, checkpoint: str | os.PathLike | None = None,
        hook: Callable[[int, dict], None] | None = None, labels: Sequence | None = None,
        desc: str | None = None, *, restart: bool | None = None, deadline: float | None = None,
        finish_by_deadline: bool | None = None, cuda_graphs: bool | None = None,
        settings: Settings | None = None) -> RunResult:
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
        completes (kept, in its final state, inside
        :class:`~rnn_mft.train.checkpoint.keep_checkpoint`). A path that is a folder, or whose
        folder lies under a file, is a ``ValueError`` naming it, before any step.
    restart : bool, optional
        Discard a checkpoint that cannot be resumed (corrupt, truncated, other settings) and
        start afresh instead of raising. Default: the ``restart`` setting (``$RNN_MFT_RESTART``).
        A sound checkpoint of the same settings is resumed either way (the result is bitwise the
        same).
    deadline : float, optional
        Seconds since the epoch (``time.time()``); default: the ``deadline`` setting
        (``$RNN_MFT_DEADLINE``). Once past it, the run checkpoints and raises
        :class:`BudgetExhausted`.
    finish_by_deadline : bool, optional
        Finish or skip (default: the setting, ``$RNN_MFT_FINISH_BY_DEADLINE``; only with a ``deadline``): after
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
    settings : rnn_mft.settings.Settings, optional
        The job settings the run reads (restart, deadline, finish or skip, CUDA graphs,
        checkpoint interval, progress bars, the Triton steps); default
        ``rnn_mft.settings.current()`` (the ``$RNN_MFT_*`` variables). Given, the run goes on
        inside ``rnn_mft.settings.override(settings)``. The arguments above override single fields.

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
    if settings is not None and settings != current_settings():
        with override_settings(settings):      # so that what the run calls (the cells' Triton switch) sees them too
            return fit(model, task, cfg, checkpoint, hook, labels, desc, restart=restart, deadline=deadline,
                       finish_by_deadline=finish_by_deadline, cuda_graphs=cuda_graphs)
    env = current_settings()
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
    restart = env.restart if restart is None else bool(restart)
    deadline = env.deadline if deadline is None else float(deadline)
    finish = env.finish_by_deadline if finish_by_deadline is None else bool(finish_by_deadline)
    graphs = cuda_graphs_.plan(model, device, cuda_graphs, env.cuda_graphs)
    identity = run_identity(cfg, model, M, labels, task)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    torch.manual_seed(int(cfg.seed))
    state = TrainState.fresh(cfg.steps, M)

    if ckpt is not None and ckpt.exists():
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        again = dict(restart=False, deadline=deadline, finish_by_deadline=finish, cuda_graphs=cuda_graphs)
        try:
            state = TrainState.resume(load_checkpoint(ckpt, identity), cfg.steps, M, model, opt, gen)
        except CheckpointError:
            if not restart:
                raise
            ckpt.unlink(missing_ok=True)
            print(f"rnn_mft: discarded checkpoint {ckpt} (restart) and started the run afresh", file=sys.stderr)
            return fit(model, task, cfg, checkpoint, hook, labels, desc, **again)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            model.load_state_dict(before)         # the caller's weights, not half of the checkpoint's
            err = CheckpointError(ckpt, f"does not fit this run ({type(exc).__name__}: {exc})")
            if not restart:
                raise err from None
            ckpt.unlink(missing_ok=True)
            return fit(model, task, cfg, checkpoint, hook, labels, desc, **again)

    ctx = RunContext(model=model, task=task, cfg=cfg, device=device, amp=amp, members=members, opt=opt, gen=gen,
                     checkpoint=ckpt, identity=identity, settings=env, deadline=deadline, finish=finish,
                     checkpoint_every=(env.checkpoint_every if env.checkpoint_every is not None
                                       else int(cfg.checkpoint_every or 0)),
                     graphs=graphs, eval_data=task.eval_data(), hook=hook, labels=labels, desc=desc)
    ftz = flush_denormal()           # vanishing gradients must not fall into slow denormal arithmetic
    ftz.__enter__()
    tf32_was = torch.backends.cuda.matmul.allow_tf32
    if device.type == "cuda":        # TF32 matrix products (opt-in; cfg.tf32): on CUDA only, for this run only
        torch.backends.cuda.matmul.allow_tf32 = bool(cfg.tf32)
    try:
        return _loop(ctx, state)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32_was
        ftz.__exit__(None, None, None)


def _evaluate_into(ctx: RunContext, st: TrainState, step: int) -> None:
    """Evaluate on the held-out data and append the row to ``st`` (NaN for diverged members)."""
    x_eval, y_eval = ctx.eval_data
    ctx.model.eval()
    loss, acc = evaluate(ctx.model, x_eval, y_eval, ctx.cfg.eval_batch_size, ctx.device, ctx.amp)
    ctx.model.train()
    st.ev_step.append(step)
    st.ev_loss.append(np.where(st.diverged, np.nan, loss))
    st.ev_acc.append(np.where(st.diverged, np.nan, acc))


def _train_step(ctx: RunContext, st: TrainState, step: int) -> np.ndarray:
    """One training step on the next batch: losses per member (recorded in ``st``), divergence,
    the optimizer step of the members still active; returns the per-member losses."""
    cfg, device, graphs = ctx.cfg, ctx.device, ctx.graphs
    x, y = ctx.task.train_batch(cfg.batch_size, ctx.gen)
    x, y = x.to(device), y.to(device)
    # autocast's weight cache cannot live across graph replays
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=ctx.amp, cache_enabled=not graphs.get("want")):
        if graphs.get("want") and graphs.get("fwd") is None:
            cuda_graphs_.capture(graphs, ctx.model, x)
        if graphs.get("fwd") is not None and x.shape == graphs["shape"]:
            logits = graphs["fwd"](x)
        else:
            logits = member_logits(ctx.model, x)
    losses = per_member_ce(logits, y)                       # (M,)
    lv = losses.detach().double().cpu().numpy()
    first = np.isnan(st.init_loss) & np.isfinite(lv)
    st.init_loss[first] = lv[first]
    with np.errstate(invalid="ignore"):
        blown = ~np.isfinite(lv) | (lv > cfg.diverge_factor * st.init_loss)
    newly = blown & ~st.diverged
    st.diverged_step[newly] = step
    st.diverged |= newly
    active = torch.from_numpy(~st.diverged).to(device)
    total = torch.where(active, losses, torch.zeros_like(losses)).sum()
    opt, members = ctx.opt, ctx.members
    opt.zero_grad()
    if bool(active.any()):
        total.backward()
        if cfg.clip is not None:
            gn = clip_grad_norm_members_(opt.params, cfg.clip, members)
        else:
            gn = grad_norms(opt.params, members)
        opt.step(active if members is not None else None)
        st.grad_norm[step] = np.broadcast_to(gn.detach().double().cpu().numpy(), (ctx.M,))
    st.train_loss[step] = np.where(st.diverged, np.nan, lv)
    st.train_acc[step] = np.where(st.diverged, np.nan,
                                  (logits.detach().argmax(-1) == y).double().mean(1).cpu().numpy())
    return lv


def _loop(ctx: RunContext, st: TrainState) -> RunResult:
    cfg, ckpt, deadline, finish = ctx.cfg, ctx.checkpoint, ctx.deadline, ctx.finish
    S = cfg.steps
    t0 = time.perf_counter()

    def save(step, finished):
        save_checkpoint(ckpt, ctx.identity, st.checkpoint_state(step, st.elapsed + time.perf_counter() - t0, finished,
                                                                ctx.model, ctx.opt, ctx.gen))

    every = ctx.checkpoint_every
    delay = ctx.settings.test_step_delay_s      # the test hook: seconds of sleep per step (a job killed mid-run)
    start, stopped_at = st.step, S
    if st.done:                               # a finished run whose result was not yet stored
        stopped_at, start = start, S
    now = _clock() if deadline is not None else None
    if deadline is not None and start < S and now >= deadline:
        raise BudgetExhausted(ckpt if ckpt is not None and ckpt.exists() else None, start, S)
    probe_from = start + PROBE_WARMUP           # finish or skip: steps [probe_from, probe_to) are timed
    probe_to = probe_from + PROBE_STEPS
    probe_t0 = now
    bar = progress_bar(S, start, ctx.desc, progress_enabled(cfg.progress, ctx.settings))
    ctx.model.train()
    for step in range(start, S):
        lv = _train_step(ctx, st, step)
        bar.update(1)
        if ctx.hook is not None:
            ctx.hook(step, {"loss": lv, "diverged": st.diverged.copy()})
        if st.diverged.all():
            stopped_at = step + 1
            break
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < S:
            _evaluate_into(ctx, st, step + 1)
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
    keep = ckpt is not None and kept(ckpt)
    if keep and not st.done and not finish:
        save(stopped_at, True)                # the caller removes it once the result is written
    _evaluate_into(ctx, st, stopped_at)
    wall = st.elapsed + time.perf_counter() - t0
    if ckpt is not None and not keep and ckpt.exists():
        ckpt.unlink()
    return _result(ctx, st, start, stopped_at, wall)


def _result(ctx: RunContext, st: TrainState, start: int, stopped_at: int, wall: float) -> RunResult:
    """The :class:`RunResult` of a run that stopped after ``stopped_at`` steps."""
    cfg, device, M, labels = ctx.cfg, ctx.device, ctx.M, ctx.labels
    last = st.train_loss[max(0, stopped_at - 10):stopped_at]
    with np.errstate(all="ignore"):
        final_train = np.where(st.diverged, np.nan, np.nanmean(np.where(np.isfinite(last), last, np.nan), 0)
                               if len(last) else np.nan)
    curves = {"train_loss": st.train_loss, "train_acc": st.train_acc, "grad_norm": st.grad_norm,
              "eval_step": np.asarray(st.ev_step), "eval_loss": np.asarray(st.ev_loss).reshape(-1, M),
              "eval_acc": np.asarray(st.ev_acc).reshape(-1, M)}
    final = {"train_loss": final_train.tolist(), "eval_loss": curves["eval_loss"][-1].tolist(),
             "eval_acc": curves["eval_acc"][-1].tolist()}
    meta = {"seed": int(cfg.seed), "code_version": code_version(), "torch_version": torch.__version__,
            "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
            "wall_time_s": wall, "members": M, "diverged": st.diverged.tolist(),
            "diverged_step": st.diverged_step.tolist(), "steps_run": stopped_at, "resumed_from": start,
            "model": repr(getattr(ctx.model, "cell", ctx.model)).replace("\n", " "),
            "cuda_graphs": ctx.graphs["note"],
            "fused_lstm_steps": "triton" if fused_lstm_steps_on(device) else "off",
            "labels": list(labels) if labels is not None else None,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return RunResult(curves, final, cfg.to_dict(), meta)
