"""Table 1: the architectures in the form of eq. (1), checked numerically.

``run(cfg)`` draws random weights and states and checks, for every architecture, that the
library's reference update (:func:`rnn_mft.theory.architectures.reference_step`, the row of
Table 1) agrees with (a) the simulator's batched torch update (:data:`rnn_mft.sim.STEPS`),
(b) the mean-field theory's reading ``s' = alpha(u_f) s + beta(u_f) T`` and (c) for the LSTM,
the unrolled cell state of Table 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..protocol import Config, doc
from ...sim.networks import STEPS
from ...theory import ARCHS
from ...theory.architectures import TABLE1, logistic, reference_step, unrolled_cell_state
from ...theory.meanfield import FUNCS, SPECS

__all__ = ["TOLERANCE", "ArchitecturesConfig", "config", "run", "report"]

#: the largest difference (float64) between the reference update and any other reading of
#: Table 1 that the chapter accepts; above it the page stops with an error
TOLERANCE = 1e-10


@dataclass(frozen=True)
class ArchitecturesConfig(Config):
    """Settings of the chapter "The architectures (Table 1)"; defaults are ``ci``."""

    N: int = doc(64, "width of the random networks")
    n_in: int = doc(32, "input width")
    batch: int = doc(16, "states and inputs drawn per architecture")
    T: int = doc(20, "steps of the LSTM's unrolled-form check")
    seed: int = doc(0, "seed of the random weights, states and inputs")
    PROFILES = {"smoke": dict(N=16, n_in=8, batch=4, T=5), "ci": {}, "paper": dict(N=256, n_in=64, batch=64, T=100)}


def config(profile: str) -> ArchitecturesConfig:
    """The settings at ``profile`` (smoke, ci or paper)."""
    return ArchitecturesConfig.for_profile(profile)


def _params(arch, N, n_in, rng):
    return {g: (rng.normal(0, 1 / np.sqrt(N), (N, N)), rng.normal(0, 1 / np.sqrt(n_in), (N, n_in)),
                rng.normal(0.5, 0.5, N)) for g in ARCHS[arch]}


def _spec_form(arch, P, s, z):
    """The theory's reading of the row: s' = alpha(u_f) s + beta(u_f) prod_k phi_k(u_k)."""
    sp = SPECS[arch]
    u = {g: s @ W.T + z @ U.T + b for g, (W, U, b) in P.items() if g != "r2"}
    if sp.gru:
        W, U, b = P["r2"]
        u["r2"] = (logistic(u["r"]) * s) @ W.T + z @ U.T + b
    T = 1.0
    for g, name in sp.T:
        T = T * FUNCS[name](u[g])
    return FUNCS[sp.alpha](u["f"]) * s + FUNCS[sp.beta](u["f"]) * T


def run(cfg: ArchitecturesConfig, store=None) -> list:
    """One row per architecture: the largest differences between the reference update and each
    other reading of Table 1 (``store`` is not used)."""
    rng = np.random.default_rng(cfg.seed)
    N, n_in, B = cfg.N, cfg.n_in, cfg.batch
    rows = []
    for arch in ARCHS:
        P = _params(arch, N, n_in, rng)
        s, z = rng.normal(size=(B, N)), rng.normal(size=(B, n_in))
        Pt = {g: tuple(torch.tensor(a)[None] for a in (W, U, b[:, None])) for g, (W, U, b) in P.items()}
        zt = torch.tensor(z.T)[None]
        checks = {}
        if arch == "lstm":
            c = rng.normal(size=(B, N))
            h1, c1 = reference_step(arch, (s, c), z, P)
            ht, ct = STEPS[arch](Pt, (torch.tensor(s.T)[None], torch.tensor(c.T)[None]), zt)
            checks["simulator"] = max(np.abs(h1 - ht[0].numpy().T).max(), np.abs(c1 - ct[0].numpy().T).max())
            # unrolled Table 1 form: iterate T steps and compare with the closed sum
            h, cc = s[0], c[0]
            uf, ui, ur = [], [], []
            for _ in range(cfg.T):
                zz = rng.normal(size=n_in)
                u = {g: P[g][0] @ h + P[g][1] @ zz + P[g][2] for g in "ifro"}
                uf.append(u["f"]); ui.append(u["i"]); ur.append(u["r"])
                h, cc = reference_step(arch, (h, cc), zz, P)
            checks["unrolled form"] = np.abs(unrolled_cell_state(c[0], uf, ui, ur) - cc).max()
        else:
            s1 = reference_step(arch, s, z, P)
            checks["simulator"] = np.abs(s1 - STEPS[arch](Pt, torch.tensor(s.T)[None], zt)[0].numpy().T).max()
            checks["theory form"] = np.abs(s1 - _spec_form(arch, P, s, z)).max()
        rows.append(dict(arch=arch, info=TABLE1[arch], checks=checks))
    return rows


def report(cfg: ArchitecturesConfig, rows: list) -> dict:
    """The numbers of the page's prose: the largest difference over every check (``worst``), the
    tolerance it must stay under (``tolerance``, :data:`TOLERANCE`), and the settings
    (``cfg_<field>``)."""
    return {"worst": max(v for r in rows for v in r["checks"].values()), "tolerance": TOLERANCE,
            **{f"cfg_{k}": v for k, v in cfg.to_dict().items()}}
