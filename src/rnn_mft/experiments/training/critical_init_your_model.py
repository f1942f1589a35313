"""Chapter *Critical initialization for your own model*: a stock ``torch.nn.LSTM`` with PyTorch's
default initialization against the same module after :func:`rnn_mft.nets.critical_init_`, on the
synthetic copy-memory task (:class:`rnn_mft.train.CopyMemoryTask`).
"""
from __future__ import annotations

import copy
import hashlib
import json

import numpy as np
import torch

from ... import nets, theory, train
from ..protocol import check_profile
from ._common import store_smoke, unit

__all__ = ["CONFIGS", "MODELS", "config", "describe", "make_task", "make_models", "analyze_models", "run",
           "run_model", "run_name", "theta_table", "summary_table", "units"]

EXPERIMENT = "critical_init_your_model"
MODELS = ("default", "critical")

CONFIGS = {
    # seconds: the test suite executes every chapter with this profile
    "smoke": dict(T=20, hidden=8, n_symbols=4, steps=6, batch_size=16, n_eval=64, eval_every=3, lr=3e-3),
    # a few minutes on 2 CPU cores
    "ci": dict(T=100, hidden=32, n_symbols=4, steps=500, batch_size=32, n_eval=512, eval_every=25, lr=3e-3),
    # a GPU: longer sequences, a wider network, many more steps
    "paper": dict(T=1000, hidden=128, n_symbols=8, steps=5000, batch_size=64, n_eval=2048, eval_every=100, lr=1e-3),
}
_COMMON = dict(noise=1.0, seed=0, clip=1.0, optimizer="adam")


def config(profile: str) -> dict:
    """The settings of ``profile`` (a copy)."""
    cfg = dict(copy.deepcopy(CONFIGS[check_profile(profile)]), **_COMMON)
    cfg["profile"] = profile
    return cfg


def describe(cfg: dict) -> str:
    """Markdown sentence stating the settings of the run."""
    return (f"**Settings of this run (profile `{cfg['profile']}`):** copy-memory task with sequence length "
            f"$T = {cfg['T']}$, {cfg['n_symbols']} symbols, Gaussian noise of standard deviation {cfg['noise']} "
            f"after the symbol; `torch.nn.LSTM` of width {cfg['hidden']}; {cfg['steps']} steps of "
            f"{cfg['optimizer'].capitalize()} (learning rate {cfg['lr']:g}, batch {cfg['batch_size']}, gradient "
            f"norm clipped at {cfg['clip']}); held-out accuracy on {cfg['n_eval']} sequences every "
            f"{cfg['eval_every']} steps; seed {cfg['seed']}. Profile `paper` uses $T = 1000$, width 128 and "
            f"5000 steps on a GPU.")


def make_task(cfg: dict) -> train.CopyMemoryTask:
    return train.CopyMemoryTask(T=cfg["T"], n_symbols=cfg["n_symbols"], noise=cfg["noise"], n_eval=cfg["n_eval"])


def make_models(cfg: dict, task) -> dict:
    """Two identical stock LSTMs; the second re-initialized with ``critical_init_(xi=T)``."""
    torch.manual_seed(cfg["seed"])
    default = torch.nn.LSTM(task.n_in, cfg["hidden"], batch_first=True)
    critical = torch.nn.LSTM(task.n_in, cfg["hidden"], batch_first=True)
    nets.critical_init_(critical, xi=float(cfg["T"]), generator=torch.Generator().manual_seed(cfg["seed"]))
    return {"default": default, "critical": critical}


def analyze_models(models: dict) -> dict:
    """``{name: (theta, analysis)}``: PyTorch's default Theta, and the critical one read back from
    the weights the module actually holds (``theta_of_module(..., empirical=True)``)."""
    out = {}
    for name, lstm in models.items():
        th = nets.theta_of_module(lstm, empirical=(name != "default"))
        out[name] = (th, theory.analyze("lstm", th, sigma_z=1.0, R=1.0))
    return out


def _key(cfg: dict) -> str:
    return hashlib.sha1(json.dumps({k: v for k, v in cfg.items() if k != "profile"},
                                   sort_keys=True).encode()).hexdigest()[:10]


def run_name(cfg: dict, model: str) -> str:
    """The stored name of ``model`` (``default`` or ``critical``): ``<model>-<hash of cfg>``."""
    if model not in MODELS:
        raise ValueError(f"model={model!r}; allowed: {', '.join(MODELS)}")
    return f"{model}-{_key(cfg)}"


def _stores(profile: str) -> bool:
    return profile != "smoke" or store_smoke()


def run(cfg: dict, models: dict, task, store: train.ResultsStore | None = None) -> dict:
    """Train each model (same data, same read-out initialization); results are stored under a key
    that hashes the config (profiles ``ci`` and ``paper``; ``smoke`` writes nothing unless
    ``$RNN_MFT_STORE_SMOKE``), with a checkpoint that an interrupted run resumes from."""
    tc = train.TrainConfig(steps=cfg["steps"], batch_size=cfg["batch_size"], optimizer=cfg["optimizer"],
                           lr=cfg["lr"], clip=cfg["clip"], eval_every=cfg["eval_every"], seed=cfg["seed"])

    def fit(lstm, ckpt=None):
        torch.manual_seed(cfg["seed"] + 1)          # the same read-out for both models
        return train.fit(nets.StockSequenceClassifier(lstm, task.n_out), task, tc, checkpoint=ckpt)

    results = {}
    for name, lstm in models.items():
        if not _stores(cfg["profile"]):
            results[name] = fit(lstm)
        else:
            store = store or train.ResultsStore()
            run = run_name(cfg, name)
            ck = store.checkpoint_path(cfg["profile"], EXPERIMENT, run)
            results[name] = store.load_or_run(cfg["profile"], EXPERIMENT, run,
                                              lambda lstm=lstm, ck=ck: fit(lstm, str(ck)), checkpoint=ck)
    return results


def run_model(cfg: dict, model: str, store: train.ResultsStore | None = None) -> train.RunResult:
    """One model of :func:`run` alone (the task and both modules built as the chapter builds them),
    so that the two can run as separate jobs."""
    task = make_task(cfg)
    models = make_models(cfg, task)
    run_name(cfg, model)                             # checks the name
    return run(cfg, {model: models[model]}, task, store)[model]


def units(profile: str) -> list[dict]:
    """The stored runs the chapter loads at ``profile`` (one per model), without training."""
    cfg = config(profile)
    return [unit(profile, EXPERIMENT, run_name(cfg, m), __name__, "run_model", [m]) for m in MODELS]


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


def summary_table(analyses: dict, results: dict, task) -> str:
    """Markdown table: xi, final loss, held-out accuracy and wall time of each model."""
    rows = ["| initialization | $\\xi$ (mean field) | final training loss | held-out accuracy | wall time |",
            "|---|---|---|---|---|"]
    for name, label in (("default", "PyTorch default"), ("critical", "critical_init_")):
        r, a = results[name], analyses[name][1]
        rows.append(f"| {label} | {float(a.xi):.3g} | {r.final['train_loss'][0]:.3f} | "
                    f"{r.final['eval_acc'][0]:.3f} | {r.meta['wall_time_s']:.0f} s |")
    meta = results["critical"].meta
    return ("\n".join(rows) + f"\n\nChance: loss $\\log {task.n_out} = {np.log(task.n_out):.3f}$, "
            f"accuracy {1 / task.n_out:.3f}. Device: {meta['device']}; code {meta['code_version']}.")
