# scripts/lib/ holds shell libraries that the project's own scripts source (never run on their own).
#
# harness.sh: what the lab-based scripts share: scripts/demo.sh, tests/e2e/*.sh, tests/live/*.sh (through
# tests/live/common.sh) and bench/swap_latency.sh. One copy of
#   - reporting: pass/fail/fatal/expect/skip/note/show, harness_summary/harness_exit/harness_trap: one
#     convention for every script; require_tools, require_lab_host (or SKIP);
#   - background processes: start_bg (own process group), stop_pid, stop_bg, wait_for;
#   - a pipeline daemon in a lab (scripts/lab.sh): pipeline_start (waits until this very daemon has
#     published its state), pipeline_stop, pipeline_leftovers, pipeline_remove, reap_stale;
#   - `status --json`, read with jq: pipeline_status_json, counter, counter_lines, verdicts_add_up;
#   - pipeline files of the built-in stages on the lab: pipeline_toml;
#   - traffic on the lab: wait_listening, ping_replies/ping_sources, alternation_broken,
#     expect_alternating, capture_start/capture_stop.
#
# Sourcing sets no shell option (the caller keeps its own `set -e`/`-u`) and installs no trap: a script
# owns its cleanup and calls stop_bg, pipeline_stop and lab_down from it. Needs bash 4.3+ and jq.
#
# Variables the caller sets (read by the functions named):
#   XDPP            the xdp-pipeline executable (XDPP_RUN, when set, is the one pipeline_start runs)
#   PIPELINE_NAME   the pipeline's name (pins, state file, control socket): unique per run
#   PIPELINE_MODE   attach mode for pipeline_start and pipeline_toml (default native)
#   HARNESS_NAME    the script's name, in the summary and in messages (default: the script's file name)
#   HARNESS_ON_FAIL stop (default): a failed check ends the script (exit 1); go: it is counted and the
#                   script goes on, reporting every check (the end-to-end tests), see harness_exit
#   HARNESS_STYLE   plain (default): "PASS: ...", "FAIL: ..."; demo: "✔ ..." / "✘ ..." for a person

HARNESS_NAME=${HARNESS_NAME:-$(basename "$0" .sh)}
HARNESS_ON_FAIL=${HARNESS_ON_FAIL:-stop}
HARNESS_STYLE=${HARNESS_STYLE:-plain}
PIPELINE_MODE=${PIPELINE_MODE:-native}
PIPELINE_PID='' PIPELINE_NAME=${PIPELINE_NAME:-} PIPELINE_LOG='' EVENTS_LOG='' PIPELINE_RC=''
BG_PID='' BG_PIDS=() STOP_RC=0 STOP_KILLED=0
HARNESS_PASSED=() HARNESS_FAILED=()
PIN_ROOT=/sys/fs/bpf/xdp-pipeline
RUN_ROOT=/run/xdp-pipeline
# Reports go to the script's stdout as it was when this file was sourced: a check inside $(...) or inside
# a redirected block still shows.
exec {HARNESS_OUT}>&1

# --- reporting -----------------------------------------------------------------------------------------
# One line per check: "PASS: what held" or "FAIL: what did not (and what was seen)"; "SKIP: why" (exit 77)
# when the script cannot run here; "# text" for context. Details under a FAIL line are indented by show.
_harness_line() { # KIND TEXT
  if [[ $HARNESS_STYLE == demo ]]; then
    local c=$'\e[32m' m='✔' n=$'\e[0m'
    [[ $1 == PASS ]] || c=$'\e[31m' m='✘'
    [[ -t $HARNESS_OUT ]] || c='' n=''
    printf '    %s%s %s%s\n' "$c" "$m" "$2" "$n" >&"$HARNESS_OUT"
  else
    printf '%s: %s\n' "$1" "$2" >&"$HARNESS_OUT"
  fi
}
pass() {
  HARNESS_PASSED+=("$*")
  _harness_line PASS "$*"
}
# fail TEXT: a check that did not hold; with HARNESS_ON_FAIL=stop the script ends here (exit 1), after
# the last lines of the running pipeline's log.
fail() {
  HARNESS_FAILED+=("$*")
  _harness_line FAIL "$*"
  [[ $HARNESS_ON_FAIL == stop ]] || return 0
  if [[ -n $PIPELINE_LOG && -f $PIPELINE_LOG ]]; then
    echo "--- last lines of the pipeline's log ($PIPELINE_LOG):" >&"$HARNESS_OUT"
    tail -n 30 "$PIPELINE_LOG" | show
  fi
  exit 1
}
# fatal TEXT: a failure the rest of the script cannot go on after, whatever HARNESS_ON_FAIL says.
fatal() {
  HARNESS_ON_FAIL=stop fail "$@"
}
# expect TEXT CMD...: PASS or FAIL by CMD's exit status.
expect() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
skip() {
  echo "SKIP: $*" >&"$HARNESS_OUT"
  exit 77
}
note() { echo "# $*" >&"$HARNESS_OUT"; }
# show [FILE...]: FILE (or stdin) indented, under a FAIL line.
show() { sed 's/^/      | /' "$@" >&"$HARNESS_OUT"; }
# harness_summary: "NAME: all N checks passed" or "NAME: F of N checks FAILED"; non-zero when one failed.
harness_summary() {
  local n=$((${#HARNESS_PASSED[@]} + ${#HARNESS_FAILED[@]}))
  if ((${#HARNESS_FAILED[@]} == 0)); then
    echo "$HARNESS_NAME: all $n checks passed" >&"$HARNESS_OUT"
  else
    echo "$HARNESS_NAME: ${#HARNESS_FAILED[@]} of $n checks FAILED" >&"$HARNESS_OUT"
    return 1
  fi
}
# harness_trap FUNCTION: FUNCTION (the script's cleanup) runs on every exit; SIGINT and SIGTERM are a
# failed check, then exit 130 / 143 (which runs FUNCTION).
harness_trap() {
  trap "$1" EXIT
  trap 'fail "interrupted (SIGINT); cleaning up"; exit 130' INT
  trap 'fail "terminated (SIGTERM); cleaning up"; exit 143' TERM
}
# harness_exit RC: the summary, then exit RC (1 instead of 0 when a check failed; 130/143 stay).
harness_exit() {
  local rc=$1
  harness_summary || { ((rc != 0)) || rc=1; }
  exit "$rc"
}
# require_tools TOOL...: skip (exit 77) unless every TOOL is on PATH (or an executable path).
require_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || skip "'$t' not found (install the dependencies: scripts/install-deps.sh)"
  done
}
# require_lab_host: skip unless this is root on a machine with network namespaces and a bpffs.
require_lab_host() {
  [[ $(id -u) -eq 0 ]] || skip "$HARNESS_NAME needs root (network namespaces, XDP, pins under /sys/fs/bpf)"
  local probe=xdpp-probe-$$
  timeout 10 ip netns add "$probe" 2>/dev/null || skip "network namespaces are not available here (ip netns add failed)"
  timeout 10 ip netns del "$probe"
  mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || skip "cannot mount bpffs on /sys/fs/bpf"
}

# --- background processes ------------------------------------------------------------------------------
# start_bg [--err FILE] LOG CMD...: CMD in the background in its own process group (a plain `&` in a script
# starts it with SIGINT ignored, and a signal to our group would reach it twice); stdout and stderr in LOG
# (stderr in FILE with --err). Sets BG_PID and adds it to BG_PIDS, which stop_bg stops.
start_bg() {
  local err=''
  if [[ $1 == --err ]]; then
    err=$2
    shift 2
  fi
  local log=$1
  shift
  set -m
  if [[ -n $err ]]; then
    "$@" >"$log" 2>"$err" {HARNESS_OUT}>&- &
  else
    "$@" >"$log" 2>&1 {HARNESS_OUT}>&- &
  fi
  BG_PID=$!
  set +m
  BG_PIDS+=("$BG_PID")
}
# stop_pid PID SIGNAL SECONDS: SIGNAL, then SIGKILL after SECONDS; reaps it. Sets STOP_RC (its exit status)
# and STOP_KILLED=1 when it needed SIGKILL; removes PID from BG_PIDS.
stop_pid() {
  local pid=$1 sig=$2 secs=$3 i p keep=()
  STOP_RC=0 STOP_KILLED=0
  if kill -0 "$pid" 2>/dev/null; then
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "$HARNESS_NAME: pid $pid ignored SIG$sig for ${secs}s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      STOP_KILLED=1
    fi
  fi
  wait "$pid" 2>/dev/null || STOP_RC=$?
  for p in "${BG_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  BG_PIDS=("${keep[@]}")
}
# stop_bg: SIGTERM (SIGKILL after 3 s) to every process start_bg started and nobody stopped yet.
stop_bg() {
  local pid
  for pid in "${BG_PIDS[@]}"; do stop_pid "$pid" TERM 3; done
}
# wait_for SECONDS CMD...: CMD every 0.1 s until it succeeds (0) or SECONDS have passed (1).
wait_for() {
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 10; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# --- a pipeline daemon in the lab ----------------------------------------------------------------------
# pipeline_published: the daemon PIPELINE_PID has published its own state: its control socket, and its
# pid in the state file (a persisted pipeline's state file is there before the daemon starts).
pipeline_published() {
  [[ -S $RUN_ROOT/$PIPELINE_NAME.sock &&
    $(jq -r .pid "$RUN_ROOT/$PIPELINE_NAME.json" 2>/dev/null) == "$PIPELINE_PID" ]]
}
# pipeline_start EVENTS LOG FILE [run options...]: `run FILE --netns LB --interface LB's --mode
# PIPELINE_MODE` in the lb's namespace, with ${XDPP_RUN:-$XDPP}, in the background; events (stdout) in
# EVENTS, logs (stderr) in LOG (also EVENTS_LOG, PIPELINE_LOG); sets PIPELINE_PID. Waits (30 s at most)
# until it has published its state, which it does once attached; a fatal failure if it exits first.
pipeline_start() {
  local events=$1 log=$2 file=$3 i
  shift 3
  EVENTS_LOG=$events PIPELINE_LOG=$log
  start_bg --err "$log" "$events" "${XDPP_RUN:-$XDPP}" run "$file" --netns "$LAB_NS_LB" --interface "$LAB_IF_LB" \
    --mode "$PIPELINE_MODE" "$@"
  PIPELINE_PID=$BG_PID
  for ((i = 0; i < 600; i++)); do
    pipeline_published && return 0
    if ! kill -0 "$PIPELINE_PID" 2>/dev/null; then
      stop_pid "$PIPELINE_PID" INT 1
      PIPELINE_PID=''
      fatal "xdp-pipeline run $(basename "$file") exited (status $STOP_RC) before it published its state"
    fi
    sleep 0.05
  done
  fatal "xdp-pipeline run $(basename "$file") did not publish its state within 30 s"
}
# pipeline_stop [SIGNAL [SECONDS]]: SIGNAL (default INT) to the daemon, SIGKILL after SECONDS (default 10);
# its exit status in PIPELINE_RC (STOP_KILLED=1 when it needed SIGKILL).
pipeline_stop() {
  [[ -n $PIPELINE_PID ]] || return 0
  stop_pid "$PIPELINE_PID" "${1:-INT}" "${2:-10}"
  PIPELINE_RC=$STOP_RC
  PIPELINE_PID=''
}
# pipeline_leftovers NAME: prints what pipeline NAME left (pins, /run files); non-zero when nothing.
pipeline_leftovers() {
  local name=$1 f found=1
  [[ ! -e $PIN_ROOT/$name ]] || { echo "$PIN_ROOT/$name"; found=0; }
  for f in "$RUN_ROOT/$name".*; do
    [[ -e $f ]] || continue
    echo "$f"
    found=0
  done
  return "$found"
}
# pipeline_remove NAME: detaches a persisted NAME (quietly when there is none) and removes its pins and
# /run files: for cleanups, also after a killed daemon.
pipeline_remove() {
  local name=$1
  [[ -n $name ]] || return 0
  [[ -z ${XDPP:-} ]] || "$XDPP" detach "$name" >/dev/null 2>&1 || true
  rm -rf -- "${PIN_ROOT:?}/$name" "${RUN_ROOT:?}/$name".*
  rmdir "$PIN_ROOT" 2>/dev/null || true
}
# reap_stale PREFIX: labs, pins and /run files named PREFIX-PID... whose PID no longer exists (a run of
# this script killed before its cleanup, e.g. by a CTest timeout) are removed.
reap_stale() {
  local prefix=$1 f base pid
  for f in "$LAB_STATE_DIR/$prefix"-* "$PIN_ROOT/$prefix"-* "$RUN_ROOT/$prefix"-*; do
    [[ -e $f ]] || continue
    base=${f##*/}
    pid=${base#"$prefix"-}
    pid=${pid%%[!0-9]*}
    [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null || continue
    note "removing $f, left by an earlier run (pid $pid)"
    case $f in
    "$LAB_STATE_DIR"/*) timeout 60 "$BASH" "$LAB_SH" down "$base" >/dev/null 2>&1 || true ;;
    *) rm -rf -- "$f" ;;
    esac
  done
}

# --- status --json, with jq ----------------------------------------------------------------------------
# Every counters object of a status JSON with the name it belongs to, the chain's entry first: the
# dispatcher's (contract 1 only), then each stage's (contract 2: the first stage is the entry). The checks
# below read counters only through it. The whole pipeline's total (.pipeline, contract 2) is not in it: its
# verdicts are the stages' own, summed.
HARNESS_JQ_DEFS='
  def named_counters: [(.dispatcher // empty | {name: "dispatcher", counters}), (.stages[] | {name, counters})];
  def verdict_sum: .aborted + .drop + .pass + .tx + .redirect;
  def entry_packets: if .pipeline then .pipeline.counters.packets else named_counters[0].counters.packets end;'
# pipeline_status_json [NAME]: `status NAME --json` (default PIPELINE_NAME); the error on stderr.
pipeline_status_json() {
  timeout 20 "$XDPP" status "${1:-$PIPELINE_NAME}" --json
}
# counter JSON STAGE FIELD: a counter of STAGE ("pipeline" for the whole pipeline's total, "dispatcher" for
# a contract-1 dispatcher); "null" if none.
counter() {
  if [[ $2 == pipeline ]]; then
    jq -r --arg f "$3" '.pipeline.counters[$f]' <<<"$1"
    return
  fi
  jq -r --arg s "$2" --arg f "$3" "$HARNESS_JQ_DEFS"' named_counters[] | select(.name == $s) | .counters[$f]' <<<"$1"
}
# counter_lines JSON: every counter of every counters object, the whole pipeline's total as "(pipeline)"
# too, as sorted "name.field value" lines.
counter_lines() {
  jq -r "$HARNESS_JQ_DEFS"' (.pipeline // empty | {name: "(pipeline)", counters}), named_counters[]
    | .name as $n | .counters | to_entries[] | "\($n).\(.key) \(.value)"' <<<"$1" | sort
}
# verdicts_add_up JSON: the packets that entered the chain (the whole pipeline's, or the first counters
# object's) equal the sum of every verdict of every counters object: no packet lost or counted twice. Prints
# "PACKETS SUM".
verdicts_add_up() {
  local line
  line=$(jq -r "$HARNESS_JQ_DEFS"' "\(entry_packets) \(named_counters | map(.counters | verdict_sum) | add)"' \
    <<<"$1") || return 1
  echo "$line"
  [[ ${line% *} =~ ^[0-9]+$ && ${line% *} == "${line#* }" ]]
}

# --- pipeline files --------------------------------------------------------------------------------------
# pipeline_toml STAGES [PIPELINE_LINES]: a pipeline file on the lab, to stdout: [pipeline] with name =
# PIPELINE_NAME (when set), interface = LAB_IF_LB, mode = PIPELINE_MODE and PIPELINE_LINES; then one
# [[stage]] per word of STAGES, in order:
#   parse     plugin parse
#   no-PORT   plugin port_filter, drop_tcp_dst = [PORT]      (no-8080, no-8081, ...)
#   ping-lb   plugin icmp_lb, vip = LAB_VIP, backends = the lab's two backends
#   flows     plugin metadata, format = "text", sample = 1   (one event line per packet)
# A word may add or replace settings after '+': flows+format="json", no-8080+drop_udp_dst=[9999].
pipeline_toml() {
  local stages=$1 extra=${2:-} word name setting settings key keys i
  local -A value
  printf '[pipeline]\n'
  [[ -z ${PIPELINE_NAME:-} ]] || printf 'name = "%s"\n' "$PIPELINE_NAME"
  printf 'interface = "%s"\nmode = "%s"\n' "$LAB_IF_LB" "$PIPELINE_MODE"
  [[ -z $extra ]] || printf '%s\n' "$extra"
  for word in $stages; do
    name=${word%%+*}
    value=() keys=()
    case $name in
    parse) keys=(plugin) value[plugin]='"parse"' ;;
    no-[0-9]*) keys=(plugin drop_tcp_dst) value[plugin]='"port_filter"' value[drop_tcp_dst]="[${name#no-}]" ;;
    ping-lb)
      keys=(plugin vip backends) value[plugin]='"icmp_lb"' value[vip]="\"$LAB_VIP\""
      value[backends]="[ { ip = \"$LAB_IP_BE1\", mac = \"$LAB_MAC_BE1\" }, { ip = \"$LAB_IP_BE2\", mac = \"$LAB_MAC_BE2\" } ]"
      ;;
    flows) keys=(plugin format sample) value[plugin]='"metadata"' value[format]='"text"' value[sample]=1 ;;
    *)
      echo "pipeline_toml: unknown stage '$name' (parse, no-PORT, ping-lb, flows)" >&2
      return 2
      ;;
    esac
    if [[ $word == *+* ]]; then
      IFS=+ read -r -a settings <<<"${word#*+}"
      for setting in "${settings[@]}"; do
        key=${setting%%=*}
        [[ -n ${value[$key]+set} ]] || keys+=("$key")
        value[$key]=${setting#*=}
      done
    fi
    printf '\n[[stage]]\nname = "%s"\n' "$name"
    for ((i = 0; i < ${#keys[@]}; i++)); do printf '%s = %s\n' "${keys[i]}" "${value[${keys[i]}]}"; done
  done
}

# --- traffic on the lab ----------------------------------------------------------------------------------
# wait_listening PORT: a TCP listener on PORT in the lb's namespace within 10 s.
wait_listening() {
  wait_for 10 bash -c 'ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q LISTEN' _ "$LAB_NS_LB" "$1"
}
# ping_replies FILE: the echo replies in ping's output FILE, in icmp_seq order: their sources in REPLY_FROM,
# their icmp_seq in REPLY_SEQS.
ping_replies() {
  local lines
  mapfile -t lines < <(sed -n 's/^[0-9]* bytes from \([0-9.]*\): icmp_seq=\([0-9]*\).*/\2 \1/p' "$1" | sort -n)
  REPLY_SEQS=("${lines[@]%% *}") REPLY_FROM=("${lines[@]#* }")
}
# ping_sources FILE: the sources of the echo replies in ping's output FILE, in icmp_seq order, one a line.
ping_sources() {
  ping_replies "$1"
  ((${#REPLY_FROM[@]} == 0)) || printf '%s\n' "${REPLY_FROM[@]}"
}
# expect_alternating N WHAT: the last ping_replies saw N replies, strictly alternating between the two
# backends (PASS or FAIL, non-zero then).
expect_alternating() {
  local n=$1 what=$2
  if ((${#REPLY_FROM[@]} == n)) && [[ -z $(alternation_broken <(printf '%s\n' "${REPLY_FROM[@]}")) ]]; then
    pass "$what: $n replies, alternating: ${REPLY_FROM[*]}"
  else
    fail "$what: expected $n replies alternating between $LAB_IP_BE1 and $LAB_IP_BE2; got ${#REPLY_FROM[@]}: ${REPLY_FROM[*]:-none}"
    return 1
  fi
}
# alternation_broken FILE: the first line of FILE (reply sources) that is not a backend or repeats the line
# before, explained; nothing when the two backends strictly alternate.
alternation_broken() {
  awk -v a="$LAB_IP_BE1" -v b="$LAB_IP_BE2" '
    $1 != a && $1 != b { print "line " NR ": reply from " $1 " (not a backend)"; exit }
    NR > 1 && $1 == prev { print "line " NR ": two replies in a row from " $1; exit }
    { prev = $1 }' "$1"
}
# capture_start ROLE PCAP [INTERFACE]: tcpdump on ROLE's interface (or INTERFACE, in ROLE's namespace) into
# PCAP (whole frames; tcpdump's messages in PCAP.log), bounded by a timeout; sets CAP_PID once tcpdump says
# it listens. --immediate-mode: without it libpcap hands packets over a ring block at a time (when full or
# after its ~1 s timeout), and a SIGTERM loses the packets of the last block (seen: "27 packets received by
# filter", 19 captured). -U: each packet written to the file at once.
capture_start() {
  local role=$1 pcap=$2 log=$2.log ifc
  ifc=LAB_IF_${role^^}
  ifc=${3:-${!ifc}}
  start_bg "$log" ip netns exec "$(lab_ns "$role")" timeout 120 \
    tcpdump -i "$ifc" -p -nn -s 0 --immediate-mode -U -w "$pcap"
  CAP_PID=$BG_PID
  wait_for 10 grep -q 'listening on' "$log" || fatal "tcpdump on $role did not start: $(cat "$log")"
}
# capture_stop PID PCAP: stops it; non-zero (and why, on stdout) when the capture is empty or tcpdump lost
# a packet it had received.
capture_stop() {
  local pcap=$2 log=$2.log got seen
  stop_pid "$1" TERM 5
  [[ -s $pcap ]] || { echo "capture $pcap is empty or missing: $(cat "$log")"; return 1; }
  got=$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured$/\1/p' "$log")
  seen=$(sed -n 's/^\([0-9]*\) packets\{0,1\} received by filter$/\1/p' "$log")
  if [[ -z $got || $got != "$seen" ]] || ! grep -q '^0 packets dropped by kernel$' "$log"; then
    echo "capture $pcap is incomplete: $(tail -n 3 "$log" | tr '\n' ' ')"
    return 1
  fi
}
