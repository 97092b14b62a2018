#!/usr/bin/env bash
# The README's demo: the classic XDP demonstrations on real traffic, through one xdp-pipeline.
#
#   scripts/demo.sh          (in a root shell; as a user with sudo rights: sudo scripts/demo.sh)
#
# Installs the Debian packages it needs (scripts/install-deps.sh), builds the project if needed, brings up the lab (scripts/lab.sh: client .1, load balancer .2 = VIP,
# backends .3 and .4 on one bridge, each in its own network namespace), runs
#   xdp-pipeline run FILE --interface <lb's interface> --mode native
# in the load balancer's namespace with a four-stage pipeline (parse, port_filter dropping TCP 8080,
# icmp_lb over the two backends, metadata), drives real traffic and says what proves each behaviour.
# Everything is removed at the end, also after a failure or Ctrl-C.
#
# Options:
#   --no-build          do not run cmake; use the executable already in the build directory
#   -h, --help          this text
# Environment:
#   BUILD_DIR           build directory (default: build)
#   XDP_PIPELINE        path of the xdp-pipeline executable to run (skips the build)
#   DEMO_MODE           attach mode passed to --mode (default: native)
# Exit status: 0 when every demonstrated fact was observed, 1 otherwise (or when the build fails).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${BUILD_DIR:-build}
MODE=${DEMO_MODE:-native}
BUILD=1

for arg in "$@"; do
  case $arg in
  --no-build) BUILD=0 ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "demo: unknown argument '$arg' (see --help)" >&2
    exit 2
    ;;
  esac
done

if [[ -t 1 ]]; then
  B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' D=$'\e[2m' N=$'\e[0m'
else
  B='' G='' R='' D='' N=''
fi
section() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
say() { printf '    %s\n' "$@"; }
cmdline() { printf '%s    $ %s%s\n' "$D" "$*" "$N"; }
indent() { sed 's/^/      /'; }
die() { printf '%sdemo: %s%s\n' "$R" "$*" "$N" >&2; exit 1; }
# Each fact shown is a check of scripts/lib/harness.sh (pass/fail), drawn as ✔/✘; the demo goes on after a
# ✘ and says at the end which facts were not observed.
HARNESS_NAME=demo HARNESS_STYLE=demo HARNESS_ON_FAIL=go
# shellcheck source=scripts/lib/harness.sh
source "$ROOT/scripts/lib/harness.sh"

[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, XDP): run $0 from a root shell (su -), or as sudo $0"
if ((BUILD)) && [[ -z ${XDP_PIPELINE:-} ]]; then
  section "Installing what is needed (Debian packages, skipped when present)"
  "$ROOT/scripts/install-deps.sh" || die "installing the dependencies failed (see above)"
fi
for t in cmake ip bridge clang ping tcpdump nc socat timeout ss; do
  command -v "$t" >/dev/null || die "'$t' not found; install the dependencies first (as root): scripts/install-deps.sh"
done

# --- build -----------------------------------------------------------------------------------------
if [[ -n ${XDP_PIPELINE:-} ]]; then
  XDPP=$XDP_PIPELINE
else
  XDPP=$BUILD_DIR/bin/xdp-pipeline
  if ((BUILD)); then
    section "Building xdp-pipeline ($BUILD_DIR)"
    if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
      cmdline "cmake -S . -B $BUILD_DIR -G Ninja"
      cmake -S . -B "$BUILD_DIR" -G Ninja || die "configuring the build failed (see above); fix it, then run the demo again"
    fi
    cmdline "cmake --build $BUILD_DIR"
    cmake --build "$BUILD_DIR" || die "the build failed (see above); fix it, then run the demo again"
  fi
fi
[[ -x $XDPP ]] || die "$XDPP does not exist (or is not executable): xdp-pipeline has not been built yet"
XDPP=$(readlink -f "$XDPP")

# --- cleanup, also on failure and Ctrl-C ----------------------------------------------------------
# shellcheck source=scripts/lab.sh
source "$ROOT/scripts/lab.sh"
LAB=demo-$$
TMP=$(mktemp -d /tmp/xdp-pipeline-demo.XXXXXX)
PIPELINE_NAME=$LAB PIPELINE_MODE=$MODE

exec 3>&1 4>&2 # the terminal, for cleanup: a trap can fire inside a command whose output is redirected
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  set +e
  exec 1>&3 2>&4
  pipeline_stop INT 5
  stop_bg
  section "Tearing the lab down"
  LAB_QUIET=1 lab_down "$LAB"
  pipeline_remove "$PIPELINE_NAME"
  if ip netns list | grep -q "^${LAB_ID:-no-lab-id}-"; then
    printf '    %s✘ namespaces of %s are still there%s\n' "$R" "${LAB_ID:-}" "$N"
    rc=1
  else
    say "namespaces, veths, bridge and XDP programs of lab ${LAB_ID:-$LAB} are gone"
  fi
  rm -rf -- "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the lab ---------------------------------------------------------------------------------------
section "Bringing up the lab"
say "Four hosts, each in its own network namespace, on one Linux bridge (a switch with MAC learning):"
lab_up "$LAB"
printf '      %-7s %-16s %-18s %-14s %s\n' host address mac interface namespace
for r in CLIENT LB BE1 BE2; do
  ip=LAB_IP_$r mac=LAB_MAC_$r ifc=LAB_IF_$r ns=LAB_NS_$r
  printf '      %-7s %-16s %-18s %-14s %s\n' "${r,,}" "${!ip}" "${!mac}" "${!ifc}" "${!ns}"
done
say "The VIP is the load balancer's own address, $LAB_VIP." \
  "An XDP_PASS program sits on the bridge side of the lb's veth ($LAB_PORT_LB): a veth delivers" \
  "XDP_TX frames only to a peer that has one."

# --- the pipeline ----------------------------------------------------------------------------------
section "The pipeline file"
CFG=$TMP/lab-pipeline.toml
{
  echo "# Written by scripts/demo.sh for lab $LAB_ID."
  pipeline_toml "parse no-8080 ping-lb flows"
} >"$CFG"
indent <"$CFG"

section "Starting the pipeline on the load balancer"
cmdline "$XDPP run $CFG --netns $LAB_NS_LB --interface $LAB_IF_LB --mode $MODE"
# Waits until it is attached and has published its state (its messages end up in $TMP/pipeline.log, the
# metadata stage's lines in $TMP/events.log).
pipeline_start "$TMP/events.log" "$TMP/pipeline.log" "$CFG"
indent <"$PIPELINE_LOG"
LOG_SHOWN=$(wc -l <"$PIPELINE_LOG")
say "ip link shows the program on the lb's interface:"
ip -n "$LAB_NS_LB" link show dev "$LAB_IF_LB" | grep -E 'prog/xdp|xdp' | indent
expect "xdp-pipeline attached to $LAB_IF_LB" bash -c "ip -n '$LAB_NS_LB' link show dev '$LAB_IF_LB' | grep -q prog/xdp"

# --- 1. ICMP round robin ---------------------------------------------------------------------------
section "1. ICMP load balancing: ping the VIP $LAB_VIP from the client"
say "icmp_lb rewrites each echo request for the VIP to the next backend (destination IP and MAC, IP" \
  "checksum, source MAC = the lb's) and sends it back out with XDP_TX. The backend sees an ordinary" \
  "request for its own address and answers the client directly, so the replies come from .3 and .4" \
  "in turn (ping flags them 'DIFFERENT ADDRESS!'). tcpdump on each backend counts what it receives."
for b in BE1 BE2; do
  ns=LAB_NS_$b ifc=LAB_IF_$b
  start_bg "$TMP/${b,,}.pcap.txt" ip netns exec "${!ns}" timeout 60 \
    tcpdump -i "${!ifc}" -p -nn -e -l 'icmp[icmptype] == icmp-echo'
  declare "TCPDUMP_$b=$BG_PID"
  wait_for 10 grep -q 'listening on' "$TMP/${b,,}.pcap.txt" || die "tcpdump on ${b,,} did not start within 10 s"
done
cmdline "ip netns exec $LAB_NS_CLIENT ping -n -c 6 -i 0.5 -W 1 $LAB_VIP"
lab_exec client timeout --foreground 20 ping -n -c 6 -i 0.5 -W 1 "$LAB_VIP" >"$TMP/ping.txt" 2>&1 || true
indent <"$TMP/ping.txt"
ping_replies "$TMP/ping.txt"
expect_alternating 6 "6 echo requests" || true

sleep 0.5
for b in BE1 BE2; do
  pid=TCPDUMP_$b
  stop_pid "${!pid}" TERM 3
done
for b in BE1 BE2; do
  ip=LAB_IP_$b mac=LAB_MAC_$b
  f=$TMP/${b,,}.pcap.txt
  say "tcpdump on ${b,,} (${!ip}), echo requests received:"
  grep 'ICMP echo request' "$f" | sed 's/^[0-9:.]* //' | indent || true
  n=$(grep -c 'ICMP echo request' "$f" || true)
  good=$(grep 'ICMP echo request' "$f" | grep -F "$LAB_MAC_LB > ${!mac}," | grep -cF "$LAB_IP_CLIENT > ${!ip}:" || true)
  if ((n == 3 && good == 3)); then
    pass "${b,,} received 3 of the 6 requests, each from the lb's MAC to its own MAC and address"
  else
    fail "${b,,}: expected 3 requests addressed to ${!mac}/${!ip} from $LAB_MAC_LB, saw $n ($good well-formed)"
  fi
done

# --- 2. port filter ----------------------------------------------------------------------------------
section "2. Port filter: TCP to port 8080 is dropped at the driver, 8081 is not"
say "Both ports have a listener on the load balancer (socat), so without XDP both would connect."
for port in 8080 8081; do
  start_bg "$TMP/socat-$port.log" ip netns exec "$LAB_NS_LB" timeout 60 \
    socat "TCP-LISTEN:$port,bind=$LAB_VIP,reuseaddr,fork" "SYSTEM:echo hello from the lb port $port"
done
for port in 8080 8081; do
  wait_listening "$port" || die "socat did not listen on $port within 10 s"
done
ip netns exec "$LAB_NS_LB" ss -Hltn '( sport = :8080 or sport = :8081 )' | indent

cmdline "ip netns exec $LAB_NS_CLIENT nc -n -w 3 $LAB_VIP 8080"
rc=0
out=$(lab_exec client timeout --foreground 6 nc -n -w 3 "$LAB_VIP" 8080 </dev/null 2>&1) || rc=$?
printf '%s\n' "${out:-(no answer)}" | indent
if ((rc != 0)) && [[ $out != *hello* ]]; then
  pass "8080: no connection (nc gave up after 3 s, status $rc): the SYN never reached the listener"
else
  fail "8080: expected no connection, got status $rc: $out"
fi

cmdline "ip netns exec $LAB_NS_CLIENT nc -n -w 3 $LAB_VIP 8081"
rc=0
out=$(lab_exec client timeout --foreground 6 nc -n -w 3 "$LAB_VIP" 8081 </dev/null 2>&1) || rc=$?
printf '%s\n' "${out:-(no answer)}" | indent
if [[ $out == *"hello from the lb port 8081"* ]]; then
  pass "8081: connected and got the listener's greeting"
else
  fail "8081: expected a connection, got status $rc: $out"
fi

# --- 3. metadata -----------------------------------------------------------------------------------
section "3. Flow metadata, and stopping the pipeline"
say "Stopping xdp-pipeline with SIGINT: it detaches and leaves the interface as it found it."
pipeline_stop INT 5
rc=$PIPELINE_RC
if ip -n "$LAB_NS_LB" link show dev "$LAB_IF_LB" | grep -q 'prog/xdp'; then
  fail "a program is still attached to $LAB_IF_LB after SIGINT (exit status $rc)"
else
  pass "xdp-pipeline exited (status $rc) and $LAB_IF_LB has no XDP program any more"
fi
say "The metadata stage is the last one: it reports what the earlier stages let through. The pings" \
  "ended in icmp_lb (XDP_TX) and the 8080 SYNs in port_filter (XDP_DROP), so the flows it saw are" \
  "the TCP connection to 8081 (and anything else that reached the lb). Its 'Packet:' lines:"
grep '^Packet:' "$EVENTS_LOG" | indent || say "(none)"
if grep -qE "^Packet: $LAB_IP_CLIENT:[0-9]+ -> $LAB_VIP:8081, protocol: TCP" "$EVENTS_LOG"; then
  pass "metadata reported the client's TCP flow to $LAB_VIP:8081"
else
  fail "no 'Packet: $LAB_IP_CLIENT:PORT -> $LAB_VIP:8081, protocol: TCP' line"
fi
if grep -qE "^Packet: .* -> $LAB_VIP:8080," "$EVENTS_LOG"; then
  fail "metadata saw TCP to 8080, which port_filter should have dropped before it"
else
  pass "no metadata line for 8080: those packets were dropped before the metadata stage"
fi
other=$( (grep -v '^Packet:' "$EVENTS_LOG"; tail -n +"$((LOG_SHOWN + 1))" "$PIPELINE_LOG") || true)
if [[ -n $other ]]; then
  say "xdp-pipeline's other output:"
  printf '%s\n' "$other" | indent
fi

# --- summary ---------------------------------------------------------------------------------------
section "Summary"
for p in "${HARNESS_PASSED[@]}"; do printf '    %s✔%s %s\n' "$G" "$N" "$p"; done
for f in "${HARNESS_FAILED[@]}"; do printf '    %s✘%s %s\n' "$R" "$N" "$f"; done
((${#HARNESS_FAILED[@]} == 0)) || exit 1
if [[ -z ${XDP_PIPELINE:-} ]]; then
  say "" "The executable is $XDPP; \`cmake --install $BUILD_DIR\` puts it on PATH (/usr/local/bin/xdp-pipeline)."
fi
