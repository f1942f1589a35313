r"""The chapter *The LSTM has two states*: the paper's LSTM time scale (Algorithm 1 with
Appendix A.2.3), the two-state theory (:mod:`rnn_mft.theory.lstm_twostate`) and simulated
networks (:mod:`rnn_mft.sim.lstm_tangent`), on the same Thetas.

``config(profile)`` sets the simulated width N, the number of seeds, Algorithm 1's sample size
and which Thetas run; ``run(cfg, store=None)`` (``store`` is not used) returns

* ``table``: one row per Theta with xi from A.2.3, from the two-state theory and from the
  network's tangent (with its 2-SE interval) at Sigma_z = 1;
* ``sz0``: the same at Sigma_z = 0 (independent inputs, C* = 0), the network measured by the
  cross-copy correlation response;
* ``jacobian``: m1, m2 of the 2N x 2N Jacobian of (h, c), theory against explicit Jacobians;
* ``solver``: for each target xi, the forget-gate bias mean mu_f that the two-state theory and
  the paper's formula prescribe (C.4's other fields), and the network's xi at the two-state
  choice;
* ``accuracy``: chi at the default discretisation against a much finer one.

``stored_corr_ground_truth(cfg)`` sets the joint (c_a, c_b) theory (:mod:`rnn_mft.theory.lstm_joint`)
and A.2.3 against the committed two-copy runs at 0 < Sigma_z < 1
(``data/lstm_corr_ground_truth.json``), and ``joint_grid(cfg)`` its convergence in the grid size.
``report(cfg, res)`` gives the numbers the page's prose quotes.

What the page derives from these results is computed here too: :func:`ground_truth_summary`
(the largest relative difference between the two-state theory and the stored networks),
:func:`corr_error_se` (the joint theory's error in the network's standard errors),
:func:`no_feedback_mu_f` and :func:`chrono_biases` (the forget-gate biases the two-state rule is
compared with, :func:`chrono_comparison`). The ``*_text`` functions give the page's tables as
text (:func:`fmt_xi` writes a time scale).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...sim import jacobian as sim_jacobian, squared_singular_values
from ...sim.lstm_tangent import correlation_decay, tangent_decay
from ...theory import Theta, analyze, lstm_cellstate, lstm_joint, lstm_twostate, solve_for_timescale
from ..protocol import Config, doc

__all__ = ["TwoStatesConfig", "config", "thetas", "run", "report", "GROUND_TRUTH", "SOLVER_CHECK", "CORR_GROUND_TRUTH",
           "stored_ground_truth", "stored_solver_check", "stored_corr_ground_truth", "joint_grid", "fmt_xi",
           "ground_truth_summary", "corr_error_se", "no_feedback_mu_f", "chrono_biases", "chrono_comparison",
           "run_text", "table_text", "ground_truth_text", "sz0_text", "corr_text", "joint_grid_text",
           "jacobian_text", "solver_text", "solver_check_text", "chrono_text"]

#: large-width simulations made by ``tools/lstm_ground_truth.py`` (committed with their provenance)
GROUND_TRUTH = Path(__file__).resolve().parents[4] / "data" / "lstm_ground_truth.json"
#: the solver's Thetas simulated by ``tools/lstm_solver_check.py``
SOLVER_CHECK = Path(__file__).resolve().parents[4] / "data" / "lstm_solver_check.json"
#: two-copy runs at 0 < Sigma_z < 1 made by ``tools/lstm_corr_ground_truth.py``
CORR_GROUND_TRUTH = Path(__file__).resolve().parents[4] / "data" / "lstm_corr_ground_truth.json"

@dataclass(frozen=True)
class TwoStatesConfig(Config):
    """Settings of the chapter "The LSTM has two states"; defaults are ``ci``."""

    N: int = doc(2000, "width of the simulated untied LSTMs (Sigma_z = 1 tangent)")
    n_seeds: int = doc(4, "simulated networks per Theta")
    n_s: int = doc(4000, "Algorithm 1's samples (the paper's A.2.3 column)")
    n_iters: int = doc(300, "Algorithm 1's iterations")
    sets: tuple = doc(("c4", "off", "fig2"), "which groups of Thetas run: the C.4 line, points off it, Figure 2's direction")
    mu_c4: tuple = doc((1.0, 3.0, 4.5, 6.0), "mu_f on the C.4 line")
    fig2_mu: tuple = doc((2.0, 3.8, 5.0), "mu_f on the direction of Figure 2")
    sz0_mu: tuple = doc((3.8,), "mu_f of the Sigma_z = 0 comparison (Figure 2's direction)")
    jac_N: int = doc(300, "width of the explicit Jacobians of (h, c)")
    jac_real: int = doc(2, "Jacobians per Theta")
    targets: tuple = doc((30.0, 100.0, 784.0), "time scales the solver is asked for")
    sim_targets: tuple = doc((30.0, 100.0), "targets whose solved Theta is simulated")
    N_sz0: int = doc(2000, "width of the two-copy runs at Sigma_z = 0")
    solve_paper: bool = doc(True, "also solve and evaluate with the paper's A.2.3")
    accuracy: bool = doc(True, "compare chi with a much finer discretisation")
    curve_n: int = doc(25, "points of the xi(mu_f) curves")
    corr_rows: int | None = doc(None, "stored 0 < Sigma_z < 1 rows re-evaluated (None: all)")
    joint_n: tuple = doc((), "grid sizes of the joint theory's convergence study")
    PROFILES = {
        "smoke": dict(N=200, n_seeds=2, n_s=300, n_iters=100, sets=("c4",), mu_c4=(3.0,), fig2_mu=(3.8,), sz0_mu=(),
                      jac_N=40, jac_real=1, targets=(30.0,), sim_targets=(), N_sz0=200, solve_paper=False,
                      accuracy=False, curve_n=5, corr_rows=1),
        "ci": {},
        "paper": dict(N=30000, n_seeds=6, n_s=20000, n_iters=600, mu_c4=(1.0, 2.0, 3.0, 4.0, 4.5, 5.0, 6.0, 7.0),
                      fig2_mu=(2.0, 3.8, 5.0, 6.0), sz0_mu=(2.0, 3.8, 5.0), jac_N=1000, jac_real=4,
                      sim_targets=(30.0, 100.0, 784.0), N_sz0=10000, curve_n=60, joint_n=(25, 31, 35, 45)),
    }


def config(profile: str) -> TwoStatesConfig:
    """The settings at ``profile`` (smoke, ci or paper)."""
    return TwoStatesConfig.for_profile(profile)


def thetas(cfg: TwoStatesConfig) -> dict:
    """Named Thetas: the C.4 LSTM line (mu_f varied), points off it, and the Figure 2 direction
    (every sigma2 = nu2 = 1)."""
    out = {}
    c4 = Theta.critical("lstm")
    if "c4" in cfg.sets:
        for m in cfg.mu_c4:
            out[f"C.4, mu_f={m:g}"] = c4.replace({"f.mu": m})
    if "off" in cfg.sets:
        out["C.4, mu_f=4, sigma_o^2=0"] = c4.replace({"f.mu": 4.0, "o.sigma2": 0.0})
        out["C.4, mu_f=4, sigma_o^2=0.5"] = c4.replace({"f.mu": 4.0, "o.sigma2": 0.5})
        out["C.4, mu_f=3, sigma^2_ifr=0.5"] = c4.replace({"f.mu": 3.0, "i.sigma2": 0.5, "f.sigma2": 0.5,
                                                         "r.sigma2": 0.5})
        out["C.4, mu_f=4, rho_f^2=0.5"] = c4.replace({"f.mu": 4.0, "f.rho2": 0.5})
    if "fig2" in cfg.sets:
        f2 = Theta.uniform("lstm", sigma2=1.0, nu2=1.0)
        for m in cfg.fig2_mu:
            out[f"Fig. 2 direction, mu_f={m:g}"] = f2.replace({"f.mu": m})
    return out


def _paper_xi(r) -> float:
    """Algorithm 1 with A.2.3's xi as the chapter shows it: the number where it converged, NaN
    where its Monte Carlo error is too large to give one at the chapter's ``n_s`` (``xi_note``
    says so), inf where it finds no stable fixed point."""
    if bool(r.converged):
        return float(r.xi)
    return float("nan") if "Monte Carlo" in str(r.xi_note) else float("inf")


def _xi_paper(th, cfg: TwoStatesConfig, sz=1.0):
    return _paper_xi(analyze("lstm", th, sz, n_s=cfg.n_s, n_iters=cfg.n_iters, method="paper"))


def run(cfg: TwoStatesConfig, store=None) -> dict:
    t0 = time.time()
    rows = []
    for name, th in thetas(cfg).items():
        two = analyze("lstm", th, 1.0)
        sim = tangent_decay(th, cfg.N, n_seeds=cfg.n_seeds, seed=1)
        rows.append(dict(name=name, theta=th, xi_paper=_xi_paper(th, cfg), xi_two_state=float(two.xi),
                         xi_sim=sim.xi, xi_lo=sim.xi_lo, xi_hi=sim.xi_hi, m1=float(two.m1), chi=float(two.chi),
                         chi_sim=sim.chi, chi_se=sim.chi_se))
    sz0 = []
    f2 = Theta.uniform("lstm", sigma2=1.0, nu2=1.0)
    for m in cfg.sz0_mu:
        th = f2.replace({"f.mu": m})
        two = analyze("lstm", th, 0.0)
        sim = correlation_decay(th, cfg.N_sz0, 0.0, n_seeds=cfg.n_seeds, seed=2)
        sz0.append(dict(name=f"Fig. 2 direction, mu_f={m:g}", xi_paper=_xi_paper(th, cfg, 0.0),
                        xi_two_state=float(two.xi), xi_sim=sim.xi, xi_lo=sim.xi_lo, xi_hi=sim.xi_hi))
    jac = []
    for name, th in (("C.4, mu_f=3", Theta.critical("lstm", mu_f=3.0)),
                     ("generic (sigma2 = nu2 = 1, rho2 = 0.1, mu_f = 1)",
                      Theta.uniform("lstm", sigma2=1.0, nu2=1.0, rho2=0.1).replace({"f.mu": 1.0}))):
        two = analyze("lstm", th, 1.0)
        lam = np.concatenate([squared_singular_values(sim_jacobian("lstm", th, cfg.jac_N, T=60, seed=s))
                              for s in range(cfg.jac_real)])
        jac.append(dict(name=name, m1=float(two.m1), m2=float(two.m2), m1_sim=float(lam.mean()),
                        m2_sim=float((lam**2).mean()), m1_se=float(lam.std() / np.sqrt(lam.size)),
                        m2_se=float((lam**2).std() / np.sqrt(lam.size)), n_zero=float(np.mean(lam < 1e-3))))
    sol = []
    for xi in cfg.targets:
        s = solve_for_timescale("lstm", xi=xi)
        mu_paper = float("nan")
        if cfg.solve_paper:
            try:
                sp = solve_for_timescale("lstm", xi=xi, method="paper", n_s=cfg.n_s, n_iters=cfg.n_iters)
                mu_paper = sp.params["f.mu"]
            except ValueError:
                pass
        row = dict(target=xi, mu_f=s.params["f.mu"], xi=s.xi, mu_f_paper=mu_paper, theta=s.theta)
        if xi in cfg.sim_targets:
            sim = tangent_decay(s.theta, cfg.N, n_seeds=cfg.n_seeds, seed=3)
            row.update(xi_sim=sim.xi, xi_lo=sim.xi_lo, xi_hi=sim.xi_hi)
            if np.isfinite(mu_paper):
                simp = tangent_decay(s.theta.replace({"f.mu": mu_paper}), cfg.N, n_seeds=cfg.n_seeds, seed=3)
                row.update(xi_sim_paper=simp.xi)
        sol.append(row)
    acc = []
    fine = lstm_cellstate.Settings(n=801, n_f=160, n_g=200, n_o=300, n_c=40, width=18.0)
    for name, th in (("C.4, mu_f=6", Theta.critical("lstm", mu_f=6.0)),
                     ("Fig. 2 direction, mu_f=5", f2.replace({"f.mu": 5.0}))) if cfg.accuracy else ():
        a = lstm_twostate.solve_point(th, 1.0)
        t1 = time.perf_counter()
        lstm_twostate.solve_point(th, 1.0)
        dt = time.perf_counter() - t1
        b = lstm_twostate.solve_point(th, 1.0, settings=fine)
        acc.append(dict(name=name, chi=a.chi, chi_fine=b.chi, err=abs(a.chi - b.chi), seconds=dt))
    # the C.4 line as curves: the two-state theory (deterministic, cheap) and A.2.3
    mus = np.linspace(0.0, 7.0, cfg.curve_n)
    line = Theta.grid(Theta.critical("lstm"), {"f.mu": mus})
    curve = dict(mu_f=mus, xi_two_state=np.asarray(analyze("lstm", line, 1.0).xi, float),
                 xi_paper=np.asarray(analyze("lstm", line, 1.0, method="paper", n_s=cfg.n_s,
                                             n_iters=cfg.n_iters).xi, float))
    return dict(table=rows, sz0=sz0, jacobian=jac, solver=sol, accuracy=acc, curve=curve, seconds=time.time() - t0)


def stored_ground_truth(cfg: TwoStatesConfig, path: Path | None = None) -> dict | None:
    """The committed large-width runs (``data/lstm_ground_truth.json``) with the two-state theory
    (and, where ``cfg.solve_paper``, A.2.3) evaluated now on the same Thetas; None when the file
    is absent (e.g. an installed package without the repository)."""
    path = GROUND_TRUTH if path is None else Path(path)
    if not path.exists():
        return None
    d = json.loads(path.read_text())
    rows = []
    for r in d["rows"]:
        th = Theta("lstm", r["theta"])
        two = analyze("lstm", th, 1.0)
        row = dict(name=r["name"], kind=r.get("kind", "table"), N=int(r["N"]), n_seeds=int(r["n_seeds"]),
                   xi_sim=float(r["xi"]), xi_lo=float(r["xi_lo"]), xi_hi=float(r["xi_hi"]),
                   chi_sim=float(r["chi"]), xi_two_state=float(two.xi), method=str(two.info["methods"]))
        if cfg.solve_paper and row["kind"] == "table":
            row["xi_paper"] = _xi_paper(th, cfg)
        rows.append(row)
    runs = [{k: v for k, v in run.items() if k in ("command", "machine", "started", "wall_s", "commit")}
            for run in d.get("runs", [])]
    return dict(rows=rows, runs=runs, path=str(path))


def stored_solver_check(path: Path | None = None) -> dict | None:
    """The committed ``data/lstm_solver_check.json``, with the two-state solver re-run now for
    each target (its mu_f must be the one that was simulated: ``unchanged`` says whether it is,
    to 1e-6); None when absent."""
    path = SOLVER_CHECK if path is None else Path(path)
    if not path.exists():
        return None
    d = json.loads(path.read_text())
    for r in d["rows"]:
        r["mu_f_now"] = solve_for_timescale("lstm", xi=r["target"]).params["f.mu"]
        r["unchanged"] = bool(abs(r["mu_f_now"] - r["mu_f"]) < 1e-6)
    return d


def stored_corr_ground_truth(cfg: TwoStatesConfig, path: Path | None = None) -> dict | None:
    """The committed two-copy runs at 0 < Sigma_z < 1 (C* and chi_{C*} of the network, from
    ``correlation_decay``) with the joint theory (``analyze``, default method) and, where
    ``cfg.solve_paper``, A.2.3 evaluated now; the first ``cfg.corr_rows`` rows (all if None).
    None when the file is absent."""
    path = CORR_GROUND_TRUTH if path is None else Path(path)
    if not path.exists():
        return None
    d = json.loads(path.read_text())
    rows = []
    for r in d["rows"][: cfg.corr_rows]:
        th = Theta("lstm", r["theta"])
        sz = float(r["sigma_z"])
        t1 = time.perf_counter()
        two = analyze("lstm", th, sz)
        dt = time.perf_counter() - t1
        row = dict(name=r["name"], sigma_z=sz, N=int(r["N"]), n_seeds=int(r["n_seeds"]), c_sim=float(r["c_star"]),
                   chi_sim=float(r["chi"]), chi_se=float(r["chi_se"]), xi_sim=float(r["xi"]),
                   xi_lo=float(r["xi_lo"]), xi_hi=float(r["xi_hi"]), c_two_state=float(two.c_s),
                   chi_two_state=float(two.chi), xi_two_state=float(two.xi), method=str(two.info["methods"]),
                   seconds=dt)
        if cfg.solve_paper:
            ap = analyze("lstm", th, sz, n_s=cfg.n_s, n_iters=cfg.n_iters, method="paper")
            row.update(c_paper=float(ap.c_s), xi_paper=_paper_xi(ap))
        rows.append(row)
    runs = []
    for r in d["rows"]:
        run = (r.get("command", d.get("command")), r.get("started", d.get("started")))
        if run not in runs:
            runs.append(run)
    return dict(rows=rows, runs=[dict(command=c, started=t) for c, t in runs], machine=d.get("machine"),
                path=str(path))


def joint_grid(cfg: TwoStatesConfig, sigma_z: float = 0.6) -> list[dict]:
    """C* and chi of the joint theory on the Figure 2 direction (mu_f = 3.8) for the grid sizes
    ``cfg.joint_n`` (points per axis), with the wall time of each."""
    th = lstm_cellstate.theta_point(Theta.uniform("lstm", sigma2=1.0, nu2=1.0).replace({"f.mu": 3.8}))
    out = []
    for n in cfg.joint_n:
        t1 = time.perf_counter()
        p = lstm_joint.solve_joint(th, sigma_z, settings=lstm_joint.JointSettings(n=n))
        out.append(dict(n=n, c_star=p.c_star, chi=p.chi, free_rate=p.free_rate, seconds=time.perf_counter() - t1))
    return out


def report(cfg: TwoStatesConfig, res: dict) -> dict:
    """The numbers of the page's prose: at Sigma_z = 1, how many of the Thetas have the two-state
    xi inside the network's 2-SE interval (``inside``, of ``n_table``), the largest relative
    difference (``max_rel``), the range of A.2.3's xi over the network's (``paper_ratio_min``,
    ``paper_ratio_max``), how many Thetas A.2.3 calls unstable (``paper_unstable``) and at how many
    Algorithm 1's Monte Carlo error is too large for a xi at this profile's n_s (``paper_noisy``); the two-state xi
    of C.4's own LSTM initialization (``xi_c4``, mu_f = 1); and the run time."""
    t = res["table"]
    fin = [r for r in t if np.isfinite(r["xi_paper"])]
    ratio = [r["xi_paper"] / r["xi_sim"] for r in fin]
    c4 = [r for r in t if r["name"] == "C.4, mu_f=1"]
    return {"inside": sum(bool(r["xi_lo"] <= r["xi_two_state"] <= r["xi_hi"]) for r in t), "n_table": len(t),
            "max_rel": max(abs(r["xi_two_state"] / r["xi_sim"] - 1) for r in t),
            "paper_ratio_min": min(ratio) if ratio else float("nan"),
            "paper_ratio_max": max(ratio) if ratio else float("nan"),
            "paper_unstable": sum(r["xi_paper"] == np.inf for r in t),
            "paper_noisy": sum(bool(np.isnan(r["xi_paper"])) for r in t),
            "xi_c4": float(c4[0]["xi_two_state"]) if c4 else
            float(analyze("lstm", Theta.critical("lstm").replace({"f.mu": 1.0}), 1.0).xi),
            "seconds": float(res["seconds"])}


# --- what the page derives from the results ------------------------------------------------------

def ground_truth_summary(gt: dict) -> dict:
    """The two-state theory against the stored large-width runs (:func:`stored_ground_truth`):
    the largest relative difference of the xi's, ``max_rel`` = max |xi_two_state / xi_sim - 1|,
    over the ``n`` runs where both are finite (the network's tangent grows, or the theory finds
    C* = 1 unstable, elsewhere; NaN when there is none)."""
    fin = [r for r in gt["rows"] if np.isfinite(r["xi_sim"]) and np.isfinite(r["xi_two_state"])]
    rel = [abs(r["xi_two_state"] / r["xi_sim"] - 1) for r in fin]
    return {"max_rel": max(rel) if rel else float("nan"), "n": len(fin)}


def corr_error_se(row: dict) -> float:
    """The joint theory's chi_{C*} minus the network's, in units of the network's standard error
    over seeds (a row of :func:`stored_corr_ground_truth`)."""
    return (row["chi_two_state"] - row["chi_sim"]) / row["chi_se"]


def no_feedback_mu_f(xi: float) -> float:
    """The forget-gate bias mean for the time scale ``xi`` without recurrent feedback (every
    sigma_k^2 = 0) and with a deterministic forget gate F = sigma(mu_f): the squared tangent then
    decays by F^2 per step, and a unit memory 1 / (1 - F) = 2 xi (F^2 = exp(-1/xi) to first
    order in 1/xi) is mu_f = log(2 xi - 1)."""
    return float(np.log(2.0 * xi - 1.0))


def chrono_biases(t_max: float) -> dict:
    """Chrono initialization's forget-gate biases b_f = log U, U uniform on [1, T_max - 1]: their
    lowest (0), median (log(T_max / 2)) and highest (log(T_max - 1)) value. The highest is the
    unit whose memory 1 / (1 - sigma(b_f)) is T_max."""
    return {"min": 0.0, "median": float(np.log(t_max / 2.0)), "max": float(np.log(t_max - 1.0))}


def chrono_comparison(res: dict) -> list[dict]:
    """For each solver target xi of ``res["solver"]``: the two-state rule's mu_f, the no-feedback
    bias :func:`no_feedback_mu_f` and chrono's biases at T_max = xi (:func:`chrono_biases`)."""
    out = []
    for r in res["solver"]:
        xi = r["target"]
        ch = chrono_biases(xi)
        out.append(dict(target=xi, mu_f=r["mu_f"], mu_f_no_feedback=no_feedback_mu_f(xi), chrono_max=ch["max"],
                        chrono_median=ch["median"]))
    return out


# --- the page's tables as text -------------------------------------------------------------------

def fmt_xi(x: float) -> str:
    """A time scale as the page prints it: 4 significant digits; "inf" where the theory puts
    chi >= 1 (no stable fixed point); "noisy" for NaN, where Algorithm 1's Monte Carlo error at
    the profile's n_s is too large to give a xi."""
    return "noisy" if np.isnan(x) else "inf" if not np.isfinite(x) else f"{x:.4g}"


def run_text(cfg: TwoStatesConfig, res: dict) -> str:
    """The run's sizes and time, and chi at the default discretisation against a finer one."""
    lines = [f"simulation: N = {cfg.N}, {cfg.n_seeds} seeds; Algorithm 1: n_s = {cfg.n_s}, "
             f"n_iters = {cfg.n_iters}; {res['seconds']:.0f} s in all"]
    for a in res["accuracy"]:
        lines.append(f"discretisation ({a['name']}): chi = {a['chi']:.12f}, finer grid {a['chi_fine']:.12f}, "
                     f"difference {a['err']:.1e}; {1000 * a['seconds']:.0f} ms per Theta")
    return "\n".join(lines)


def table_text(res: dict) -> str:
    """xi at Sigma_z = 1 from A.2.3, the two-state theory and the network (2-SE interval)."""
    lines = [f"{'Theta':34s} {'A.2.3':>8s} {'two-state':>10s} {'network (2 SE)':>24s}"]
    for r in res["table"]:
        lines.append(f"{r['name']:34s} {fmt_xi(r['xi_paper']):>8s} {fmt_xi(r['xi_two_state']):>10s} "
                     f"{fmt_xi(r['xi_sim']):>9s} [{fmt_xi(r['xi_lo'])}, {fmt_xi(r['xi_hi'])}]")
    return "\n".join(lines)


def ground_truth_text(gt: dict | None) -> str:
    """The stored large-width runs (:func:`stored_ground_truth`) beside the theories, and
    :func:`ground_truth_summary`."""
    if gt is None:
        return "data/lstm_ground_truth.json is not available here"
    lines = [f"stored run: {run.get('command')} ({run.get('machine')}, started {run.get('started')})"
             for run in gt["runs"]]
    lines.append(f"\n{'Theta':34s} {'N':>6s} {'network (2 SE)':>27s} {'two-state':>10s} {'A.2.3':>8s}")
    for r in gt["rows"]:
        tag = "" if r["kind"] == "table" else " (N check)"
        ap = fmt_xi(r["xi_paper"]) if "xi_paper" in r else ""
        two = fmt_xi(r["xi_two_state"]) if np.isfinite(r["xi_two_state"]) else "chi > 1"
        lines.append(f"{r['name'] + tag:34s} {r['N']:6d} {fmt_xi(r['xi_sim']):>9s} [{fmt_xi(r['xi_lo'])}, "
                     f"{fmt_xi(r['xi_hi'])}] {two:>10s} {ap:>8s}")
    s = ground_truth_summary(gt)
    lines.append(f"\nlargest relative difference, two-state vs network: {s['max_rel']:.2%} over {s['n']} runs")
    return "\n".join(lines)


def sz0_text(res: dict) -> str:
    """xi at Sigma_z = 0 (C* = 0) from A.2.3, the two-state theory and the two-copy network."""
    return "\n".join(f"{r['name']:34s} A.2.3 {fmt_xi(r['xi_paper'])}, two-state {fmt_xi(r['xi_two_state'])}, "
                     f"network {fmt_xi(r['xi_sim'])} [{fmt_xi(r['xi_lo'])}, {fmt_xi(r['xi_hi'])}]"
                     for r in res["sz0"])


def corr_text(cg: dict | None) -> str:
    """The stored two-copy runs at 0 < Sigma_z < 1 (:func:`stored_corr_ground_truth`): C* and xi
    of the network, the joint theory and A.2.3, and :func:`corr_error_se`."""
    if cg is None:
        return "data/lstm_corr_ground_truth.json is not available here"
    lines = [f"stored run: {run['command']} (started {run['started']})" for run in cg["runs"]]
    lines.append(f"machine: {cg['machine']}\n")
    lines.append(f"{'Theta':32s} {'N':>5s} {'C* net':>7s} {'joint':>7s} {'A.2.3':>7s} {'xi net (2 SE)':>22s} "
                 f"{'joint':>7s} {'A.2.3':>7s} {'(chi_j - chi_net)/SE':>21s}")
    for r in cg["rows"]:
        cp = f"{r['c_paper']:7.4f}" if "c_paper" in r else "      -"
        xp = fmt_xi(r["xi_paper"]) if "xi_paper" in r else "-"
        lines.append(f"{r['name']:32s} {r['N']:5d} {r['c_sim']:7.4f} {r['c_two_state']:7.4f} "
                     f"{cp} {fmt_xi(r['xi_sim']):>7s} [{fmt_xi(r['xi_lo'])}, {fmt_xi(r['xi_hi'])}] "
                     f"{fmt_xi(r['xi_two_state']):>7s} {xp:>7s} {corr_error_se(r):21.2f}")
    lines.append(f"\njoint theory: {max(r['seconds'] for r in cg['rows']):.0f} s per Theta at most, on this machine")
    return "\n".join(lines)


def joint_grid_text(grid: list[dict]) -> str:
    """The joint theory's C* and chi against its grid size (:func:`joint_grid`)."""
    return "\n".join(f"grid n = {g['n']} per axis: C* = {g['c_star']:.9f}, chi = {g['chi']:.9f} "
                     f"(free rate {g['free_rate']:.6f}), {g['seconds']:.1f} s" for g in grid)


def jacobian_text(res: dict) -> str:
    """m1, m2 of the 2N x 2N Jacobian: the theory against explicit Jacobians."""
    return "\n".join(f"{r['name']}: m1 theory {r['m1']:.4f}, network {r['m1_sim']:.4f} ± {r['m1_se']:.4f}; "
                     f"m2 theory {r['m2']:.4f}, network {r['m2_sim']:.4f} ± {r['m2_se']:.4f}; "
                     f"share of squared singular values below 1e-3: {r['n_zero']:.0%}" for r in res["jacobian"])


def solver_text(res: dict) -> str:
    """For each target xi, the mu_f of the two-state rule and of A.2.3, the network's xi where it
    was simulated; and the two-state xi of C.4's own initialization (mu_f = 1) where it ran."""
    lines = []
    for r in res["solver"]:
        line = (f"target xi = {r['target']:g}: two-state mu_f = {r['mu_f']:.3f}, A.2.3 mu_f = "
                f"{r['mu_f_paper']:.3f}" if np.isfinite(r["mu_f_paper"]) else
                f"target xi = {r['target']:g}: two-state mu_f = {r['mu_f']:.3f}")
        if "xi_sim" in r:
            line += (f"; network at the two-state mu_f: {fmt_xi(r['xi_sim'])} "
                     f"[{fmt_xi(r['xi_lo'])}, {fmt_xi(r['xi_hi'])}]")
        if "xi_sim_paper" in r:
            line += f"; at A.2.3's mu_f: {fmt_xi(r['xi_sim_paper'])}"
        lines.append(line)
    c4 = [r for r in res["table"] if r["name"] == "C.4, mu_f=1"]
    if c4:
        lines.append(f"\nC.4's own LSTM initialization (mu_f = 1): xi = {c4[0]['xi_two_state']:.3g} steps "
                     f"(network {fmt_xi(c4[0]['xi_sim'])}).")
    return "\n".join(lines)


def solver_check_text(sc: dict | None) -> str:
    """The stored solver check (:func:`stored_solver_check`): each target's mu_f, whether the
    solver still returns it, and the network's xi at it and at A.2.3's mu_f."""
    if sc is None:
        return "data/lstm_solver_check.json is not available here"
    lines = [f"stored run: {sc['command']} (N = {sc['N']}, {sc['seeds']} seeds, {sc['machine']}, {sc['started']}, "
             f"commit {sc['commit'][:10]})"]
    for r in sc["rows"]:
        now = "unchanged" if r["unchanged"] else "now " + format(r["mu_f_now"], ".3f")
        lines.append(f"target xi = {r['target']:g}: two-state mu_f = {r['mu_f']:.3f} ({now}), "
                     f"network {fmt_xi(r['xi_sim'])} [{fmt_xi(r['xi_lo'])}, {fmt_xi(r['xi_hi'])}]; A.2.3 mu_f = "
                     f"{r.get('mu_f_paper', float('nan')):.3f}, "
                     f"network {fmt_xi(r.get('xi_sim_at_paper_mu_f', float('nan')))}")
    return "\n".join(lines)


def chrono_text(res: dict) -> str:
    """:func:`chrono_comparison` as text."""
    return "\n".join(f"xi = {r['target']:g}: two-state mu_f = {r['mu_f']:.2f}; no feedback log(2 xi - 1) = "
                     f"{r['mu_f_no_feedback']:.2f}; chrono with T_max = xi: b_f from 0 to {r['chrono_max']:.2f} "
                     f"(median {r['chrono_median']:.2f})" for r in chrono_comparison(res))
