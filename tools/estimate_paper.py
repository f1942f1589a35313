"""What `make reproduce` (profile paper) costs, from each training experiment's own config.

Without ``--measure`` this is an *estimate*: (sequential time steps, from each experiment's
``cost(config("paper"))``, i.e. training steps x the longest length of each ensemble) x an
assumed time per sequential step, ``--ms-per-step`` (default 0.4 ms, about 30 kernels of ~12 us;
an assumption, not a measurement).

With ``--measure`` nothing is assumed: every ensemble that the experiments train at
``--profile`` (default paper) is built with its real shapes (architecture, width, batch,
members, sequence lengths and read-out steps, tied or untied, hard sigmoid, h-detach, optimizer,
gradient clipping: the groupings of ``ensembles(cfg)`` in each experiment module), and
``--warmup`` + ``--timed`` training steps (forward, backward, optimizer step) are timed on this
machine's device (CUDA if present, else CPU; the output names the device). Minutes per
ensemble = its training steps x the measured time per training step. Not included: evaluations,
data generation (measured separately by benchmarks/data.py to be >10x faster than training),
start-up.

    python tools/estimate_paper.py [--ms-per-step 0.4]
    python tools/estimate_paper.py --measure [--profile paper] [--json out.json]
    python tools/estimate_paper.py --measure --profile smoke      # a quick check on a CPU
    python tools/estimate_paper.py --checkpoints [--profile paper]  # each ensemble's checkpoint size

``--checkpoints`` lists the size of each ensemble's checkpoint at its last step
(:func:`rnn_mft.train.ensembles.checkpoint_bytes`: parameters, optimizer state and curves, checked
against real files by the tests) and whether it can come back from a lent GPU (60 MiB in all)
and be committed (under 50 MiB, a size that git hosts take without complaint).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

from rnn_mft.experiments.training import sequence_length, trainability, training_curves, unrolled
from rnn_mft.train.ensembles import checkpoint_bytes_of

EXPERIMENTS = {"Figure 1 (sequence_length)": sequence_length, "Figures 2 and 6 (trainability)": trainability,
               "Figure 4 (training_curves)": training_curves, "Table 2 (unrolled)": unrolled}


def ensembles_of(exp, profile: str) -> list[dict]:
    """The ensembles an experiment trains at ``profile`` (Figures 2 and 6: both); none where the
    experiment does not declare an optional profile (``cpu``)."""
    from rnn_mft.experiments.protocol import ProfileNotDeclared
    try:
        exp.config(profile)
    except ProfileNotDeclared:
        return []
    if exp is trainability:
        return [dict(e, name=f"{'tied' if tied else 'untied'} {e['arch']} T={','.join(map(str, e['Ts']))}")
                for tied in (False, True)
                for e in trainability.ensembles(trainability.config(profile).replace(tied=tied))]
    out = exp.ensembles(exp.config(profile))
    for e in out:
        e.setdefault("name", f"{e['arch']} T={','.join(map(str, e['Ts']))}")
    return out


def time_training_step(e: dict, device, warmup: int, timed: int) -> float:
    """Median seconds of one training step (forward, backward, optimizer step) of ensemble ``e``."""
    import torch
    import torch.nn.functional as F

    from rnn_mft import nets
    from rnn_mft.nets import flush_denormal
    from rnn_mft.train import MemberOptimizer, clip_grad_norm_members_
    T = max(e["lengths"])
    M = e["members"]
    lengths = e["lengths"] if len(set(e["lengths"])) > 1 else None
    model = nets.make_classifier(e["arch"], e["n_in"], e["width"], e["n_out"], untied=None if e["tied"] else T,
                                 hard_sigmoid=e.get("hard_sigmoid", False), members=M, lengths=lengths,
                                 h_detach=e.get("h_detach", 0.0)).to(device)
    opt = MemberOptimizer(model.parameters(), e["optimizer"], 1e-3, members=M)
    x = torch.randn(e["batch_size"], T, e["n_in"], device=device)
    y = torch.randint(e["n_out"], (e["batch_size"],), device=device)

    def step():
        logits = model.forward_members(x)
        loss = F.cross_entropy(logits.reshape(-1, e["n_out"]), y.repeat(M), reduction="none").view(M, -1).mean(1)
        opt.zero_grad()
        loss.sum().backward()
        if e.get("clip"):
            clip_grad_norm_members_(opt.params, e["clip"], M)
        opt.step()

    times = []
    with flush_denormal():
        for i in range(warmup + timed):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t)
    del model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return statistics.median(times)


#: what can come back from a lent GPU (tools/gpu_pack.py's payload), and what we commit
RETURN_BYTES, COMMIT_BYTES = 60 * 2**20, 50 * 2**20


def checkpoints(profile: str, out=print) -> dict:
    """Each ensemble's checkpoint size at ``profile`` (estimated from shapes; see the module
    docstring); returns ``{figure: [{name, members, bytes, returns, commits}]}``."""
    from rnn_mft.train.ensembles import format_bytes
    out(f"checkpoint of each ensemble at profile {profile} (parameters, optimizer state, curves; from shapes)")
    rep = {}
    for fig, exp in EXPERIMENTS.items():
        out(fig)
        rows = []
        for e in ensembles_of(exp, profile):
            b = checkpoint_bytes_of(e)
            rows.append(dict(name=e["name"], members=e["members"], bytes=b, returns=b <= RETURN_BYTES,
                             commits=b <= COMMIT_BYTES))
            out(f"  {e['name']:<44s} M={e['members']:<4d} {format_bytes(b):>10s}  "
                f"{'comes back from a lent GPU' if b <= RETURN_BYTES else 'too large to come back from a lent GPU'}"
                f"{', can be committed' if b <= COMMIT_BYTES else ''}")
        rep[fig] = rows
    return rep


def measure(profile: str, warmup: int, timed: int, only=None, out=print) -> dict:
    import torch

    from rnn_mft.train.ensembles import format_bytes
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    label = (f"cuda ({torch.cuda.get_device_name(0)})" if device.type == "cuda"
             else f"cpu ({torch.get_num_threads()} threads)")
    out(f"measured on {label}, torch {torch.__version__}; profile {profile}; {warmup} warm-up + {timed} timed "
        f"training steps per ensemble (median)")
    report = {"device": label, "torch": torch.__version__, "profile": profile, "figures": {}}
    total = 0.0
    for fig, exp in EXPERIMENTS.items():
        if only and not any(o in fig for o in only):
            continue
        out(fig)
        mins = 0.0
        rows = []
        for e in ensembles_of(exp, profile):
            s = time_training_step(e, device, warmup, timed)
            m = s * e["steps"] / 60
            mins += m
            mem = e.get("bytes", {}).get("total")
            rows.append(dict(name=e["name"], members=e["members"], T_max=max(e["lengths"]), steps=e["steps"],
                             s_per_training_step=s, ms_per_sequential_step=1e3 * s / max(e["lengths"]),
                             minutes=m, estimated_bytes=mem, checkpoint_bytes=checkpoint_bytes_of(e)))
            out(f"  {e['name']:<44s} M={e['members']:<4d} T_max={max(e['lengths']):<5d} {1e3 * s:9.1f} ms/step "
                f"({1e3 * s / max(e['lengths']):.3f} ms per sequential step) x {e['steps']} steps = {m:8.1f} min"
                + (f"  (memory estimate {format_bytes(mem)})" if mem else ""))
        total += mins
        report["figures"][fig] = {"minutes": mins, "ensembles": rows}
        out(f"  {'= ' + fig:<44s} {mins:8.1f} min ({mins / 60:.2f} h)")
    report["total_minutes"] = total
    out(f"total (measured, {label}): {total:.1f} min ({total / 60:.2f} h) of training steps")
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ms-per-step", type=float, default=0.4, help="assumed time per sequential step (estimate)")
    ap.add_argument("--measure", action="store_true", help="time every ensemble's training step on this machine")
    ap.add_argument("--checkpoints", action="store_true", help="list each ensemble's checkpoint size")
    ap.add_argument("--profile", default="paper",
                    help="profile whose ensembles --measure times or --checkpoints lists (default paper)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--timed", type=int, default=3)
    ap.add_argument("--only", action="append", help="only figures whose name contains this (repeatable)")
    ap.add_argument("--json", help="write the measurement to this JSON file")
    a = ap.parse_args(argv)
    from rnn_mft.experiments import PROFILES
    if a.profile not in PROFILES:
        ap.error(f"--profile={a.profile!r}; allowed: {', '.join(PROFILES)}")
    if a.warmup < 0 or a.timed < 1:
        ap.error(f"--warmup={a.warmup} --timed={a.timed}; allowed: warmup >= 0, timed >= 1")
    if not (math.isfinite(a.ms_per_step) and a.ms_per_step > 0):
        ap.error(f"--ms-per-step={a.ms_per_step}; allowed: a finite number > 0")
    if a.json is not None and not (a.measure or a.checkpoints):
        ap.error(f"--json={a.json!r} applies to --measure or --checkpoints only")
    if a.only is not None and not a.measure:
        ap.error(f"--only={a.only!r} applies to --measure only")
    if a.checkpoints:
        rep = checkpoints(a.profile)
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(rep, fh, indent=1)
        return 0
    if a.measure:
        rep = measure(a.profile, a.warmup, a.timed, a.only)
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(rep, fh, indent=1)
        return 0
    ms = a.ms_per_step
    print(f"ESTIMATE, not a measurement: {ms:.3f} ms per sequential step (forward + backward) assumed "
          f"(--measure times the real ensembles)")
    total = 0.0
    for name, exp in EXPERIMENTS.items():
        c = exp.cost(exp.config("paper"))
        h = c["sequential_steps"] * ms / 1e3 / 3600
        total += h
        print(f"{name:34s} {c['runs']:4d} ensemble runs  {c['sequential_steps'] / 1e6:7.1f} M sequential steps  "
              f"~{h:5.1f} h (estimate)")
    print(f"{'total':34s} {'':24s}{'':22s}~{total:5.1f} h (estimate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
