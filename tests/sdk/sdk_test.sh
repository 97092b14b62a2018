#!/usr/bin/env bash
# sdk_test.sh BUILD_DIR SOURCE_DIR PYTHON
#
# Installs xdp-pipeline into a temporary prefix and uses it the way an engineer outside the repository
# would: `new-stage` writes a skeleton, which builds against the prefix and passes its own tests;
# examples/syn_guard does the same; both then run in one pipeline after the built-in parse stage,
# checked with replay. The prefix and everything built in it are removed at the end.
#
# Plugins are loaded only when root owns them and nobody else can write them or their directory, so
# everything is built as root with umask 022. Set XDPP_BUILD_LOCK to a file to serialise the two
# out-of-tree builds with other builds (flock).
set -euo pipefail
build=$(cd "$1" && pwd)
source=$(cd "$2" && pwd)
python=$3

if [[ $(id -u) -ne 0 ]]; then
  echo "skipped: needs root (plugins must be root-owned; replay needs BPF_PROG_TEST_RUN)"
  exit 77
fi
umask 022
work=$(mktemp -d /tmp/xdpp-sdk-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
xdpp=$prefix/bin/xdp-pipeline

step() { printf '\n== %s\n' "$*"; }
locked() { if [[ -n ${XDPP_BUILD_LOCK:-} ]]; then flock "$XDPP_BUILD_LOCK" "$@"; else "$@"; fi; }
# Configure, build and run the own tests of an out-of-tree stage project.
build_project() {
  local src=$1 out=$2
  cmake -S "$src" -B "$out" -DCMAKE_PREFIX_PATH="$prefix" -DPython3_EXECUTABLE="$python" >"$out.configure.log" 2>&1 ||
    { cat "$out.configure.log"; return 1; }
  locked cmake --build "$out"
  ctest --test-dir "$out" --output-on-failure --no-tests=error
}

step "install into $prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
for file in bin/xdp-pipeline include/xdp_pipeline/{contract.h,stage.h,plugin.h,result.h,net.h} \
            lib*/cmake/XdpPipeline/XdpPipelineConfig.cmake lib*/xdp-pipeline/plugins/parse.so \
            lib*/xdp-pipeline/bpf/{parse,dispatcher}.bpf.o share/xdp-pipeline/python/xdpp_replay.py; do
  compgen -G "$prefix/$file" >/dev/null || { echo "FAIL: $file was not installed"; exit 1; }
done
step "the installed xdp-pipeline finds its built-in stages"
"$xdpp" check "$source/configs/full.toml"

step "new-stage refuses bad names and non-empty directories"
if "$xdpp" new-stage Bad-Name "$work/bad" 2>/dev/null; then echo "FAIL: accepted Bad-Name"; exit 1; fi
if "$xdpp" new-stage parse "$work/bad" 2>/dev/null; then echo "FAIL: accepted a built-in's name"; exit 1; fi
mkdir "$work/full" && touch "$work/full/keep"
if "$xdpp" new-stage udp_watch "$work/full" 2>/dev/null; then echo "FAIL: wrote into a non-empty directory"; exit 1; fi

step "new-stage udp_watch: the skeleton builds against the prefix and passes its own tests"
"$xdpp" new-stage udp_watch "$work/udp_watch"
build_project "$work/udp_watch" "$work/udp_watch-build"

step "examples/syn_guard builds against the prefix and passes its own tests"
build_project "$source/examples/syn_guard" "$work/syn_guard-build"

step "both in one pipeline after the built-in parse stage, checked with replay"
cat >"$work/chain.toml" <<TOML
[pipeline]
name = "sdk-chain"
default_verdict = "pass"
plugin_dir = ["$work/udp_watch-build/stages", "$work/syn_guard-build/stages"]

[[stage]]
name = "parse"
plugin = "parse"

[[stage]]
name = "udp_watch"
plugin = "udp_watch"
udp_port = 5353
action = "drop"

[[stage]]
name = "syn_guard"
plugin = "syn_guard"
syn_per_second = 1
burst = 2
TOML
PYTHONPATH="$prefix/share/xdp-pipeline/python" \
  "$python" "$source/tests/sdk/chain_replay.py" "$xdpp" "$work/chain.toml" "$work/chain.pcap"

step "an installed out-of-tree stage is found without plugin_dir"
cmake --install "$work/syn_guard-build" --prefix "$prefix" >/dev/null
cat >"$work/installed.toml" <<TOML
[[stage]]
name = "parse"
plugin = "parse"

[[stage]]
name = "syn_guard"
plugin = "syn_guard"
syn_per_second = 100
TOML
"$xdpp" check "$work/installed.toml"

echo
echo "PASS"
