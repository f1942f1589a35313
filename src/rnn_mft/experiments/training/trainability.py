r"""Figures 2 and 6: padded-MNIST training accuracy over the sequence length T and a direction
:math:`\Theta = \Theta_0 + \alpha\,\Theta_1` in hyperparameter space, with untied (Figure 2) and
tied (Figure 6) weights, against :math:`3\xi` and :math:`6\xi` from the mean-field theory.

Choices the paper leaves open, kept here in one place:

* **Direction.** For every architecture :math:`\Theta_1` moves the forget-gate bias mean
  :math:`\mu_f` (the knob of the critical initializations of Appendix C.4) by one unit per unit of
  :math:`\alpha`; :math:`\Theta_0` has every :math:`\nu_k^2 = 1` (so the digit reaches every
  gate), :math:`\rho_k^2 = 0`, the other means 0, and :math:`\sigma_k^2 = 1` (GRU, LSTM) or
  :math:`0.5` (peephole LSTM, whose :math:`\xi` saturates early for larger :math:`\sigma^2`, see
  the time-scale landscape chapter). Over :math:`\alpha \in [0, 1]` with
  :math:`\mu_f \in [-1, 5]` the predicted :math:`\xi` grows from about 0.5 to 30-50 steps: two
  orders of magnitude.
* **Theory.** :math:`\xi` at :math:`\Sigma_z = 0`: after the digit the inputs of two sequences
  are independent noise; inputs are normalised to :math:`R = 1` (:mod:`rnn_mft.data.tasks`). The
  LSTM's :math:`\xi` comes from the two-state theory (:mod:`rnn_mft.theory.lstm_twostate`; on
  this direction :math:`\rho_k^2 = 0` and :math:`\mu_h^* = 0`, so the copies are independent,
  :math:`C^* = 0`); :func:`overlay` also gives the paper's (Algorithm 1 and A.2.3, with the
  profile's ``n_s`` and ``n_iters``) for comparison.
* **Training.** Adam (learning rate ``lr``; one rate for the whole map so that only
  :math:`\Theta` and :math:`T` vary), cross-entropy on a linear read-out of the last state,
  fresh padding noise in every minibatch. *Training accuracy* (what the paper plots) is measured
  at the end on ``n_eval`` training digits.
* **Ensembles.** The networks of all :math:`\alpha` *and all* :math:`T` train as one ensemble
  (one batched model), each member reading out at its own :math:`T`: padded MNIST of length
  :math:`T` is exactly the first :math:`T` steps of the longest stream (the digit comes first,
  then noise), so a member trains as it would alone, and a figure costs :math:`\max T`
  sequential steps instead of :math:`\sum T`. Untied weights store :math:`\max T` weight sets
  per member, so with untied weights the lengths are split into as few ensembles as fit
  ``ensemble_gib`` GiB (:func:`rnn_mft.train.ensembles.split_by_memory`; :func:`ensembles` lists
  them with their memory). A member's weights are drawn exactly as its :math:`\Theta` says
  (:func:`rnn_mft.nets.init_`; the generator of :math:`\alpha`'s index, so with tied weights
  every :math:`T` of one :math:`\alpha` starts from the same weights), and all members share
  the read-out draw.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ... import train
from ...theory import Theta, analyze
from ...train.ensembles import ensemble_bytes, split_by_memory
from ..protocol import Config, doc
from ._common import load_pair, make_ensemble, paper_note, run_key, stored, stored_paper, sweep, train_cfg, unit

__all__ = ["CHANCE", "DIRECTIONS", "TrainabilityConfig", "VERDICTS", "VERDICT_FAILS", "VERDICT_MARGIN", "VERDICT_TRAINS",
           "accuracy_map", "alphas", "comparison", "config", "direction_report",
           "cost", "ensembles", "groups", "overlay", "paper_note", "region_summary", "region_table",
           "report", "run", "run_arch", "run_group", "run_one", "run_name", "stored_paper_results", "summaries",
           "thetas", "units", "verdict", "xi_table"]

EXPERIMENT = "trainability"

#: Theta_0 (uniform fields, then per-gate overrides) and Theta_1 (per "gate.field" increments)
DIRECTIONS = {
    "gru": dict(base=dict(sigma2=1.0, nu2=1.0, rho2=0.0, mu=0.0), theta0={"f.mu": -1.0}, theta1={"f.mu": 6.0}),
    "lstm": dict(base=dict(sigma2=1.0, nu2=1.0, rho2=0.0, mu=0.0), theta0={"f.mu": -1.0}, theta1={"f.mu": 6.0}),
    "peephole_lstm": dict(base=dict(sigma2=0.5, nu2=1.0, rho2=0.0, mu=0.0), theta0={"f.mu": -1.0},
                          theta1={"f.mu": 6.0}),
}

@dataclass(frozen=True)
class TrainabilityConfig(Config):
    """Settings of the chapter "Trainability follows the time scale xi (Figures 2 and 6)"."""

    archs: list = doc(["gru", "lstm", "peephole_lstm"], "architectures whose maps are trained")
    Ts: list = doc([2, 4, 8, 16, 32, 64], "sequence lengths T of padded MNIST (rows of a map)")
    n_alpha: int = doc(6, "values of alpha in alpha_range (columns of a map)")
    width: int = doc(32, "width N of every network")
    batch_size: int = doc(32, "minibatch size")
    n_eval: int = doc(512, "training digits the final training accuracy is measured on")
    steps: dict = doc({"gru": 200, "lstm": 200, "peephole_lstm": 200}, "training steps per architecture")
    n_s: int = doc(300, "Algorithm 1's samples (the paper's LSTM xi, for comparison)")
    n_iters: int = doc(150, "Algorithm 1's iterations (the paper's LSTM xi, for comparison)")
    # ci: small, so that untied ensembles store (and the optimizer updates) few unused weight
    # sets: on a CPU that work, not the number of sequential steps, sets the time
    ensemble_gib: float = doc(0.3, "memory budget (GiB) of one ensemble; lengths are split to fit it (untied)")
    optimizer: str = doc("adam", "optimizer (one learning rate for the whole map)")
    lr: float = doc(1e-3, "learning rate")
    clip: float | None = doc(None, "gradient-norm clip (None: no clipping)")
    sigma_z: float = doc(0.0, "input correlation Sigma_z of the theory (padding noise is independent)")
    seed: int = doc(0, "seed of the weights, the read-out and the minibatches")
    alpha_range: list = doc([0.0, 1.0], "alpha range of the direction Theta_0 + alpha Theta_1")
    tied: bool = doc(False, "tied weights (Figure 6) or untied (Figure 2) for run_arch, groups, ensembles")
    PROFILES = {
        "smoke": dict(archs=["gru", "peephole_lstm"], Ts=[2, 5], n_alpha=2, width=8, batch_size=8, n_eval=32,
                      steps={"gru": 3, "lstm": 3, "peephole_lstm": 3}, n_s=100, n_iters=60, ensemble_gib=1.0),
        "ci": {},
        # ensemble_gib (paper): one GPU of 80 GB with room to spare
        "paper": dict(Ts=[2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256], n_alpha=16, width=128,
                      batch_size=64, n_eval=2000, steps={"gru": 1000, "lstm": 2000, "peephole_lstm": 2000},
                      n_s=1000, n_iters=300, ensemble_gib=64.0),
    }


def config(profile: str) -> TrainabilityConfig:
    """Settings of ``profile`` (untied weights, Figure 2). The weight kind is the field ``tied``:
    ``config(profile).replace(tied=True)`` is Figure 6's; :func:`run` trains both whatever it
    says, :func:`units` lists both."""
    return TrainabilityConfig.for_profile(profile)


def alphas(cfg: TrainabilityConfig) -> np.ndarray:
    lo, hi = cfg.alpha_range
    return np.linspace(lo, hi, cfg.n_alpha)


def thetas(arch: str, alpha) -> Theta:
    r""":math:`\Theta_0 + \alpha\Theta_1` of :data:`DIRECTIONS` for an array of ``alpha``
    (grid shape ``alpha.shape``)."""
    if arch not in DIRECTIONS:
        raise ValueError(f"arch={arch!r}; allowed: {', '.join(DIRECTIONS)}")
    d = DIRECTIONS[arch]
    a = np.asarray(alpha, dtype=float)
    base = Theta.uniform(arch, **d["base"]).replace(d["theta0"])
    inc = d["theta1"]
    return Theta(arch, {g: {f: np.broadcast_to(getattr(p, f) + inc.get(f"{g}.{f}", 0.0) * a, a.shape).copy()
                            for f in ("sigma2", "nu2", "rho2", "mu")}
                        for g, p in base.gates.items()})


def _per_arch(values: dict) -> str:
    """``{arch: number}`` as text: the one value when all architectures share it, else each value
    with the architectures that have it (``1 (gru, lstm), 0.5 (peephole_lstm)``)."""
    by_value: dict = {}
    for arch, v in values.items():
        by_value.setdefault(f"{float(v):g}", []).append(arch)
    if len(by_value) == 1:
        return next(iter(by_value))
    return ", ".join(f"{v} ({', '.join(archs)})" for v, archs in by_value.items())


def direction_report(cfg: TrainabilityConfig) -> dict:
    r"""The direction of :data:`DIRECTIONS` for the architectures of ``cfg``, as text for the
    chapter's prose: :math:`\mu_f` at the ends of ``cfg.alpha_range`` (``mu_f_from``,
    ``mu_f_to``) and its rise over it (``mu_f_rise``); :math:`\Theta_0`'s ``sigma2``, ``nu2``,
    ``rho2`` (every gate) and the means other than :math:`\mu_f` (``mu_other``). A value that
    differs between architectures is given per architecture (:func:`_per_arch`)."""
    ends = {arch: thetas(arch, np.asarray(cfg.alpha_range, dtype=float)) for arch in cfg.archs}
    mu_f = {arch: np.asarray(th["f"].mu, dtype=float) for arch, th in ends.items()}
    out = dict(mu_f_from=_per_arch({a: m[0] for a, m in mu_f.items()}),
               mu_f_to=_per_arch({a: m[-1] for a, m in mu_f.items()}),
               mu_f_rise=_per_arch({a: m[-1] - m[0] for a, m in mu_f.items()}))
    for field in ("sigma2", "nu2", "rho2", "mu"):
        per = {}
        for arch, th in ends.items():
            vals = {float(np.asarray(getattr(p, field), dtype=float)[0]) for g, p in th.gates.items()
                    if not (field == "mu" and g == "f")}
            if len(vals) != 1:
                raise ValueError(f"{arch}: Theta_0's {field} differs between gates; the chapter's prose "
                                 "states one value per architecture")
            per[arch] = vals.pop()
        out["mu_other" if field == "mu" else field] = _per_arch(per)
    return out


def overlay(cfg: TrainabilityConfig, arch: str) -> dict:
    r""":math:`\xi(\alpha)` from :func:`rnn_mft.theory.analyze` for the very Thetas the map trains,
    and the curves :math:`T = 3\xi, 6\xi`."""
    a = alphas(cfg)
    th = thetas(arch, a)
    r = analyze(arch, th, sigma_z=cfg.sigma_z, n_s=cfg.n_s, n_iters=cfg.n_iters)
    xi = np.asarray(r.xi, dtype=float)
    out = {"alpha": a, "mu_f": np.asarray(th["f"].mu, float), "xi": xi, "3xi": 3 * xi, "6xi": 6 * xi,
           "chi": np.asarray(r.chi, float), "converged": np.asarray(r.converged), "theta": th}
    if arch == "lstm":
        p = analyze(arch, th, sigma_z=cfg.sigma_z, n_s=cfg.n_s, n_iters=cfg.n_iters, method="paper")
        out["xi_paper"] = np.asarray(p.xi, dtype=float)
    return out


N_IN, N_OUT = 784, 10          # padded MNIST: a digit (784 pixels) per step, 10 classes
#: chance accuracy of padded MNIST (one of ``N_OUT`` classes)
CHANCE = 1 / N_OUT


def _settings(cfg: TrainabilityConfig, arch: str, Ts) -> dict:
    s = {k: getattr(cfg, k) for k in ("width", "batch_size", "n_eval", "optimizer", "lr", "clip", "seed", "tied",
                                      "alpha_range", "n_alpha")}
    s.update(arch=arch, Ts=[int(T) for T in Ts], steps=int(cfg.steps[arch]), direction=DIRECTIONS[arch])
    return s


def _bytes(cfg: TrainabilityConfig, arch: str):
    def fn(lengths):
        return ensemble_bytes(arch, N_IN, cfg.width, N_OUT, lengths, cfg.batch_size, not cfg.tied,
                              cfg.optimizer, eval_batch_size=min(1024, cfg.n_eval))
    return fn


def groups(cfg: TrainabilityConfig, arch: str) -> list[list[int]]:
    """The sequence lengths of each ensemble of ``arch``: all of ``cfg.Ts`` in one, unless
    they do not fit ``ensemble_gib`` (untied weights; see the module docstring)."""
    return split_by_memory(cfg.Ts, cfg.n_alpha, _bytes(cfg, arch), cfg.ensemble_gib * 2**30)


def ensembles(cfg: TrainabilityConfig) -> list[dict]:
    """Every ensemble that ``cfg`` trains (``tied`` as in ``cfg``): arch, lengths, members,
    steps, the member lengths and the estimated bytes (:func:`~rnn_mft.train.ensembles.ensemble_bytes`)."""
    out = []
    for arch in cfg.archs:
        for Ts in groups(cfg, arch):
            lengths = [T for T in Ts for _ in range(cfg.n_alpha)]
            out.append(dict(arch=arch, tied=cfg.tied, Ts=Ts, members=len(lengths), lengths=lengths,
                            steps=int(cfg.steps[arch]), width=cfg.width, batch_size=cfg.batch_size,
                            n_in=N_IN, n_out=N_OUT, optimizer=cfg.optimizer,
                            bytes=_bytes(cfg, arch)(lengths)))
    return out


def run_name(cfg: TrainabilityConfig, arch: str, Ts) -> str:
    """The stored name of the ensemble of ``arch`` at lengths ``Ts`` (tied as in ``cfg``)."""
    Ts = sorted(int(T) for T in Ts)
    return f"{'tied' if cfg.tied else 'untied'}-{arch}-T{'_'.join(map(str, Ts))}-{run_key(_settings(cfg, arch, Ts))}"


def units(profile: str) -> list[dict]:
    """Every stored run the chapter loads at ``profile``: the ensembles of :func:`groups` of every
    architecture, untied (Figure 2) and tied (Figure 6), without training anything."""
    out = []
    for tied in (False, True):
        cfg = config(profile).replace(tied=tied)
        for arch in cfg.archs:
            for Ts in groups(cfg, arch):
                Ts = sorted(int(T) for T in Ts)
                out.append(unit(profile, EXPERIMENT, run_name(cfg, arch, Ts), run_group, [arch, Ts],
                                config={"tied": tied}))
    return out


def run_group(cfg: TrainabilityConfig, arch: str, Ts, tasks=None, store=None) -> dict:
    """Train one ensemble: every alpha at every length of ``Ts``, member ``j * n_alpha + i`` at
    ``Ts[j]`` and ``alpha_i``, reading out at its own length; returns ``{T: RunResult}`` with
    each ``T``'s members as their own result (the format of one ensemble per ``T``)."""
    Ts = sorted(int(T) for T in Ts)
    s = _settings(cfg, arch, Ts)
    name = run_name(cfg, arch, Ts)
    a = alphas(cfg)
    th = thetas(arch, a)
    n = len(a)

    def fn(ckpt):
        tr, te = tasks if tasks is not None else load_pair("padded_mnist", seq_len=max(Ts))
        task = train.DatasetTask(tr, te, n_eval=cfg.n_eval, eval_on="train")
        inits = [("theta", th.index(i)) for _ in Ts for i in range(n)]
        lengths = [T for T in Ts for _ in range(n)]
        model = make_ensemble(arch, task.n_in, cfg.width, task.n_out, inits,
                              untied=None if cfg.tied else max(Ts), seed=cfg.seed, lengths=lengths,
                              member_seeds=[i for _ in Ts for i in range(n)])
        tc = train_cfg(s, checkpoint_every=100 if cfg.profile == "paper" else 0)
        res = train.fit(model, task, tc, checkpoint=ckpt,
                        labels=[f"T={T}, alpha={v:.4g}" for T in Ts for v in a],
                        desc=f"{arch} T={','.join(map(str, Ts))}")
        res.meta["settings"] = s
        res.meta["task"] = {k: v for k, v in tr.describe().items() if k in ("task", "seq_len", "n", "data")}
        return res

    res = stored(cfg.profile, EXPERIMENT, name, fn, store)
    out = {}
    for j, T in enumerate(Ts):
        r = res.select(range(j * n, (j + 1) * n))
        r.meta["settings"] = dict(_settings(cfg, arch, [T]), ensemble=name)
        r.meta["thetas"] = [th.index(i).to_dict() for i in range(n)]     # what each member was drawn from
        r.meta["labels"] = [f"alpha={v:.4g}" for v in a]
        r.meta["task"] = dict(res.meta.get("task", {}), seq_len=T, read_out_of=f"padded MNIST of length {max(Ts)}")
        out[T] = r
    return out


def run_one(cfg: TrainabilityConfig, arch: str, T: int, tasks=None, store=None) -> train.RunResult:
    """The ensemble of all alphas at the single sequence length ``T``."""
    return run_group(cfg, arch, [T], tasks=tasks, store=store)[int(T)]


def run_arch(cfg: TrainabilityConfig, arch: str, store=None) -> dict:
    """All sequence lengths of ``cfg`` for ``arch`` (tied as ``cfg.tied`` says): ``{T: RunResult}``,
    trained as the ensembles of :func:`groups`."""
    out = {}
    for Ts in groups(cfg, arch):
        out.update(run_group(cfg, arch, Ts, store=store))
    return {T: out[T] for T in cfg.Ts}


def run(cfg: TrainabilityConfig, store=None) -> dict:
    r"""The chapter's computation: the maps of every architecture with untied weights (Figure 2)
    and tied weights (Figure 6), whatever ``cfg.tied`` says, then the theory's overlays.
    ``{"untied": {arch: {T: RunResult}}, "tied": {...}, "overlays": {arch: overlay(cfg, arch)}}``.
    The runs come first, so that a read-only store without them raises before any theory is
    computed."""
    kinds = {kind: cfg.replace(tied=kind == "tied") for kind in ("untied", "tied")}
    with sweep(EXPERIMENT, sum(len(groups(c, arch)) for c in kinds.values() for arch in cfg.archs)):
        out = {kind: {arch: run_arch(c, arch, store) for arch in cfg.archs} for kind, c in kinds.items()}
    out["overlays"] = {arch: overlay(cfg, arch) for arch in cfg.archs}
    return out


def summaries(cfg: TrainabilityConfig, result: dict) -> dict:
    """``{"untied": {arch: region_summary}, "tied": {...}}`` of a :func:`run` result."""
    return {kind: {arch: region_summary(accuracy_map(result[kind][arch]), cfg.Ts, result["overlays"][arch])
                   for arch in result[kind]}
            for kind in ("untied", "tied")}


#: the verdict labels of :func:`verdict` (the chapter says what each one means)
VERDICTS = ("agrees", "same direction, softer", "does not show the transition", "no verdict")
#: :func:`verdict`'s thresholds on the mean training accuracy of a region: ``agrees`` needs more
#: than VERDICT_TRAINS where :math:`T \le 3\xi` and less than VERDICT_FAILS where :math:`T \ge 6\xi`;
#: ``same direction, softer`` needs the first to exceed the second by more than VERDICT_MARGIN
VERDICT_TRAINS, VERDICT_FAILS, VERDICT_MARGIN = 0.5, 0.25, 0.2


def verdict(s: dict) -> str:
    r"""The short label of a :func:`region_summary` against the paper's claim: ``agrees`` (mean
    accuracy above :data:`VERDICT_TRAINS` for :math:`T \le 3\xi` and below :data:`VERDICT_FAILS`
    for :math:`T \ge 6\xi`), ``same direction, softer`` (the first exceeds the second by more than
    :data:`VERDICT_MARGIN`), ``does not show the transition`` (otherwise) or ``no verdict`` (a
    region without cells)."""
    lo, n_lo = s["T <= 3xi"]
    hi, n_hi = s["T >= 6xi"]
    if not n_lo or not n_hi:
        return VERDICTS[3]
    if lo > VERDICT_TRAINS and hi < VERDICT_FAILS:
        return VERDICTS[0]
    if lo > hi + VERDICT_MARGIN:
        return VERDICTS[1]
    return VERDICTS[2]


def report(cfg: TrainabilityConfig, result: dict) -> dict:
    """The numbers of the page's prose: the settings (``width``, ``Ts``, ``steps``, ...), the
    direction (:func:`direction_report`), the verdict's thresholds (``verdict_trains``,
    ``verdict_fails``, ``verdict_margin``) and chance (``chance``), the growth of the predicted xi
    along the direction (``xi_growth_min``, ``xi_growth_max``: last over first; in orders of
    magnitude ``xi_orders_min``, ``xi_orders_max``), and per weight kind (``untied``, ``tied``) the verdicts of every architecture
    (``verdicts_<kind>``, text), how many agree (``n_agree_<kind>`` of ``n_archs``) and the mean
    accuracy of the regions pooled over architectures (``acc_below_3xi_<kind>``,
    ``acc_beyond_6xi_<kind>``)."""
    summ = summaries(cfg, result)
    growth = [float(ov["xi"][-1] / ov["xi"][0]) for ov in result["overlays"].values()
              if np.isfinite(ov["xi"][[0, -1]]).all()]
    out = dict(profile=cfg.profile, width=cfg.width, batch_size=cfg.batch_size, lr=cfg.lr, n_alpha=cfg.n_alpha,
               alpha_lo=cfg.alpha_range[0], alpha_hi=cfg.alpha_range[1], n_eval=cfg.n_eval, sigma_z=cfg.sigma_z,
               n_s=cfg.n_s, n_iters=cfg.n_iters, optimizer=cfg.optimizer.capitalize(),
               Ts=", ".join(map(str, cfg.Ts)), steps=", ".join(f"{a} {cfg.steps[a]}" for a in cfg.archs),
               groups="; ".join(f"{arch} " + ", ".join("{" + ", ".join(map(str, g)) + "}" for g in groups(cfg, arch))
                                for arch in cfg.archs),
               n_archs=len(cfg.archs), xi_growth_min=min(growth) if growth else float("nan"),
               xi_growth_max=max(growth) if growth else float("nan"),
               verdict_trains=VERDICT_TRAINS, verdict_fails=VERDICT_FAILS, verdict_margin=VERDICT_MARGIN,
               chance=CHANCE, **direction_report(cfg))
    out["xi_orders_min"] = float(np.log10(out["xi_growth_min"])) if growth else float("nan")
    out["xi_orders_max"] = float(np.log10(out["xi_growth_max"])) if growth else float("nan")
    for kind, by_arch in summ.items():
        out[f"verdicts_{kind}"] = "; ".join(f"{arch}: *{verdict(s)}*" for arch, s in by_arch.items())
        out[f"n_agree_{kind}"] = sum(verdict(s) == VERDICTS[0] for s in by_arch.values())
        for key, region in (("acc_below_3xi", "T <= 3xi"), ("acc_beyond_6xi", "T >= 6xi")):
            tot = sum(s[region][0] * s[region][1] for s in by_arch.values() if s[region][1])
            n = sum(s[region][1] for s in by_arch.values())
            out[f"{key}_{kind}"] = tot / n if n else float("nan")
    return out


def accuracy_map(results: dict, Ts=None) -> np.ndarray:
    """Training accuracy ``(len(Ts), n_alpha)``; NaN where a member diverged. Rows in the order of
    ``results``, or of ``Ts`` when given, with NaN rows for lengths ``results`` lacks (stored
    paper-scale results that exist only in part)."""
    if Ts is None:
        return np.array([np.asarray(r.final["eval_acc"], float) for r in results.values()])
    width = len(next(iter(results.values())).final["eval_acc"]) if results else 0
    return np.array([np.asarray(results[T].final["eval_acc"], float) if T in results else np.full(width, np.nan)
                     for T in Ts])


def region_summary(acc: np.ndarray, Ts, ov: dict, chance: float = CHANCE) -> dict:
    r"""Mean training accuracy of the cells with :math:`T \le 3\xi`, :math:`3\xi < T < 6\xi` and
    :math:`T \ge 6\xi`, and how many cells each region holds: the paper's claim is that the first
    region trains and the last does not. ``acc``: ``(len(Ts), n_alpha)``."""
    T = np.asarray(Ts, float)[:, None]
    xi = np.asarray(ov["xi"], float)[None, :]
    acc = np.asarray(acc, float)
    ok = np.isfinite(xi) & np.isfinite(acc)
    regions = {"T <= 3xi": ok & (T <= 3 * xi), "3xi < T < 6xi": ok & (T > 3 * xi) & (T < 6 * xi),
               "T >= 6xi": ok & (T >= 6 * xi)}
    out = {}
    for k, m in regions.items():
        out[k] = (float(acc[m].mean()) if m.any() else float("nan"), int(m.sum()))
    out["chance"] = chance
    return out


def region_table(summaries: dict) -> str:
    """Markdown table of :func:`region_summary` per architecture."""
    rows = ["| architecture | $T \\le 3\\xi$: accuracy (cells) | $3\\xi < T < 6\\xi$ | $T \\ge 6\\xi$ |",
            "|---|---|---|---|"]
    for arch, s in summaries.items():
        cells = []
        for k in ("T <= 3xi", "3xi < T < 6xi", "T >= 6xi"):
            m, n = s[k]
            cells.append(f"{m:.2f} ({n})" if n else "– (0)")
        rows.append(f"| {arch} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def xi_table(overlays: dict) -> str:
    r"""Markdown table of :math:`\mu_f(\alpha)` and the predicted :math:`\xi` per architecture."""
    archs = list(overlays)
    a = overlays[archs[0]]["alpha"]
    head = "| $\\alpha$ | " + " | ".join(f"{arch}: $\\mu_f$ | $\\xi$" for arch in archs) + " |"
    rule = "|---|" + "---|---|" * len(archs)
    rows = [head, rule]
    paper = [arch for arch in archs if "xi_paper" in overlays[arch]]
    if paper:
        head = head + "".join(f" {arch}: $\\xi$ (A.2.3) |" for arch in paper)
        rule = rule + "---|" * len(paper)
        rows = [head, rule]
    fmt = lambda x: f"{x:.3g}" if np.isfinite(x) else "not converged"  # noqa: E731
    for i, al in enumerate(a):
        cells = []
        for arch in archs:
            ov = overlays[arch]
            cells += [f"{ov['mu_f'][i]:.2f}", fmt(ov["xi"][i])]
        cells += [fmt(overlays[arch]["xi_paper"][i]) for arch in paper]
        rows.append(f"| {al:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def comparison(untied: dict, tied: dict, cfg: TrainabilityConfig) -> str:
    """Markdown table: what the paper reports (Figures 2 and 6) beside this run's :func:`verdict`
    and region accuracies (:func:`region_summary`) per architecture."""
    def cell(s):
        lo, n_lo = s["T <= 3xi"]
        hi, n_hi = s["T >= 6xi"]
        if not n_lo or not n_hi:
            return "the grid has no cells on one side of the band; no verdict"
        return f"{verdict(s)}: {lo:.2f} below $3\\xi$, {hi:.2f} beyond $6\\xi$"

    rows = ["| | the paper | this run (profile `%s`) |" % cfg.profile, "|---|---|---|"]
    for arch in untied:
        rows.append(f"| {arch}, untied (Fig. 2) | the transition from high to low accuracy lies between "
                    f"$3\\xi$ and $6\\xi$ | {cell(untied[arch])} |")
    for arch in tied:
        rows.append(f"| {arch}, tied (Fig. 6) | better where $\\xi$ is large, with visible deviations from "
                    f"the untied prediction | {cell(tied[arch])} |")
    return "\n".join(rows)


def stored_paper_results():
    """The paper profile's runs that the results store holds (nothing trained), as a
    :class:`~rnn_mft.experiments.training._common.StoredPaper` whose ``results`` has the layout
    of :func:`run` with only the stored lengths of each architecture and weight kind (and the
    theory's overlays of every architecture with any), or None when none is stored."""
    cfg = config("paper")

    def assemble(loaded):
        out = {"untied": {}, "tied": {}}
        for u, res in loaded:
            out["tied" if u["config"].get("tied") else "untied"].setdefault(u["args"][0], {}).update(res)
        for kind in ("untied", "tied"):
            out[kind] = {a: {T: out[kind][a][T] for T in cfg.Ts if T in out[kind][a]}
                         for a in cfg.archs if a in out[kind]}
        out["overlays"] = {a: overlay(cfg, a) for a in cfg.archs if a in out["untied"] or a in out["tied"]}
        return out

    return stored_paper(sys.modules[__name__], assemble)


def cost(cfg: TrainabilityConfig) -> dict:
    """Work of ``cfg`` for both Figure 2 and Figure 6: ensemble runs and sequential time steps
    (training steps x the longest length of each ensemble, summed; what bounds the time on a
    GPU), and what one ensemble per length would have cost."""
    runs, seq = 0, 0
    for tied in (False, True):
        for e in ensembles(cfg.replace(tied=tied)):
            runs += 1
            seq += e["steps"] * max(e["Ts"])
    per_T = 2 * sum(cfg.steps[a] * T for a in cfg.archs for T in cfg.Ts)
    return {"runs": runs, "sequential_steps": seq, "sequential_steps_one_ensemble_per_T": per_T}
