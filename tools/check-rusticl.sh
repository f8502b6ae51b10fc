#!/usr/bin/env bash
# The device tests on a second OpenCL implementation: Mesa's rusticl on llvmpipe (Debian 12's
# mesa-opencl-icd), a different compiler and runtime from PoCL's. Selects rusticl's device by its
# platform name (the ICD loader's platform order is the order its vendor files happen to be listed
# in), with RUSTICL_ENABLE set for these tests only, and prints how many ran, passed and skipped.
# Usage: tools/check-rusticl.sh [BUILD_DIR]. Exit 77 when rusticl is not installed (1 in CI, where
# tools/setup.sh installs it).
set -uo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
# A representative subset: every path and dtype on the attention grid, the merge, the layer, the
# argument checks and the projection GEMM (the whole device suite takes over half an hour here).
tests=(test_attention test_merge test_bad_input test_mha test_mha_bad_input test_proj_gemm test_variants test_kv_int8)

export RUSTICL_ENABLE=swrast   # rusticl exposes no device unless told which drivers to use
sel=$("$dir/tools/clattn-info" 2>/dev/null | awk '
    /^platform [0-9]+:/ { in_rusticl = ($3 == "rusticl") }
    in_rusticl && /^  device [0-9]+:[0-9]+/ { print $2; exit }')
if [ -z "$sel" ]; then
    echo "== rusticl: no rusticl device (apt-get install mesa-opencl-icd)"
    [ "${CI:-}" = "true" ] && exit 1
    exit 77
fi
echo "== rusticl: device $sel, tests: ${tests[*]}"
start=$(date +%s)
rc=0
# llvmpipe runs kernels several times slower than PoCL: the attention grid walks 1 of its 8 rounds
# (50 cases a path, with every edge case).
# The fused path's gap there (docs/portability.md): no point fits d or dv of 512, and the answer
# is CLATTN_UNSUPPORTED, which the attention test then accepts for those shapes only.
CLATTN_TEST_FUSED_MAX_DIM=256 \
CLATTN_TEST_GRID_ROUNDS=${CLATTN_TEST_GRID_ROUNDS:-1} CLATTN_DEVICE=$sel meson test -C "$dir" --print-errorlogs --num-processes 2 --logbase rusticl \
    --timeout-multiplier "${TIMEOUT_MULT:-4}" "${tests[@]}" || rc=$?
python3 - "$dir/meson-logs/rusticl.json" "$(( $(date +%s) - start ))" <<'PY'
import collections, json, sys
counts = collections.Counter(json.loads(l).get("result") for l in open(sys.argv[1]))
print("== test count, rusticl (llvmpipe): %d run, %d ok, %d skipped, %d failed, in %s s"
      % (sum(counts.values()), counts["OK"], counts["SKIP"],
         sum(v for k, v in counts.items() if k not in ("OK", "SKIP")), sys.argv[2]))
PY
exit $rc
