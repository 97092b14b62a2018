# Shared helpers of the live tests (sourced, not run): a lab (scripts/lab.sh), a pipeline running in its
# lb namespace, traffic from the client, and readers of `status --json`.
#
# A test script sets XDPP (the xdp-pipeline executable) and sources this file; it then calls
# live_setup NAME, which creates a lab named NAME-PID, a temporary directory $T and installs the cleanup
# (pipeline stopped, lab removed, pins and /run files of this test's pipeline removed) on every exit.
# Exit status of a test: 0 passed, 1 failed, 77 skipped.
set -euo pipefail

LIVE_HERE=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
LIVE_SOURCE_DIR=$(cd "$LIVE_HERE/../.." && pwd)
LAB_SH=${LAB_SH:-$LIVE_SOURCE_DIR/scripts/lab.sh}

# Reporting, background processes, the daemon, status --json and pipeline files: scripts/lib/harness.sh
# (one copy for the demo, the end-to-end tests and the benchmarks). A failed check ends a live test.
# shellcheck source=scripts/lib/harness.sh
source "$LIVE_SOURCE_DIR/scripts/lib/harness.sh"
ok() { pass "$@"; }

# live_require [TOOL...]: skip unless root, namespaces, bpffs and the tools (ip bridge clang ping timeout jq
# and TOOL...) are there; XDPP must be the executable.
live_require() {
  [[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, XDP, the root-only control socket)"
  [[ -x ${XDPP:-} ]] || fail "XDPP (the xdp-pipeline executable) is not set or not executable: '${XDPP:-}'"
  require_tools ip bridge clang ping timeout jq "$@"
  require_lab_host
}

# stage_data_bytes OBJECT: the size of a stage object's global data (section .data.stage, contract 3), which is
# the value size of the map the host pins for it as data-stage.
stage_data_bytes() {
  local size
  size=$(objdump -h "$1" | awk '$2 == ".data.stage" { print $3 }')
  [[ -n $size ]] || fail "$1 has no .data.stage section"
  echo $((16#$size))
}

# pinned_data_bytes STAGE_DIR: the value size of the stage data map pinned in STAGE_DIR.
pinned_data_bytes() { bpftool -j map show pinned "$1/data-stage" | jq .bytes_value; }

LIVE_LAB=
T=

# Stops the pipeline (SIGINT, then SIGKILL), removes the lab and everything of this pipeline.
live_cleanup() {
  local rc=$?
  set +e
  pipeline_stop INT 5
  stop_bg
  # Background traffic generators this test started with a plain & (their pids are listed in $T/bg).
  if [[ -n $T && -f $T/bg ]]; then
    while read -r p; do kill "$p" 2>/dev/null; done <"$T/bg"
  fi
  # A persisted pipeline keeps running without its daemon: pipeline_remove detaches it.
  pipeline_remove "$PIPELINE_NAME"
  [[ -n $LIVE_LAB ]] && LAB_QUIET=1 lab_down "$LIVE_LAB" >/dev/null 2>&1
  [[ -n $T ]] && rm -rf "$T"
  exit "$rc"
}

# live_setup PREFIX: the lab PREFIX-PID (state loaded: LAB_*), the pipeline name PREFIX-PID, $T.
live_setup() {
  local prefix=$1
  # shellcheck source=scripts/lab.sh
  source "$LAB_SH"
  export LAB_QUIET=1
  # Labs and pipelines of an earlier run of this test killed before its cleanup (CTest timeout).
  reap_stale "$prefix"
  T=$(mktemp -d "/tmp/xdpp-$prefix.XXXXXX")
  chmod 0700 "$T"
  PIPELINE_NAME=$prefix-$$
  LIVE_LAB=$prefix-$$
  trap live_cleanup EXIT
  trap 'exit 130' INT TERM
  lab_up "$LIVE_LAB" >/dev/null || fail "lab_up $LIVE_LAB failed"
  note "lab $LIVE_LAB: client $LAB_IP_CLIENT, VIP $LAB_VIP, backends $LAB_IP_BE1 $LAB_IP_BE2, lb interface $LAB_IF_LB"
}

# write_pipeline FILE ORDER [EXTRA_PIPELINE_LINES]: the built-in stages in ORDER (space-separated stage
# names among parse no-8080 ping-lb flows, see pipeline_toml), native mode, default verdict pass; no-8080
# drops TCP 8080 and UDP 9999.
write_pipeline() {
  local file=$1 order=$2 extra=${3:-}
  PIPELINE_MODE=native pipeline_toml "${order//no-8080/no-8080+drop_udp_dst=[9999]}" \
    "default_verdict = \"pass\"${extra:+$'\n'$extra}" >"$file" || fail "write_pipeline: cannot write '$order'"
}

# start_pipeline FILE [run options...]: `run` in the lb namespace (events in $T/events.log, logs in
# $T/run.log); waits until it has published its state.
start_pipeline() {
  PIPELINE_MODE=native pipeline_start "$T/events.log" "$T/run.log" "$@"
}

# wait_published WHAT TRIES DELAY: until the daemon $PIPELINE_PID has published its own state (its socket,
# and its pid in the state file); fails when it exits first or after TRIES x DELAY seconds.
wait_published() {
  local what=$1 tries=$2 delay=$3 i
  for i in $(seq "$tries"); do
    pipeline_published && return 0
    kill -0 "$PIPELINE_PID" 2>/dev/null || fail "$what exited early"
    sleep "$delay"
  done
  fail "$what did not publish its state within $(awk -v n="$tries" -v d="$delay" 'BEGIN { print n * d }') s"
}

# stop_pipeline: SIGINT, wait; the exit status in PIPELINE_RC.
stop_pipeline() { pipeline_stop INT 30; }

# status_json: `status NAME --json` (fails the test if status fails).
status_json() {
  pipeline_status_json 2>"$T/status.err" || fail "status failed: $(cat "$T/status.err")"
}

# ctl ARGS...: a client command against this test's pipeline with --json; prints the reply.
ctl() {
  local op=$1
  shift
  "$XDPP" "$op" "$@" -p "$PIPELINE_NAME" --json
}

# ctl_ok ARGS...: ctl that must succeed.
ctl_ok() {
  local out
  out=$(ctl "$@" 2>&1) || fail "'$*' failed: $out"
  jq -e '.ok == true' >/dev/null <<<"$out" || fail "'$*' did not reply ok: $out"
}

# counter JSON STAGE FIELD (STAGE "pipeline" for the whole pipeline), counter_lines JSON: see harness.sh.
prog_id() { jq -r --arg s "$2" '.stages[] | select(.name == $s) | .prog_id' <<<"$1"; }
prog_ids() { jq -c '[.pipeline.prog_id] + [.stages[] | [.name, .prog_id]]' <<<"$1"; }

# assert_grown BEFORE AFTER WHAT: no counter of AFTER is below its value in BEFORE (no reset), and the
# packets entering the pipeline grew.
assert_grown() {
  local before=$1 after=$2 what=$3
  local bad
  bad=$(join <(counter_lines "$before") <(counter_lines "$after") | awk '$3 < $2 {print $1 ": " $2 " -> " $3}')
  [[ -z $bad ]] || fail "$what: counters went back (reset?): $bad"
  (($(jq "$HARNESS_JQ_DEFS"' entry_packets' <<<"$after") > $(jq "$HARNESS_JQ_DEFS"' entry_packets' <<<"$before"))) ||
    fail "$what: the packets entering the pipeline did not grow"
}

# verdicts_balance JSON: the packets entering the chain == the sum of every verdict (verdicts_add_up).
verdicts_balance() { verdicts_add_up "$1" >/dev/null; }

# ping_chunk COUNT OUT: COUNT pings every 5 ms from the client to the VIP; the reply sources in icmp_seq
# order go to OUT; prints "sent received".
ping_chunk() {
  local count=$1 out=$2 raw
  raw=$(lab_exec client ping -n -c "$count" -i 0.005 -W 2 "$LAB_VIP" 2>&1) || true
  ping_sources <(echo "$raw") >>"$out"
  local sent received
  sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' <<<"$raw")
  received=$(sed -n 's/^[0-9]* packets transmitted, \([0-9]*\) received.*/\1/p' <<<"$raw")
  [[ -n $sent && -n $received ]] || fail "cannot read ping's statistics: $raw"
  echo "$sent $received"
}

# assert_alternating FILE WHAT: consecutive lines of FILE differ, and only the two backends appear.
assert_alternating() {
  local file=$1 what=$2 bad
  bad=$(alternation_broken "$file")
  [[ -z $bad ]] || fail "$what: strict alternation broken: $bad"
}

# udp_burst COUNT PORT: COUNT UDP datagrams from the client to the VIP, one every ~5 ms.
udp_burst() {
  lab_exec client bash -c 'for ((i = 0; i < $1; i++)); do echo x >"/dev/udp/$2/$3"; sleep 0.005; done' _ "$1" "$LAB_VIP" "$2"
}

# tcp_syns COUNT PORT: COUNT connection attempts to VIP:PORT, each given 0.3 s (one SYN each: the first
# retransmission would come after 1 s); prints how many were refused (RST, i.e. reached the kernel).
tcp_syns() {
  lab_exec client bash -c '
    refused=0
    for ((i = 0; i < $1; i++)); do
      if timeout 0.3 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; then :; else
        [[ $? -eq 1 ]] && refused=$((refused + 1))
      fi
    done
    echo $refused' _ "$1" "$LAB_VIP" "$2"
}

# run_daemon FILE [run options...]: `run` in the lb namespace with ${XDPP_RUN:-$XDPP}, events in $EVENTS_LOG
# and logs in $PIPELINE_LOG (numbered per start); waits until this very daemon has published its state.
DAEMON_RUNS=0
run_daemon() {
  DAEMON_RUNS=$((DAEMON_RUNS + 1))
  PIPELINE_MODE=native pipeline_start "$T/events-$DAEMON_RUNS.log" "$T/run-$DAEMON_RUNS.log" "$@"
}

# end_daemon SIGNAL: sends SIGNAL to the daemon and reaps it; its exit status in PIPELINE_RC.
end_daemon() { pipeline_stop "$1" 30; }

# watch_xdp: in the background, samples the program id on the lb's interface every ~10 ms until
# $T/watch.stop exists; every sample without a program is a line in $T/watch.missing.
watch_xdp() {
  (
    set +e
    while [[ ! -e $T/watch.stop ]]; do
      id=$(ip -n "$LAB_NS_LB" -j link show dev "$LAB_IF_LB" | jq -r '.[0].xdp.prog.id // 0')
      echo "$id" >>"$T/watch.ids"
      [[ $id != 0 ]] || date +%T.%N >>"$T/watch.missing"
      sleep 0.01
    done
  ) &
  echo $! >>"$T/bg"
}

# pings_during_changes COUNT: watch_xdp, and COUNT pings (ping_chunk) in the background while the test
# changes the pipeline: the reply sources in $T/sources.txt, "sent received" in $T/ping.result; PINGER.
pings_during_changes() {
  watch_xdp
  : >"$T/sources.txt"
  (ping_chunk "$1" "$T/sources.txt" >"$T/ping.result") &
  PINGER=$!
  echo "$PINGER" >>"$T/bg"
}
# assert_pings_survived COUNT WHAT: waits for pings_during_changes' pings and stops watch_xdp: every ping
# answered, the backends strictly alternating, the interface never without its program; sent and received
# are set.
assert_pings_survived() {
  local count=$1 what=$2
  wait "$PINGER" || true
  read -r sent received <"$T/ping.result"
  touch "$T/watch.stop"
  ((sent == count && received == count)) || fail "$what: $received of $sent pings answered"
  assert_alternating "$T/sources.txt" "$what"
  [[ ! -s $T/watch.missing ]] || fail "the interface was without its program: $(head -n 3 "$T/watch.missing")"
}

# assert_no_daemon_status [TABLE]: status --json of a persisted pipeline without its daemon must say so
# (and the table too unless TABLE is 0); prints the JSON.
assert_no_daemon_status() {
  local json
  json=$(status_json)
  jq -e '.daemon == false and .state == "running, no daemon (persisted)"' >/dev/null <<<"$json" ||
    fail "status does not say 'running, no daemon (persisted)': $json"
  if [[ ${1:-1} != 0 ]]; then
    "$XDPP" status "$PIPELINE_NAME" | grep -q 'running, no daemon (persisted)' ||
      fail "status (table) does not say 'running, no daemon (persisted)'"
  fi
  echo "$json"
}

# expect_exit1 WHAT CMD...: CMD must fail with exit status 1 (a refusal); its stdout and stderr in OUT.
OUT=
expect_exit1() {
  local what=$1 rc=0
  shift
  OUT=$("$@" 2>&1) || rc=$?
  ((rc == 1)) || fail "$what: exit status $rc, expected 1: $OUT"
}
