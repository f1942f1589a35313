#!/usr/bin/env bash
# The test files that compute with torch, again under torch's other CPU kernel choices, so that a
# tolerance that holds only on this machine's fastest kernels (AVX-512 here) fails in CI, not on a
# newcomer's machine (issue 24). Two choices, run side by side (one core each):
#   default: ATEN_CPU_CAPABILITY=default (no vector kernels), MKL_ENABLE_INSTRUCTIONS=SSE4_2 (torch's
#            BLAS), ONEDNN_MAX_CPU_ISA=SSE41
#   avx2:    ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2, ONEDNN_MAX_CPU_ISA=AVX2
# numpy's OpenBLAS is left alone: its kernel choice is set per machine where older builds need it
# (OPENBLAS_CORETYPE), and the theory's numpy tests do not depend on torch's kernels.
#   bash tools/test_kernels.sh            # from the repository root, after make setup
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY="${PYTHON:-.venv/bin/python}"
FILES=(tests/test_sim_theory.py tests/test_gru_simulation.py tests/test_sim_lstm_tangent.py tests/test_nets.py
       tests/test_nets_vs_theory.py tests/test_mixed_lengths.py tests/test_train.py tests/test_init.py
       tests/test_hdetach.py tests/test_triton.py)
LOGS="${BUILD:-_build}/test_kernels"
mkdir -p "$LOGS"
one() {   # one NAME VAR=VALUE...: the files under these settings, one thread; log and exit status
    local name="$1"; shift
    env "$@" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$PY" -m pytest "${FILES[@]}" -q -p no:cacheprovider \
        >"$LOGS/$name.log" 2>&1
    echo $? >"$LOGS/$name.rc"
}
one default ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41 &
one avx2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 &
wait
rc=0
for name in default avx2; do
    echo "== kernels: $name ($(grep -h . "$LOGS/$name.rc"))"
    grep -E "^(FAILED|ERROR)" "$LOGS/$name.log"
    tail -1 "$LOGS/$name.log"
    [ "$(cat "$LOGS/$name.rc")" = 0 ] || rc=1
done
exit $rc
