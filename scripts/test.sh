#!/usr/bin/env bash
# Installs what is needed (Debian 12, as root), builds everything in one CMake graph, and runs the
# whole test suite: BPF_PROG_TEST_RUN fixtures, host tests, replay, end-to-end tests on veth pairs.
#   scripts/test.sh [BUILD_DIR]      (in a root shell; as a user with sudo rights: sudo scripts/test.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}

"$here/scripts/install-deps.sh"
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j "$(nproc)"
cd "$build"
ctest --output-on-failure --timeout 600
echo "test: the executable is $build/bin/xdp-pipeline; \`cmake --install $build\` puts it on PATH (/usr/local/bin)"
