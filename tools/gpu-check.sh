#!/usr/bin/env bash
# The GPU run: on a machine with an NVIDIA, AMD or Intel GPU and its vendor's OpenCL ICD, checks
# clattn there and measures it, into one folder of results:
#   devices.txt          what the ICD loader offers (clattn-info) and which device was used
#   tests.txt            the device suite on the GPU (meson test; the other device classes' runs and
#                        oclgrind are left out: they test PoCL, not the GPU)
#   multidevice.txt      test_multidevice on the GPU and a CPU device together, where there is one
#   bench-before.json    clattn-bench --json with the device class's default parameters
#   tune.txt             clattn-tune of the benchmark's shapes, each within BUDGET seconds a path
#   tune-f16.txt         the same in f16, fused path only
#   bench-after.json     clattn-bench --json --f16 with the tuning file just written
#   variants.txt, kv-int8.txt, serving.txt   clattn-bench --variants, --kv-int8, --serving (tuned)
#   tuning-file.txt      that tuning file (clattn-tune --list)
#   summary.txt          the lines the README's performance section quotes
#
# Usage: tools/gpu-check.sh [--out DIR] [--device SELECTOR] [--budget SECONDS] [--quick]
#                           [--no-build] [--build DIR] [--no-tests] [--jobs N]
#                           [--test-timeout S] [--step-timeout S] [--archive FILE]
#   --out DIR        results folder (default gpu-check-<date>)
#   --device SEL     as CLATTN_DEVICE (default "gpu": the first GPU in platform order)
#   --budget S       tuning budget per shape and path (default 20; the suite has 7 shapes, 2 paths)
#   --quick          the benchmark's reduced suite for the benchmark and tuning (a short lease)
#   --no-build       use the build folder as it is (built elsewhere and carried to this machine)
#   --build DIR      the build folder (default build)
#   --no-tests       measure only
#   --jobs N         test binaries run N at a time where meson is missing (default 1)
#   --test-timeout S each test binary's limit where meson is missing (default 1800)
#   --step-timeout S each benchmark and tuning step's limit (default none): a step cut short
#                    counts as failed, and the next one runs
#   --archive FILE   a .tar.gz of the results folder, rewritten after every step, so that a run
#                    stopped from outside still leaves what it measured in one file
# The tuning and binary caches go to DIR/cache, never to the user's. Exits non-zero when a step
# fails; the folder holds what ran until then. On a machine without a GPU, --device cpu runs the same
# steps on PoCL (a dry run of the script itself).
#
# On a lent machine that has the vendor's driver but no ICD loader (docs/gpu-check.md says how the
# developers run it there): unpack Debian's ocl-icd-libopencl1 and the libraries the build links
# into a folder of their own with dpkg -x, put it on LD_LIBRARY_PATH, write
# /etc/OpenCL/vendors/nvidia.icd naming libnvidia-opencl.so.1, then run this with --no-build.
set -euo pipefail
cd "$(dirname "$0")/.."

out="gpu-check-$(date +%Y%m%d-%H%M%S)"
device=gpu
budget=20
quick=()
build=1
tests=1
bdir=build
jobs=1
test_timeout=1800
step_timeout=0
archive=
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=$2; shift ;;
    --device) device=$2; shift ;;
    --budget) budget=$2; shift ;;
    --quick) quick=(--quick) ;;
    --no-build) build=0 ;;
    --no-tests) tests=0 ;;
    --build) bdir=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --test-timeout) test_timeout=$2; shift ;;
    --step-timeout) step_timeout=$2; shift ;;
    --archive) archive=$2; shift ;;
    -h | --help) sed -n '2,39p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
export CLATTN_DEVICE="$device" CLATTN_CACHE_DIR="$out/cache"
[ -z "$archive" ] || archive=$(cd "$(dirname "$archive")" && pwd)/$(basename "$archive")
status=0
# Each step is announced after the archive of the steps before it is written.
step() {
    [ -z "$archive" ] || tar czf "$archive" -C "$(dirname "$out")" --exclude=cache "$(basename "$out")"
    echo "== gpu-check: $* ($(date -u +%H:%M:%S))"
}
# A benchmark or tuning step, under --step-timeout when one was given.
limited() {
    if [ "$step_timeout" -gt 0 ]; then timeout "$step_timeout" "$@"; else "$@"; fi
}

if [ $build -eq 1 ]; then
    step "build (tools/setup.sh)"
    tools/setup.sh "$bdir" >"$out/build.txt" 2>&1 || { tail -30 "$out/build.txt"; exit 1; }
fi

bdir=$(cd "$bdir" && pwd)
step "devices"
{
    "$bdir"/tools/clattn-info
    echo
    echo "selected with CLATTN_DEVICE=$device:"
    "$bdir"/tools/clattn-info --device "$device" --plan 1,32,8,1,4096,128 || true
} >"$out/devices.txt" 2>&1
if ! grep -q "selected" "$out/devices.txt" || ! "$bdir"/tools/clattn-info --device "$device" >/dev/null 2>&1; then
    cat "$out/devices.txt"
    echo "gpu-check: no device matches \"$device\"" >&2
    exit 1
fi

if [ $tests -eq 1 ]; then
    step "device suite on $device"
    # meson only where it can read the build folder: a folder carried from another machine may
    # come from another meson version ("references functions or classes that don't exist").
    if command -v meson >/dev/null && meson test -C "$bdir" --no-rebuild --list >/dev/null 2>&1; then
        meson test -C "$bdir" --suite device --no-suite classes --no-suite mpi --print-errorlogs \
            >"$out/tests.txt" 2>&1 || status=1
        cp "$bdir"/meson-logs/testlog.txt "$out/testlog.txt" 2>/dev/null || true
    else
        # A build carried to a machine without meson: each test binary on its own, --jobs at a
        # time, each with a cache folder of its own (exit 77 = skipped, 124 = past its limit).
        export CLATTN_VIZ="$bdir/tools/clattn-viz"
        run_one() {
            local t=$1 name rc=0
            name=$(basename "$t")
            (cd "$(dirname "$t")" && CLATTN_CACHE_DIR="$out/cache/$name" \
                timeout "$test_timeout" "./$name") >"$out/$name.log" 2>&1 || rc=$?
            case $rc in
            0) echo "ok $name" ;;
            77) echo "skip $name" ;;
            124) echo "TIMEOUT $name (${test_timeout} s)" ;;
            *) echo "FAIL $name (exit $rc)" ;;
            esac
        }
        export -f run_one
        export out test_timeout
        find "$bdir/tests" -maxdepth 1 -name 'test_*' -type f -perm -u+x | sort |
            xargs -P "$jobs" -I{} bash -c 'run_one {}' >"$out/tests.txt"
        printf 'Ok: %d\nFail: %d\nSkipped: %d\nTimeout: %d\n' "$(grep -c '^ok ' "$out/tests.txt")" \
            "$(grep -c '^FAIL ' "$out/tests.txt")" "$(grep -c '^skip ' "$out/tests.txt")" \
            "$(grep -c '^TIMEOUT ' "$out/tests.txt")" >>"$out/tests.txt"
        if grep -qE '^(FAIL|TIMEOUT) ' "$out/tests.txt"; then status=1; fi
    fi
    grep -E "^(Ok|Fail|Skipped|Timeout|Expected Fail|Unexpected Pass):" "$out/tests.txt" || true
    # Two devices of two platforms in one process, where a CPU's OpenCL sits beside the GPU (the
    # suite's own run uses two PoCL devices): contexts alone, interleaved and from two threads.
    if [ "$device" != cpu ] && "$bdir"/tools/clattn-info --device cpu >/dev/null 2>&1; then
        step "two platforms in one process: $device and cpu"
        rc=0
        (cd "$bdir/tests" && CLATTN_DEVICE_A="$device" CLATTN_DEVICE_B=cpu \
            CLATTN_CACHE_DIR="$out/cache/multidevice" timeout "$test_timeout" ./test_multidevice) \
            >"$out/multidevice.txt" 2>&1 || rc=$?
        echo "test_multidevice, $device + cpu: exit $rc" | tee -a "$out/tests.txt"
        [ $rc -eq 0 ] || [ $rc -eq 77 ] || status=1
    fi
fi

step "benchmark with the default parameters"
limited "$bdir"/bench/clattn-bench "${quick[@]}" --no-tuning --json "$out/bench-before.json" \
    >"$out/bench-before.txt" 2>&1 || status=1

step "tuning the benchmark's shapes, $budget s per shape and path"
limited "$bdir"/tools/clattn-tune "${quick[@]}" --budget "$budget" >"$out/tune.txt" 2>&1 || status=1
# The tuning key holds the storage type: untuned, the benchmark's f16 rows would run the defaults.
step "tuning the benchmark's shapes in f16, fused path, $budget s per shape"
limited "$bdir"/tools/clattn-tune "${quick[@]}" --f16 --path fused --no-mha --no-serving --budget "$budget" \
    >"$out/tune-f16.txt" 2>&1 || status=1
"$bdir"/tools/clattn-tune --list >"$out/tuning-file.txt" 2>&1 || true

step "benchmark with the tuned parameters"
limited "$bdir"/bench/clattn-bench "${quick[@]}" --f16 --json "$out/bench-after.json" \
    >"$out/bench-after.txt" 2>&1 || status=1

for what in variants kv-int8 serving; do
    step "benchmark: $what (tuned)"
    limited "$bdir"/bench/clattn-bench "${quick[@]}" --"$what" >"$out/$what.txt" 2>&1 || status=1
done

{
    echo "clattn gpu-check, $(date -u +%Y-%m-%dT%H:%M:%SZ), device selector \"$device\""
    grep -m1 "^device:" "$out/bench-after.txt" || true
    [ $tests -eq 1 ] && grep -E "^(Ok|Fail|Skipped|Timeout):" "$out/tests.txt" | tr '\n' ' ' && echo
    echo "-- before tuning"
    grep -E "^== |^  (fused|unfused|clblast|cpu-blas|clattn) " "$out/bench-before.txt" || true
    echo "-- after tuning"
    grep -E "^== |^  (fused|unfused|clblast|cpu-blas|clattn) " "$out/bench-after.txt" || true
    for what in variants kv-int8 serving; do
        echo "-- $what"
        cat "$out/$what.txt" 2>/dev/null || true
    done
} >"$out/summary.txt"
cat "$out/summary.txt"
step "results in $out ($([ $status -eq 0 ] && echo "all steps passed" || echo "some steps FAILED"))"
exit $status
