#!/usr/bin/env bash
# One GPU session, started from the repository root on a machine with torch (and Triton) but no
# internet and perhaps not every package:
#   1. checks/sets up what is missing (pip install --no-index from ./wheels when present),
#   2. benchmarks/gpu.py                       -> $OUT/bench.txt, bench.json
#   3. tools/estimate_paper.py --measure       -> $OUT/estimate.txt, estimate.json
#   4. tools/gpu_slice.py (Figures 2 and 6)    -> $OUT/slice.txt, slice.json, results/, provenance.json
# A step that fails is recorded in $OUT/steps.txt and the next one still runs.
#
#   tools/gpu_run.sh [--budget-min 60] [--mirror PATH] [--quick] [--smoke]
#
# --quick: a shorter session: the benchmark's quick sweep (width 256, batch 128, ensembles of 1
# and 64, with CUDA graphs), one warm-up and two timed steps per ensemble in the estimate (how
# long it takes on a GPU has not been measured; building the paper's untied ensembles, tens of
# GiB of weights initialised on the CPU, is likely the longest part).
# --mirror (or $RNN_MFT_MIRROR; else shared/data or ../shared/data): folder with mnist/ of the
# data mirror. --smoke: everything at profile smoke on whatever device there is (a CPU check of
# the script, a minute or two). $OUT: output folder (default _build/gpu_out). $PYTHON: the
# interpreter (default .venv/bin/python when present, else python3).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

BUDGET=60
SMOKE=0
QUICK=0
MIRROR="${RNN_MFT_MIRROR:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --budget-min) BUDGET="${2:?--budget-min needs a number of minutes}"; shift 2 ;;
        --mirror) MIRROR="${2:?--mirror needs a folder}"; shift 2 ;;
        --smoke) SMOKE=1; shift ;;
        --quick) QUICK=1; shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "gpu_run.sh: unknown argument '$1' (allowed: --budget-min N, --mirror PATH, --quick, --smoke)" >&2
           exit 2 ;;
    esac
done
case "$BUDGET" in ''|*[!0-9.]*) echo "gpu_run.sh: --budget-min=$BUDGET; allowed: a positive number" >&2; exit 2 ;; esac

OUT="${OUT:-_build/gpu_out}"
mkdir -p "$OUT"
export OUT
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if [ -z "$MIRROR" ]; then
    for d in shared/data ../shared/data; do [ -d "$d/mnist" ] && MIRROR="$d" && break; done
fi
if [ -z "$MIRROR" ] || [ ! -d "$MIRROR" ]; then
    echo "gpu_run.sh: no data mirror (give --mirror PATH or RNN_MFT_MIRROR; looked in shared/data, ../shared/data)" >&2
    exit 2
fi
export RNN_MFT_MIRROR="$(cd "$MIRROR" && pwd)"
export RNN_MFT_OFFLINE=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
: > "$OUT/steps.txt"
echo "python: $PYTHON; mirror: $RNN_MFT_MIRROR; out: $OUT; budget: $BUDGET min; smoke: $SMOKE" | tee "$OUT/setup.txt"

# 1. setup: what the training code needs (numpy, torch; tqdm and pooch are optional, scipy is
#    not needed for training), installed from ./wheels without an index when missing
missing=$("$PYTHON" - <<'EOF'
import importlib.util
print(" ".join(m for m in ("numpy", "torch", "tqdm", "pooch", "scipy") if importlib.util.find_spec(m) is None))
EOF
)
if [ -n "$missing" ]; then
    echo "missing python packages: $missing" | tee -a "$OUT/setup.txt"
    if [ -d wheels ]; then
        "$PYTHON" -m pip install --no-index --find-links wheels $missing 2>&1 | tail -3 | tee -a "$OUT/setup.txt"
    fi
fi
if ! "$PYTHON" -c "import numpy, torch" 2>>"$OUT/setup.txt"; then
    echo "gpu_run.sh: numpy and torch are required and could not be imported (see $OUT/setup.txt)" >&2
    exit 2
fi
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee -a "$OUT/setup.txt"

step() {   # step NAME LOGFILE CMD...: run, tee, record the exit status
    local name="$1" log="$2"; shift 2
    echo "== $name: $*"
    local t0=$(date +%s)
    "$@" 2>&1 | tee "$OUT/$log"
    local rc=${PIPESTATUS[0]}
    echo "$name rc=$rc wall_s=$(( $(date +%s) - t0 ))" | tee -a "$OUT/steps.txt"
}

if [ "$SMOKE" = 1 ]; then
    step bench bench.txt "$PYTHON" benchmarks/gpu.py --cpu-smoke --json "$OUT/bench.json"
    step estimate estimate.txt "$PYTHON" tools/estimate_paper.py --measure --profile smoke --timed 1 --warmup 1 \
        --json "$OUT/estimate.json"
    step slice slice.txt "$PYTHON" tools/gpu_slice.py --budget-min "$BUDGET" --profile smoke --out "$OUT"
elif [ "$QUICK" = 1 ]; then
    step bench bench.txt "$PYTHON" benchmarks/gpu.py --quick --graphs --reps 5 --json "$OUT/bench.json"
    step estimate estimate.txt "$PYTHON" tools/estimate_paper.py --measure --profile paper --warmup 1 --timed 2 \
        --json "$OUT/estimate.json"
    step slice slice.txt "$PYTHON" tools/gpu_slice.py --budget-min "$BUDGET" --profile paper --out "$OUT"
else
    step bench bench.txt "$PYTHON" benchmarks/gpu.py --tf32 --graphs --json "$OUT/bench.json"
    step estimate estimate.txt "$PYTHON" tools/estimate_paper.py --measure --profile paper --json "$OUT/estimate.json"
    step slice slice.txt "$PYTHON" tools/gpu_slice.py --budget-min "$BUDGET" --profile paper --out "$OUT"
fi
echo "everything is under $OUT:"; ls -la "$OUT"
grep -q "rc=[^0]" "$OUT/steps.txt" && exit 1
exit 0
