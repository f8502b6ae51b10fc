#!/usr/bin/env bash
# The GPU run: on a machine with an NVIDIA, AMD or Intel GPU and its vendor's OpenCL ICD, checks
# clattn there and measures it, into one folder of results:
#   devices.txt          what the ICD loader offers (clattn-info) and which device was used
#   tests.txt            the device suite on the GPU (meson test; the other device classes' runs and
#                        oclgrind are left out: they test PoCL, not the GPU)
#   bench-before.json    clattn-bench --json with the device class's default parameters
#   tune.txt             clattn-tune of the benchmark's shapes, each within BUDGET seconds a path
#   bench-after.json     clattn-bench --json with the tuning file just written
#   tuning-file.txt      that tuning file (clattn-tune --list)
#   summary.txt          the lines the README's performance section quotes
#
# Usage: tools/gpu-check.sh [--out DIR] [--device SELECTOR] [--budget SECONDS] [--quick]
#                           [--no-build] [--no-tests]
#   --out DIR        results folder (default gpu-check-<date>)
#   --device SEL     as CLATTN_DEVICE (default "gpu": the first GPU in platform order)
#   --budget S       tuning budget per shape and path (default 20; the suite has 6 shapes, 2 paths)
#   --quick          the benchmark's reduced suite for the benchmark and tuning (a short lease)
#   --no-build       use build/ as it is (built elsewhere and carried to this machine)
#   --no-tests       measure only
# The tuning and binary caches go to DIR/cache, never to the user's. Exits non-zero when a step
# fails; the folder holds what ran until then. On a machine without a GPU, --device cpu runs the same
# steps on PoCL (a dry run of the script itself).
#
# On a lent machine that has the vendor's driver but no ICD loader (docs/gpu-check.md says how the
# developers run it there): unpack Debian's ocl-icd-libopencl1 and clinfo with dpkg -x, write
# /etc/OpenCL/vendors/nvidia.icd naming libnvidia-opencl.so.1, then run this with --no-build.
set -euo pipefail
cd "$(dirname "$0")/.."

out="gpu-check-$(date +%Y%m%d-%H%M%S)"
device=gpu
budget=20
quick=()
build=1
tests=1
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=$2; shift ;;
    --device) device=$2; shift ;;
    --budget) budget=$2; shift ;;
    --quick) quick=(--quick) ;;
    --no-build) build=0 ;;
    --no-tests) tests=0 ;;
    -h | --help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
export CLATTN_DEVICE="$device" CLATTN_CACHE_DIR="$out/cache"
status=0
step() { echo "== gpu-check: $*"; }

if [ $build -eq 1 ]; then
    step "build (tools/setup.sh)"
    tools/setup.sh build >"$out/build.txt" 2>&1 || { tail -30 "$out/build.txt"; exit 1; }
fi

step "devices"
{
    build/tools/clattn-info
    echo
    echo "selected with CLATTN_DEVICE=$device:"
    build/tools/clattn-info --device "$device" --plan 1,32,8,1,4096,128 || true
} >"$out/devices.txt" 2>&1
if ! grep -q "selected" "$out/devices.txt" || ! build/tools/clattn-info --device "$device" >/dev/null 2>&1; then
    cat "$out/devices.txt"
    echo "gpu-check: no device matches \"$device\"" >&2
    exit 1
fi

if [ $tests -eq 1 ]; then
    step "device suite on $device"
    if command -v meson >/dev/null && [ -f build/build.ninja ]; then
        meson test -C build --suite device --no-suite classes --print-errorlogs >"$out/tests.txt" 2>&1 ||
            status=1
        cp build/meson-logs/testlog.txt "$out/testlog.txt" 2>/dev/null || true
    else
        # A build carried to a machine without meson: each test binary on its own (77 = skipped).
        ok=0 fail=0 skip=0
        for t in build/tests/test_*; do
            [ -x "$t" ] || continue
            rc=0
            (cd build/tests && timeout 1800 "./$(basename "$t")") >"$out/$(basename "$t").log" 2>&1 || rc=$?
            case $rc in 0) ok=$((ok + 1)) ;; 77) skip=$((skip + 1)) ;; *) fail=$((fail + 1)); echo "FAIL $t ($rc)" ;; esac
        done >"$out/tests.txt"
        printf 'Ok: %d\nFail: %d\nSkipped: %d\n' $ok $fail $skip >>"$out/tests.txt"
        [ $fail -eq 0 ] || status=1
    fi
    grep -E "^(Ok|Fail|Skipped|Timeout|Expected Fail|Unexpected Pass):" "$out/tests.txt" || true
fi

step "benchmark with the default parameters"
build/bench/clattn-bench "${quick[@]}" --no-tuning --json "$out/bench-before.json" >"$out/bench-before.txt" 2>&1 || status=1

step "tuning the benchmark's shapes, $budget s per shape and path"
build/tools/clattn-tune "${quick[@]}" --budget "$budget" >"$out/tune.txt" 2>&1 || status=1
build/tools/clattn-tune --list >"$out/tuning-file.txt" 2>&1 || true

step "benchmark with the tuned parameters"
build/bench/clattn-bench "${quick[@]}" --json "$out/bench-after.json" >"$out/bench-after.txt" 2>&1 || status=1

{
    echo "clattn gpu-check, $(date -u +%Y-%m-%dT%H:%M:%SZ), device selector \"$device\""
    grep -m1 "^device:" "$out/bench-after.txt" || true
    [ $tests -eq 1 ] && grep -E "^(Ok|Fail|Skipped|Timeout):" "$out/tests.txt" | tr '\n' ' ' && echo
    echo "-- before tuning"
    grep -E "^== |^  (fused|unfused|clblast|cpu-blas|clattn) " "$out/bench-before.txt" || true
    echo "-- after tuning"
    grep -E "^== |^  (fused|unfused|clblast|cpu-blas|clattn) " "$out/bench-after.txt" || true
} >"$out/summary.txt"
cat "$out/summary.txt"
step "results in $out ($([ $status -eq 0 ] && echo "all steps passed" || echo "some steps FAILED"))"
exit $status
