"""GPU benchmark of rnn_mft's cells: forward+backward time per recurrent step against cuDNN.

What it measures (one line per configuration, times per recurrent step, i.e. one training step
of a T-step sequence divided by T):

1. **Single networks.** Our tied and untied cells of every architecture (vanilla, minimal, gru,
   peephole_lstm, lstm) at widths 128, 256, 600 and batch 64, 128, and cuDNN's
   ``torch.nn.LSTM`` / ``torch.nn.GRU`` at the same shapes (input size ``--n-in``).
2. **Ensembles.** Our tied LSTM, peephole LSTM and GRU as ensembles of 1, 4, 16, 64, 256 members
   at width 128 and 256, batch 64 and 128 (configurations whose estimated memory,
   :func:`rnn_mft.train.ensembles.ensemble_bytes`, exceeds 80% of the free GPU memory are
   skipped and listed), against 64 (or M) cuDNN runs one after another (M x one cuDNN step).
3. **Options, measured, never switched on by default:** TF32 for the recurrent matrix products
   (``--tf32``; ``TrainConfig(tf32=True)`` in training), CUDA-graph capture of one fixed-shape
   forward+backward (``--graphs``; ``torch.cuda.make_graphed_callables``, inside try/except: the
   line says "capture failed: ..." otherwise; ``fit(cuda_graphs=True)`` in training), also of the
   ensembles of 64, and the fused Triton steps of the two LSTMs (``--triton``;
   ``RNN_MFT_TRITON=1`` in training), alone and inside a graph.

Targets (issue 10), printed as PASS / MISS with the measured ratio:

* one network at width 256, batch 128: our tied LSTM at most 1.5x cuDNN LSTM's step time;
* an ensemble of 64: at least 20x the throughput of 64 cuDNN runs one after another (at width
  128 / batch 64, the shape of Figures 2 and 6, and at width 256 / batch 128).

Timing: ``torch.cuda.synchronize()`` and CUDA events around ``--reps`` timed repetitions after
``--warmup`` untimed ones; the median is reported. Without CUDA the script says so and exits 0;
``--cpu-smoke`` runs a tiny version of everything on the CPU (wall-clock timing, numbers labelled
as a CPU smoke run, not GPU measurements) so that tests can check that the script runs.

``--skip-if-measured DIR`` (what ``tools/gpu_run.sh`` passes by default) measures nothing when
an earlier lent-GPU session committed a complete benchmark on the same GPU model
(``DIR/<session>/bench.json``, as ``tools/gpu_pack.py unpack`` writes it), so that later
sessions spend their minutes on the paper runs; it names that file.

    python benchmarks/gpu.py [--quick] [--tf32] [--graphs] [--triton] [--json out.json]
    python benchmarks/gpu.py --cpu-smoke
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

from rnn_mft import nets
from rnn_mft.train.ensembles import ensemble_bytes
from rnn_mft.settings import override

ARCHS = ("vanilla", "minimal", "gru", "peephole_lstm", "lstm")
STOCK = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


class Timer:
    def __init__(self, device: torch.device, warmup: int, reps: int):
        self.device, self.warmup, self.reps = device, warmup, reps

    def __call__(self, fn) -> float:
        """Median seconds of ``fn()`` over ``reps`` runs after ``warmup`` runs."""
        for _ in range(self.warmup):
            fn()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            times = []
            for _ in range(self.reps):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                torch.cuda.synchronize()
                times.append(a.elapsed_time(b) / 1e3)
            return statistics.median(times)
        times = []
        for _ in range(self.reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)


def _ours(arch, n_in, width, B, T, members=None, untied=False, device="cpu"):
    m = nets.make_classifier(arch, n_in, width, 10, untied=T if untied else None, members=members).to(device)
    x = torch.randn(B, T, n_in, device=device)

    def step():
        m.zero_grad(set_to_none=True)
        m(x).float().sum().backward()
    return step, m, x


def _stock(arch, n_in, width, B, T, device):
    rnn = STOCK[arch](n_in, width, batch_first=True).to(device)
    x = torch.randn(B, T, n_in, device=device)

    def step():
        rnn.zero_grad(set_to_none=True)
        out, _ = rnn(x)
        out[:, -1].sum().backward()
    return step


#: the triton setting (RNN_MFT_TRITON) of the fused steps: "on" (CUDA), "interpret" in a CPU smoke run
FUSED_MODE = "on"


def _fused(on: bool):
    """The fused Triton LSTM steps on or off inside a block."""
    return override(triton=FUSED_MODE if on else "off")


def _graphed(arch, n_in, width, B, T, device, members=None):
    """A CUDA-graphed forward+backward of our tied cell, or the reason it cannot be captured."""
    m = nets.make_classifier(arch, n_in, width, 10, members=members).to(device)
    x = torch.randn(B, T, n_in, device=device)
    try:
        g = torch.cuda.make_graphed_callables(m, (x,))

        def step():
            g(x).sum().backward()
        step()
        torch.cuda.synchronize()
        return step, None
    except Exception as exc:                                   # noqa: BLE001 (report and go on)
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"


def measured_before(sessions, gpu: str):
    """The newest ``<sessions>/<session>/bench.json`` holding a complete GPU benchmark of the GPU
    model ``gpu`` (not a CPU smoke run, not one stopped by a time limit), or None."""
    from pathlib import Path
    for f in sorted(Path(sessions).glob("*/bench.json"), reverse=True):
        try:
            d = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if d.get("device") == gpu and d.get("complete") and not d.get("cpu_smoke"):
            return f
    return None


def main(argv=None) -> int:
    global FUSED_MODE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny CPU run that only checks the script works")
    ap.add_argument("--quick", action="store_true",
                    help="the targets' shapes only: single networks at width 256 / batch 128, ensembles of 1 and 64 "
                         "at width 128 / batch 64 and width 256 / batch 128")
    ap.add_argument("--T", type=int, default=100, help="sequence length of the timed step (default 100)")
    ap.add_argument("--n-in", type=int, default=32, help="input size (default 32)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--tf32", action="store_true", help="also measure with TF32 matrix products")
    ap.add_argument("--graphs", action="store_true", help="also try CUDA-graph capture of a fixed-shape step")
    ap.add_argument("--triton", action="store_true", help="also measure the fused Triton LSTM steps (CUDA)")
    ap.add_argument("--json", help="write all rows to this JSON file")
    ap.add_argument("--skip-if-measured", metavar="DIR",
                    help="measure nothing if DIR/*/bench.json holds a complete benchmark of this GPU model")
    a = ap.parse_args(argv)
    for name in ("T", "n_in", "reps"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')}={getattr(a, name)}; allowed: a positive int")
    if a.warmup < 0:
        ap.error(f"--warmup={a.warmup}; allowed: an int >= 0")

    if a.cpu_smoke:
        device = torch.device("cpu")
        widths, batches, Ms, T, reps, warm = [8], [4], [1, 4], 5, 1, 1
        stock_archs = ("gru", "lstm")
        print("CPU SMOKE RUN: tiny shapes on the CPU; these numbers say nothing about GPU performance.")
    else:
        if not torch.cuda.is_available():
            print("benchmarks/gpu.py: CUDA is not available on this machine; nothing measured "
                  "(run it on a GPU machine, or --cpu-smoke to check that the script runs).")
            return 0
        earlier = measured_before(a.skip_if_measured, torch.cuda.get_device_name(0)) if a.skip_if_measured else None
        if earlier is not None:
            print(f"benchmarks/gpu.py: {earlier} already holds a complete benchmark of "
                  f"{torch.cuda.get_device_name(0)}; nothing measured (run without --skip-if-measured to measure "
                  f"again)")
            return 0
        device = torch.device("cuda")
        widths, batches = ([256], [128]) if a.quick else ([128, 256, 600], [64, 128])
        Ms = [1, 64] if a.quick else [1, 4, 16, 64, 256]
        T, reps, warm = a.T, a.reps, a.warmup
        stock_archs = ARCHS
        print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; cuDNN "
              f"{torch.backends.cudnn.version()}")
    timer = Timer(device, warm, reps)
    fused_ok = False
    if a.triton:
        if a.cpu_smoke:                  # the code paths only: the kernels in Triton's interpreter
            os.environ["TRITON_INTERPRET"] = "1"
            FUSED_MODE = "interpret"
        with _fused(True):
            fused_ok = nets.fused_lstm_steps_on(device)
        if not fused_ok:
            print("--triton: Triton is not importable here; the fused steps are not measured")
    n_in = a.n_in if not a.cpu_smoke else 3
    rows = []
    Mt = 4 if a.cpu_smoke else 64
    print(f"T = {T} steps per timed sequence, input size {n_in}; times are per recurrent step (forward + backward)")

    def dump(complete=False):        # after every row: a run stopped by a time limit keeps what it measured
        if a.json:
            tmp = a.json + ".tmp"
            with open(tmp, "w") as fh:
                json.dump({"device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(0),
                           "torch": torch.__version__, "cpu_smoke": a.cpu_smoke, "quick": a.quick, "T": T,
                           "n_in": n_in, "tf32_measured": bool(a.tf32), "complete": complete, "rows": rows},
                          fh, indent=1)
            os.replace(tmp, a.json)

    def record(**row):
        rows.append(row)
        dump()
        extra = f"  x{row['ratio']:.2f} vs cuDNN" if row.get("ratio") is not None else ""
        print(f"  {row['what']:<58s} {row['us_per_step']:10.1f} us/step{extra}")

    tf32_modes = [False, True] if a.tf32 and device.type == "cuda" else [False]
    for tf32 in tf32_modes:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        tag = " [TF32]" if tf32 else ""
        print(f"\n1. single networks{tag}")
        for W in widths:
            for B in batches:
                stock = {}
                for arch in STOCK:
                    stock[arch] = timer(_stock(arch, n_in, W, B, T, device)) / T
                    record(what=f"cuDNN {arch} N={W} B={B}{tag}", kind="cudnn", arch=arch, width=W, batch=B,
                           members=1, tf32=tf32, us_per_step=stock[arch] * 1e6, ratio=None)
                for arch in stock_archs:
                    for untied in (False, True):
                        t = timer(_ours(arch, n_in, W, B, T, untied=untied, device=device)[0]) / T
                        ref = stock.get("lstm" if "lstm" in arch else "gru" if arch == "gru" else "")
                        record(what=f"ours {arch} {'untied' if untied else 'tied'} N={W} B={B}{tag}", kind="ours",
                               arch=arch, untied=untied, width=W, batch=B, members=1, tf32=tf32, fused=False,
                               us_per_step=t * 1e6, ratio=(t / ref) if ref else None)
                        if fused_ok and "lstm" in arch:
                            with _fused(True):
                                t = timer(_ours(arch, n_in, W, B, T, untied=untied, device=device)[0]) / T
                            record(what=f"ours {arch} {'untied' if untied else 'tied'} N={W} B={B}{tag} [fused]",
                                   kind="ours", arch=arch, untied=untied, width=W, batch=B, members=1, tf32=tf32,
                                   fused=True, us_per_step=t * 1e6, ratio=t / ref)
        print(f"\n2. ensembles (tied){tag}")
        free = torch.cuda.mem_get_info()[0] if device.type == "cuda" else 2**31
        shapes = ([(8, B) for B in batches] if a.cpu_smoke else [(128, 64), (256, 128)] if a.quick else
                  [(W, B) for W in (128, 256) for B in batches])
        for W, B in shapes:
            for arch in ("lstm", "peephole_lstm", "gru"):
                stock_t = timer(_stock("lstm" if "lstm" in arch else "gru", n_in, W, B, T, device)) / T
                for M in Ms:
                    need = ensemble_bytes(arch, n_in, W, 10, [T] * M, B, False, eval_batch_size=1)["total"]
                    if need > 0.8 * free:
                        print(f"  skipped: {arch} M={M} N={W} B={B} needs ~{need / 2**30:.1f} GiB")
                        continue
                    for fused in ((False, True) if fused_ok and "lstm" in arch else (False,)):
                        with _fused(fused):
                            t = timer(_ours(arch, n_in, W, B, T, members=M, device=device)[0]) / T
                        speed = M * stock_t / t        # throughput against M cuDNN runs one after another
                        ftag = " [fused]" if fused else ""
                        rows.append(dict(what=f"ensemble {arch} M={M} N={W} B={B}{tag}{ftag}", kind="ensemble",
                                         arch=arch, width=W, batch=B, members=M, tf32=tf32, fused=fused,
                                         us_per_step=t * 1e6, cudnn_us_per_step=stock_t * 1e6,
                                         throughput_vs_sequential_cudnn=speed))
                        dump()
                        print(f"  ensemble {arch:<14s} M={M:<4d} N={W} B={B}{tag}{ftag}: {t * 1e6:10.1f} us/step; "
                              f"throughput {speed:7.2f}x that of {M} cuDNN runs one after another")
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    if a.graphs and (device.type == "cuda" or a.cpu_smoke):        # CPU smoke: capture fails, reported
        print("\n3. CUDA graphs (one fixed-shape forward+backward of our tied cells, captured)")
        for arch in ("lstm", "gru"):
            for W, B in ([(8, 4)] if a.cpu_smoke else [(128, 64), (256, 128)]):
                stock_t = timer(_stock(arch, n_in, W, B, T, device)) / T
                for M in (None, Mt):
                    for fused in ((False, True) if fused_ok and arch == "lstm" else (False,)):
                        name = (f"graphed {arch}{'' if M is None else f' M={M}'} N={W} B={B}"
                                + (" [fused]" if fused else ""))
                        with _fused(fused):
                            step, why = _graphed(arch, n_in, W, B, T, device, members=M)
                            if step is None:
                                print(f"  {name}: capture failed: {why}")
                                rows.append(dict(what=name, kind="graphed", error=why))
                                dump()
                                continue
                            t = timer(step) / T
                        Mn = M or 1
                        rows.append(dict(what=name, kind="graphed", arch=arch, width=W, batch=B, members=Mn,
                                         fused=fused, us_per_step=t * 1e6, cudnn_us_per_step=stock_t * 1e6,
                                         ratio=t / stock_t if M is None else None,
                                         throughput_vs_sequential_cudnn=Mn * stock_t / t))
                        dump()
                        print(f"  {name:<40s} {t * 1e6:10.1f} us/step; "
                              + (f"x{t / stock_t:.2f} of cuDNN's step" if M is None else
                                 f"throughput {Mn * stock_t / t:.1f}x that of {Mn} cuDNN runs one after another"))
                        torch.cuda.empty_cache()
    elif not a.graphs:
        print("\n3. CUDA graphs: not measured (pass --graphs)")

    print("\ntargets" + (" (CPU SMOKE: shapes and device are not the targets'; PASS/MISS meaningless)"
                         if a.cpu_smoke else ""))
    W1, B1 = (8, 4) if a.cpu_smoke else (256, 128)

    def variant(r):
        return ("graphed" if r["kind"] == "graphed" else "plain") + (" + fused" if r.get("fused") else "")

    for r in rows:                    # every variant measured, without TF32 (which changes the arithmetic)
        if "error" in r or r.get("tf32") or r["arch"] != "lstm" or r["width"] != W1 or r["batch"] != B1:
            continue
        if r["kind"] in ("ours", "graphed") and r["members"] == 1 and not r.get("untied"):
            ratio = r["ratio"]
            print(f"  one network N={W1} B={B1}, {variant(r)}: our tied LSTM / cuDNN LSTM step time = {ratio:.2f} "
                  f"(target <= 1.5): {'PASS' if ratio <= 1.5 else 'MISS'}")
    for r in rows:
        if "error" in r or r.get("tf32") or r["kind"] not in ("ensemble", "graphed") or r["members"] != Mt:
            continue
        if r["arch"] in ("lstm", "gru") and (a.cpu_smoke or (r["width"], r["batch"]) in ((128, 64), (256, 128))):
            s_ = r["throughput_vs_sequential_cudnn"]
            print(f"  ensemble of {Mt} {r['arch']} N={r['width']} B={r['batch']}, {variant(r)}: {s_:.1f}x the "
                  f"throughput of {Mt} cuDNN runs one after another (target >= 20): {'PASS' if s_ >= 20 else 'MISS'}")
    dump(complete=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
