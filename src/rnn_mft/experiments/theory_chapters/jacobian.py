"""Figure 3: squared singular values of the untied peephole-LSTM state-to-state Jacobian, and
the check of the second moment (free probability vs eq. (14) as printed) for every architecture.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..protocol import Config, doc
from ...sim import jacobian, squared_singular_values
from ...theory import ARCHS, Theta, analyze

__all__ = ["CHECK_T", "CHECK_THETA", "CHECK_THETA_VANILLA", "SIGMA_Z", "JacobianConfig", "config", "run", "report",
           "thetas", "check_thetas"]

#: input correlation of the theory (identical input sequences) in Figure 3 and the m2 check
SIGMA_Z = 1.0
#: the m2 check: steps of input before the Jacobian is taken
CHECK_T = 30
#: the m2 check's generic Theta: every gate of the gated architectures (with mu_f on the forget
#: gate, the other means 0), and the vanilla RNN's own (means 0)
CHECK_THETA = dict(sigma2=1.0, nu2=1.0, rho2=0.1, mu_f=1.0)
CHECK_THETA_VANILLA = dict(sigma2=1.3, nu2=0.5, rho2=0.05)


def thetas() -> dict:
    """Standard (Appendix C.5) and critical (Appendix C.4, close to dynamical isometry)."""
    return {"standard": Theta.standard("peephole_lstm"), "critical": Theta.critical("peephole_lstm")}


def check_thetas() -> dict:
    """One generic Theta per architecture for the m2 check (all gates random)."""
    out = {}
    for arch in ARCHS:
        if arch == "vanilla":
            out[arch] = Theta.uniform("vanilla", **CHECK_THETA_VANILLA)
        else:
            c = CHECK_THETA
            out[arch] = Theta.uniform(arch, sigma2=c["sigma2"], nu2=c["nu2"], rho2=c["rho2"]).replace({"f.mu": c["mu_f"]})
    return out


@dataclass(frozen=True)
class JacobianConfig(Config):
    """Settings of the chapter "The state-to-state Jacobian (Figure 3)"."""

    N: int = doc(1000, "width of the peephole LSTM whose Jacobian spectrum is Figure 3")
    T: int = doc(100, "steps of Gaussian input before the Jacobian is taken")
    n_real: int = doc(1, "independent networks pooled per histogram")
    check_N: int = doc(800, "width of the networks of the m2 check (every architecture)")
    check_real: int = doc(2, "networks per architecture in the m2 check")
    n_s: int = doc(2000, "Algorithm 1's samples (LSTM, paper's method only)")
    n_iters: int = doc(200, "Algorithm 1's iterations (LSTM, paper's method only)")
    PROFILES = {"smoke": dict(N=150, T=10, n_real=1, check_N=150, check_real=1, n_s=500, n_iters=60),
                "ci": {},
                "paper": dict(N=2000, T=100, n_real=3, check_N=2000, check_real=4, n_s=20000, n_iters=400)}


def config(profile: str) -> JacobianConfig:
    """The settings at ``profile`` (smoke, ci or paper)."""
    return JacobianConfig.for_profile(profile)


def run(cfg: JacobianConfig, store=None) -> dict:
    """Figure 3's spectra and the m2 check; theory only, so ``store`` is not used."""
    fig3 = {}
    for name, th in thetas().items():
        lam = np.concatenate([squared_singular_values(jacobian("peephole_lstm", th, cfg.N, T=cfg.T, seed=s))
                              for s in range(cfg.n_real)])
        r = analyze("peephole_lstm", th, SIGMA_Z)
        fig3[name] = dict(lam=lam, m1=float(r.m1), m2=float(r.m2), var=float(r.var), m2_printed=float(r.m2_printed),
                          xi=float(r.xi), theta=th)
    rows = []
    for arch, th in check_thetas().items():
        r = analyze(arch, th, SIGMA_Z, n_s=cfg.n_s, n_iters=cfg.n_iters)
        lam = np.stack([squared_singular_values(jacobian(arch, th, cfg.check_N, T=CHECK_T, seed=s))
                        for s in range(cfg.check_real)])
        rows.append(dict(arch=arch, m1_theory=float(r.m1), m1_sim=float(lam.mean()), m2_theory=float(r.m2),
                         m2_printed=float(r.m2_printed), m2_sim=float((lam**2).mean()),
                         se=float(np.sqrt((lam**2).var() / lam.size))))
    return {"fig3": fig3, "m2_check": rows}


def report(cfg: JacobianConfig, res: dict) -> dict:
    """The numbers of the page's prose: per architecture the m2 check's absolute deviations in
    standard errors (free probability, ``z_<arch>``; eq. (14) as printed, ``z14_<arch>``, NaN
    where it does not apply), eq. (14)'s relative error ``rel14_<arch>``, their largest values, and the spread (standard deviation) of the
    spectrum at both initializations, simulated and in theory; the check's settings: ``sigma_z``,
    ``check_T`` and its generic Theta (``check_<field>``, ``vanilla_<field>``)."""
    out = {"sigma_z": SIGMA_Z, "check_T": CHECK_T, **{f"check_{k}": v for k, v in CHECK_THETA.items()},
           **{f"vanilla_{k}": v for k, v in CHECK_THETA_VANILLA.items()}}
    for r in res["m2_check"]:
        out[f"z_{r['arch']}"] = abs(r["m2_sim"] - r["m2_theory"]) / r["se"]
        out[f"z14_{r['arch']}"] = abs(r["m2_sim"] - r["m2_printed"]) / r["se"]
        out[f"rel14_{r['arch']}"] = abs(r["m2_printed"] - r["m2_sim"]) / r["m2_sim"]
    fp = [v for k, v in out.items() if k.startswith("z_") and v == v]
    pr = [v for k, v in out.items() if k.startswith("z14_") and v == v]
    out["max_abs_z"] = max(fp) if fp else float("nan")
    out["max_abs_z14"] = max(pr) if pr else float("nan")
    for name, f in res["fig3"].items():
        out[f"sd_{name}"] = float(f["lam"].std())
        out[f"sd_theory_{name}"] = float(f["var"]) ** 0.5 if f["var"] >= 0 else float("nan")
    return out
