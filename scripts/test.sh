#!/usr/bin/env bash
# Installs what is needed (Debian 12, as root), builds everything in one CMake graph, and runs the
# whole test suite: BPF_PROG_TEST_RUN fixtures, host tests, replay, end-to-end tests on veth pairs.
#   scripts/test.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}

"$here/scripts/install-deps.sh"
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j "$(nproc)"
cd "$build"
ctest --output-on-failure --timeout 600
