"""A worker process of the ``local`` executor (``python -m rnn_mft.cluster.worker``).

``--unit JSON --log FILE``: run one unit (:func:`rnn_mft.cluster.run_unit`); exit 0 when it is
done, stored, busy elsewhere, stopped by the budget or its data are unavailable, 1 when it raised
(the traceback is in this process's output, the log). ``--pool FILE``: the detached pool of
``execute(..., "local", wait=False)``: the units and worker slots in FILE.
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rnn_mft.cluster.worker")
    ap.add_argument("--unit")
    ap.add_argument("--log")
    ap.add_argument("--pool")
    ap.add_argument("--results")
    ap.add_argument("--deadline", type=float)
    a = ap.parse_args(argv)
    if a.pool:
        from ..train import ResultsStore
        from .executors import _local_pool
        spec = json.loads(open(a.pool).read())
        # $RNN_MFT_RESULTS_READONLY holds here too: a read-only store's units refuse to train (run_unit)
        _local_pool(spec["units"], spec["slots"], ResultsStore(a.results), spec.get("deadline"))
        return 0
    from .runs import UnitFailed, run_unit
    u = json.loads(a.unit)
    budget = None if a.deadline is None else a.deadline - time.time()
    try:
        out = run_unit(u, log=a.log, budget_s=budget, results_root=a.results)
    except UnitFailed:
        import traceback
        traceback.print_exc()
        return 1
    print("rnn_mft worker:", json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
