#!/usr/bin/env bash
# Hot swap latency: how long `swap`, `set` and `reload` take from command to live, on a running pipeline.
#
# Creates a lab (scripts/lab.sh), runs the four built-in stages (parse, port_filter, icmp_lb, metadata) on
# the lb's interface in native mode, with pings crossing it every 10 ms, then times
#   swap   N_SWAP times, cycling ping-lb, no-8080, parse (a fresh program and plugin, maps carried over),
#   set    N_SET times, alternating `no-8080 drop_tcp_dst+=8081` and `drop_tcp_dst-=8081` (in place),
#   reload N_RELOAD times, alternating two files with flows before/after no-8080 (a new chain, switched
#          by one bpf_link update),
# each through the client with --json, which reports latency_ms (measured by the daemon, from the request
# read to the change being live: the chain slot, bpf_link or maps switched) and round_trip_ms (measured by
# the client, connect to reply, which adds rewriting the state file). Prints p50/p90/p99/max per operation
# (swaps per stage: a swap's cost is mostly the verifier's, which depends on the program), as Markdown.
#
# Usage (root): bench/swap_latency.sh [XDP_PIPELINE] [N_SWAP N_SET N_RELOAD]   (default 200 200 50)
# Not part of CTest. Leaves nothing behind (lab, pins, /run files) however it ends.
set -euo pipefail
HERE=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
XDPP=$(readlink -f "${1:-$HERE/../build/bin/xdp-pipeline}")
N_SWAP=${2:-200} N_SET=${3:-200} N_RELOAD=${4:-50}
[[ $(id -u) -eq 0 ]] || { echo "swap_latency: needs root" >&2; exit 1; }
[[ -x $XDPP ]] || { echo "swap_latency: no executable $XDPP (build it first)" >&2; exit 1; }
command -v jq >/dev/null || { echo "swap_latency: needs jq" >&2; exit 1; }
source "$HERE/../scripts/lab.sh"
# shellcheck source=scripts/lib/harness.sh
source "$HERE/../scripts/lib/harness.sh"
exec {HARNESS_OUT}>&2 # stdout is the table (bench/run.sh keeps it): the library's messages go to stderr
export LAB_QUIET=1

PIPELINE_NAME=swaplat-$$
T=$(mktemp -d /tmp/xdpp-swaplat.XXXXXX)
cleanup() {
  set +e
  pipeline_stop INT 10
  stop_bg
  lab_down "$PIPELINE_NAME" >/dev/null 2>&1
  pipeline_remove "$PIPELINE_NAME"
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
lab_up "$PIPELINE_NAME" >/dev/null

# flows samples nothing: the pings that cross it would otherwise each print an event during the measurement.
pipeline_toml "parse no-8080 ping-lb flows+sample=0" 'default_verdict = "pass"' >"$T/a.toml"
pipeline_toml "parse flows+sample=0 no-8080 ping-lb" 'default_verdict = "pass"' >"$T/b.toml"
pipeline_start /dev/null "$T/run.log" "$T/a.toml" -q
# Pings every 10 ms across the pipeline; ip netns exec execs ping, so BG_PID is ping itself (SIGINT makes
# it print its statistics).
start_bg "$T/ping.txt" ip netns exec "$LAB_NS_CLIENT" ping -q -i 0.01 "$LAB_VIP"
PING_PID=$BG_PID

measure() { # OUTFILE CLIENT-ARGS... (appends "latency_ms round_trip_ms")
  local out=$1 reply
  shift
  reply=$("$XDPP" "$@" -p "$PIPELINE_NAME" --json 2>>"$T/client.err") || { echo "swap_latency: '$*' failed: $reply" >&2; exit 1; }
  jq -r '"\(.latency_ms) \(.round_trip_ms)"' <<<"$reply" >>"$out"
}
stages=(ping-lb no-8080 parse)
for ((i = 0; i < N_SWAP; i++)); do measure "$T/swap ${stages[i % 3]}" swap "${stages[i % 3]}"; done
for ((i = 0; i < N_SET; i++)); do
  if ((i % 2)); then measure "$T/set" set no-8080 'drop_tcp_dst-=8081'; else measure "$T/set" set no-8080 'drop_tcp_dst+=8081'; fi
done
for ((i = 0; i < N_RELOAD; i++)); do
  if ((i % 2)); then measure "$T/reload" reload "$T/a.toml"; else measure "$T/reload" reload "$T/b.toml"; fi
done
stop_pid "$PING_PID" INT 5
loss=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' "$T/ping.txt")

# pct FILE COLUMN Q: nearest-rank percentile
pct() { sort -g <(cut -d' ' -f"$2" "$1") | awk -v q="$3" '{ v[NR] = $1 } END { i = int(q * NR); if (i < q * NR) i++; if (i < 1) i = 1; printf "%.2f", v[i] }'; }
echo "| operation | runs | daemon latency_ms p50 | p90 | p99 | max | client round_trip_ms p50 | p90 | p99 | max |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for op in "swap ping-lb" "swap no-8080" "swap parse" set reload; do
  printf '| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$op" "$(wc -l <"$T/$op")" \
    "$(pct "$T/$op" 1 0.5)" "$(pct "$T/$op" 1 0.9)" "$(pct "$T/$op" 1 0.99)" "$(pct "$T/$op" 1 1)" \
    "$(pct "$T/$op" 2 0.5)" "$(pct "$T/$op" 2 0.9)" "$(pct "$T/$op" 2 0.99)" "$(pct "$T/$op" 2 1)"
done
echo
echo "pings crossing the pipeline during the run (every 10 ms): ${loss:-?}% loss"
echo "kernel $(uname -r), $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1)"
