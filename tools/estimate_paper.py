"""Estimate what `make reproduce` (profile paper) costs on one GPU, from each training
experiment's own config.

The recurrent cells run one time step after another; at the paper's widths every step on a GPU
is a handful of small kernels whose launch latency, not arithmetic, bounds the time. The estimate
is therefore (sequential time steps, from each experiment's ``cost(config("paper"))``) x (time
per step forward + backward). That per-step time is an assumption (``--ms-per-step``, default
0.4 ms: about 30 kernels of ~12 us), not a measurement: no GPU was available when it was
written. With ``--measure`` the per-step time of a peephole LSTM at width 600 and batch 128 is
measured on this machine's device (CUDA if present) and used instead.

    python tools/estimate_paper.py [--ms-per-step 0.4] [--measure]
"""
from __future__ import annotations

import argparse
import time

from rnn_mft.experiments import sequence_length, trainability, training_curves, unrolled

EXPERIMENTS = {"Figure 1 (sequence_length)": sequence_length, "Figures 2 and 6 (trainability)": trainability,
               "Figure 4 (training_curves)": training_curves, "Table 2 (unrolled)": unrolled}


def measure_ms_per_step(T: int = 200, width: int = 600, batch: int = 128) -> float:
    import torch
    from rnn_mft import nets
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    m = nets.make_classifier("peephole_lstm", 1, width, 10).to(dev)
    x = torch.randn(batch, T, 1, device=dev)
    for i in range(3):
        if i == 1:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
        m(x).sum().backward()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / 2 / T * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ms-per-step", type=float, default=0.4)
    ap.add_argument("--measure", action="store_true")
    a = ap.parse_args()
    ms = measure_ms_per_step() if a.measure else a.ms_per_step
    print(f"time per recurrent step (forward + backward): {ms:.3f} ms ({'measured' if a.measure else 'assumed'})")
    total = 0.0
    for name, exp in EXPERIMENTS.items():
        c = exp.cost(exp.config("paper"))
        h = c["sequential_steps"] * ms / 1e3 / 3600
        total += h
        print(f"{name:34s} {c['runs']:4d} ensemble runs  {c['sequential_steps'] / 1e6:7.1f} M sequential steps  "
              f"~{h:5.1f} h")
    print(f"{'total':34s} {'':24s}{'':22s}~{total:5.1f} h")


if __name__ == "__main__":
    main()
