"""A worker process of the ``local`` executor (``python -m rnn_mft.cluster.worker``).

``--unit - --log FILE``: run one unit, a :class:`~rnn_mft.cluster.runs.RunUnit` named in JSON on
this process's standard input by the executor (:meth:`RunUnit.to_json`; found again among the
profile's runs by :meth:`RunUnit.from_json`, nothing is unpickled) (:func:`rnn_mft.cluster.run_unit`, under the settings the
unit carries); exit 0 when it is done, stored, busy elsewhere, stopped by the budget or its data
are unavailable, 1 when it raised (the traceback is in this process's output, the log).
``--pool -``: the detached pool of ``execute(..., "local", wait=False)``: the units and worker
slots, as JSON on standard input. Nothing is read from a file: a run cannot be planted.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback

from ..train.results import ResultsStore
from .executors import _local_pool
from .runs import RunUnit, UnitFailed, run_unit


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rnn_mft.cluster.worker")
    ap.add_argument("--unit", help="-: a run (RunUnit.to_json) as JSON on standard input")
    ap.add_argument("--log")
    ap.add_argument("--pool", help="-: the pool's units, slots and deadline, as JSON on standard input")
    ap.add_argument("--results")
    ap.add_argument("--deadline", type=float)
    a = ap.parse_args(argv)
    for name in ("unit", "pool"):
        if getattr(a, name) not in (None, "-"):
            ap.error(f"--{name}={getattr(a, name)!r}; allowed: '-' (JSON on standard input, by the executor)")
    if a.pool:
        spec = json.load(sys.stdin)
        units = [RunUnit.from_json(d) for d in spec["units"]]
        # the results_readonly setting holds here too: a read-only store's units refuse to train (run_unit)
        _local_pool(units, spec["slots"], ResultsStore(a.results), spec.get("deadline"))
        return 0
    if not a.unit:
        ap.error("give --unit - or --pool -")
    try:
        u = RunUnit.from_json(json.load(sys.stdin))
    except (ValueError, json.JSONDecodeError) as exc:
        ap.error(f"standard input: {exc}; allowed: a run as RunUnit.to_json writes it")
    budget = None if a.deadline is None else a.deadline - time.time()
    try:
        out = run_unit(u, log=a.log, budget_s=budget, results_root=a.results)
    except UnitFailed:
        traceback.print_exc()
        return 1
    print("rnn_mft worker:", json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
