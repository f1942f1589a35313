"""Ground truth for the LSTM at Sigma_z < 1: C* and chi_{C*} of two copies of finite-width untied LSTMs.

Runs :func:`rnn_mft.sim.correlation_decay` (two copies with shared weights, inputs of correlation
``sigma_z``; the response of S = <h_a, h_b>/N to a perturbation that leaves each copy's own
statistics unchanged to first order) on a small table of Thetas and writes JSON (Theta,
sigma_z, N, seeds, chi, SE over seeds, the empirical C*, windows, wall time) atomically to
``--out`` (default ``data/lstm_corr_ground_truth.json``), printing a table as it goes. The joint
(c_a, c_b) theory, :mod:`rnn_mft.theory.lstm_joint`, is compared with it in
``tests/test_theory_lstm_joint.py`` and in the chapter *The LSTM has two states*.

Usage::

    PYTHONPATH=src python tools/lstm_corr_ground_truth.py [--out PATH] [--n 3000] [--seeds 6] [--only NAME]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rnn_mft.sim import correlation_decay
from rnn_mft.theory.theta import Theta


def c4(mu_f, **rep):
    th = Theta.critical("lstm", mu_f=mu_f)
    return th.replace(rep) if rep else th


def fig2(mu_f, **rep):
    th = Theta.uniform("lstm", sigma2=1.0, nu2=1.0, f={"mu": mu_f})
    return th.replace(rep) if rep else th


def table():
    """(name, Theta, sigma_z, note)"""
    rows = [(f"Fig2 mu_f=3.8 Sz={sz:g}", fig2(3.8), sz, "Figure-2 direction") for sz in (0.3, 0.6, 0.9)]
    rows.append(("Fig2 mu_f=1 Sz=0.6", fig2(1.0), 0.6, "Figure-2 direction, fast"))
    rows.append(("C4 mu_f=3 Sz=0.6", c4(3.0), 0.6, "C.4 line"))
    rows.append(("Fig2 mu_f=3.8 rho2=0.5 Sz=0.6", fig2(3.8, **{"i.rho2": 0.5, "f.rho2": 0.5, "r.rho2": 0.5,
                                                               "o.rho2": 0.5}), 0.6, "biases: rho2 = 0.5"))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/lstm_corr_ground_truth.json")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="comma-separated row names (substring match)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of an existing --out file, replacing those of the same name")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = dict(command=" ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
               machine=f"{platform.node()} {platform.machine()} python {platform.python_version()} "
                       f"torch {torch.__version__} numpy {np.__version__}",
               started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), rows=[])
    dest = Path(a.out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    kept = []
    if a.merge and dest.exists():
        old = json.loads(dest.read_text())
        for r in old["rows"]:
            r.setdefault("command", old.get("command"))
            r.setdefault("started", old.get("started"))
            kept.append(r)
    names = {name for name, *_ in table() if not a.only or any(s.strip() in name for s in a.only.split(","))}
    out["rows"] = [r for r in kept if r["name"] not in names]
    print(f"{'name':34s} {'N':>6s} {'C*':>8s} {'chi':>9s} {'+-SE':>8s} {'xi':>8s} {'s':>6s}", flush=True)
    t_all = time.perf_counter()
    for name, th, sz, note in table():
        if a.only and not any(s.strip() in name for s in a.only.split(",")):
            continue
        r = correlation_decay(th, a.n, sz, n_seeds=a.seeds, seed=a.seed)
        out["rows"].append(dict(name=name, note=note, theta=th.to_dict(), command=out["command"],
                                started=out["started"], **r.as_dict()))
        order = [n for n, *_ in table()]
        out["rows"].sort(key=lambda row: order.index(row["name"]) if row["name"] in order else len(order))
        print(f"{name:34s} {a.n:6d} {r.c_star:8.4f} {r.chi:9.5f} {r.chi_se:8.5f} {r.xi:8.2f} {r.wall_s:6.1f}",
              flush=True)
        out["total_wall_s"] = time.perf_counter() - t_all
        tmp = dest.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1) + "\n")
        os.replace(tmp, dest)
    print(f"total {time.perf_counter() - t_all:.0f} s -> {dest}")


if __name__ == "__main__":
    main()
