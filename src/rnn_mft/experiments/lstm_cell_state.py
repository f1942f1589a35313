"""Figure 7: the stationary LSTM cell state, Algorithm 1's samples against simulated networks,
and the deterministic law of the two-state theory (:mod:`rnn_mft.theory.lstm_twostate`).

``config(profile)`` gives the two Thetas, the sampler's n_s / n_iters / seed and the simulated
network's width N, length T and number of networks; ``run(cfg)`` returns both sets of samples,
the grid law (nodes ``grid_c``, probabilities ``grid_p``) and xi from both theories.
"""
from __future__ import annotations

import numpy as np

from . import check_profile
from ..sim import simulate_cell_state
from ..theory import Theta, analyze, lstm_twostate, sample_cell_state

__all__ = ["config", "run", "thetas"]


def thetas() -> dict:
    """Two Thetas with differently shaped cell-state laws (unimodal; multimodal)."""
    return {
        "unimodal": Theta.uniform("lstm", sigma2=1.0, nu2=1.0, rho2=0.1).replace({"f.mu": 1.0}),
        "multimodal": Theta.uniform("lstm", sigma2=0.01, nu2=0.0).replace(
            {"f.nu2": 9.0, "r.nu2": 4.0, "i.mu": 2.0}),
    }


def config(profile: str) -> dict:
    check_profile(profile)
    return {
        "smoke": dict(n_s=2000, n_iters=100, N=200, T=60, n_seeds=2, seed=0),
        "ci": dict(n_s=20000, n_iters=300, N=200, T=300, n_seeds=25, seed=0),
        "paper": dict(n_s=100000, n_iters=500, N=200, T=500, n_seeds=100, seed=0),
    }[profile] | {"profile": profile}


def run(cfg: dict) -> dict:
    out = {}
    for name, th in thetas().items():
        r = analyze("lstm", th, 1.0, n_s=min(cfg["n_s"], 4000), n_iters=cfg["n_iters"], seed=cfg["seed"],
                    method="paper")
        c = sample_cell_state(th, q_h=r.q_s, mu_h=r.mu_s, n_s=cfg["n_s"], n_iters=cfg["n_iters"], seed=cfg["seed"] + 1)
        sim = simulate_cell_state(th, cfg["N"], cfg["T"], n_seeds=cfg["n_seeds"], seed=cfg["seed"] + 2)
        two = analyze("lstm", th, 1.0)
        gc, gp = lstm_twostate.stationary_law(th)
        out[name] = dict(theta=th, theory=c, sim=sim, q_h=float(r.q_s), chi=float(r.chi), xi=float(r.xi),
                         grid_c=gc, grid_p=gp, q_h_two_state=float(two.q_s), xi_two_state=float(two.xi))
    return out
