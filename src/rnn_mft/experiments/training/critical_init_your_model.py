"""Chapter *Critical initialization for your own model*: a stock ``torch.nn.LSTM`` with PyTorch's
default initialization against the same module after :func:`rnn_mft.nets.critical_init_`, on the
synthetic copy-memory task (:class:`rnn_mft.train.CopyMemoryTask`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch

from ... import nets, theory, train
from ..protocol import Config, doc
from ._common import stored, sweep, unit

__all__ = ["MODELS", "CriticalInitConfig", "config", "make_task", "make_models", "analyze_models", "run",
           "run_models", "run_model", "report", "profile_numbers", "run_name", "theta_table", "summary_table",
           "units"]

EXPERIMENT = "critical_init_your_model"
MODELS = ("default", "critical")

@dataclass(frozen=True)
class CriticalInitConfig(Config):
    """Settings of the chapter "Critical initialization for your own model". Every field but
    ``profile`` enters the hash of the stored runs' names (:func:`run_name`)."""

    T: int = doc(100, "sequence length of the copy-memory task, and the target xi of critical_init_")
    hidden: int = doc(32, "width of the torch.nn.LSTM")
    n_symbols: int = doc(4, "symbols of the copy-memory task (chance: one over this)")
    steps: int = doc(500, "training steps")
    batch_size: int = doc(32, "minibatch size")
    n_eval: int = doc(512, "held-out sequences the accuracy is measured on")
    eval_every: int = doc(25, "steps between evaluations")
    lr: float = doc(3e-3, "learning rate")
    noise: float = doc(1.0, "standard deviation of the Gaussian noise after the symbol")
    seed: int = doc(0, "seed of the weights, the read-out and the data")
    clip: float = doc(1.0, "gradients clipped at this norm")
    optimizer: str = doc("adam", "optimizer")
    PROFILES = {
        # seconds: the test suite executes every chapter with this profile
        "smoke": dict(T=20, hidden=8, n_symbols=4, steps=6, batch_size=16, n_eval=64, eval_every=3, lr=3e-3),
        # a few minutes on 2 CPU cores
        "ci": {},
        # a GPU: longer sequences, a wider network, many more steps
        "paper": dict(T=1000, hidden=128, n_symbols=8, steps=5000, batch_size=64, n_eval=2048, eval_every=100,
                      lr=1e-3),
    }


def config(profile: str) -> CriticalInitConfig:
    """The settings of ``profile`` (smoke, ci or paper)."""
    return CriticalInitConfig.for_profile(profile)


def make_task(cfg: CriticalInitConfig) -> train.CopyMemoryTask:
    return train.CopyMemoryTask(T=cfg.T, n_symbols=cfg.n_symbols, noise=cfg.noise, n_eval=cfg.n_eval)


def make_models(cfg: CriticalInitConfig, task) -> dict:
    """Two identical stock LSTMs; the second re-initialized with ``critical_init_(xi=T)``."""
    torch.manual_seed(cfg.seed)
    default = torch.nn.LSTM(task.n_in, cfg.hidden, batch_first=True)
    critical = torch.nn.LSTM(task.n_in, cfg.hidden, batch_first=True)
    nets.critical_init_(critical, xi=float(cfg.T), generator=torch.Generator().manual_seed(cfg.seed))
    return {"default": default, "critical": critical}


def analyze_models(models: dict) -> dict:
    """``{name: (theta, analysis)}``: PyTorch's default Theta, and the critical one read back from
    the weights the module actually holds (``theta_of_module(..., empirical=True)``)."""
    out = {}
    for name, lstm in models.items():
        th = nets.theta_of_module(lstm, empirical=(name != "default"))
        out[name] = (th, theory.analyze("lstm", th, sigma_z=1.0, R=1.0))
    return out


def _key(cfg: CriticalInitConfig) -> str:
    return hashlib.sha1(json.dumps({k: v for k, v in cfg.to_dict().items() if k != "profile"},
                                   sort_keys=True).encode()).hexdigest()[:10]


def run_name(cfg: CriticalInitConfig, model: str) -> str:
    """The stored name of ``model`` (``default`` or ``critical``): ``<model>-<hash of cfg>``."""
    if model not in MODELS:
        raise ValueError(f"model={model!r}; allowed: {', '.join(MODELS)}")
    return f"{model}-{_key(cfg)}"


def run_models(cfg: CriticalInitConfig, models: dict, task, store: train.ResultsStore | None = None) -> dict:
    """Train each model (same data, same read-out initialization); results are stored under a key
    that hashes the config (profiles ``ci`` and ``paper``; ``smoke`` writes nothing unless
    ``$RNN_MFT_STORE_SMOKE``), with a checkpoint that an interrupted run resumes from."""
    tc = train.TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, optimizer=cfg.optimizer,
                           lr=cfg.lr, clip=cfg.clip, eval_every=cfg.eval_every, seed=cfg.seed)

    def fit(lstm, ckpt=None):
        torch.manual_seed(cfg.seed + 1)          # the same read-out for both models
        return train.fit(nets.StockSequenceClassifier(lstm, task.n_out), task, tc, checkpoint=ckpt)

    return {name: stored(cfg.profile, EXPERIMENT, run_name(cfg, name), lambda ck, lstm=lstm: fit(lstm, ck), store)
            for name, lstm in models.items()}


def run(cfg: CriticalInitConfig, store: train.ResultsStore | None = None) -> dict:
    """The chapter's computation: the copy-memory task, the two stock LSTMs (:func:`make_models`),
    their Thetas and mean-field analyses (:func:`analyze_models`) and both trained
    (:func:`run_models`): ``dict(task=..., models=..., analyses=..., results=...)``."""
    task = make_task(cfg)
    models = make_models(cfg, task)
    analyses = analyze_models(models)
    with sweep(EXPERIMENT, len(models)):
        results = run_models(cfg, models, task, store)
    return dict(task=task, models=models, analyses=analyses, results=results)


def report(cfg: CriticalInitConfig, result: dict) -> dict:
    """The numbers of the page's prose: the settings, chi and xi of both initializations
    (``chi_default``, ``xi_default``, ``chi_critical``, ``xi_critical``; the critical one read back
    from the module's weights), the final training loss and held-out accuracy of both
    (``loss_<model>``, ``acc_<model>``), chance (``n_out`` classes, ``chance_loss`` = log ``n_out``,
    ``chance_acc``), where the runs ran (``device``, ``code_version``)."""
    n_out = result["task"].n_out
    out = {k: getattr(cfg, k) for k in ("profile", "T", "hidden", "n_symbols", "noise", "steps", "lr", "batch_size",
                                        "clip", "n_eval", "eval_every", "seed")}
    out["optimizer"] = cfg.optimizer.capitalize()
    for name in MODELS:
        a = result["analyses"][name][1]
        r = result["results"][name]
        out[f"chi_{name}"] = float(a.chi)
        out[f"xi_{name}"] = float(a.xi)
        out[f"loss_{name}"] = float(r.final["train_loss"][0])
        out[f"acc_{name}"] = float(r.final["eval_acc"][0])
    out["n_out"] = int(n_out)
    out["chance_loss"] = float(np.log(n_out))
    out["chance_acc"] = 1 / n_out
    meta = result["results"]["critical"].meta
    out["device"] = str(meta.get("device", "?"))
    out["code_version"] = str(meta.get("code_version", "?"))
    return out


def profile_numbers() -> dict:
    """Profile ``paper``'s settings that the chapter's prose names: ``paper_T``, ``paper_hidden``,
    ``paper_steps``."""
    paper = config("paper")
    return dict(paper_T=paper.T, paper_hidden=paper.hidden, paper_steps=paper.steps)


def run_model(cfg: CriticalInitConfig, model: str, store: train.ResultsStore | None = None) -> train.RunResult:
    """One model of :func:`run_models` alone (the task and both modules built as the chapter builds them),
    so that the two can run as separate jobs."""
    task = make_task(cfg)
    models = make_models(cfg, task)
    run_name(cfg, model)                             # checks the name
    return run_models(cfg, {model: models[model]}, task, store)[model]


def units(profile: str) -> list[dict]:
    """The stored runs the chapter loads at ``profile`` (one per model), without training."""
    cfg = config(profile)
    return [unit(profile, EXPERIMENT, run_name(cfg, m), run_model, [m]) for m in MODELS]


def theta_table(thetas: dict) -> str:
    """Markdown table of per-gate hyperparameters, one column group per Theta."""
    names = list(thetas)
    head = "| gate | " + " | ".join(f"{n}: $\\sigma^2$ | $\\nu^2$ | $\\rho^2$ | $\\mu$" for n in names) + " |"
    rule = "|---|" + "---|---|---|---|" * len(names)
    rows = []
    for k, label in zip("ifro", ["i", "f", "r (PyTorch g)", "o"]):
        cells = []
        for th in thetas.values():
            p = th[k]
            cells += [f"{float(p.sigma2):.3g}", f"{float(p.nu2):.3g}", f"{float(p.rho2):.2g}", f"{float(p.mu):.3g}"]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows])


def summary_table(analyses: dict, results: dict, task=None) -> str:
    """Markdown table: xi, final loss, held-out accuracy and wall time of each model."""
    rows = ["| initialization | $\\xi$ (mean field) | final training loss | held-out accuracy | wall time |",
            "|---|---|---|---|---|"]
    for name, label in (("default", "PyTorch default"), ("critical", "critical_init_")):
        r, a = results[name], analyses[name][1]
        rows.append(f"| {label} | {float(a.xi):.3g} | {r.final['train_loss'][0]:.3f} | "
                    f"{r.final['eval_acc'][0]:.3f} | {r.meta['wall_time_s']:.0f} s |")
    return "\n".join(rows)
