#!/usr/bin/env bash
# The library as a user installs it: build, check, install the wheel, use it, in two fresh venvs.
#   1. python -m build      an sdist and a wheel (the wheel is built from the sdist)
#   2. twine check          their metadata and the PyPI description (README.pypi.md) render on PyPI
#   3. contents             the wheel has every file of src/rnn_mft that git does not ignore, py.typed
#                           and the LICENSE; its core requirements are numpy, scipy, pooch, tqdm (no
#                           torch: the extra [torch]); the sdist builds the wheel and ships no tests
#                           (they need the whole repository); CITATION.cff is valid CFF (cffconvert)
#   4. the core venv        `pip install $WHEEL`, unpinned and without extras: torch must not be
#                           installed (nor jupyter-book, Sphinx, matplotlib, ...), nor would
#                           `pip install .` from the repository install it (a dry run); from an empty
#                           folder: analyze, solve_for_timescale, `rnn-mft theory`, `rnn-mft solve`,
#                           and `import rnn_mft.nets` fails with an ImportError naming rnn_mft[torch]
#   5. the torch venv       torch (TORCH_SPEC, TORCH_PIP_ARGS: pinned, else the resolver picks PyPI's
#                           CUDA build), then `pip install "$WHEEL[torch]"`; from an empty folder: the
#                           public API, the command line, critical_init_ on a stock torch.nn.LSTM, a
#                           simulation, the data registry in the installed package, 2 training steps
#   6. sizes                `du -sh` of both venvs' site-packages (README states them)
# Usage: bash tools/check_wheel.sh     (PYTHON=python3.11, TORCH_SPEC=..., KEEP=1 to keep the folder)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_PIP_ARGS=${TORCH_PIP_ARGS:-}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rnn_mft-wheel.XXXXXX")
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$WORK"' EXIT; else echo "keeping $WORK"; fi
t0=$(date +%s)
stamp() { echo "== check_wheel [$(( $(date +%s) - t0 )) s] $*"; }
# absent VENV "WHAT INSTALLED IT" PKG...: none of PKG is installed in VENV (each belongs in an extra)
absent() {
  local venv=$1 what=$2; shift 2
  for pkg in "$@"; do
    if "$venv/bin/python" -m pip show -q "$pkg" >/dev/null 2>&1; then
      echo "check_wheel: $pkg was installed by \`$what\` (it belongs in an extra)"; exit 1
    fi
  done
  echo "not installed (as it should be): $*"
}
unset PYTHONPATH
HEAVY="jupyter-book sphinx papermill jupytext ipykernel matplotlib django-static-mathjax"

stamp "build tools (build, twine, cffconvert) in a throwaway venv"
"$PYTHON" -m venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install -q --no-compile build twine cffconvert

stamp "python -m build (sdist, then the wheel from the sdist)"
"$WORK/tools/bin/python" -m build --outdir "$WORK/dist" "$REPO" > "$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log"; echo "check_wheel: python -m build failed"; exit 1; }
ls -l "$WORK/dist"
SDIST=$(ls "$WORK"/dist/*.tar.gz)
WHEEL=$(ls "$WORK"/dist/*.whl)

stamp "twine check --strict"
"$WORK/tools/bin/python" -m twine check --strict "$SDIST" "$WHEEL"

stamp "CITATION.cff against the CFF 1.2.0 schema (cffconvert)"
"$WORK/tools/bin/cffconvert" --validate -i "$REPO/CITATION.cff"

stamp "contents of the sdist and the wheel"
# every file of src/rnn_mft that git does not ignore (committed or not, as it is in this tree)
if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$REPO" ls-files --cached --others --exclude-standard src/rnn_mft | while read -r f; do
    if [ -f "$REPO/$f" ]; then echo "$f"; fi; done > "$WORK/tracked.txt"
else
  (cd "$REPO" && find src/rnn_mft -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | sort) > "$WORK/tracked.txt"
fi
"$WORK/tools/bin/python" - "$SDIST" "$WHEEL" "$WORK/tracked.txt" <<'EOF'
import sys, tarfile, zipfile
sdist, wheel, tracked = sys.argv[1:]
tracked = [l.strip() for l in open(tracked) if l.strip()]
in_wheel = set(zipfile.ZipFile(wheel).namelist())
in_sdist = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
missing = [f for f in tracked if f.removeprefix("src/") not in in_wheel]
assert not missing, f"package files missing from the wheel: {missing}"
assert "rnn_mft/py.typed" in in_wheel, "py.typed missing from the wheel (PEP 561)"
missing = [f for f in tracked + ["LICENSE", "README.md", "README.pypi.md", "pyproject.toml"] if f not in in_sdist]
assert not missing, f"files missing from the sdist: {missing}"
tests = sorted(n for n in in_sdist if n.startswith("tests/") or n == "conftest.py")
assert not tests, f"the sdist ships no tests (MANIFEST.in), but holds {tests[:5]}"
lic = [n for n in in_wheel if n.endswith("LICENSE") and ".dist-info/" in n]
assert lic, "LICENSE missing from the wheel's .dist-info"
meta = zipfile.ZipFile(wheel).read(next(n for n in in_wheel if n.endswith(".dist-info/METADATA"))).decode()
lines = meta.splitlines()
core = sorted(l.split(":", 1)[1].strip() for l in lines if l.startswith("Requires-Dist:") and "extra ==" not in l)
names = sorted(c.split(">")[0].split("=")[0].split("<")[0].strip().lower() for c in core)
assert names == ["numpy", "pooch", "scipy", "tqdm"], core
assert any(l.startswith("Requires-Dist: torch") and 'extra == "torch"' in l for l in lines), "no [torch] extra"
assert "Provides-Extra: torch" in lines
assert any(l.startswith("Classifier: Intended Audience :: Science/Research") for l in lines)
assert {"Documentation", "Source", "Issues", "Citation"} <= {l.split(":", 1)[1].split(",")[0].strip()
                                                             for l in lines if l.startswith("Project-URL:")}
assert "Description-Content-Type: text/markdown" in lines
body = meta.split("\n\n", 1)[1]
assert body.startswith("# rnn_mft") and "](../" not in body and "](README" not in body, body[:300]
print(f"wheel: {len(tracked)} package files present, py.typed, {lic[0]}; core requirements: {', '.join(core)}; "
      f"sdist: {len(in_sdist)} entries, no tests")
EOF

stamp "the core venv: pip install the wheel, unpinned, no extras"
"$PYTHON" -m venv "$WORK/core"
"$WORK/core/bin/python" -m pip install -q --no-compile "$WHEEL"
absent "$WORK/core" "pip install rnn_mft" torch $HEAVY

stamp "pip install . from the repository, without extras (dry run): what it would install"
"$WORK/core/bin/python" -m pip install -q --dry-run --ignore-installed --report "$WORK/report.json" \
  "$REPO" > "$WORK/dry-run.log" 2>&1 || { tail -20 "$WORK/dry-run.log"; echo "check_wheel: pip install . failed"; exit 1; }
"$WORK/core/bin/python" - "$WORK/report.json" <<'EOF'
import json, sys
names = sorted(i["metadata"]["name"].lower().replace("_", "-") for i in json.load(open(sys.argv[1]))["install"])
heavy = {"torch", "jupyter-book", "sphinx", "papermill", "jupytext", "ipykernel", "matplotlib", "django-static-mathjax"}
assert "rnn-mft" in names, names
assert not heavy & set(names), f"pip install . would install {sorted(heavy & set(names))}"
assert not [n for n in names if n.startswith("nvidia-")], names
print(f"pip install . would install {len(names)} distributions ({', '.join(names)}), none of {', '.join(sorted(heavy))}")
EOF

# the command line, run in both venvs (the core one and the one with [torch]) from an empty folder
cat > "$WORK/cli_check.py" <<'EOF'
import json, subprocess, sys
from pathlib import Path

Path("theta.json").write_text(json.dumps({"f": {"sigma2": 1, "nu2": 0.5, "mu": 1},
                                          "r": {"sigma2": 1, "nu2": 0.5}, "r2": {"sigma2": 1, "nu2": 0.5}}))
cli = str(Path(sys.executable).with_name("rnn-mft"))
out = subprocess.run([cli, "theory", "--arch", "gru", "--theta", "theta.json", "--sigma-z", "0.5", "--json"],
                     check=True, capture_output=True, text=True).stdout
assert abs(json.loads(out)["xi"] - 1.5855675666532594) < 1e-6, out
out = subprocess.run([cli, "solve", "--arch", "peephole_lstm", "--xi", "100"], check=True, capture_output=True,
                     text=True).stdout
Path("solved.json").write_text(out)
out = subprocess.run([cli, "theory", "--arch", "peephole_lstm", "--theta", "solved.json", "--json"],
                     check=True, capture_output=True, text=True).stdout
assert abs(json.loads(out)["xi"] - 100) < 1.0, out
out = subprocess.run([cli, "theory", "--arch", "gru", "--theta", "theta.json"], check=True, capture_output=True,
                     text=True).stdout
assert "xi" in out, out
bad = subprocess.run([cli, "theory", "--arch", "nope", "--theta", "theta.json"], capture_output=True, text=True)
assert bad.returncode == 2 and bad.stderr.startswith("rnn-mft: error:"), bad
print(f"cli ({sys.prefix}): rnn-mft theory (json and table), rnn-mft solve (round trip xi=100), error exit 2")
EOF

stamp "the core venv: the theory and the command line, from an empty folder"
mkdir -p "$WORK/run-core"
(cd "$WORK/run-core" && "$WORK/core/bin/python" - <<'EOF'
import importlib, importlib.util, json, math, subprocess, sys
from pathlib import Path

assert importlib.util.find_spec("torch") is None, "torch is importable in the core install"
import rnn_mft
from rnn_mft import arch, theory

here = Path(rnn_mft.__file__).resolve()
assert Path(sys.prefix).resolve() in here.parents, f"rnn_mft imported from {here}, not from the venv"
r = theory.analyze("gru", theory.Theta.standard("gru"), sigma_z=1.0)
assert r.converged and 0 < float(r.xi) < math.inf, r
s = theory.solve_for_timescale("gru", xi=50.0)
assert abs(float(s.xi) - 50.0) < 0.5, s
l = theory.solve_for_timescale("lstm", xi=100.0)
assert abs(float(l.xi) - 100.0) < 1.0, l
th = rnn_mft.Theta.critical("peephole_lstm")
print(f"core: rnn_mft {rnn_mft.__version__}, architectures {', '.join(arch.names())}; gru standard "
      f"xi={float(r.xi):.3f}; solve gru xi=50 -> {float(s.xi):.4f}, lstm xi=100 -> {float(l.xi):.4f}")
for name in ("rnn_mft.nets", "rnn_mft.sim", "rnn_mft.data", "rnn_mft.train"):
    try:
        importlib.import_module(name)
    except ImportError as exc:
        assert "pip install 'rnn_mft[torch]'" in str(exc), exc
    else:
        raise AssertionError(f"{name} imported without torch")
print("core: import rnn_mft.nets/.sim/.data/.train raise ImportError naming rnn_mft[torch]")
EOF
)
(cd "$WORK/run-core" && "$WORK/core/bin/python" "$WORK/cli_check.py")

stamp "the torch venv: $TORCH_SPEC, then the wheel with [torch]"
"$PYTHON" -m venv "$WORK/user"
# (--no-compile: byte-compiling torch's thousands of files would take most of this step)
# shellcheck disable=SC2086
"$WORK/user/bin/python" -m pip install -q --no-compile $TORCH_PIP_ARGS "$TORCH_SPEC"
stamp "pip install \"\$WHEEL[torch]\""
# shellcheck disable=SC2086
"$WORK/user/bin/python" -m pip install -q --no-compile $TORCH_PIP_ARGS "${WHEEL}[torch]" "$TORCH_SPEC"
absent "$WORK/user" "pip install rnn_mft[torch]" $HEAVY

stamp "the torch venv: user script and command line, from an empty folder"
mkdir -p "$WORK/run"
cd "$WORK/run"
export RNN_MFT_OFFLINE=1 RNN_MFT_DATA="$WORK/run/cache" RNN_MFT_MIRROR="$WORK/run/no-mirror"
RNN_MFT_REPO="$REPO" "$WORK/user/bin/python" - <<'EOF'
import importlib.util, json, math, os, subprocess, sys, tempfile
from importlib.metadata import version
from pathlib import Path

import torch

import rnn_mft
from rnn_mft import data, nets, sim, theory, train

here = Path(rnn_mft.__file__).resolve()
assert Path(sys.prefix).resolve() in here.parents, f"rnn_mft imported from {here}, not from the venv"
assert rnn_mft.__version__ == version("rnn_mft"), (rnn_mft.__version__, version("rnn_mft"))
for mod in ("matplotlib", "jupyter_book", "sphinx", "papermill", "jupytext", "yaml"):
    assert importlib.util.find_spec(mod) is None, f"{mod} is importable in the core install"
print(f"rnn_mft {rnn_mft.__version__} from {here.parent}")

# the public API
th = theory.Theta.critical("peephole_lstm")
r = theory.analyze("gru", theory.Theta.standard("gru"), sigma_z=1.0)
assert r.converged and 0 < float(r.xi) < math.inf, r
s = theory.solve_for_timescale("gru", xi=50.0)
assert abs(float(s.xi) - 50.0) < 0.5, s
p = theory.solve_for_timescale("peephole_lstm", xi=100.0)
assert abs(float(p.xi) - 100.0) < 1.0, p
print(f"theory: gru standard xi={float(r.xi):.3f}; solve gru xi=50 -> {float(s.xi):.4f}; "
      f"peephole_lstm xi=100 -> {float(p.xi):.4f}")

# critical_init_ on stock torch modules (the LSTM by its own mean-field theory)
g = torch.Generator().manual_seed(0)
lstm = nets.critical_init_(torch.nn.LSTM(4, 8), xi=100.0, generator=g)
out, _ = lstm(torch.randn(5, 3, 4, generator=g))
assert out.shape == (5, 3, 8) and torch.isfinite(out).all()
nets.critical_init_(torch.nn.LSTM(4, 8, num_layers=2))
nets.critical_init_(torch.nn.GRU(4, 8), xi=50.0)
cell = nets.make("peephole_lstm", n_in=1, n_hidden=16)
nets.init_(cell, th)
print("nets: critical_init_ on torch.nn.LSTM (xi=100), 2-layer LSTM, GRU (xi=50); peephole cell init_")

# a small simulation
res = sim.simulate_pair("gru", theory.Theta.standard("gru"), 64, [1.0] * 5, n_seeds=2)
print("sim: simulate_pair ok")

# the data registry, found in the installed package
reg = json.loads(data.registry_json())
repo = Path(os.environ["RNN_MFT_REPO"]) / "data" / "registry.json"
assert reg == json.loads(repo.read_text()), "installed registry differs from data/registry.json"
e = data.get_entry("mnist", "t10k-images-idx3-ubyte.gz")
try:
    data.fetch(e, mirror=False, download=False)
except data.DataUnavailableError as exc:
    assert e.hash.split(":")[-1][:16] in str(exc), exc
else:
    raise AssertionError("fetch found a file it should not have (offline, empty cache)")
print(f"data: registry of {', '.join(reg)} in the package; offline fetch names the file and its hash")

# training and the results store's provenance
task = train.CopyMemoryTask(T=10, n_symbols=4)
model = nets.make_classifier("gru", task.n_in, 8, task.n_out)
run = train.fit(model, task, train.TrainConfig(steps=2, batch_size=4, progress=False))
with tempfile.TemporaryDirectory() as d:
    store = train.ResultsStore(d)
    store.save("smoke", "wheel", "run", run)
    assert store.load("smoke", "wheel", "run").meta["rnn_mft_version"] == rnn_mft.__version__
print("train: fit 2 steps; results store records rnn_mft_version")
EOF
"$WORK/user/bin/python" "$WORK/cli_check.py"
cd "$REPO"

stamp "installed sizes (site-packages, pip included, no .pyc: installed with --no-compile)"
core_sp=$("$WORK/core/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
user_sp=$("$WORK/user/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "size: core venv (pip install rnn_mft):           $(du -sh "$core_sp" | cut -f1)  ($(du -sm "$core_sp" | cut -f1) MiB)"
echo "size: torch venv (pip install 'rnn_mft[torch]', $TORCH_SPEC): $(du -sh "$user_sp" | cut -f1)  ($(du -sm "$user_sp" | cut -f1) MiB)"
stamp "passed"
