#!/usr/bin/env bash
# The test files that compute, again under other CPU kernel choices, so that a tolerance that
# holds only on this machine's fastest kernels (AVX-512 here) fails in CI, not on a newcomer's
# machine (issue 24). Two choices, run side by side (one core each):
#   default: torch without vector kernels (ATEN_CPU_CAPABILITY=default), its BLAS and oneDNN at
#            SSE (MKL_ENABLE_INSTRUCTIONS=SSE4_2, ONEDNN_MAX_CPU_ISA=SSE41), and numpy's own SIMD
#            loops at their x86-64-v2 baseline (NPY_DISABLE_CPU_FEATURES); the theory's numpy test
#            files run in this lane too
#   avx2:    ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2, ONEDNN_MAX_CPU_ISA=AVX2
# numpy's OpenBLAS kernel is left alone: it is set per machine where older builds need it
# (OPENBLAS_CORETYPE), which tests are not to change.
#   bash tools/test_kernels.sh            # from the repository root, after make setup
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY="${PYTHON:-.venv/bin/python}"
TORCH=(tests/test_sim_theory.py tests/test_gru_simulation.py tests/test_sim_lstm_tangent.py tests/test_nets.py
       tests/test_nets_vs_theory.py tests/test_mixed_lengths.py tests/test_train.py tests/test_init.py
       tests/test_hdetach.py tests/test_triton.py tests/test_new_architecture.py)
THEORY=(tests/test_theory.py tests/test_theory_fastpath.py tests/test_theory_lstm.py tests/test_theory_lstm_joint.py
        tests/test_theory_lstm_twostate.py tests/test_quadrature.py tests/test_solver_consistency.py
        tests/test_reliability.py)
# numpy's dispatchable x86 features above its baseline (numpy >= 2 names; none elsewhere)
NPY_OFF=$("$PY" -c 'from numpy._core._multiarray_umath import __cpu_dispatch__ as d
print(" ".join(f for f in d if f.startswith(("X86_V3", "X86_V4", "AVX512"))))' 2>/dev/null)
LOGS="${BUILD:-_build}/test_kernels"
mkdir -p "$LOGS"
one() {   # one NAME VAR=VALUE... -- FILES...: the files under these settings, one thread; log and exit status
    local name="$1"; shift
    local vars=()
    while [ "$1" != "--" ]; do vars+=("$1"); shift; done
    shift
    env "${vars[@]}" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$PY" -m pytest "$@" -q \
        -p no:cacheprovider >"$LOGS/$name.log" 2>&1
    echo $? >"$LOGS/$name.rc"
}
one default ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41 \
    NPY_DISABLE_CPU_FEATURES="$NPY_OFF" -- "${TORCH[@]}" "${THEORY[@]}" &
one avx2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 -- "${TORCH[@]}" &
wait
rc=0
for name in default avx2; do
    echo "== kernels: $name (exit $(cat "$LOGS/$name.rc"))"
    grep -E "^(FAILED|ERROR)" "$LOGS/$name.log"
    tail -1 "$LOGS/$name.log"
    [ "$(cat "$LOGS/$name.rc")" = 0 ] || rc=1
done
exit $rc
