#!/bin/bash
# Time to the first result of clattn-demo (BERT-base layer, fused path) with cold and warm caches:
# clattn's binary cache and PoCL's kernel cache, each in a fresh folder, three runs of each case.
#   bench/startup.sh [build-dir]        (default: build)
set -euo pipefail
build=${1:-build}
demo="$build/tools/clattn-demo"
[ -x "$demo" ] || { echo "startup.sh: no $demo; build first" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/clattn-startup-XXXXXX")
trap 'rm -rf "$work"' EXIT
first() { "$@" | sed -n 's/^first call (incl. kernel build or cache load): \([0-9.]*\) ms/\1/p'; }
unset CLATTN_CACHE
for i in 1 2 3; do
    c=$work/clattn$i p=$work/pocl$i
    cold=$(CLATTN_CACHE_DIR=$c POCL_CACHE_DIR=$p first "$demo" --reps 1)
    warm=$(CLATTN_CACHE_DIR=$c POCL_CACHE_DIR=$p first "$demo" --reps 1)
    ours=$(CLATTN_CACHE_DIR=$c POCL_CACHE_DIR=$work/poclcold$i first "$demo" --reps 1)
    pocl=$(CLATTN_CACHE=off POCL_CACHE_DIR=$p first "$demo" --reps 1)
    none=$(CLATTN_CACHE=off POCL_KERNEL_CACHE=0 first "$demo" --reps 1)
    echo "run $i (ms): both cold $cold | both warm $warm | clattn warm, PoCL cold $ours |" \
         "clattn off, PoCL warm $pocl | no cache $none"
done
