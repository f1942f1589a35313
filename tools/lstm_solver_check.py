"""Do the Thetas of ``solve_for_timescale("lstm", xi)`` have that time scale in a network?

For each target xi, the two-state solver's Theta (C.4's other fields, mu_f tuned) and the Theta
with the mu_f that the paper's A.2.3 prescribes are simulated with the exact (h, c) tangent of
untied LSTMs (:func:`rnn_mft.sim.tangent_decay`). Writes JSON with the command line, machine,
commit and time (default ``data/lstm_solver_check.json``)::

    python tools/lstm_solver_check.py --N 10000 --seeds 4
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rnn_mft.sim import tangent_decay  # noqa: E402
from rnn_mft.theory import solve_for_timescale  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--N", type=int, default=10000)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--targets", type=float, nargs="+", default=[30.0, 100.0, 784.0])
    p.add_argument("--n-s", type=int, default=4000, help="Algorithm 1 samples for the A.2.3 solve")
    p.add_argument("--out", default=str(ROOT / "data" / "lstm_solver_check.json"))
    a = p.parse_args(argv)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    rows = []
    for xi in a.targets:
        s = solve_for_timescale("lstm", xi=xi)
        t0 = time.time()
        sim = tangent_decay(s.theta, a.N, n_seeds=a.seeds, seed=21)
        row = dict(target=xi, mu_f=s.params["f.mu"], xi_theory=s.xi, xi_sim=sim.xi, xi_lo=sim.xi_lo,
                   xi_hi=sim.xi_hi, t_burn=sim.t_burn, t_window=sim.t_window, n_windows=sim.n_windows,
                   theta=s.theta.to_dict(), wall_s=time.time() - t0)
        try:
            sp = solve_for_timescale("lstm", xi=xi, method="paper", n_s=a.n_s, n_iters=300)
            simp = tangent_decay(s.theta.replace({"f.mu": sp.params["f.mu"]}), a.N, n_seeds=a.seeds, seed=21)
            row.update(mu_f_paper=sp.params["f.mu"], xi_sim_at_paper_mu_f=simp.xi, xi_lo_paper=simp.xi_lo,
                       xi_hi_paper=simp.xi_hi)
        except ValueError as exc:
            row.update(paper_error=" ".join(str(exc).split())[:300])
        print(json.dumps({k: v for k, v in row.items() if k != "theta"}), flush=True)
        rows.append(row)
    out = dict(description=__doc__.splitlines()[0], command=" ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
               machine=f"{platform.machine()} python {platform.python_version()}", commit=commit, started=started,
               N=a.N, seeds=a.seeds, rows=rows)
    tmp = Path(a.out + ".tmp")                   # atomically: a stopped run leaves no half-written file
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp, a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
