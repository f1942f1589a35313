#!/usr/bin/env bash
# One GPU session under a total time budget, from the repository root, on a machine with torch
# (and Triton) but no internet and perhaps not every package; made for a briefly lent GPU whose
# disk is gone after the call and whose output folder ($OUT) brings back only a few files:
#   1. setup: what is missing is installed from ./wheels without an index (numpy and torch needed)
#   2. benchmarks/gpu.py (--bench auto: the targets' shapes, with TF32, CUDA graphs and fused
#      steps, unless an earlier session in data/gpu_sessions benchmarked this GPU model) -> bench.*
#   2b. tools/gpu_speed_check.py: CUDA graphs and the fused Triton LSTM steps, each checked
#      against the ordinary path, then timed; the slice runs with the fastest that passed (an
#      earlier session's check of this GPU, torch and library code is reused) -> speed.*
#   3. tools/gpu_slice.py: the paper profile's runs, ensemble by ensemble (Figures 6 and 2, then 1,
#      Table 2, Figure 4; what data/results holds already is not trained again), until the
#      budget; finish or skip (an ensemble that would not finish is skipped, nothing saved; one
#      that an earlier session in data/gpu_sessions measured too slow is not even started), except
#      runs whose checkpoint can come back and be committed (<= 40 MiB): they stop at the budget
#      with a checkpoint, which the next session resumes once it is committed
#   4. tools/estimate_paper.py --measure, if time is left                               -> estimate.*
#   5. tools/gpu_pack.py after every step: $OUT gets summary.txt, logs.tgz, manifest.json and
#      payload.tgz.NN (the new results, and checkpoints that fit), within the device tool's limits
# Every step runs under `timeout`, inside the budget, with time kept for the last pack. A step
# that fails is recorded in steps.txt and the next one still runs. Back here:
#   python tools/gpu_pack.py unpack <the returned folder>      # checks hashes, writes data/...
#
#   tools/gpu_run.sh [--budget-min 9] [--bench auto|quick|full|none] [--no-speed-check] [--no-estimate]
#                    [--keep-checkpoints] [--mirror PATH] [--smoke]
#
# --budget-min: minutes for the whole script (default 9; a lent GPU call may last 10).
# --bench quick: measure even if measured before; full: the whole sweep (widths 128-600,
# ensembles of 1-256); none: skip it.
# --no-speed-check: skip step 2b (the slice then uses whatever RNN_MFT_CUDA_GRAPHS and
# RNN_MFT_TRITON the caller exported, e.g. what an earlier session's check chose).
# --keep-checkpoints: stop a run at the budget with a checkpoint (a machine whose disk stays)
# instead of finish-or-skip. --mirror (or $RNN_MFT_MIRROR; else shared/data or ../shared/data):
# folder with mnist/ of the data mirror; on a lent machine only the repository travels, so copy
# it in first: mkdir -p shared && cp -r ../shared/data shared/. --smoke: everything at profile
# smoke on whatever device there is (a CPU check of the script, under a minute).
# $OUT: output folder (default _build/gpu_out); $STAGE: logs (default _build/gpu_stage);
# $RNN_MFT_RESULTS: results store (default data/results); $PYTHON: the interpreter (default
# .venv/bin/python when present, else python3).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

BUDGET=9
SMOKE=0
BENCH=auto
ESTIMATE=1
SPEED=1
KEEP=0
MIRROR="${RNN_MFT_MIRROR:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --budget-min) BUDGET="${2:?--budget-min needs a number of minutes}"; shift 2 ;;
        --bench) BENCH="${2:?--bench needs auto, quick, full or none}"; shift 2 ;;
        --quick) BENCH=quick; shift ;;
        --no-estimate) ESTIMATE=0; shift ;;
        --no-speed-check) SPEED=0; shift ;;
        --keep-checkpoints) KEEP=1; shift ;;
        --mirror) MIRROR="${2:?--mirror needs a folder}"; shift 2 ;;
        --smoke) SMOKE=1; shift ;;
        -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
        *) echo "gpu_run.sh: unknown argument '$1' (allowed: --budget-min N, --bench auto|quick|full|none," \
                "--no-speed-check, --no-estimate, --keep-checkpoints, --mirror PATH, --smoke)" >&2
           exit 2 ;;
    esac
done
case "$BUDGET" in ''|*[!0-9.]*|*.*.*) echo "gpu_run.sh: --budget-min=$BUDGET; allowed: a positive number" >&2; exit 2 ;; esac
case "$BENCH" in auto|quick|full|none) ;; *) echo "gpu_run.sh: --bench=$BENCH; allowed: auto, quick, full, none" >&2; exit 2 ;; esac

START=$(date +%s)
DEADLINE=$(awk -v s="$START" -v b="$BUDGET" 'BEGIN { printf "%d", s + 60 * b }')
if [ "$DEADLINE" -le "$START" ]; then echo "gpu_run.sh: --budget-min=$BUDGET; allowed: a positive number" >&2; exit 2; fi
RESERVE=25                                  # seconds kept for the final pack
left() { echo $(( DEADLINE - $(date +%s) )); }

OUT="${OUT:-_build/gpu_out}"
STAGE="${STAGE:-_build/gpu_stage}"
mkdir -p "$OUT" "$STAGE"
rm -f "$STAGE"/*.txt "$STAGE"/*.json
export OUT
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if [ -z "$MIRROR" ]; then
    for d in shared/data ../shared/data; do [ -d "$d/mnist" ] && MIRROR="$d" && break; done
fi
if [ -z "$MIRROR" ] || [ ! -d "$MIRROR" ]; then
    echo "gpu_run.sh: no data mirror (give --mirror PATH or RNN_MFT_MIRROR; looked in shared/data, ../shared/data;" \
         "on a lent machine copy it into the repository first: mkdir -p shared && cp -r ../shared/data shared/)" >&2
    exit 2
fi
export RNN_MFT_MIRROR="$(cd "$MIRROR" && pwd)"
export RNN_MFT_OFFLINE=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
RESULTS="${RNN_MFT_RESULTS:-data/results}"
CHECKPOINTS="${RNN_MFT_CHECKPOINTS:-$(dirname "$RESULTS")/checkpoints}"
export RNN_MFT_RESULTS="$RESULTS" RNN_MFT_CHECKPOINTS="$CHECKPOINTS"
: > "$STAGE/steps.txt"
echo "python: $PYTHON; mirror: $RNN_MFT_MIRROR; out: $OUT; stage: $STAGE; results: $RESULTS; budget: $BUDGET min" \
     "(until $(date -u -d "@$DEADLINE" +%H:%M:%SZ 2>/dev/null || echo "$DEADLINE")); smoke: $SMOKE; bench: $BENCH;" \
     "keep checkpoints: $KEEP; commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)" | tee "$STAGE/setup.txt"

# 1. setup: what the training code needs (numpy, torch; tqdm and pooch are optional, scipy is
#    not needed for training), installed from ./wheels without an index when missing
missing=$("$PYTHON" - <<'EOF'
import importlib.util
print(" ".join(m for m in ("numpy", "torch", "tqdm", "pooch", "scipy") if importlib.util.find_spec(m) is None))
EOF
)
if [ -n "$missing" ]; then
    echo "missing python packages: $missing" | tee -a "$STAGE/setup.txt"
    if [ -d wheels ]; then
        "$PYTHON" -m pip install --no-index --find-links wheels $missing 2>&1 | tail -3 | tee -a "$STAGE/setup.txt"
    fi
fi
if ! "$PYTHON" -c "import numpy, torch" 2>>"$STAGE/setup.txt"; then
    echo "gpu_run.sh: numpy and torch are required and could not be imported (see $STAGE/setup.txt)" >&2
    exit 2
fi
"$PYTHON" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" \
    | tee -a "$STAGE/setup.txt"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv \
    >> "$STAGE/setup.txt" 2>&1

pack() {
    "$PYTHON" tools/gpu_pack.py pack --stage "$STAGE" --out "$OUT" --results "$RESULTS" --checkpoints "$CHECKPOINTS" \
        --since "$START" 2>&1 | tail -1
}

step() {   # step NAME LOGFILE SECONDS CMD...: run under timeout, tee, record the exit status
    local name="$1" log="$2" secs="$3"; shift 3
    if [ "$secs" -le 5 ]; then
        echo "$name rc=skipped (no time left in the budget)" | tee -a "$STAGE/steps.txt"
        return
    fi
    echo "== $name (at most ${secs} s): $*"
    local t0=$(date +%s)
    timeout --signal=TERM --kill-after=15 "$secs" "$@" 2>&1 | tee "$STAGE/$log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 124 ] && rc="124 (timed out)"
    echo "$name rc=$rc wall_s=$(( $(date +%s) - t0 ))" | tee -a "$STAGE/steps.txt"
}

min() { [ "$1" -lt "$2" ] && echo "$1" || echo "$2"; }
PROFILE=paper
[ "$SMOKE" = 1 ] && PROFILE=smoke
SLICE_ARGS=(--profile "$PROFILE" --out "$STAGE")
# finish or skip, except that a run whose checkpoint is at most 40 MiB (Figure 4's panels) stops at
# the deadline with it: 40 MiB comes back (the pack's payload holds about 58 MiB) and travels with
# the repository to the next lent GPU (its working tree may hold 64 MiB; the repository and the
# mirror take about 3.5 MiB)
[ "$KEEP" = 0 ] && SLICE_ARGS+=(--finish-or-skip --checkpoint-mib 40)

# 2. the benchmark
if [ "$BENCH" = none ]; then
    echo "bench rc=skipped (--bench none)" | tee -a "$STAGE/steps.txt"
elif [ "$SMOKE" = 1 ]; then
    step bench bench.txt "$(min 120 $(( $(left) - RESERVE )))" "$PYTHON" benchmarks/gpu.py --cpu-smoke --reps 1 \
        --json "$STAGE/bench.json"
elif [ "$BENCH" = quick ] || [ "$BENCH" = auto ]; then
    SKIP=()
    [ "$BENCH" = auto ] && SKIP=(--skip-if-measured data/gpu_sessions)
    step bench bench.txt "$(min 180 $(( $(left) - RESERVE )))" "$PYTHON" benchmarks/gpu.py --quick --tf32 --graphs --triton \
        --reps 5 --json "$STAGE/bench.json" "${SKIP[@]}"
elif [ "$BENCH" = full ]; then
    step bench bench.txt "$(( $(left) / 3 ))" "$PYTHON" benchmarks/gpu.py --tf32 --graphs --triton --json "$STAGE/bench.json"
fi
pack

# 2b. the speed options for the slice: those that agree with the ordinary path, the fastest
if [ "$SMOKE" = 1 ]; then GSECS=60; else GSECS=180; fi
GSECS=$(min "$GSECS" $(( $(left) - RESERVE - 60 )))
[ "$SPEED" = 0 ] && GSECS=0
if [ "$GSECS" -gt 5 ]; then
    echo "== speed (at most ${GSECS} s): tools/gpu_speed_check.py"
    t0=$(date +%s)
    timeout --signal=TERM --kill-after=15 "$GSECS" "$PYTHON" tools/gpu_speed_check.py --json "$STAGE/speed.json" \
        --env-file "$STAGE/speed.env" --reuse data/gpu_sessions 2>&1 | tee "$STAGE/speed.txt"
    rc=${PIPESTATUS[0]}
    note="plain path for the slice"
    if [ "$rc" = 0 ] && [ -s "$STAGE/speed.env" ]; then
        . "$STAGE/speed.env"
        note="for the slice: $(sed 's/^export //' "$STAGE/speed.env" | tr '\n' ' ')"
    elif [ "$rc" = 3 ]; then
        rc=0; note="no CUDA: plain path"
    fi
    echo "speed rc=$rc wall_s=$(( $(date +%s) - t0 )) ($note)" | tee -a "$STAGE/steps.txt"
fi

# 3. the slice of the paper runs: its own budget ends RESERVE seconds before the deadline
SECS=$(( $(left) - RESERVE ))
if [ "$SECS" -gt 30 ]; then
    step slice slice.txt "$(( SECS + 10 ))" "$PYTHON" tools/gpu_slice.py \
        --budget-min "$(awk -v s="$SECS" 'BEGIN { printf "%.3f", (s - 10) / 60 }')" "${SLICE_ARGS[@]}"
else
    echo "slice rc=skipped (no time left in the budget)" | tee -a "$STAGE/steps.txt"
fi
pack

# 4. the measured estimate of the whole paper profile, with what time is left
if [ "$ESTIMATE" = 1 ]; then
    if [ "$SMOKE" = 1 ]; then
        step estimate estimate.txt "$(( $(left) - RESERVE ))" "$PYTHON" tools/estimate_paper.py --measure \
            --profile smoke --timed 1 --warmup 1 --json "$STAGE/estimate.json"
    else
        step estimate estimate.txt "$(( $(left) - RESERVE ))" "$PYTHON" tools/estimate_paper.py --measure \
            --profile paper --warmup 1 --timed 2 --json "$STAGE/estimate.json"
    fi
fi
echo "total wall_s=$(( $(date +%s) - START )) of budget $(( DEADLINE - START )) s" | tee -a "$STAGE/steps.txt"
pack
echo "everything that comes back is under $OUT:"; ls -la "$OUT"
grep -q "rc=[1-9]" "$STAGE/steps.txt" && exit 1
exit 0
