r"""Figure 1: held-out accuracy of a peephole LSTM against the sequence length, for the standard
initialization (Appendix C.5), the critical one (Appendix C.4) and chrono initialization
(Tallec & Ollivier 2018) as a third baseline.

Choices the paper leaves open, kept here in one place:

* **Task.** Figure 1 says only "sequences of MNIST digits" of growing length. We use padded
  MNIST (Section 5.1.1): the digit, then :math:`T-1` steps of Gaussian noise. It isolates what
  the figure is about (information has to survive :math:`T` steps) and lets the length grow
  without changing anything else. Held-out accuracy on digits the network never saw.
* **Networks.** Tied weights (ordinary networks), width ``width``; the three initializations
  of every length train as one ensemble (all lengths together: padded MNIST of length
  :math:`T` is exactly the first :math:`T` steps of the longest stream, and each member reads
  out at its own :math:`T`; the figure costs :math:`\max T` sequential steps, not
  :math:`\sum T`) and share the read-out draw. Chrono uses :math:`T_{max} = T`.
* **Training.** Adam (learning rate ``lr``), gradients clipped at norm ``clip``, fresh padding
  noise in every minibatch; the paper trains 8000 iterations (profile ``paper``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ... import train
from ...theory import Theta, analyze
from ...train.ensembles import ensemble_bytes, split_by_memory
from ..protocol import CPU_BUDGET_H, Config, doc
from ._common import load_pair, make_ensemble, paper_note, run_key, stored, stored_profile, sweep, train_cfg, unit

__all__ = ["CHANCE", "INITS", "REACH", "SequenceLengthConfig", "accuracy", "comparison", "config", "cost",
           "ensembles", "groups", "inits", "paper_note", "profile_numbers", "report",
           "run", "run_group", "run_one", "run_name", "stored_paper_results", "stored_results", "theory_table", "units",
           "verdict"]

EXPERIMENT = "sequence_length"
INITS = ("standard", "critical", "chrono")
ARCH = "peephole_lstm"

N_IN, N_OUT = 784, 10
#: chance accuracy of padded MNIST (one of ``N_OUT`` classes)
CHANCE = 1 / N_OUT
#: the held-out accuracy an initialization must reach at a length for the verdict to count it
#: as trainable there (:func:`verdict`, ``reach_<init>`` of :func:`report`)
REACH = 0.5


@dataclass(frozen=True)
class SequenceLengthConfig(Config):
    """Settings of the chapter "Critical initialization against sequence length (Figure 1)"."""

    Ts: list = doc([10, 25, 50, 100], "sequence lengths T of padded MNIST (the digit, then T-1 steps of noise)")
    width: int = doc(48, "width N of the peephole LSTM")
    batch_size: int = doc(32, "minibatch size")
    steps: int = doc(300, "training steps (the paper: 8000 iterations)")
    n_eval: int = doc(1000, "held-out test digits the accuracy is measured on")
    eval_every: int = doc(50, "steps between evaluations (0: only at the end)")
    ensemble_gib: float = doc(2.0, "memory budget (GiB) of one ensemble; lengths are split to fit it")
    optimizer: str = doc("adam", "optimizer")
    lr: float = doc(1e-3, "learning rate")
    clip: float = doc(1.0, "gradients clipped at this norm")
    seed: int = doc(0, "seed of the weights, the read-out and the minibatches")
    PROFILES = {
        "smoke": dict(Ts=[3, 6], width=8, batch_size=8, steps=3, n_eval=32, eval_every=0, ensemble_gib=1.0),
        "ci": {},
        # trained once on a 2-core CPU in budgeted slices and committed (README, "The cpu profile")
        # (the paper's lengths; ensemble_gib = 4 keeps T <= 400 in one ensemble and gives 600, 800 and
        # 1000 one each, so the ensemble trained first kept its stored name when the longer lengths came)
        "cpu": dict(Ts=[10, 30, 100, 200, 400, 600, 800, 1000], steps=1500, n_eval=2000, eval_every=100,
                    ensemble_gib=4.0),
        "paper": dict(Ts=[10, 30, 100, 200, 400, 600, 800, 1000], width=256, batch_size=64, steps=8000, n_eval=2000,
                      eval_every=500, ensemble_gib=64.0),
    }


def config(profile: str) -> SequenceLengthConfig:
    """The settings at ``profile`` (smoke, ci, cpu or paper)."""
    return SequenceLengthConfig.for_profile(profile)


def inits(T: int) -> list[tuple]:
    """The three initializations, in the order of :data:`INITS`, for sequence length ``T``."""
    return [("standard",), ("critical", Theta.critical(ARCH)), ("chrono", max(float(T), 3.0))]


def theory_table(cfg: SequenceLengthConfig, n_in: int = 784) -> str:
    r"""Markdown: :math:`\xi` and the Jacobian's :math:`m_1`, variance of the standard and critical
    Thetas (mean-field reading, :math:`\Sigma_z = 0`)."""
    rows = ["| initialization | $\\mu_f$ | $\\chi$ | $\\xi$ (steps) | $m_1$ | var |", "|---|---|---|---|---|---|"]
    for name, th in (("standard (C.5)", Theta.standard(ARCH, n_in=n_in, n_hidden=cfg.width)),
                     ("critical (C.4)", Theta.critical(ARCH))):
        r = analyze(ARCH, th, sigma_z=0.0)
        rows.append(f"| {name} | {float(th['f'].mu):g} | {float(r.chi):.4f} | {float(r.xi):.3g} | "
                    f"{float(r.m1):.4f} | {float(r.var):.2e} |")
    return "\n".join(rows)


def _bytes(cfg: SequenceLengthConfig):
    def fn(lengths):
        return ensemble_bytes(ARCH, N_IN, cfg.width, N_OUT, lengths, cfg.batch_size, False, cfg.optimizer,
                              eval_batch_size=min(1024, cfg.n_eval))
    return fn


def groups(cfg: SequenceLengthConfig) -> list[list[int]]:
    """The lengths of each ensemble: all of ``cfg.Ts`` in one unless it exceeds ``ensemble_gib``."""
    return split_by_memory(cfg.Ts, len(INITS), _bytes(cfg), cfg.ensemble_gib * 2**30)


def ensembles(cfg: SequenceLengthConfig) -> list[dict]:
    """Every ensemble ``cfg`` trains, with its lengths and estimated bytes."""
    out = []
    for Ts in groups(cfg):
        lengths = [T for T in Ts for _ in INITS]
        out.append(dict(arch=ARCH, tied=True, Ts=Ts, members=len(lengths), lengths=lengths, steps=cfg.steps,
                        width=cfg.width, batch_size=cfg.batch_size, n_in=N_IN, n_out=N_OUT,
                        optimizer=cfg.optimizer, clip=cfg.clip, bytes=_bytes(cfg)(lengths)))
    return out


def _settings(cfg: SequenceLengthConfig, Ts) -> dict:
    s = {k: getattr(cfg, k) for k in ("width", "batch_size", "steps", "n_eval", "eval_every", "optimizer", "lr",
                                      "clip", "seed")}
    s.update(Ts=[int(T) for T in Ts], arch=ARCH, inits=list(INITS))
    return s


def run_name(cfg: SequenceLengthConfig, Ts) -> str:
    """The stored name of the ensemble of lengths ``Ts`` (with the hash of its settings)."""
    Ts = sorted(int(T) for T in Ts)
    return f"T{'_'.join(map(str, Ts))}-{run_key(_settings(cfg, Ts))}"


def units(profile: str) -> list[dict]:
    """Every stored run the chapter loads at ``profile`` (one per ensemble of :func:`groups`),
    described by :func:`~rnn_mft.experiments.training._common.unit` without training anything."""
    cfg = config(profile)
    return [unit(profile, EXPERIMENT, run_name(cfg, Ts), run_group, [sorted(int(T) for T in Ts)])
            for Ts in groups(cfg)]


def run_group(cfg: SequenceLengthConfig, Ts, store=None) -> dict:
    """One ensemble: the three initializations at every length of ``Ts`` (member ``3 j + i``:
    ``Ts[j]``, ``INITS[i]``), each reading out at its own length. Returns ``{T: RunResult}``
    with each length's three members as their own result."""
    Ts = sorted(int(T) for T in Ts)
    s = _settings(cfg, Ts)
    name = run_name(cfg, Ts)
    n = len(INITS)

    def fn(ckpt):
        tr, te = load_pair("padded_mnist", seq_len=max(Ts))
        task = train.DatasetTask(tr, te, n_eval=min(cfg.n_eval, len(te)), eval_on="test")
        specs = [spec for T in Ts for spec in inits(T)]
        model = make_ensemble(ARCH, task.n_in, cfg.width, task.n_out, specs, seed=cfg.seed,
                              lengths=[T for T in Ts for _ in range(n)],
                              member_seeds=[i for _ in Ts for i in range(n)])
        tc = train_cfg(s, checkpoint_every=250 if cfg.profile in ("cpu", "paper") else 0)
        res = train.fit(model, task, tc, checkpoint=ckpt, labels=[f"T={T}, {i}" for T in Ts for i in INITS],
                        desc=f"T={','.join(map(str, Ts))}")
        res.meta["settings"] = s
        res.meta["task"] = {k: v for k, v in te.describe().items() if k in ("task", "seq_len", "n", "data")}
        return res

    res = stored(cfg.profile, EXPERIMENT, name, fn, store)
    out = {}
    for j, T in enumerate(Ts):
        r = res.select(range(j * n, (j + 1) * n))
        r.meta["settings"] = dict(_settings(cfg, [T]), ensemble=name)
        r.meta["labels"] = list(INITS)
        r.meta["task"] = dict(res.meta.get("task", {}), seq_len=T, read_out_of=f"padded MNIST of length {max(Ts)}")
        out[T] = r
    return out


def run_one(cfg: SequenceLengthConfig, T: int, store=None) -> train.RunResult:
    """The three initializations at the single length ``T``."""
    return run_group(cfg, [T], store)[int(T)]


def run(cfg: SequenceLengthConfig, store=None) -> dict:
    """``{T: RunResult}`` for every length of ``cfg``, trained as the ensembles of :func:`groups`."""
    out = {}
    with sweep(EXPERIMENT, len(groups(cfg))):
        for Ts in groups(cfg):
            out.update(run_group(cfg, Ts, store))
    return {T: out[T] for T in cfg.Ts}


def accuracy(results: dict) -> dict:
    """``{init: array over T}`` of final held-out accuracy."""
    return {name: np.array([r.final["eval_acc"][i] for r in results.values()], float) for i, name in enumerate(INITS)}


def comparison(Ts, acc: dict, cfg: SequenceLengthConfig) -> str:
    """Markdown: the paper's Figure 1 statement against this run's numbers."""
    Ts = list(Ts)
    longest = lambda v: _longest(Ts, v)  # noqa: E731

    rows = ["| | the paper (Fig. 1, 8000 iterations) | this run (profile `%s`, %d steps) |"
            % (cfg.profile, cfg.steps), "|---|---|---|"]
    say = {"standard": "trainable at short lengths, fails as $T$ grows",
           "critical": "still trainable at the longest lengths shown",
           "chrono": "not in the paper (a third baseline here)"}
    for name in INITS:
        v = acc[name]
        L = longest(v)
        ours = (f"accuracy {', '.join(f'{a:.2f}' for a in v)} at $T$ = {', '.join(map(str, Ts))}; "
                + (f"at least {REACH:g} up to $T = {L}$" if L else f"below {REACH:g} everywhere"))
        rows.append(f"| {name} | {say[name]} | {ours} |")
    return "\n".join(rows)


def _longest(Ts, acc, level: float = REACH):
    ok = [T for T, a in zip(Ts, acc) if np.isfinite(a) and a >= level]
    return max(ok) if ok else None


def report(cfg: SequenceLengthConfig, result: dict) -> dict:
    """The numbers of the page's prose: the settings (``width``, ``steps``, ``Ts``, ...), the
    shortest and longest length (``T_min``, ``T_max``), per initialization its held-out accuracy
    there (``acc_<init>_shortest``, ``acc_<init>_longest``) and the longest length at which it
    reaches :data:`REACH` (``reach_<init>``, text; the level as ``reach_level``), chance
    (``chance``), and which of standard and critical is ahead at the longest length
    (``order_longest``, a short label)."""
    Ts = list(result)
    acc = accuracy(result)
    out = dict(profile=cfg.profile, width=cfg.width, steps=cfg.steps, optimizer=cfg.optimizer.capitalize(),
               lr=cfg.lr, batch_size=cfg.batch_size, clip=cfg.clip, n_eval=cfg.n_eval,
               Ts=", ".join(map(str, cfg.Ts)), T_min=min(Ts), T_max=max(Ts), reach_level=REACH, chance=CHANCE)
    i_min, i_max = Ts.index(min(Ts)), Ts.index(max(Ts))
    for name in INITS:
        out[f"acc_{name}_shortest"] = float(acc[name][i_min])
        out[f"acc_{name}_longest"] = float(acc[name][i_max])
        L = _longest(Ts, acc[name])
        out[f"reach_{name}"] = f"$T = {L}$" if L else "none"
    s, c = out["acc_standard_longest"], out["acc_critical_longest"]
    out["order_longest"] = (("the critical initialization is ahead" if c > s else
                             "the standard initialization is ahead" if s > c else "the two are level")
                            if np.isfinite(s) and np.isfinite(c) else "no comparison (a run diverged)")
    return out


def profile_numbers() -> dict:
    """The other profiles' settings that the chapter's prose names, by name: ``ci_T_max``,
    ``ci_steps``, ``ci_width``; ``cpu_Ts`` (text), ``cpu_width``, ``cpu_steps``; ``paper_steps``,
    ``paper_width``, ``paper_T_max``, the paper lengths the ``cpu`` profile leaves out
    (``cpu_cut_Ts``, text, "none" if none), what it cuts against the paper (``cpu_cuts``, a
    clause) and the profile's budget (``cpu_budget_h``, :data:`~rnn_mft.experiments.protocol.CPU_BUDGET_H`)."""
    ci, cpu, paper = config("ci"), config("cpu"), config("paper")
    cut = [T for T in paper.Ts if T not in cpu.Ts]
    cuts = ([f"the lengths {', '.join(map(str, cut))}"] if cut else []) + \
        [f"the width ({cpu.width} against {paper.width})", f"the steps ({cpu.steps} against {paper.steps})"]
    return dict(ci_T_max=max(ci.Ts), ci_steps=ci.steps, ci_width=ci.width,
                cpu_Ts=", ".join(map(str, cpu.Ts)), cpu_width=cpu.width, cpu_steps=cpu.steps,
                paper_steps=paper.steps, paper_width=paper.width, paper_T_max=max(paper.Ts),
                cpu_cut_Ts=", ".join(map(str, cut)) or "none",
                cpu_cuts=("it keeps the paper's lengths and cuts " if not cut else "it cuts ")
                + ", ".join(cuts[:-1]) + " and " + cuts[-1], cpu_budget_h=CPU_BUDGET_H)


def stored_results(profile: str = "paper", store=None):
    """The runs of a stored profile (``paper``, ``cpu``) that the results store holds (nothing
    trained), as a :class:`~rnn_mft.experiments.training._common.StoredPaper` whose ``results`` is
    ``{T: RunResult}`` over the stored lengths, or None when none is stored."""
    cfg = config(profile)

    def assemble(loaded):
        out = {}
        for _, res in loaded:
            out.update(res)
        return {T: out[T] for T in cfg.Ts if T in out}

    return stored_profile(sys.modules[__name__], profile, assemble, store)


def stored_paper_results():
    """:func:`stored_results` at profile ``paper``."""
    return stored_results("paper")


def verdict(results: dict) -> str:
    """Markdown: the paper's Figure 1 claim (the critical initialization stays trainable at
    lengths where the standard one fails) read off ``{T: RunResult}``, whatever it says: the
    longest length each reaches :data:`REACH` held-out accuracy, and who is ahead at the longest length."""
    Ts = list(results)
    acc = accuracy(results)
    reach = {n: _longest(Ts, acc[n]) for n in INITS}
    s, c = acc["standard"][-1], acc["critical"][-1]
    rs, rc = reach["standard"] or 0, reach["critical"] or 0
    holds = ("holds here" if rc > rs else
             "does not hold here: the critical initialization reaches no longer length than the standard one")
    return (f"Accuracy {REACH:g} is reached up to $T$ = {reach['standard'] or 'none'} (standard), "
            f"{reach['critical'] or 'none'} (critical) and {reach['chrono'] or 'none'} (chrono); at the longest "
            f"stored length $T = {Ts[-1]}$: standard {s:.2f}, critical {c:.2f}, chrono {acc['chrono'][-1]:.2f}. "
            f"The paper's claim (critical trainable where standard fails) {holds}.")


def cost(cfg: SequenceLengthConfig) -> dict:
    """Ensemble runs and sequential time steps (training steps x the longest length of each
    ensemble, summed), and what one ensemble per length would have cost."""
    g = groups(cfg)
    return {"runs": len(g), "sequential_steps": cfg.steps * sum(max(Ts) for Ts in g),
            "sequential_steps_one_ensemble_per_T": cfg.steps * sum(cfg.Ts)}
