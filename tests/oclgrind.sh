#!/bin/sh
# Runs a test program under oclgrind's simulator with data-race and uninitialized-value checks, and
# fails on any diagnostic it prints (out-of-bounds access, race, uninitialized read, barrier
# divergence), not only on the program's exit status. Exit 77 (skip) when oclgrind is missing.
# -cl-opt-disable: oclgrind's checker cannot interpret some instructions LLVM's optimiser emits.
command -v oclgrind >/dev/null 2>&1 || { echo "oclgrind not installed"; exit 77; }
# In a sanitizer build: oclgrind preloads its runtime ahead of ASan's, and its simulator's
# allocations are not ours to leak-check (every other test runs with leak checks on).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0:detect_leaks=0"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
OCLGRIND_BUILD_OPTIONS=-cl-opt-disable CLATTN_CACHE=off CLATTN_DEVICE= \
    oclgrind --data-races --uninitialized "$@" >"$log" 2>&1
rc=$?
cat "$log"
if grep -qiE "invalid (read|write)|data race|uninitiali[sz]ed|divergence|out-of-bounds|oclgrind.*error" "$log"; then
    echo "oclgrind reported errors"
    exit 1
fi
[ $rc -eq 77 ] && exit 77
exit $rc
