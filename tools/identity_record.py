"""The bit-identity record of issue 26: what a reorganisation must not change.

    python tools/identity_record.py --write tests/data/identity_before_issue26.json   # before
    python tools/identity_record.py --check tests/data/identity_before_issue26.json   # after

Recorded, every float as its exact ``float.hex``:
* ``analyze`` (every array field and ``xi_resolved``) for every Table 1 architecture at its
  standard and critical presets and two random Thetas, at sigma_z = 1 and 0.5 (the LSTM by its
  default two-state theory and by the paper's Algorithm 1, method="paper");
* ``solve_for_timescale`` for three targets;
* the timescale-landscape maps (``timescale_landscape.run`` at the smoke profile);
* the stored run names of every profile (``collect_runs``);
* the parameters of ``nets.make`` + ``init_`` (standard, critical) for every architecture, and of
  stock ``torch.nn.LSTM``/``GRU`` after ``critical_init_`` and ``chrono_init_``, as SHA-256 of
  their float32 bytes, and one forward pass of each cell.

``--check`` compares every entry bitwise on the machine (CPU flags, numpy, scipy and torch
builds) the record was made on; ``platform`` in the record names it. On another machine only the
run names are compared: the numbers' last bits depend on the CPU's kernels (numpy's SIMD sums,
torch's), and a tolerance loose enough for every CPU would not check bit-identity at all.
Each check runs in a fresh process, in this fixed order: the solvers' results depend at 1e-9 on
earlier solves in the same process (their warm starts).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

FIELDS = ("mu_s", "q_s", "c_s", "chi", "xi", "m1", "m2", "var", "converged", "residual",
          "one_minus_chi", "one_minus_chi_err", "chi_stderr", "xi_rel_err", "xi_lower", "xi_resolved")


def _enc(a):
    a = np.asarray(a)
    if a.dtype == bool:
        return a.astype(int).ravel().tolist()
    return [float(x).hex() for x in np.asarray(a, dtype=float).ravel()]


def _platform() -> dict:
    import scipy
    import torch
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = hashlib.sha256(line.encode()).hexdigest()[:16]
                break
    except OSError:
        pass
    return {"machine": platform.machine(), "cpu_flags": flags, "numpy": np.__version__,
            "scipy": scipy.__version__, "torch": torch.__version__, "python": platform.python_version()}


def _thetas(arch_name: str):
    from rnn_mft.theory import Theta
    out = {"standard": Theta.standard(arch_name), "critical": Theta.critical(arch_name)}
    rng = np.random.default_rng(26)
    for k in range(2):
        kw = {}
        for g in Theta.critical(arch_name):
            kw[g] = dict(mu=float(rng.uniform(-1, 3) if g == "f" else rng.uniform(-0.5, 0.5)),
                         rho2=float(rng.uniform(0.0, 0.3)), sigma2=float(rng.uniform(0.2, 2.0)),
                         nu2=float(rng.uniform(0.2, 1.5)))
        out[f"random{k}"] = Theta(arch_name, kw)
    return out


def record() -> dict:
    """The record of this checkout, on this machine (module docstring)."""
    import torch
    from rnn_mft import arch, nets, theory
    from rnn_mft.cluster.runs import collect_runs
    from rnn_mft.experiments.protocol import PROFILES
    from rnn_mft.experiments.theory_chapters import timescale_landscape

    rec: dict = {"platform": _platform(), "analyze": {}, "solve": {}, "maps": {}, "runs": {}, "torch": {}}
    for a in arch.BUILTIN:
        for tname, th in _thetas(a).items():
            for sz in (1.0, 0.5):
                methods = (None, "paper") if a == "lstm" else (None,)
                for m in methods:
                    kw = {"method": m} if m else {}
                    r = theory.analyze(a, th, sigma_z=sz, **kw)
                    rec["analyze"][f"{a}/{tname}/sz{sz}/{m or 'default'}"] = {
                        f: _enc(getattr(r, f)) for f in FIELDS if getattr(r, f) is not None}
    for a, xi in (("gru", 50.0), ("peephole_lstm", 30.0), ("lstm", 100.0)):
        s = theory.solve_for_timescale(a, xi=xi)
        th = s.theta
        rec["solve"][f"{a}/xi{xi}"] = {
            "theta": {g: {k: _enc(getattr(th[g], k)) for k in ("mu", "rho2", "sigma2", "nu2")} for g in th},
            "xi": _enc(s.xi)}
    res = timescale_landscape.run(timescale_landscape.config("smoke"))
    rec["maps"] = {k: {kk: _enc(vv) for kk, vv in v.items() if isinstance(vv, np.ndarray)}
                   for k, v in res.items() if isinstance(v, dict)}
    for p in PROFILES:
        rec["runs"][p] = sorted(u.id for u in collect_runs(p))        # "experiment/name"

    def h(mod):
        b = b"".join(p.detach().to(torch.float32).contiguous().numpy().tobytes() for p in mod.parameters())
        return hashlib.sha256(b).hexdigest()
    for a in arch.BUILTIN:
        for how in ("standard", "critical"):
            for untied in (None, 4):
                g = torch.Generator().manual_seed(7)
                cell = nets.make(a, n_in=2, n_hidden=5, untied=untied)
                nets.init_(cell, getattr(theory.Theta, how)(a), generator=g)
                x = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(8))
                with torch.no_grad():
                    out = cell(x)
                out = out[0] if isinstance(out, tuple) else out
                rec["torch"][f"{a}/{how}/untied{untied}"] = {"params": h(cell),
                                                           "forward": hashlib.sha256(out.numpy().tobytes()).hexdigest()}
    for stock in ("LSTM", "GRU"):
        for how in ("critical", "chrono"):
            torch.manual_seed(3)
            m = getattr(torch.nn, stock)(3, 6, num_layers=2)
            if how == "critical":
                nets.critical_init_(m, generator=torch.Generator().manual_seed(4))
            elif stock == "LSTM":
                nets.chrono_init_(m, t_max=50.0, generator=torch.Generator().manual_seed(4))
            else:
                continue
            rec["torch"][f"stock_{stock}/{how}"] = {"params": h(m)}
    return rec


def _cmp(a, b, rtol, path, bad):
    if isinstance(a, dict):
        if set(a) != set(b):
            bad.append(f"{path}: keys {sorted(set(a) ^ set(b))}")
        for k in set(a) & set(b):
            _cmp(a[k], b[k], rtol, f"{path}/{k}", bad)
    elif isinstance(a, list):
        if len(a) != len(b):
            bad.append(f"{path}: length {len(a)} != {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            if x == y:
                continue
            if rtol and isinstance(x, str) and isinstance(y, str) and x.startswith(("0x", "-0x")):
                fx, fy = float.fromhex(x), float.fromhex(y)
                if (math.isnan(fx) and math.isnan(fy)) or abs(fx - fy) <= rtol * max(abs(fx), abs(fy)):
                    continue
            bad.append(f"{path}[{i}]: {x!r} != {y!r}")
            return
    elif a != b:
        bad.append(f"{path}: {a!r} != {b!r}")


def check(old: dict, new: dict) -> list:
    """Differences between two records: every entry bitwise on the record's own platform; on
    another, the run names only (the numbers' last bits depend on the CPU's kernels there)."""
    same = old["platform"] == new["platform"]
    bad: list = []
    _cmp(old["runs"], new["runs"], 0.0, "runs", bad)
    if same:
        for key in ("analyze", "solve", "maps", "torch"):
            _cmp(old[key], new[key], 0.0, key, bad)
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", type=Path, help="write the record here")
    g.add_argument("--check", type=Path, help="compare against the record stored here")
    args = ap.parse_args(argv)
    rec = record()
    if args.write:
        args.write.write_text(json.dumps(rec, indent=0, sort_keys=True) + "\n")
        print(f"wrote {args.write}")
        return 0
    old = json.loads(args.check.read_text())
    bad = check(old, rec)
    mode = "bitwise" if old["platform"] == rec["platform"] else "run names only (another machine)"
    if bad:
        print(f"{len(bad)} differences ({mode}):\n" + "\n".join(bad[:40]))
        return 1
    print(f"identical ({mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
