"""Ground-truth LSTM time scales from the exact (h, c) tangent of untied finite-width networks.

Runs :func:`rnn_mft.sim.tangent_decay` on a table of Thetas from fast (xi ~ 1) to slow
(xi ~ 1000) and writes JSON (Theta, N, seeds, chi, SE, xi, 2-SE interval, windows, wall time)
to ``--out`` (default ``_build/lstm_ground_truth.json``), printing a table as it goes.

Usage::

    PYTHONPATH=src python tools/lstm_ground_truth.py [--out PATH] [--n N] [--seeds 6]
        [--only NAME,NAME] [--ncheck] [--budget-scale 1.0]

Each row has a default width ``N`` (30000 for the issue's reference points, smaller for the
slowest Thetas where a step is cheap but thousands are needed); ``--ncheck`` adds the same
Thetas at N = 3000 and 10000 for a subset (the finite-N check).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rnn_mft.sim import tangent_decay
from rnn_mft.sim.lstm_tangent import auto_windows
from rnn_mft.theory.theta import Theta


def c4(mu_f, **rep):
    th = Theta.critical("lstm", mu_f=mu_f)
    return th.replace(rep) if rep else th


def fig2(mu_f):
    return Theta.uniform("lstm", sigma2=1.0, nu2=1.0, f={"mu": mu_f})


#: name -> (Theta, default N, keyword overrides for tangent_decay, note)
def table():
    rows = []
    for mf in (0.0, 1.0, 2.0, 3.0, 4.0, 4.5, 5.0, 6.0):
        ref = {3.0: "issue: 7.10 +- 0.05", 4.0: "issue: 17.9 +- 0.05", 4.5: "issue: 28.7 +- 0.01"}.get(mf, "")
        rows.append((f"C4 mu_f={mf:g}", c4(mf), 30000 if mf in (3.0, 4.0, 4.5) else 10000, {}, "C.4 line; " + ref))
    for so in (0.0, 0.5):
        rows.append((f"C4 mu_f=4 sigma_o2={so:g}", c4(4.0, **{"o.sigma2": so}), 10000, {}, "off the line"))
    for mf in (3.0, 5.0):
        for s2 in (0.5, 1.0):
            rows.append((f"C4 mu_f={mf:g} sigma2_ifr={s2:g}",
                         c4(mf, **{"i.sigma2": s2, "f.sigma2": s2, "r.sigma2": s2}), 10000, {}, "off the line"))
    rows.append(("C4 mu_f=4 rho2_f=0.5", c4(4.0, **{"f.rho2": 0.5}), 10000, {}, "off the line"))
    for mf in (2.0, 3.8, 5.0):
        ref = {3.8: "issue: xi = 18.7", 5.0: "issue: xi = 75"}.get(mf, "")
        rows.append((f"Fig2 all sigma2=nu2=1 mu_f={mf:g}", fig2(mf), 10000, {}, "Figure-2 direction; " + ref))
    # slow Thetas: forget gate near 1 (small nu2_f), xi of hundreds to ~1000
    rows.append(("C4 mu_f=6.5 nu2_f=0.1", c4(6.5, **{"f.nu2": 0.1}), 2000, {}, "slow"))
    rows.append(("C4 mu_f=7.5 nu2_f=0.1", c4(7.5, **{"f.nu2": 0.1}), 2000, {}, "slow"))
    rows.append(("Fig2 all sigma2=nu2=1 mu_f=6", fig2(6.0), 2000, {}, "slow, Figure-2 direction"))
    rows.append(("Fig2 all sigma2=nu2=1 mu_f=7", fig2(7.0), 2000, {}, "Figure-2 direction: chi > 1 (tangent grows)"))
    return rows


NCHECK = ("C4 mu_f=0", "C4 mu_f=2", "C4 mu_f=4", "C4 mu_f=4 sigma_o2=0", "Fig2 all sigma2=nu2=1 mu_f=3.8",
          "C4 mu_f=6.5 nu2_f=0.1")
#: default N of a row -> the widths of its N-check
NCHECK_NS = {30000: (3000, 10000), 10000: (3000, 30000), 2000: (6000,)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="_build/lstm_ground_truth.json")
    ap.add_argument("--n", type=int, default=None, help="width for every row (default: per row)")
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="comma-separated row names (substring match)")
    ap.add_argument("--ncheck", action="store_true",
                    help="also run the N-check subset (NCHECK) at the widths NCHECK_NS of its default N")
    ap.add_argument("--ncheck-only", action="store_true", help="run only the N-check rows")
    ap.add_argument("--windows-scale", type=float, default=1.0, help="multiply the default n_windows")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    jobs = []
    for name, th, N, kw, note in table():
        if a.ncheck_only or (a.only and not any(s.strip() in name for s in a.only.split(","))):
            continue
        jobs.append((name, th, a.n or N, kw, note, "table"))
    if a.ncheck or a.ncheck_only:
        for name, th, N, kw, note in table():
            if name in NCHECK and (not a.only or any(s.strip() in name for s in a.only.split(","))):
                for n in NCHECK_NS[N]:
                    jobs.append((name, th, n, kw, note, "ncheck"))
    out = dict(command=" ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
               machine=f"{platform.node()} {platform.machine()} {platform.processor()} python {platform.python_version()} "
                       f"torch {torch.__version__} numpy {np.__version__}",
               started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), rows=[])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    print(f"{'name':38s} {'N':>6s} {'chi':>10s} {'+-SE':>9s} {'xi':>9s} {'2SE interval':>21s} "
          f"{'typ xi':>8s} {'early/late':>11s} {'neff':>6s} {'windows':>14s} {'s':>6s}", flush=True)
    t_all = time.perf_counter()
    for name, th, N, kw, note, kind in jobs:
        kw = dict(kw)
        if a.windows_scale != 1.0:
            kw.setdefault("n_windows", max(2, round(auto_windows(th, N)["n_windows"] * a.windows_scale)))
        r = tangent_decay(th, N, n_seeds=a.seeds, seed=a.seed, **kw)
        row = dict(name=name, kind=kind, note=note, theta=th.to_dict(), **r.as_dict())
        out["rows"].append(row)
        xi_typ = -1 / np.log(r.chi_typical) if r.chi_typical < 1 else float("inf")
        print(f"{name:38s} {N:6d} {r.chi:10.6f} {r.chi_se:9.6f} {r.xi:9.3f} [{r.xi_lo:9.3f},{r.xi_hi:9.3f}] "
              f"{xi_typ:8.3f} {r.chi_early / r.chi_late - 1:+11.2e} {r.n_eff_min:6.0f} "
              f"{r.t_burn:5d}+{r.n_windows}x({r.t_align}+{r.t_window}) {r.wall_s:6.1f}", flush=True)
        out["total_wall_s"] = time.perf_counter() - t_all
        Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"total {time.perf_counter() - t_all:.0f} s -> {a.out}")


if __name__ == "__main__":
    main()
