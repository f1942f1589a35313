"""Is CUDA-graph replay of the training step (``fit(cuda_graphs=True)``) right and faster here?

1. **Right.** For the LSTM, the peephole LSTM and the GRU (mixed-length tied ensembles, as
   Figures 1 and 6 train them, and an untied ensemble, as Figure 2), a few Adam steps with and
   without CUDA graphs: the curves and the final parameters must agree to ``--rtol`` (the graph
   replays the same kernels, so they should agree bitwise; any difference is printed), and the
   graphed run must report ``meta["cuda_graphs"] == "on"``.
2. **Faster.** Training steps of one paper-scale ensemble (default: Figure 6's tied LSTM, 224
   members, width 128, batch 64, read-out steps 2-256, 784 inputs), timed with and without graphs
   after warm-up (CUDA events around whole steps, median).

Exit status 0 when every check agrees and the graphed step is not slower, 1 otherwise, 3 without
CUDA (nothing measured). ``tools/gpu_run.sh`` runs it before the paper slice and switches graphs
on for the slice (``RNN_MFT_CUDA_GRAPHS=1``) only on exit status 0.

    python tools/gpu_graphs_check.py [--json out.json] [--steps 4] [--timed 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch


def _fit_pair(arch: str, untied: bool, device, steps: int, rtol: float) -> dict:
    """Train the same small ensemble with and without graphs; report the largest differences."""
    from rnn_mft import train
    from rnn_mft.experiments.training._common import make_ensemble
    from rnn_mft.theory import Theta
    from rnn_mft.train.synthetic import TensorTask
    lengths = [3, 9, 6, 9, 2, 6]
    th = [Theta.uniform(arch, sigma2=1.0, nu2=1.0, f=dict(sigma2=1.0, nu2=1.0, mu=mu))
          for mu in (0.0, 1.0, 2.0, -1.0, 0.5, 1.5)]
    g = torch.Generator().manual_seed(0)
    T = max(lengths)
    task = TensorTask(torch.randn(256, T, 5, generator=g), torch.randint(4, (256,), generator=g),
                      torch.randn(64, T, 5, generator=g), torch.randint(4, (64,), generator=g), n_out=4)
    cfg = train.TrainConfig(steps=steps, batch_size=16, optimizer="adam", lr=1e-2, clip=1.0, eval_every=2,
                            progress=False, device=str(device))
    out = {}
    for graphs in (False, True):
        ens = make_ensemble(arch, task.n_in, 32, task.n_out, [("theta", t) for t in th], seed=1, lengths=lengths,
                            untied=max(lengths) if untied else None)
        res = train.fit(ens, task, cfg, cuda_graphs=graphs)
        out[graphs] = (res, [p.detach().cpu().double().numpy() for p in ens.parameters()])
    (a, pa), (b, pb) = out[False], out[True]
    diffs = {k: float(np.nanmax(np.abs(a.curves[k] - b.curves[k]) / (np.abs(a.curves[k]) + 1e-30)))
             for k in ("train_loss", "eval_loss", "grad_norm")}
    diffs["parameters"] = max(float(np.max(np.abs(x - y) / (np.abs(x) + 1e-12))) for x, y in zip(pa, pb))
    worst = max(diffs.values())
    return {"arch": arch, "untied": untied, "note": b.meta.get("cuda_graphs"), "max_rel_diff": diffs,
            "bitwise": worst == 0.0, "ok": b.meta.get("cuda_graphs") == "on" and worst <= rtol}


def _time_steps(device, arch: str, members_per_T: int, Ts, width: int, batch: int, n_in: int, timed: int,
                graphs: bool) -> float:
    """Median seconds of one training step (``fit`` with ``timed + 2`` steps; CUDA events around
    each step through the engine's per-step hook)."""
    from rnn_mft import nets, train
    lengths = [T for T in Ts for _ in range(members_per_T)]
    model = nets.make_classifier(arch, n_in, width, 10, members=len(lengths), lengths=lengths)

    x, y = torch.randn(batch, max(Ts), n_in), torch.randint(10, (batch,))

    class Task:                     # one fixed batch: drawing 13 M numbers per step would time the CPU
        def train_batch(self, B, gen):
            return x, y

        def eval_data(self):
            return x[:8], y[:8]

    marks = []

    def hook(step, info):
        torch.cuda.synchronize()
        marks.append(time.perf_counter())

    cfg = train.TrainConfig(steps=timed + 2, batch_size=batch, optimizer="adam", lr=1e-3, progress=False,
                            device=str(device), eval_batch_size=8)
    train.fit(model, Task(), cfg, hook=hook, cuda_graphs=graphs)
    del model
    torch.cuda.empty_cache()
    return statistics.median(np.diff(marks[1:]))          # steps 2.. (the first includes the capture)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--steps", type=int, default=4, help="Adam steps of each agreement check (default 4)")
    ap.add_argument("--rtol", type=float, default=1e-5, help="largest relative difference allowed (default 1e-5)")
    ap.add_argument("--timed", type=int, default=3, help="timed steps of the paper-scale ensemble (default 3)")
    ap.add_argument("--no-timing", action="store_true", help="only the agreement checks")
    a = ap.parse_args(argv)
    if a.steps < 1 or a.timed < 1 or not a.rtol >= 0:
        ap.error(f"--steps={a.steps} --timed={a.timed} --rtol={a.rtol}; allowed: steps, timed >= 1, rtol >= 0")
    if not torch.cuda.is_available():
        print("gpu_graphs_check.py: CUDA is not available; nothing checked (exit 3)")
        return 3
    dev = torch.device("cuda")
    rep = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "checks": [], "timing": None}
    ok = True
    for arch, untied in (("lstm", False), ("peephole_lstm", False), ("gru", False), ("lstm", True)):
        try:
            r = _fit_pair(arch, untied, dev, a.steps, a.rtol)
        except Exception as exc:                               # noqa: BLE001 (report it, fail the check)
            r = {"arch": arch, "untied": untied, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        rep["checks"].append(r)
        ok &= r["ok"]
        print(f"agreement {arch} {'untied' if untied else 'tied'}: {'OK' if r['ok'] else 'FAIL'} "
              + (f"(graphs {r['note']}; {'bitwise' if r['bitwise'] else 'max rel diff ' + repr(r['max_rel_diff'])})"
                 if "error" not in r else r["error"]), flush=True)
    if not a.no_timing:
        Ts = [2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256]
        try:
            t = {g: _time_steps(dev, "lstm", 16, Ts, 128, 64, 784, a.timed, g) for g in (False, True)}
            rep["timing"] = {"ensemble": "Figure 6 tied lstm, 224 members, N=128, B=64, T=2..256, n_in=784",
                             "s_per_step_eager": t[False], "s_per_step_graphed": t[True],
                             "speedup": t[False] / t[True]}
            print(f"timing (Figure 6's tied LSTM ensemble): {1e3 * t[False]:.1f} ms per step without graphs, "
                  f"{1e3 * t[True]:.1f} ms with: x{t[False] / t[True]:.2f}", flush=True)
            ok &= t[True] <= t[False]
        except Exception as exc:                               # noqa: BLE001
            rep["timing"] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"timing failed: {type(exc).__name__}: {exc}")
            ok = False
    rep["ok"] = bool(ok)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rep, fh, indent=1)
    print(f"CUDA graphs: {'use them' if ok else 'do not use them'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
