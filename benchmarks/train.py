"""Training-speed and memory benchmark of rnn_mft.nets, printing ratios measured in one run.

1. forward+backward time of one training step (loss on the last output) of our tied cells
   against torch.nn.LSTM / torch.nn.GRU at batch 128, width 128 and 256, T = 784, input size 1
   (pixel-by-pixel MNIST shapes); on CPU, and on GPU when one is present.
   Target: our tied LSTM-family cells at most 1.3x the stock module's time on CPU.
2. An ensemble of 64 small networks trained as one batched model against training the same 64
   networks one after another (same steps, same optimizer). Target: at least 5x the throughput.
3. Peak memory of untied cells (T = 784) against tied ones.

Times are the minimum over ``--reps`` repetitions after one warm-up (the machine may be shared;
the minimum is the least noisy estimate; ours and the stock module are interleaved). CPU runs use
``--threads`` threads (default 1: on a shared 2-core machine more threads only add contention;
both sides get the same) and flush denormals to zero for both sides.

GPU path: the same code as on CPU, i.e. one cuBLAS batched product and a few element-wise
kernels per time step from Python (no fused kernel, no CUDA graphs), against cuDNN for the stock
modules; expect the stock modules to be faster there.

    python benchmarks/train.py [--reps 2] [--threads 1] [--quick]
"""
from __future__ import annotations

import argparse
import time

import torch

from rnn_mft import nets
from rnn_mft.train import MemberOptimizer


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_step(fn, device, reps):
    return time_pair([fn], device, reps)[0]


def time_pair(fns, device, reps):
    """Minimum time of each function, the functions interleaved in every repetition so that
    load from other processes hits all of them alike."""
    for fn in fns:
        fn()
    _sync(device)
    best = [float("inf")] * len(fns)
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            _sync(device)
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def bench_cells(device, widths, T, B, reps):
    rows = []
    x = torch.randn(B, T, 1, device=device)
    for N in widths:
        stock_lstm = torch.nn.LSTM(1, N, batch_first=True).to(device)
        stock_gru = torch.nn.GRU(1, N, batch_first=True).to(device)

        def stock(m):
            def f():
                m.zero_grad(set_to_none=True)
                out, _ = m(x)
                out[:, -1].sum().backward()
            return f

        def ours(arch):
            m = nets.make(arch, 1, N).to(device)

            def f():
                m.zero_grad(set_to_none=True)
                S, O = m.run(x)
                m.output(S[:, -1], None if O is None else O[:, -1]).sum().backward()
            return f

        t_lstm, t_ours_lstm, t_peep = time_pair([stock(stock_lstm), ours("lstm"), ours("peephole_lstm")], device, reps)
        t_gru, t_ours_gru = time_pair([stock(stock_gru), ours("gru")], device, reps)
        for arch, ref_name, t_ref, t in (("lstm", "torch.nn.LSTM", t_lstm, t_ours_lstm),
                                         ("peephole_lstm", "torch.nn.LSTM", t_lstm, t_peep),
                                         ("gru", "torch.nn.GRU", t_gru, t_ours_gru)):
            rows.append(dict(device=device.type, N=N, arch=arch, ref=ref_name, t=t, t_ref=t_ref, ratio=t / t_ref))
            print(f"  {device.type} N={N:<4d} {arch:<14s} {t:7.3f} s  vs {ref_name:<13s} {t_ref:7.3f} s   "
                  f"ratio {t / t_ref:5.2f}x  ({1e3 * t / T:.3f} ms per time step)", flush=True)
    return rows


def bench_ensemble(device, M, N, T, B, steps, reps, arch="gru"):
    torch.manual_seed(0)
    singles = [nets.make_classifier(arch, 1, N, 10).to(device) for _ in range(M)]
    ens = nets.stack(singles)
    xs = [torch.randn(B, T, 1, device=device) for _ in range(steps)]
    ys = [torch.randint(10, (B,), device=device) for _ in range(steps)]
    lr = torch.logspace(-4, -2, M).tolist()

    def train(model, lr, members):
        opt = MemberOptimizer(model.parameters(), "adam", lr=lr, members=members)
        for x, y in zip(xs, ys):
            opt.zero_grad()
            logits = model.forward_members(x)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 10), y.repeat(logits.shape[0]),
                                                     reduction="none").view(logits.shape[0], -1).mean(1).sum()
            loss.backward()
            opt.step()

    def run_ensemble():
        train(ens, lr, M)

    def run_sequential():
        for k, m in enumerate(singles):
            train(m, lr[k], None)

    t_ens, t_seq = time_pair([run_ensemble, run_sequential], device, reps)
    print(f"  {device.type} ensemble of {M} {arch} (N={N}, T={T}, batch {B}, {steps} Adam steps): "
          f"{t_ens:.2f} s  vs one after another {t_seq:.2f} s   throughput ratio {t_seq / t_ens:5.1f}x", flush=True)
    return dict(device=device.type, M=M, t_ensemble=t_ens, t_sequential=t_seq, ratio=t_seq / t_ens)


def _nbytes_saved(fn):
    """Bytes of the distinct storages autograd keeps for the backward pass of ``fn()``."""
    seen = {}

    def pack(t):
        try:
            key = (t.untyped_storage().data_ptr(), t.device.type)
            seen[key] = t.untyped_storage().nbytes()
        except RuntimeError:
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values())


def bench_memory(device, arch, N, T):
    """Memory of one fwd+bwd: parameters + gradients + tensors saved for the backward pass (exact
    accounting, independent of the allocator); on CUDA also the allocator's peak."""
    x = torch.randn(128, T, 1, device=device)
    res = {}
    for untied in (False, True):
        m = nets.make(arch, 1, N, untied=T if untied else None).to(device)
        params = sum(p.numel() * p.element_size() for p in m.parameters())
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        (S, O), saved = _nbytes_saved(lambda: m.run(x))
        m.output(S[:, -1], None if O is None else O[:, -1]).sum().backward()
        peak = torch.cuda.max_memory_allocated() - base + params if device.type == "cuda" else None
        res[untied] = dict(params=params, saved=saved, total=2 * params + saved, peak=peak)
        del m, S, O
    mb = lambda b: b / 2**20  # noqa: E731
    for untied in (False, True):
        r = res[untied]
        extra = f", CUDA allocator peak {mb(r['peak']):.0f} MiB" if r["peak"] is not None else ""
        print(f"  {device.type} {arch:<5s} N={N} T={T} batch 128 {'untied' if untied else 'tied  '}: parameters "
              f"{mb(r['params']):7.1f} MiB, +gradients, +saved for backward {mb(r['saved']):6.1f} MiB = "
              f"{mb(r['total']):7.1f} MiB{extra}", flush=True)
    print(f"  untied/tied memory {res[True]['total'] / res[False]['total']:.1f}x", flush=True)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--T", type=int, default=784)
    ap.add_argument("--quick", action="store_true", help="width 128 only (about a minute on CPU)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    # Denormal floats are flushed to zero for *both* sides: our cells do it inside their loops
    # anyway, and without it torch.nn.GRU/LSTM slow down several-fold at T=784 once the
    # backward signal vanishes into the denormal range.
    torch.set_flush_denormal(True)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    t0 = time.perf_counter()
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, flush denormals on, "
          f"devices {[d.type for d in devices]}")
    summary = []
    for dev in devices:
        print(f"[1] fwd+bwd of one training step, batch 128, T={args.T} ({dev.type})")
        rows = bench_cells(dev, [128] if args.quick else [128, 256], args.T, 128, args.reps)
        print(f"[2] ensemble vs sequential ({dev.type})")
        ens = bench_ensemble(dev, M=64, N=16, T=50, B=32, steps=3, reps=args.reps)
        print(f"[3] memory of untied cells ({dev.type})")
        bench_memory(dev, "lstm", 128, args.T)
        worst = max(r["ratio"] for r in rows if r["arch"] in ("lstm", "peephole_lstm"))
        summary.append((dev.type, worst, max(r["ratio"] for r in rows if r["arch"] == "gru"), ens["ratio"]))
    print("summary")
    for dev, worst, gru, ens in summary:
        ok1 = "meets" if worst <= 1.3 or dev != "cpu" else "MISSES"
        ok2 = "meets" if ens >= 5 or dev != "cpu" else "MISSES"
        print(f"  {dev}: worst LSTM-family ratio {worst:.2f}x ({ok1} the 1.3x CPU target); GRU {gru:.2f}x; "
              f"ensemble throughput {ens:.1f}x ({ok2} the 5x CPU target)")
    print(f"benchmark wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
