#!/usr/bin/env bash
# End-to-end test of xdp-pipeline on real traffic in the lab (scripts/lab.sh): a client (.1), the load
# balancer (.2 = the VIP) where `xdp-pipeline run` attaches, and two backends (.3, .4) on one bridge.
#
# Run 1, a pipeline file with parse, metadata, port_filter (drop TCP 8080) and icmp_lb (VIP -> .3, .4):
#   - 8 pings from the client to the VIP get 8 replies, strictly alternating between the backends'
#     addresses; a capture on each backend holds exactly 4 echo requests, each with a valid IPv4 header
#     checksum (computed here from the bytes, and tcpdump -vv reports no bad one), the backend's own MAC
#     and address as destination, the lb's MAC as source and the client's address as source;
#   - TCP to 8080 on the lb gets no answer (nc fails, the socat listener there saw no connection; without
#     XDP the same listener answers, checked before the pipeline starts), TCP to 8081 gets the greeting;
#   - the metadata stage prints exactly one "Packet: ..." line per frame the client sent to the lb (a
#     capture on the client gives that list): the 8 pings (ICMP client:0 -> VIP:0), the 8080 SYNs from
#     the fixed source port, the 8081 flow from its fixed source port, and nothing else;
#   - `xdp-pipeline status NAME --json` while it runs: the verdicts of all stages add up to the pipeline's
#     packets, ping-lb's tx is 8, no-8080 dropped every 8080 SYN, no event lost;
#   - SIGINT: exit status 0, no XDP program on the lb's interface, no pins, no state file.
# Run 2, another file (parse, port_filter dropping TCP 8081), on the same interface:
#   - exactly one program is attached, the new chain's first stage (not run 1's), in the requested mode;
#   - it behaves as the new file: pings to the VIP are answered by the lb itself, 8081 gets no answer
#     (the listener saw no connection), 8080 is answered, no metadata lines;
#   - SIGTERM: exit status 0, nothing attached, no pins, no state file.
# Always, also after a failure or an interrupt: every process started here is stopped, the lab is removed,
# and the test fails if a namespace, a pin under /sys/fs/bpf/xdp-pipeline/NAME or a
# /run/xdp-pipeline/NAME.* file is left.
#
# Usage (as root):  tests/e2e/lab_e2e.sh native|generic PATH/TO/xdp-pipeline
# Exit status: 0 passed, 1 failed, 2 bad usage, 77 skipped (not root, tools or namespaces unavailable).
set -uo pipefail

HERE=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
LAB_SH=$(readlink -f "$HERE/../../scripts/lab.sh")

usage() {
  echo "usage: $0 native|generic PATH/TO/xdp-pipeline" >&2
  exit 2
}
(($# == 2)) || usage
MODE=$1
case $MODE in native | generic) ;; *) usage ;; esac
XDPP=$(readlink -f "$2") || usage

# Every check is reported (PASS/FAIL) and the test goes on; the summary says how many failed.
HARNESS_NAME="lab_e2e ($MODE)" HARNESS_ON_FAIL=go PIPELINE_MODE=$MODE
# shellcheck source=scripts/lib/harness.sh
source "$HERE/../../scripts/lib/harness.sh"
[[ -x $XDPP ]] || fatal "$2 is not an executable (build the xdp-pipeline target)"
require_tools ip bridge clang ping nc socat tcpdump timeout ss awk od sort diff jq
require_lab_host

# shellcheck source=scripts/lab.sh
source "$LAB_SH"
export LAB_QUIET=1
reap_stale "e2e-$MODE"

LAB=e2e-$MODE-$$
NAME1=$LAB-a # pipeline names (pins, state file, control socket): global on the host, so ours per run
NAME2=$LAB-b
TMP=$(mktemp -d /tmp/lab-e2e.XXXXXX)
SPORT_8080=48080 SPORT_8081=48081 # the client's source ports, so that flows can be named exactly

# --- cleanup, always -------------------------------------------------------------------------------
cleanup() {
  local rc=$? id=${LAB_ID:-} left name
  trap - EXIT INT TERM
  pipeline_stop INT 10
  stop_bg
  timeout 60 "$BASH" "$LAB_SH" down "$LAB" >/dev/null 2>&1
  left=''
  if [[ -n $id ]] && compgen -G "$LAB_NETNS_DIR/$id-*" >/dev/null; then
    left+=" namespaces: $(compgen -G "$LAB_NETNS_DIR/$id-*" | tr '\n' ' ')"
  fi
  [[ ! -e $LAB_STATE_DIR/$LAB ]] || left+=" lab state file $LAB_STATE_DIR/$LAB"
  for name in "$NAME1" "$NAME2"; do
    if pipeline_leftovers "$name" >"$TMP/published"; then
      left+=" $(tr '\n' ' ' <"$TMP/published")"
      pipeline_remove "$name" # do not leave them to the next run
    fi
  done
  if [[ -n $left ]]; then
    fail "left behind after the test:$left"
  else
    pass "cleanup: lab $LAB${id:+ ($id)} removed, no namespace, no pins under $PIN_ROOT/{$NAME1,$NAME2}, no $RUN_ROOT/{$NAME1,$NAME2}.*"
  fi
  rm -rf -- "$TMP"
  harness_exit "$rc"
}
harness_trap cleanup

# --- helpers on the lab --------------------------------------------------------------------------------
xdp_lines() { ip -n "$LAB_NS_LB" link show dev "$LAB_IF_LB" | grep 'prog/xdp'; } # one line per program
xdp_count() { xdp_lines | grep -c . || true; }
xdp_ids() { xdp_lines | sed -n 's/.* id \([0-9]*\) .*/\1/p' | tr '\n' ' ' | sed 's/ $//'; }
# The flag ip link shows for the mode: "xdp" (native, driver) or "xdpgeneric".
mode_flag() { [[ $MODE == native ]] && echo xdp || echo xdpgeneric; }
has_mode_flag() { ip -n "$LAB_NS_LB" link show dev "$LAB_IF_LB" | head -n 1 | grep -q " $(mode_flag) "; }

# status_load NAME: `xdp-pipeline status NAME --json` into ST (also in $TMP/status-NAME.json; the error in
# $TMP/status-NAME.err).
ST=
status_load() {
  ST=$(pipeline_status_json "$1" 2>"$TMP/status-$1.err") || return 1
  echo "$ST" >"$TMP/status-$1.json"
}
# counters_add_up NAME: the packets entering the chain equal the sum of every verdict (from the last status_load).
counters_add_up() {
  local name=$1 sums n sum
  sums=$(verdicts_add_up "$ST")
  read -r n sum <<<"$sums"
  if verdicts_add_up "$ST" >/dev/null && ((n > 0)); then
    pass "status $name: pipeline packets ($n) = the sum of all verdicts of its $(jq '.stages | length' <<<"$ST") stages ($sum)"
  else
    fail "status $name: pipeline packets ($n) != the sum of all verdicts ($sum)"
    show "$TMP/status-$name.json"
  fi
}

# start_pipeline FILE TAG: `run FILE` in the lb's namespace until it has published its state (then it is
# attached); events in $TMP/TAG.out, logs in $TMP/TAG.err.
start_pipeline() {
  local file=$1 tag=$2
  pipeline_start "$TMP/$tag.out" "$TMP/$tag.err" "$file"
  [[ -n $(xdp_lines) ]] || fatal "xdp-pipeline run $file published its state but ip link shows no program"
  pass "xdp-pipeline run $(basename "$file") --netns $LAB_NS_LB --interface $LAB_IF_LB --mode $MODE: attached (pid $PIPELINE_PID)"
}
# stop_pipeline SIGNAL NAME TAG: the signal must make run detach and exit 0 and leave nothing behind.
stop_pipeline() {
  local sig=$1 name=$2 tag=$3 word
  [[ $sig == INT ]] && word=Interrupt || word=Terminated
  pipeline_stop "$sig" 10
  if ((PIPELINE_RC == 0 && STOP_KILLED == 0)); then
    pass "SIG$sig: xdp-pipeline ($name) exited with status 0"
  else
    fail "SIG$sig: xdp-pipeline ($name) exited with status $PIPELINE_RC$( ((STOP_KILLED)) && echo ' (had to be SIGKILLed)')"
    show "$TMP/$tag.err"
  fi
  expect "SIG$sig: run said it detached ('detached from $LAB_IF_LB ($word)')" \
    grep -qF "detached from $LAB_IF_LB ($word)" "$TMP/$tag.err"
  if wait_for 3 bash -c "! ip -n '$LAB_NS_LB' link show dev '$LAB_IF_LB' | grep -q prog/xdp"; then
    pass "SIG$sig: $LAB_IF_LB has no XDP program any more"
  else
    fail "SIG$sig: a program is still attached to $LAB_IF_LB: $(xdp_lines)"
  fi
  if pipeline_leftovers "$name" >"$TMP/published"; then
    fail "SIG$sig: $name left pins or state files behind: $(tr '\n' ' ' <"$TMP/published")"
  else
    pass "SIG$sig: no pins under $PIN_ROOT/$name, no $RUN_ROOT/$name.*"
  fi
}
# One program attached, the first stage of pipeline NAME (what its link runs: .pipeline.prog_id in status),
# in the requested mode.
expect_one_program() { # NAME
  local name=$1 n ids want
  n=$(xdp_count)
  ids=$(xdp_ids)
  want=$(jq -r '.pipeline.prog_id // "none"' <<<"$ST")
  if [[ $n == 1 && $ids == "$want" ]]; then
    pass "exactly one XDP program on $LAB_IF_LB: id $ids, the first stage of '$name'"
  else
    fail "expected exactly one XDP program on $LAB_IF_LB, the first stage of '$name' (id $want); ip link shows $n: $ids"
    ip -n "$LAB_NS_LB" link show dev "$LAB_IF_LB" | show
  fi
  expect "$LAB_IF_LB shows the '$(mode_flag)' flag ($MODE mode)" has_mode_flag
}

# --- clients ------------------------------------------------------------------------------------------
# ping_vip COUNT FILE: COUNT pings from the client to the VIP, output in FILE; REPLY_FROM = the replies'
# sources in order of icmp_seq, REPLY_SEQS = their sequence numbers.
ping_vip() {
  lab_exec client timeout 30 ping -n -c "$1" -i 0.2 -W 2 "$LAB_VIP" >"$2" 2>&1
  ping_replies "$2"
}
# listener_count PORT: connections the socat listener on PORT has accepted so far.
listener_count() { grep -c 'accepting connection from' "$TMP/socat-$1.log" || true; }
# connect PORT SPORT: nc from the client (source port SPORT) to VIP:PORT; NC_RC, NC_OUT.
connect() {
  local port=$1 sport=$2
  NC_RC=0
  NC_OUT=$(lab_exec client timeout 10 nc -n -w 3 -p "$sport" "$LAB_VIP" "$port" </dev/null 2>&1) || NC_RC=$?
}
expect_refused_silently() { # PORT SPORT WHY: no answer, no connection at the listener
  local port=$1 sport=$2 why=$3 before after
  before=$(listener_count "$port")
  connect "$port" "$sport"
  sleep 0.2
  after=$(listener_count "$port")
  if ((NC_RC != 0)) && [[ $NC_OUT != *hello* ]] && ((after == before)); then
    pass "TCP to $LAB_VIP:$port ($why): no answer (nc -w 3 failed, status $NC_RC) and the listener saw no connection"
  else
    fail "TCP to $LAB_VIP:$port ($why): expected no answer; nc status $NC_RC, output '${NC_OUT}', listener connections $before -> $after"
  fi
}
expect_answered() { # PORT SPORT WHY
  local port=$1 sport=$2 why=$3 want
  want="hello from the lb port $port to $LAB_IP_CLIENT port $sport"
  connect "$port" "$sport"
  if [[ $NC_OUT == *"$want"* ]]; then
    pass "TCP to $LAB_VIP:$port ($why): answered with the listener's greeting ('$want')"
  else
    fail "TCP to $LAB_VIP:$port ($why): expected '$want'; nc status $NC_RC, output '${NC_OUT}'"
  fi
}
# capture ROLE TAG [INTERFACE]: tcpdump on ROLE's interface (or INTERFACE) into $TMP/TAG.pcap; CAP_PID.
capture() { capture_start "$1" "$TMP/$2.pcap" "${3:-}"; }
# stop_capture PID TAG: also fails if tcpdump lost a packet it had received.
stop_capture() {
  local why
  why=$(capture_stop "$1" "$TMP/$2.pcap") || fail "$why"
}

hex_mac() { echo "${1//:/}" | tr 'A-F' 'a-f'; }
hex_ip() { # 10.200.7.1 -> 0ac80701
  local IFS=. octets
  read -r -a octets <<<"$1"
  printf '%02x%02x%02x%02x' "${octets[@]}"
}
# check_backend_capture ROLE TAG: exactly 4 echo requests, each client -> ROLE's address, from the lb's
# MAC to ROLE's MAC, with a valid IPv4 header checksum (the sum of the header's 16-bit words is 0xffff).
check_backend_capture() {
  local role=$1 tag=$2 ipv macv pcap=$TMP/$2.pcap line hex='' n=0 good=0 bad_lines=() txt
  ipv=LAB_IP_${role^^} macv=LAB_MAC_${role^^}
  local want_dst want_src want_sip want_dip
  want_dst=$(hex_mac "${!macv}") want_src=$(hex_mac "$LAB_MAC_LB")
  want_sip=$(hex_ip "$LAB_IP_CLIENT") want_dip=$(hex_ip "${!ipv}")
  txt=$TMP/$tag.requests.txt
  timeout 20 tcpdump -r "$pcap" -nn -e -vv -xx 'icmp[icmptype] == icmp-echo' >"$txt" 2>/dev/null
  check_one() { # the hex of one frame, from the Ethernet header on
    local h=$1 ihl sum=0 i why=''
    n=$((n + 1))
    [[ ${h:0:12} == "$want_dst" ]] || why+=" dst MAC ${h:0:12} (want $want_dst)"
    [[ ${h:12:12} == "$want_src" ]] || why+=" src MAC ${h:12:12} (want $want_src)"
    [[ ${h:24:4} == 0800 ]] || why+=" ethertype ${h:24:4}"
    ihl=$((16#${h:29:1}))
    [[ ${h:28:1} == 4 ]] && ((ihl >= 5)) || why+=" not IPv4 with IHL>=5"
    for ((i = 0; i < ihl * 2; i++)); do sum=$((sum + 16#${h:28+i*4:4})); done
    while ((sum > 0xffff)); do sum=$(((sum & 0xffff) + (sum >> 16))); done
    ((sum == 0xffff)) || why+=" IPv4 header checksum ${h:48:4} invalid (header sums to $(printf '%04x' "$sum"))"
    [[ ${h:52:8} == "$want_sip" ]] || why+=" src IP ${h:52:8} (want $want_sip)"
    [[ ${h:60:8} == "$want_dip" ]] || why+=" dst IP ${h:60:8} (want $want_dip)"
    [[ ${h:28+ihl*8:2} == 08 ]] || why+=" ICMP type ${h:28+ihl*8:2}"
    if [[ -z $why ]]; then good=$((good + 1)); else bad_lines+=("request $n:$why"); fi
  }
  while IFS= read -r line; do
    if [[ $line =~ ^[[:space:]]+0x[0-9a-f]+:[[:space:]]+(.*)$ ]]; then
      hex+=$(echo "${BASH_REMATCH[1]}" | cut -c1-40 | tr -d ' ')
    elif [[ $line =~ ^[0-9] ]]; then
      [[ -z $hex ]] || check_one "$hex"
      hex=''
    fi
  done <"$txt"
  [[ -z $hex ]] || check_one "$hex"
  if ((n == 4 && good == 4)); then
    pass "$role's capture: exactly 4 echo requests, each $LAB_IP_CLIENT -> ${!ipv}, $LAB_MAC_LB -> ${!macv} (its own MAC), valid IPv4 header checksum"
  else
    fail "$role's capture: expected 4 well-formed echo requests to ${!macv}/${!ipv} from $LAB_MAC_LB; saw $n, $good well-formed"
    printf '%s\n' "${bad_lines[@]}" | show
    show "$txt"
  fi
  if grep -q 'bad cksum' "$txt"; then
    fail "$role's capture: tcpdump -vv reports a bad IPv4 checksum"
    grep 'bad cksum' "$txt" | show
  else
    pass "$role's capture: tcpdump -vv reports no bad checksum"
  fi
}
# The frames the client sent to the lb's MAC, in the metadata stage's own format (one line each).
client_flows() { # PCAP
  timeout 20 tcpdump -r "$1" -nn -q -t "ether src $LAB_MAC_CLIENT and ether dst $LAB_MAC_LB" 2>/dev/null | awk '
    function split_port(a,   i) { i = match(a, /\.[0-9]+$/); if (i && split(a, parts, ".") == 5) { ADDR = parts[1] "." parts[2] "." parts[3] "." parts[4]; PORT = parts[5] } else { ADDR = a; PORT = 0 } }
    $1 == "IP" {
      dst = $4; sub(/:$/, "", dst)
      if ($5 == "tcp") proto = "TCP"; else if ($5 == "UDP," || $5 == "udp") proto = "UDP"; else if ($5 == "ICMP") proto = "ICMP"; else proto = $5
      split_port($2); sa = ADDR; sp = PORT
      if (proto == "ICMP") { sa = $2; sp = 0 }
      split_port(dst); da = ADDR; dp = PORT
      if (proto == "ICMP") { da = dst; dp = 0 }
      printf "Packet: %s:%s -> %s:%s, protocol: %s\n", sa, sp, da, dp, proto
      next
    }
    { print "non-IPv4 frame: " $0 }'
}

# --- the lab and the pipeline files ---------------------------------------------------------------
if ! lab_up "$LAB" >"$TMP/lab_up.log" 2>&1; then
  fail "lab_up $LAB"
  show "$TMP/lab_up.log"
  exit 1
fi
pass "lab $LAB is up (run id $LAB_ID, subnet $LAB_SUBNET; client $LAB_IP_CLIENT, VIP $LAB_VIP, backends $LAB_IP_BE1 $LAB_IP_BE2)"

# Run 1. The metadata stage comes right after parse, before the stages that decide, so that it sees every
# packet that reaches the lb's interface: the pings that icmp_lb bounces with XDP_TX and the 8080 SYNs
# that port_filter drops too. Its lines can then be compared with everything the client sent.
FILE1=$TMP/$NAME1.toml
{
  echo "# lab_e2e: lab $LAB ($LAB_ID), $MODE mode. metadata before the deciding stages: it sees every packet."
  PIPELINE_NAME=$NAME1 pipeline_toml "parse flows no-8080 ping-lb" 'default_verdict = "pass"'
} >"$FILE1"
# Run 2: another file, another pipeline; if anything of run 1 stayed attached, pings would still go to the
# backends and 8080 would still be dropped.
FILE2=$TMP/$NAME2.toml
{
  echo "# lab_e2e: lab $LAB ($LAB_ID), $MODE mode, the second run."
  PIPELINE_NAME=$NAME2 pipeline_toml "parse no-8081"
} >"$FILE2"
for f in "$FILE1" "$FILE2"; do
  if timeout 30 "$XDPP" check "$f" >"$TMP/check.log" 2>&1; then
    pass "xdp-pipeline check $(basename "$f")"
  else
    fail "xdp-pipeline check $(basename "$f")"
    show "$TMP/check.log"
    exit 1
  fi
done

# Listeners on both ports of the lb for the whole test; each greeting names the peer and its source port
# (no ',' or ':' in it: socat would take them for option and parameter separators).
for port in 8080 8081; do
  start_bg "$TMP/socat-$port.log" ip netns exec "$LAB_NS_LB" timeout 300 socat -d -d \
    "TCP-LISTEN:$port,bind=$LAB_VIP,reuseaddr,fork" \
    "SYSTEM:echo hello from the lb port $port to \$SOCAT_PEERADDR port \$SOCAT_PEERPORT"
done
{ wait_listening 8080 && wait_listening 8081; } || fatal "socat did not listen on 8080/8081: $(cat "$TMP"/socat-*.log)"

# --- without XDP: the baseline ----------------------------------------------------------------------
expect "no XDP program on $LAB_IF_LB before run" [ "$(xdp_count)" = 0 ]
ping_vip 2 "$TMP/ping0.txt"
if ((${#REPLY_FROM[@]} == 2)) && [[ ${REPLY_FROM[0]} == "$LAB_VIP" && ${REPLY_FROM[1]} == "$LAB_VIP" ]]; then
  pass "without XDP: 2 pings to the VIP answered by the lb itself"
else
  fail "without XDP: expected 2 replies from $LAB_VIP, got: ${REPLY_FROM[*]:-none}"
  show "$TMP/ping0.txt"
fi
expect_answered 8080 47080 "without XDP, so the listener works"

# --- run 1 ------------------------------------------------------------------------------------------
capture client client1
CAP_CLIENT=$CAP_PID
capture sw lbport "$LAB_PORT_LB" # a witness: what the bridge hands to the lb, shown when flows differ
CAP_LBPORT=$CAP_PID
capture be1 be1
CAP_BE1=$CAP_PID
capture be2 be2
CAP_BE2=$CAP_PID
PIPELINE_NAME=$NAME1
start_pipeline "$FILE1" run1
status_load "$NAME1" || fatal "xdp-pipeline status $NAME1 --json failed: $(cat "$TMP/status-$NAME1.err")"
RUN1_PROG=$(jq -r .pipeline.prog_id <<<"$ST")
expect_one_program "$NAME1"

ping_vip 8 "$TMP/ping1.txt"
expect_alternating 8 "8 pings to the VIP" || show "$TMP/ping1.txt"
expect "8 pings to the VIP: replies to icmp_seq 1..8, once each (got ${REPLY_SEQS[*]:-none})" [ "${REPLY_SEQS[*]:-}" = "1 2 3 4 5 6 7 8" ]

expect_refused_silently 8080 "$SPORT_8080" "dropped by port_filter"
expect_answered 8081 "$SPORT_8081" "not filtered"
sleep 0.5 # the last ACKs of the 8081 flow

# Counters while it runs.
if status_load "$NAME1"; then
  counters_add_up "$NAME1"
  tx=$(counter "$ST" ping-lb tx)
  if [[ $tx == 8 ]]; then pass "status $NAME1: ping-lb tx = 8"; else fail "status $NAME1: ping-lb tx = $tx, expected 8"; fi
  lost=$(jq "$HARNESS_JQ_DEFS"' [named_counters[].counters.events_lost] | add' <<<"$ST")
  expect "status $NAME1: no event lost (any stage)" [ "$lost" = 0 ]
  DISPATCHED=$(counter "$ST" pipeline packets)
  flows_seen=$(counter "$ST" flows packets)
  expect "status $NAME1: flows (metadata) saw every packet of the pipeline ($DISPATCHED)" \
    [ "$flows_seen" = "$DISPATCHED" ]
else
  fail "xdp-pipeline status $NAME1 --json failed while running: $(cat "$TMP/status-$NAME1.err")"
fi

stop_capture "$CAP_CLIENT" client1
stop_capture "$CAP_LBPORT" lbport
stop_capture "$CAP_BE1" be1
stop_capture "$CAP_BE2" be2
check_backend_capture be1 be1
check_backend_capture be2 be2

client_flows "$TMP/client1.pcap" >"$TMP/sent.txt"
syns_8080=$(grep -cxF "Packet: $LAB_IP_CLIENT:$SPORT_8080 -> $LAB_VIP:8080, protocol: TCP" "$TMP/sent.txt" || true)
drop=$(counter "$ST" no-8080 drop)
expect "status $NAME1: no-8080 dropped $drop packets = the $syns_8080 SYNs the client sent to 8080" \
  [ "$drop" = "$syns_8080" -a "$syns_8080" -ge 1 ]
sent_total=$(grep -c . "$TMP/sent.txt" || true)
expect "status $NAME1: the pipeline's packets (${DISPATCHED:-?}) = the frames the client sent to the lb ($sent_total)" \
  [ "${DISPATCHED:-x}" = "$sent_total" ]

stop_pipeline INT "$NAME1" run1

# The metadata lines (after the stop: run has drained its ring buffer by then).
grep '^Packet:' "$TMP/run1.out" >"$TMP/meta.txt" || true
if grep -v '^Packet:' "$TMP/run1.out" >"$TMP/other.txt"; then
  fail "run 1's stdout has lines that are not events"
  show "$TMP/other.txt"
fi
icmp_line="Packet: $LAB_IP_CLIENT:0 -> $LAB_VIP:0, protocol: ICMP"
tcp80_line="Packet: $LAB_IP_CLIENT:$SPORT_8080 -> $LAB_VIP:8080, protocol: TCP"
tcp81_line="Packet: $LAB_IP_CLIENT:$SPORT_8081 -> $LAB_VIP:8081, protocol: TCP"
n_icmp=$(grep -cxF "$icmp_line" "$TMP/meta.txt" || true)
n_80=$(grep -cxF "$tcp80_line" "$TMP/meta.txt" || true)
n_81=$(grep -cxF "$tcp81_line" "$TMP/meta.txt" || true)
n_all=$(grep -c . "$TMP/meta.txt" || true)
expect "metadata: 8 lines '$icmp_line' (the pings; got $n_icmp)" [ "$n_icmp" = 8 ]
expect "metadata: $n_80 lines '$tcp80_line' = the SYNs the client sent to 8080 ($syns_8080)" \
  [ "$n_80" = "$syns_8080" -a "$n_80" -ge 1 ]
expect "metadata: $n_81 lines '$tcp81_line' (the 8081 flow: at least SYN, ACK, FIN)" [ "$n_81" -ge 3 ]
if ((n_all == n_icmp + n_80 + n_81)); then
  pass "metadata: no other line ($n_all lines in all)"
else
  fail "metadata: $((n_all - n_icmp - n_80 - n_81)) lines for flows that were not sent:"
  grep -vxF -e "$icmp_line" -e "$tcp80_line" -e "$tcp81_line" "$TMP/meta.txt" | show
fi
if diff <(sort "$TMP/sent.txt") <(sort "$TMP/meta.txt") >"$TMP/meta.diff"; then
  pass "metadata: exactly one line per frame the client sent to the lb ($sent_total frames, from the client's capture)"
else
  fail "metadata lines differ from the frames the client sent to the lb (< sent, > metadata):"
  show "$TMP/meta.diff"
  for c in client1 lbport; do
    echo "      what the capture '$c' holds from the client to the lb ($(tail -n 3 "$TMP/$c.pcap.log" | tr '\n' ' ')):"
    timeout 20 tcpdump -r "$TMP/$c.pcap" -nn -tt -S "ether src $LAB_MAC_CLIENT and ether dst $LAB_MAC_LB" 2>&1 | show
  done
fi

# --- run 2: another file on the same interface ---------------------------------------------------
capture be1 be1-2
CAP_BE1=$CAP_PID
capture be2 be2-2
CAP_BE2=$CAP_PID
PIPELINE_NAME=$NAME2
start_pipeline "$FILE2" run2
if status_load "$NAME2"; then
  RUN2_PROG=$(jq -r .pipeline.prog_id <<<"$ST")
  expect_one_program "$NAME2"
  expect "run 2's first stage (id $RUN2_PROG) is not run 1's (id $RUN1_PROG)" [ "$RUN2_PROG" != "$RUN1_PROG" ]
  stages2=$(jq -r '[.stages[].name] | join(" ")' <<<"$ST")
  expect "status $NAME2: the stages of the new file (parse no-8081), got: $stages2" [ "$stages2" = "parse no-8081" ]
else
  fail "xdp-pipeline status $NAME2 --json failed: $(cat "$TMP/status-$NAME2.err")"
fi

ping_vip 4 "$TMP/ping2.txt"
self=1
for ((i = 0; i < ${#REPLY_FROM[@]}; i++)); do [[ ${REPLY_FROM[i]} == "$LAB_VIP" ]] || self=0; done
if ((${#REPLY_FROM[@]} == 4 && self)); then
  pass "run 2: 4 pings to the VIP answered by the lb itself ($LAB_VIP): no icmp_lb left"
else
  fail "run 2: expected 4 replies from $LAB_VIP; got ${#REPLY_FROM[@]}: ${REPLY_FROM[*]:-none}"
  show "$TMP/ping2.txt"
fi
expect_refused_silently 8081 $((SPORT_8081 + 100)) "run 2 drops 8081"
expect_answered 8080 $((SPORT_8080 + 100)) "run 2 does not drop 8080"
sleep 0.3
stop_capture "$CAP_BE1" be1-2
stop_capture "$CAP_BE2" be2-2
for b in be1 be2; do
  n=$(timeout 20 tcpdump -r "$TMP/$b-2.pcap" -nn 'icmp[icmptype] == icmp-echo' 2>/dev/null | grep -c . || true)
  expect "run 2: $b received no echo request (got $n)" [ "$n" = 0 ]
done
if status_load "$NAME2"; then
  counters_add_up "$NAME2"
  d81=$(counter "$ST" no-8081 drop)
  expect "status $NAME2: no-8081 dropped the 8081 SYNs (drop = $d81)" [ "$d81" -ge 1 ]
else
  fail "xdp-pipeline status $NAME2 --json failed while running: $(cat "$TMP/status-$NAME2.err")"
fi
n_meta2=$(grep -c . "$TMP/run2.out" || true)
expect "run 2 (no metadata stage) printed no event line (got $n_meta2)" [ "$n_meta2" = 0 ]

stop_pipeline TERM "$NAME2" run2
expect "no XDP program on $LAB_IF_LB at the end" [ "$(xdp_count)" = 0 ]
