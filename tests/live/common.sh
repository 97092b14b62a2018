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

skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  if [[ -n ${PIPELINE_LOG:-} && -f ${PIPELINE_LOG:-} ]]; then
    echo "--- last lines of the pipeline's log ($PIPELINE_LOG):" >&2
    tail -n 30 "$PIPELINE_LOG" >&2 || true
  fi
  exit 1
}
ok() { echo "ok: $*"; }
note() { echo "# $*"; }

live_require() {
  [[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, XDP, the root-only control socket)"
  [[ -x ${XDPP:-} ]] || fail "XDPP (the xdp-pipeline executable) is not set or not executable: '${XDPP:-}'"
  local t
  for t in ip bridge clang ping timeout jq "$@"; do
    command -v "$t" >/dev/null || skip "'$t' not found"
  done
  local probe=live-probe-$$
  timeout 10 ip netns add "$probe" 2>/dev/null || skip "network namespaces are not available (ip netns add failed)"
  timeout 10 ip netns del "$probe"
  if ! mountpoint -q /sys/fs/bpf; then mount -t bpf bpf /sys/fs/bpf || skip "cannot mount bpffs on /sys/fs/bpf"; fi
}

PIPELINE_PID=
PIPELINE_NAME=
PIPELINE_LOG=
LIVE_LAB=
T=

# Stops the pipeline (SIGINT, then SIGKILL), removes the lab and everything of this pipeline.
live_cleanup() {
  local rc=$?
  set +e
  if [[ -n $PIPELINE_PID ]] && kill -0 "$PIPELINE_PID" 2>/dev/null; then
    kill -INT "$PIPELINE_PID"
    for _ in $(seq 50); do kill -0 "$PIPELINE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PIPELINE_PID" 2>/dev/null
    wait "$PIPELINE_PID" 2>/dev/null
  fi
  # Background traffic generators this test started (their pids are listed in $T/bg).
  if [[ -n $T && -f $T/bg ]]; then
    while read -r p; do kill "$p" 2>/dev/null; done <"$T/bg"
  fi
  # A persisted pipeline keeps running without its daemon: detach it (quietly when there is none).
  [[ -n $PIPELINE_NAME && -x ${XDPP:-} ]] && "$XDPP" detach "$PIPELINE_NAME" >/dev/null 2>&1
  [[ -n $LIVE_LAB ]] && LAB_QUIET=1 lab_down "$LIVE_LAB" >/dev/null 2>&1
  if [[ -n $PIPELINE_NAME ]]; then
    rm -rf "/sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME" "/run/xdp-pipeline/$PIPELINE_NAME.json" \
      "/run/xdp-pipeline/$PIPELINE_NAME.lock" \
      "/run/xdp-pipeline/$PIPELINE_NAME.json.tmp" "/run/xdp-pipeline/$PIPELINE_NAME.sock" \
      "/run/xdp-pipeline/$PIPELINE_NAME.plugins"
    rmdir /sys/fs/bpf/xdp-pipeline 2>/dev/null
  fi
  [[ -n $T ]] && rm -rf "$T"
  exit "$rc"
}

# live_setup PREFIX: the lab PREFIX-PID (state loaded: LAB_*), the pipeline name PREFIX-PID, $T.
live_setup() {
  local prefix=$1
  # shellcheck source=scripts/lab.sh
  source "$LAB_SH"
  export LAB_QUIET=1
  # Labs of an earlier run of this test killed before its cleanup (CTest timeout): remove them.
  local f old
  for f in "$LAB_STATE_DIR"/"$prefix"-*; do
    [[ -f $f ]] || continue
    old=${f##*/"$prefix"-}
    if [[ $old =~ ^[0-9]+$ ]] && ! kill -0 "$old" 2>/dev/null; then
      timeout 60 "$BASH" "$LAB_SH" down "${f##*/}" >/dev/null 2>&1 || true
      rm -rf "/sys/fs/bpf/xdp-pipeline/$prefix-$old" /run/xdp-pipeline/"$prefix-$old".*
    fi
  done
  T=$(mktemp -d "/tmp/xdpp-$prefix.XXXXXX")
  chmod 0700 "$T"
  PIPELINE_NAME=$prefix-$$
  LIVE_LAB=$prefix-$$
  trap live_cleanup EXIT
  trap 'exit 130' INT TERM
  lab_up "$LIVE_LAB" >/dev/null || fail "lab_up $LIVE_LAB failed"
  note "lab $LIVE_LAB: client $LAB_IP_CLIENT, VIP $LAB_VIP, backends $LAB_IP_BE1 $LAB_IP_BE2, lb interface $LAB_IF_LB"
}

# write_pipeline FILE ORDER [EXTRA_PIPELINE_LINES]: the four built-in stages in ORDER (space-separated
# stage names among parse no-8080 ping-lb flows).
write_pipeline() {
  local file=$1 order=$2 extra=${3:-} s
  {
    printf '[pipeline]\nname = "%s"\ninterface = "%s"\nmode = "native"\ndefault_verdict = "pass"\n%s\n' \
      "$PIPELINE_NAME" "$LAB_IF_LB" "$extra"
    for s in $order; do
      case $s in
      parse) printf '\n[[stage]]\nname = "parse"\nplugin = "parse"\n' ;;
      no-8080) printf '\n[[stage]]\nname = "no-8080"\nplugin = "port_filter"\ndrop_tcp_dst = [8080]\ndrop_udp_dst = [9999]\n' ;;
      ping-lb)
        printf '\n[[stage]]\nname = "ping-lb"\nplugin = "icmp_lb"\nvip = "%s"\nbackends = [\n' "$LAB_VIP"
        printf '  { ip = "%s", mac = "%s" },\n  { ip = "%s", mac = "%s" },\n]\n' \
          "$LAB_IP_BE1" "$LAB_MAC_BE1" "$LAB_IP_BE2" "$LAB_MAC_BE2"
        ;;
      flows) printf '\n[[stage]]\nname = "flows"\nplugin = "metadata"\nformat = "text"\nsample = 1\n' ;;
      *) fail "write_pipeline: unknown stage '$s'" ;;
      esac
    done
  } >"$file"
}

# start_pipeline FILE [run options...]: `run` in the lb namespace; waits until its state is published.
start_pipeline() {
  local file=$1
  shift
  PIPELINE_LOG=$T/run.log
  "$XDPP" run "$file" --netns "$LAB_NS_LB" --interface "$LAB_IF_LB" --mode native "$@" >"$T/events.log" 2>"$PIPELINE_LOG" &
  PIPELINE_PID=$!
  wait_published "xdp-pipeline run" 100 0.1
}

# wait_published WHAT TRIES DELAY: until the daemon $PIPELINE_PID has published its own state (its socket,
# and its pid in the state file: a persisted pipeline's state file is there before it starts); fails when
# it exits first or after TRIES x DELAY seconds.
wait_published() {
  local what=$1 tries=$2 delay=$3 i
  for i in $(seq "$tries"); do
    if [[ -S /run/xdp-pipeline/$PIPELINE_NAME.sock &&
      $(jq -r .pid "/run/xdp-pipeline/$PIPELINE_NAME.json" 2>/dev/null) == "$PIPELINE_PID" ]]; then
      return 0
    fi
    kill -0 "$PIPELINE_PID" 2>/dev/null || fail "$what exited early: $(cat "$PIPELINE_LOG")"
    sleep "$delay"
  done
  fail "$what did not publish its state within $(awk -v n="$tries" -v d="$delay" 'BEGIN { print n * d }') s"
}

# stop_pipeline: SIGINT, wait; the exit status in PIPELINE_RC.
stop_pipeline() {
  kill -INT "$PIPELINE_PID"
  PIPELINE_RC=0
  wait "$PIPELINE_PID" || PIPELINE_RC=$?
  PIPELINE_PID=
}

# status_json: `status NAME --json` (fails the test if status fails).
status_json() {
  "$XDPP" status "$PIPELINE_NAME" --json 2>"$T/status.err" || fail "status failed: $(cat "$T/status.err")"
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

# Counter of a stage from a status JSON: counter JSON STAGE FIELD (STAGE "pipeline" for the whole pipeline's).
counter() {
  local json=$1 stage=$2 field=$3
  if [[ $stage == pipeline ]]; then
    jq -r --arg f "$field" '.pipeline.counters[$f]' <<<"$json"
  else
    jq -r --arg s "$stage" --arg f "$field" '.stages[] | select(.name == $s) | .counters[$f]' <<<"$json"
  fi
}
prog_id() { jq -r --arg s "$2" '.stages[] | select(.name == $s) | .prog_id' <<<"$1"; }
prog_ids() { jq -c '[.pipeline.prog_id] + [.stages[] | [.name, .prog_id]]' <<<"$1"; }

# every counter of every stage and the pipeline, as "stage.field value" lines
counter_lines() {
  jq -r '(["(pipeline)", .pipeline.counters]), (.stages[] | [.name, .counters]) | . as [$n, $c] |
         $c | to_entries[] | "\($n).\(.key) \(.value)"' <<<"$1" | sort
}

# assert_grown BEFORE AFTER: no counter of AFTER is below its value in BEFORE (no reset), and the
# pipeline's packets grew.
assert_grown() {
  local before=$1 after=$2 what=$3
  local bad
  bad=$(join <(counter_lines "$before") <(counter_lines "$after") | awk '$3 < $2 {print $1 ": " $2 " -> " $3}')
  [[ -z $bad ]] || fail "$what: counters went back (reset?): $bad"
  (($(counter "$after" pipeline packets) > $(counter "$before" pipeline packets))) ||
    fail "$what: the pipeline's packets did not grow"
}

# verdicts_balance JSON: the pipeline's packets == the sum of every verdict of all stages == the sum of the
# pipeline's verdicts.
verdicts_balance() {
  jq -e '(.pipeline.counters.packets) ==
         ([.stages[].counters] | map(.aborted + .drop + .pass + .tx + .redirect) | add) and
         (.pipeline.counters.packets) == (.pipeline.counters | .aborted + .drop + .pass + .tx + .redirect)' \
    >/dev/null <<<"$1"
}

# ping_chunk COUNT OUT: COUNT pings every 5 ms from the client to the VIP; the reply sources in icmp_seq
# order go to OUT; prints "sent received".
ping_chunk() {
  local count=$1 out=$2 raw
  raw=$(lab_exec client ping -n -c "$count" -i 0.005 -W 2 "$LAB_VIP" 2>&1) || true
  sed -n 's/^[0-9]* bytes from \([0-9.]*\): icmp_seq=\([0-9]*\).*/\2 \1/p' <<<"$raw" | sort -n | awk '{print $2}' >>"$out"
  local sent received
  sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' <<<"$raw")
  received=$(sed -n 's/^[0-9]* packets transmitted, \([0-9]*\) received.*/\1/p' <<<"$raw")
  [[ -n $sent && -n $received ]] || fail "cannot read ping's statistics: $raw"
  echo "$sent $received"
}

# assert_alternating FILE WHAT: consecutive lines of FILE differ, and only the two backends appear.
assert_alternating() {
  local file=$1 what=$2 bad
  bad=$(awk -v a="$LAB_IP_BE1" -v b="$LAB_IP_BE2" '
    $1 != a && $1 != b { print "line " NR ": reply from " $1 " (not a backend)"; exit }
    NR > 1 && $1 == prev { print "line " NR ": two replies in a row from " $1; exit }
    { prev = $1 }' "$file")
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
# and logs in $PIPELINE_LOG (numbered per start); waits until this very daemon has published its state (its
# pid in the state file: a persisted pipeline's state file is there before it starts).
DAEMON_RUNS=0
EVENTS_LOG=
run_daemon() {
  local file=$1
  shift
  DAEMON_RUNS=$((DAEMON_RUNS + 1))
  PIPELINE_LOG=$T/run-$DAEMON_RUNS.log
  EVENTS_LOG=$T/events-$DAEMON_RUNS.log
  "${XDPP_RUN:-$XDPP}" run "$file" --netns "$LAB_NS_LB" --interface "$LAB_IF_LB" --mode native "$@" \
    >"$EVENTS_LOG" 2>"$PIPELINE_LOG" &
  PIPELINE_PID=$!
  wait_published "run #$DAEMON_RUNS" 300 0.05
}

# end_daemon SIGNAL: sends SIGNAL to the daemon and reaps it; its exit status in PIPELINE_RC.
end_daemon() {
  kill "-$1" "$PIPELINE_PID"
  PIPELINE_RC=0
  wait "$PIPELINE_PID" 2>/dev/null || PIPELINE_RC=$?
  PIPELINE_PID=
}

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
