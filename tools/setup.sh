#!/usr/bin/env bash
# Installs what is missing (Debian 12, run as root), then configures and builds clattn into build/.
# Usage: tools/setup.sh [BUILD_DIR [meson options...]]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(gcc pkg-config python3 meson ninja-build ocl-icd-opencl-dev opencl-c-headers pocl-opencl-icd mesa-opencl-icd
          clinfo oclgrind libclblast-dev libopenblas-dev libcmocka-dev libpng-dev clang
          python3-numpy python3-pytest python3-torch python3-pyopencl libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build=${1:-build}
shift || true
if [ -f "$build/build.ninja" ]; then
    [ $# -gt 0 ] && meson configure "$build" "$@"
else
    meson setup "$build" "$@"
fi
ninja -C "$build"
