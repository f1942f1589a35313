"""Figure 3: squared singular values of the untied peephole-LSTM state-to-state Jacobian, and
the check of the second moment (free probability vs eq. (14) as printed) for every architecture.
"""
from __future__ import annotations

import numpy as np

from . import check_profile
from ..sim import jacobian, squared_singular_values
from ..theory import ARCHS, Theta, analyze

__all__ = ["config", "run", "thetas", "check_thetas"]


def thetas() -> dict:
    """Standard (Appendix C.5) and critical (Appendix C.4, close to dynamical isometry)."""
    return {"standard": Theta.standard("peephole_lstm"), "critical": Theta.critical("peephole_lstm")}


def check_thetas() -> dict:
    """One generic Theta per architecture for the m2 check (all gates random)."""
    out = {}
    for arch in ARCHS:
        if arch == "vanilla":
            out[arch] = Theta.uniform("vanilla", sigma2=1.3, nu2=0.5, rho2=0.05)
        else:
            out[arch] = Theta.uniform(arch, sigma2=1.0, nu2=1.0, rho2=0.1).replace({"f.mu": 1.0})
    return out


def config(profile: str) -> dict:
    check_profile(profile)
    return {
        "smoke": dict(N=150, T=10, n_real=1, check_N=150, check_real=1, n_s=500, n_iters=60),
        "ci": dict(N=1000, T=100, n_real=1, check_N=800, check_real=2, n_s=2000, n_iters=200),
        "paper": dict(N=2000, T=100, n_real=3, check_N=2000, check_real=4, n_s=20000, n_iters=400),
    }[profile] | {"profile": profile}


def run(cfg: dict) -> dict:
    fig3 = {}
    for name, th in thetas().items():
        lam = np.concatenate([squared_singular_values(jacobian("peephole_lstm", th, cfg["N"], T=cfg["T"], seed=s))
                              for s in range(cfg["n_real"])])
        r = analyze("peephole_lstm", th, 1.0)
        fig3[name] = dict(lam=lam, m1=float(r.m1), m2=float(r.m2), var=float(r.var), m2_printed=float(r.m2_printed),
                          xi=float(r.xi), theta=th)
    rows = []
    for arch, th in check_thetas().items():
        r = analyze(arch, th, 1.0, n_s=cfg["n_s"], n_iters=cfg["n_iters"])
        lam = np.stack([squared_singular_values(jacobian(arch, th, cfg["check_N"], T=30, seed=s))
                        for s in range(cfg["check_real"])])
        rows.append(dict(arch=arch, m1_theory=float(r.m1), m1_sim=float(lam.mean()), m2_theory=float(r.m2),
                         m2_printed=float(r.m2_printed), m2_sim=float((lam**2).mean()),
                         se=float(np.sqrt((lam**2).var() / lam.size))))
    return {"fig3": fig3, "m2_check": rows}
