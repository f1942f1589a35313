"""Which of the training engine's speed options are right and faster on this GPU?

The options: CUDA-graph replay of the training step (``RNN_MFT_CUDA_GRAPHS=1``,
``fit(cuda_graphs=True)``) and the fused Triton steps of the LSTMs (``RNN_MFT_TRITON=1``).

1. **Right.** For the LSTM, the peephole LSTM and the GRU (mixed-length tied ensembles, as
   Figures 1 and 6 train them, and an untied ensemble, as Figure 2), a few training steps with
   and without the option: the curves and the final parameters must agree.
   - CUDA graphs replay the same kernels: Adam steps, agreement to ``--rtol`` (1e-5; they should
     agree bitwise, and any difference is printed); ``meta["cuda_graphs"] == "on"``.
   - The fused steps round differently (``tests/test_triton.py``: about 1e-6): SGD steps (whose
     update is linear in the gradient, so rounding is not amplified as Adam does for tiny
     gradients), agreement to ``--rtol-fused`` (1e-4); ``meta["fused_lstm_steps"] == "triton"``.
2. **Faster.** Training steps of Figure 6's tied LSTM ensemble (224 members, width 128, batch 64,
   read-out steps 2-256, 784 inputs), timed after warm-up with every combination of the options
   that passed (median over ``--timed`` steps).

The fastest passing combination is printed and, with ``--env-file``, written there as shell
``export`` lines (nothing when the plain path is fastest). Exit status 0 when the checks ran (the
choice may be the plain path), 1 when a check failed to run, 3 without CUDA (nothing measured).
``tools/gpu_run.sh`` sources the file before the paper slice.

``--reuse DIR`` (what ``tools/gpu_run.sh`` passes) checks nothing when an earlier lent-GPU
session committed a check (``DIR/<session>/speed.json``) made on the same GPU model with the same
torch and the same library code (a SHA-256 of every ``rnn_mft`` source file, ``library_hash``):
its choice is written to ``--env-file`` and named. Any change to the library checks again.

    python tools/gpu_speed_check.py [--json out.json] [--env-file speed.env] [--steps 4] [--timed 3]
                                    [--reuse data/gpu_sessions]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

from rnn_mft.settings import override


OPTIONS = {"graphs": "RNN_MFT_CUDA_GRAPHS", "triton": "RNN_MFT_TRITON"}


def _fit_pair(arch: str, untied: bool, device, steps: int, rtol: float, option: str = "graphs") -> dict:
    """Train the same small ensemble without and with ``option`` (``"graphs"`` or ``"triton"``);
    report the largest relative differences."""
    from rnn_mft import train
    from rnn_mft.experiments.training.common import make_ensemble
    from rnn_mft.theory import Theta
    from rnn_mft.train.synthetic import TensorTask
    lengths = [3, 9, 6, 9, 2, 6]
    th = [Theta.uniform(arch, sigma2=1.0, nu2=1.0, f=dict(sigma2=1.0, nu2=1.0, mu=mu))
          for mu in (0.0, 1.0, 2.0, -1.0, 0.5, 1.5)]
    g = torch.Generator().manual_seed(0)
    T = max(lengths)
    task = TensorTask(torch.randn(256, T, 5, generator=g), torch.randint(4, (256,), generator=g),
                      torch.randn(64, T, 5, generator=g), torch.randint(4, (64,), generator=g), n_out=4)
    opt = dict(optimizer="adam", lr=1e-2) if option == "graphs" else dict(optimizer="sgd", lr=0.05)
    cfg = train.TrainConfig(steps=steps, batch_size=16, clip=1.0, eval_every=2, progress=False, device=str(device),
                            **opt)
    out = {}
    for on in (False, True):
        ens = make_ensemble(arch, task.n_in, 32, task.n_out, [("theta", t) for t in th], seed=1, lengths=lengths,
                            untied=max(lengths) if untied else None)
        with override(cuda_graphs=False, triton="on" if on and option == "triton" else "off"):
            res = train.fit(ens, task, cfg, cuda_graphs=on if option == "graphs" else None)
        out[on] = (res, [p.detach().cpu().double().numpy() for p in ens.parameters()])
    (a, pa), (b, pb) = out[False], out[True]
    diffs = {k: float(np.nanmax(np.abs(a.curves[k] - b.curves[k]) / (np.abs(a.curves[k]) + 1e-30)))
             for k in ("train_loss", "eval_loss", "grad_norm")}
    # parameters: largest difference relative to the tensor's scale (its largest entry), as
    # tests/test_triton.py holds the fused steps; entry by entry, an entry near 0 turns a 1e-8
    # rounding difference into a relative 1e-4 (the first H200 session failed on exactly that)
    diffs["parameters"] = max(float(np.max(np.abs(x - y)) / max(float(np.max(np.abs(x))), 1e-30))
                              for x, y in zip(pa, pb))
    worst = max(diffs.values())
    key, want = ("cuda_graphs", "on") if option == "graphs" else ("fused_lstm_steps", "triton")
    return {"option": option, "arch": arch, "untied": untied, "note": b.meta.get(key), "max_rel_diff": diffs,
            "bitwise": worst == 0.0, "ok": b.meta.get(key) == want and worst <= rtol}


def _time_steps(device, arch: str, members_per_T: int, Ts, width: int, batch: int, n_in: int, timed: int,
                graphs: bool, triton: bool = False) -> float:
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
    with override(cuda_graphs=False, triton="on" if triton else "off"):
        train.fit(model, Task(), cfg, hook=hook, cuda_graphs=graphs)
    del model
    torch.cuda.empty_cache()
    return statistics.median(np.diff(marks[1:]))          # steps 2.. (the first includes the capture)


def library_hash() -> str:
    """SHA-256 of every source file of the installed ``rnn_mft`` (relative path and contents, in
    path order): what a speed check's verdict depends on besides the GPU and torch."""
    import hashlib
    from pathlib import Path

    import rnn_mft
    root = Path(rnn_mft.__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def earlier_check(sessions, gpu: str, torch_version: str, lib: str):
    """``(path, report)`` of the newest ``<sessions>/<session>/speed.json`` made on the GPU model
    ``gpu`` with ``torch_version`` and library hash ``lib`` whose checks all ran, or None."""
    from pathlib import Path
    for f in sorted(Path(sessions).glob("*/speed.json"), reverse=True):
        try:
            rep = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if (rep.get("device") == gpu and rep.get("torch") == torch_version and rep.get("library_hash") == lib
                and rep.get("ran") and "chosen" in rep):
            return f, rep
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--env-file", help="write the chosen options here as shell export lines")
    ap.add_argument("--steps", type=int, default=4, help="training steps of each agreement check (default 4)")
    ap.add_argument("--rtol", type=float, default=1e-5, help="CUDA graphs: largest relative difference (1e-5)")
    ap.add_argument("--rtol-fused", type=float, default=1e-4, help="fused steps: largest relative difference (1e-4)")
    ap.add_argument("--timed", type=int, default=3, help="timed steps of the paper-scale ensemble (default 3)")
    ap.add_argument("--no-timing", action="store_true", help="only the agreement checks")
    ap.add_argument("--reuse", metavar="DIR",
                    help="check nothing if DIR/*/speed.json holds a check of this GPU, torch and library code")
    a = ap.parse_args(argv)
    if a.steps < 1 or a.timed < 1 or not (a.rtol >= 0 and a.rtol_fused >= 0):
        ap.error(f"--steps={a.steps} --timed={a.timed} --rtol={a.rtol} --rtol-fused={a.rtol_fused}; "
                 "allowed: steps, timed >= 1, tolerances >= 0")
    if a.env_file:
        open(a.env_file, "w").close()                          # the plain path until something is chosen
    if not torch.cuda.is_available():
        print("gpu_speed_check.py: CUDA is not available; nothing checked (exit 3)")
        return 3
    from rnn_mft import nets
    dev = torch.device("cuda")
    rep = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "library_hash": library_hash(),
           "checks": [], "timing": {}}
    found = earlier_check(a.reuse, rep["device"], rep["torch"], rep["library_hash"]) if a.reuse else None
    if found is not None:
        path, old = found
        best = tuple(old["chosen"])
        if a.env_file and best:
            with open(a.env_file, "w") as fh:
                fh.write("".join(f"export {OPTIONS[o]}=1\n" for o in best))
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(dict(old, reused_from=str(path)), fh, indent=1)
        print(f"gpu_speed_check.py: {path} checked this GPU ({rep['device']}), torch and library code already; "
              f"not checked again. speed options: "
              + (" ".join(f"{OPTIONS[o]}=1" for o in best) if best else "none (the plain path)"))
        return 0
    with override(triton="on"):                 # whatever RNN_MFT_TRITON says: can the fused steps run here?
        fused = nets.fused_lstm_steps_on(dev)
    passed = {"graphs": True, "triton": fused}
    ran = True
    if not passed["triton"]:
        print("fused steps: Triton is not importable here; not checked")
    cases = [("graphs", arch, untied) for arch, untied in
             (("lstm", False), ("peephole_lstm", False), ("gru", False), ("lstm", True))]
    cases += [("triton", arch, untied) for arch, untied in (("lstm", False), ("peephole_lstm", False), ("lstm", True))
              if passed["triton"]]
    for option, arch, untied in cases:
        try:
            r = _fit_pair(arch, untied, dev, a.steps, a.rtol if option == "graphs" else a.rtol_fused, option)
        except Exception as exc:                               # noqa: BLE001 (report it, fail the option)
            r = {"option": option, "arch": arch, "untied": untied, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
            ran = False
        rep["checks"].append(r)
        passed[option] &= r["ok"]
        print(f"agreement, {option}, {arch} {'untied' if untied else 'tied'}: {'OK' if r['ok'] else 'FAIL'} "
              + (f"({r['note']}; {'bitwise' if r['bitwise'] else 'max rel diff ' + repr(r['max_rel_diff'])})"
                 if "error" not in r else r["error"]), flush=True)
    best = ()
    if not a.no_timing:
        Ts = [2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256]
        combos = [c for c in ((), ("graphs",), ("triton",), ("graphs", "triton")) if all(passed[o] for o in c)]
        t = {}
        for c in combos:
            try:
                t[c] = _time_steps(dev, "lstm", 16, Ts, 128, 64, 784, a.timed, "graphs" in c, "triton" in c)
            except Exception as exc:                           # noqa: BLE001
                print(f"timing {'+'.join(c) or 'plain'} failed: {type(exc).__name__}: {exc}")
                ran = ran and c != ()
                continue
            rep["timing"]["+".join(c) or "plain"] = t[c]
            print(f"timing, Figure 6's tied LSTM ensemble (224 members), {'+'.join(c) or 'plain'}: "
                  f"{1e3 * t[c]:.1f} ms per training step"
                  + (f" (x{t[()] / t[c]:.2f} of plain)" if () in t and c else ""), flush=True)
        if t:
            best = min(t, key=t.get)
    rep["passed"], rep["chosen"], rep["ran"] = passed, list(best), ran
    if a.env_file and best:
        with open(a.env_file, "w") as fh:
            fh.write("".join(f"export {OPTIONS[o]}=1\n" for o in best))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rep, fh, indent=1)
    print("speed options: " + (" ".join(f"{OPTIONS[o]}=1" for o in best) if best else "none (the plain path)"))
    return 0 if ran else 1


if __name__ == "__main__":
    sys.exit(main())
