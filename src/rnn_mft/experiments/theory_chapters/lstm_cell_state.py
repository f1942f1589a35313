"""Figure 7: the stationary LSTM cell state, Algorithm 1's samples against simulated networks,
and the deterministic law of the two-state theory (:mod:`rnn_mft.theory.lstm_cellstate`).

``config(profile)`` gives the two Thetas, the sampler's n_s / n_iters / seed and the simulated
network's width N, length T and number of networks; ``run(cfg)`` returns both sets of samples,
the grid law (nodes ``grid_c``, probabilities ``grid_p``) and xi from both theories.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..protocol import Config, doc
from ...sim import simulate_cell_state
from ...theory import Theta, analyze, lstm_cellstate, sample_cell_state

__all__ = ["SHAPES", "CellStateConfig", "config", "run", "report", "thetas", "theta_text"]

#: the two Thetas: the fields every gate shares, then per-gate overrides ("gate.field"); every
#: field not named is 0
SHAPES = {"unimodal": (dict(sigma2=1.0, nu2=1.0, rho2=0.1), {"f.mu": 1.0}),
          "multimodal": (dict(sigma2=0.01, nu2=0.0), {"f.nu2": 9.0, "r.nu2": 4.0, "i.mu": 2.0})}

_SYMBOL = {"sigma2": r"\sigma_{g}^2", "nu2": r"\nu_{g}^2", "rho2": r"\rho_{g}^2", "mu": r"\mu_{g}"}


def thetas() -> dict:
    """Two Thetas with differently shaped cell-state laws (unimodal; multimodal), from :data:`SHAPES`."""
    return {name: Theta.uniform("lstm", **shared).replace(gates) for name, (shared, gates) in SHAPES.items()}


def theta_text(name: str) -> str:
    """The Theta :data:`SHAPES` ``[name]`` as Markdown for the chapter's prose: the nonzero shared
    fields (gate index ``k``), the per-gate ones, then "all other fields 0"."""
    shared, gates = SHAPES[name]
    parts = [f"${_SYMBOL[f].format(g='k')} = {v:g}$" for f, v in shared.items() if v != 0]
    for key, v in gates.items():
        g, f = key.split(".")
        parts.append(f"${_SYMBOL[f].format(g=g)} = {v:g}$")
    return ", ".join(parts + ["all other fields 0"])


@dataclass(frozen=True)
class CellStateConfig(Config):
    """Settings of the chapter "The LSTM cell state (Figure 7)"; defaults are ``ci``."""

    n_s: int = doc(20000, "Algorithm 1's samples of the cell state")
    n_iters: int = doc(300, "Algorithm 1's iterations of eq. (16)")
    N: int = doc(200, "width of the simulated untied LSTMs")
    T: int = doc(300, "steps each simulated network runs before its cell states are read")
    n_seeds: int = doc(25, "simulated networks per Theta")
    seed: int = doc(0, "base seed (sampler, simulation)")
    PROFILES = {"smoke": dict(n_s=2000, n_iters=100, T=60, n_seeds=2), "ci": {},
                "paper": dict(n_s=100000, n_iters=500, T=500, n_seeds=100)}


def config(profile: str) -> CellStateConfig:
    """The settings at ``profile`` (smoke, ci or paper)."""
    return CellStateConfig.for_profile(profile)


def run(cfg: CellStateConfig, store=None) -> dict:
    """Per Theta: Algorithm 1's samples, simulated cell states, the grid law and both xi
    (``store`` is not used)."""
    out = {}
    for name, th in thetas().items():
        r = analyze("lstm", th, 1.0, n_s=min(cfg.n_s, 4000), n_iters=cfg.n_iters, seed=cfg.seed,
                    method="paper")
        c = sample_cell_state(th, q_h=r.q_s, mu_h=r.mu_s, n_s=cfg.n_s, n_iters=cfg.n_iters, seed=cfg.seed + 1)
        sim = simulate_cell_state(th, cfg.N, cfg.T, n_seeds=cfg.n_seeds, seed=cfg.seed + 2)
        two = analyze("lstm", th, 1.0)
        gc, gp = lstm_cellstate.stationary_law(th)
        out[name] = dict(theta=th, theory=c, sim=sim, q_h=float(r.q_s), chi=float(r.chi), xi=float(r.xi),
                         grid_c=gc, grid_p=gp, q_h_two_state=float(two.q_s), xi_two_state=float(two.xi))
    return out


def report(cfg: CellStateConfig, res: dict) -> dict:
    """The numbers of the page's prose, per Theta ``<name>``: mean and standard deviation of the
    cell state from Algorithm 1 (``alg_mean_<name>``, ``alg_sd_<name>``), the grid law
    (``grid_...``) and the simulation (``sim_...``), Q_h* of both methods, both xi, the Theta as
    text (``theta_<name>``, :func:`theta_text`); and the settings (``cfg_<field>``)."""
    out = {f"cfg_{k}": v for k, v in cfg.to_dict().items()}
    out.update({f"theta_{name}": theta_text(name) for name in SHAPES})
    for name, r in res.items():
        gm = float(r["grid_p"] @ r["grid_c"])
        out.update({f"alg_mean_{name}": float(r["theory"].mean()), f"alg_sd_{name}": float(r["theory"].std()),
                    f"grid_mean_{name}": gm,
                    f"grid_sd_{name}": float(r["grid_p"] @ r["grid_c"] ** 2 - gm**2) ** 0.5,
                    f"sim_mean_{name}": float(r["sim"].mean()), f"sim_sd_{name}": float(r["sim"].std()),
                    f"q_h_{name}": r["q_h"], f"q_h_two_state_{name}": r["q_h_two_state"],
                    f"xi_{name}": r["xi"], f"xi_two_state_{name}": r["xi_two_state"]})
    return out
