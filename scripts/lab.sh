#!/usr/bin/env bash
# xdp-pipeline network lab: a client, a load balancer and two backends on one Linux bridge, each in its
# own network namespace, reproducing the classic XDP demonstrations on real traffic.
#
#   client (.1) ─┐
#   lb     (.2) ─┤  bridge with MAC learning, in its own namespace "sw" (a real switch)
#   be1    (.3) ─┤
#   be2    (.4) ─┘  all in one /24 of 10.200.0.0/16, chosen per run; the VIP is the lb's own address
#
# As a command (root):
#   scripts/lab.sh up NAME          create a lab, record it in /run/xdp-pipeline-lab/NAME, print it
#   scripts/lab.sh down NAME        remove it (idempotent; works from any process)
#   scripts/lab.sh env NAME         print its variables (KEY=value lines, safe to `eval`/parse)
#   scripts/lab.sh exec NAME ROLE CMD...   run CMD in ROLE's namespace (client, lb, be1, be2, sw)
#   scripts/lab.sh list             the labs recorded in /run/xdp-pipeline-lab
#
# As a library (`source scripts/lab.sh`):
#   lab_up NAME        create the lab and load its variables (below) into the calling shell, exported
#   lab_load NAME      load the variables of an existing lab
#   lab_down [NAME]    remove the lab (default: the loaded one); idempotent; never fails on "already gone"
#   lab_exec ROLE CMD...   run CMD in ROLE's namespace of the loaded lab (`ip netns exec`, which
#                      remounts /sys: /sys/fs/bpf is not mounted inside)
#   lab_ns ROLE        print ROLE's namespace name
#   lab_check          every host pings every other host's address once (12 pings); non-zero on failure
# lab_up creates the lab in a child process that removes everything it created if setup fails or is
# interrupted (Ctrl-C, SIGTERM). After lab_up returns, removing the lab is the caller's job: install
# your own trap, e.g.  trap 'lab_down NAME' EXIT
#
# Variables (all exported by lab_up/lab_load; ROLE is CLIENT, LB, BE1, BE2):
#   LAB_NAME LAB_ID LAB_STATE_FILE   the name, the unique run id (xp + 6 hex digits), the state file
#   LAB_NETNS_DIR                    /run/netns (where `ip netns` keeps the namespace files)
#   LAB_NS_<ROLE>, LAB_NS_SW         namespace names;  LAB_NETNS_<ROLE>, LAB_NETNS_SW  their paths
#   LAB_IF_<ROLE>                    the host's interface, inside its namespace (LAB_IF_LB: the lb's)
#   LAB_PORT_<ROLE>                  the bridge-side peer of that interface, inside LAB_NS_SW
#   LAB_BRIDGE                       the bridge, inside LAB_NS_SW
#   LAB_MAC_<ROLE>                   the MAC of LAB_IF_<ROLE>
#   LAB_IP_<ROLE>, LAB_VIP           addresses (LAB_VIP = LAB_IP_LB); LAB_NET (e.g. 10.200.7),
#   LAB_PREFIX (24), LAB_SUBNET (e.g. 10.200.7.0/24)
#   LAB_XDP_PASS_PORT                the bridge port that carries the XDP_PASS program (see below)
#   LAB_MTU                          the MTU of every link (XDPP_LAB_MTU)
#
# XDP_TX: a veth delivers frames sent with XDP_TX (or redirected into it) only if its peer runs NAPI,
# otherwise the kernel drops them silently. The lab attaches a trivial XDP_PASS program (compiled with
# clang at `up` time) to the lb's bridge-side port, LAB_PORT_LB, so that frames the lb's XDP program
# bounces with XDP_TX reach the bridge and the backends.
#
# Determinism: IPv6 is off in every namespace (no ND/MLD noise), every host has permanent neighbour
# entries for the other hosts (no ARP; the client's entry for the VIP is the lb's MAC), and the bridge has
# static FDB entries for the four hosts (no flooding), while MAC learning stays on for anything else.
#
# Environment: XDPP_LAB_NET=A.B.C picks the /24 (default 10.200.X, X from the run id); XDPP_LAB_MTU=N sets
# the MTU of every link and of the bridge (default 1500; 9000 for jumbo frames, LAB_MTU records it);
# LAB_STATE_DIR (default /run/xdp-pipeline-lab); LAB_QUIET=1 silences progress messages.
# Test hooks (used by tests/e2e/lab_smoke.sh): LAB_FAIL_AT=STEP makes `up` fail after STEP,
# LAB_PAUSE_AT=STEP makes it sleep 30 s after STEP; STEP is one of namespaces, links, bridge, xdp, neigh.

_LAB_SELF=$(readlink -f "${BASH_SOURCE[0]}")
LAB_STATE_DIR=${LAB_STATE_DIR:-/run/xdp-pipeline-lab}
LAB_NETNS_DIR=/run/netns
_LAB_ROLES=(client lb be1 be2)
_LAB_ALL_ROLES=(client lb be1 be2 sw)

_lab_msg() { [[ -n ${LAB_QUIET:-} ]] || echo "lab: $*" >&2; }
_lab_err() { echo "lab: error: $*" >&2; }
_lab_valid_name() { [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ ]]; }
_lab_valid_id() { [[ $1 =~ ^xp[0-9a-f]{6}$ ]]; }

# ROLE -> variable suffix: client -> CLIENT
_lab_key() { local r=$1; echo "${r^^}"; }

lab_load() {
  local name=${1:?lab_load NAME} file k v
  _lab_valid_name "$name" || { _lab_err "bad lab name '$name'"; return 2; }
  file=$LAB_STATE_DIR/$name
  [[ -f $file ]] || { _lab_err "no lab named '$name' ($file missing)"; return 1; }
  while IFS='=' read -r k v; do
    [[ $k =~ ^LAB_[A-Z0-9_]+$ && $v =~ ^[A-Za-z0-9_.:/-]*$ ]] || continue
    [[ $k != LAB_TMPDIR ]] || continue # internal: only for cleanup after an interrupted `up`
    declare -gx "$k=$v"
  done <"$file"
  declare -gx LAB_NAME="$name" LAB_STATE_FILE="$file" LAB_NETNS_DIR="$LAB_NETNS_DIR"
}

lab_ns() {
  local role=${1:?lab_ns ROLE} var
  case $role in client | lb | be1 | be2 | sw) ;; *) _lab_err "unknown role '$role' (client, lb, be1, be2, sw)"; return 2 ;; esac
  var=LAB_NS_$(_lab_key "$role")
  [[ -n ${!var:-} ]] || { _lab_err "no lab loaded (lab_up or lab_load first)"; return 1; }
  echo "${!var}"
}

lab_exec() {
  local ns
  ns=$(lab_ns "${1:?lab_exec ROLE CMD...}") || return
  shift
  ip netns exec "$ns" "$@"
}

lab_up() {
  local name=${1:?lab_up NAME}
  # A separate process: its errexit and its cleanup trap work whatever the caller's shell options are.
  "$BASH" "$_LAB_SELF" up "$name" >/dev/null || return
  lab_load "$name"
}

lab_down() {
  local name=${1:-${LAB_NAME:-}}
  [[ -n $name ]] || { _lab_err "lab_down: no lab name"; return 2; }
  "$BASH" "$_LAB_SELF" down "$name"
}

lab_check() {
  local from to ip fails=0 out
  for from in "${_LAB_ROLES[@]}"; do
    for to in "${_LAB_ROLES[@]}"; do
      [[ $from != "$to" ]] || continue
      ip=LAB_IP_$(_lab_key "$to")
      if out=$(lab_exec "$from" timeout 5 ping -n -c 1 -W 2 "${!ip}" 2>&1) &&
        grep -q "bytes from ${!ip}:" <<<"$out"; then
        _lab_msg "ping $from -> $to (${!ip}): ok"
      else
        _lab_err "ping $from -> $to (${!ip}) failed"
        fails=$((fails + 1))
      fi
    done
  done
  ((fails == 0))
}

# ---------------------------------------------------------------------------------------------------
# Command implementations (run in their own process, with set -euo pipefail).

_lab_state_set() { # KEY VALUE: append to the state file (later lines win)
  [[ $2 =~ ^[A-Za-z0-9_.:/-]*$ ]] || { _lab_err "internal: bad value for $1: $2"; return 1; }
  printf '%s=%s\n' "$1" "$2" >>"$_LAB_STATE"
}

_lab_step() { # STEP: test hooks
  if [[ ${LAB_PAUSE_AT:-} == "$1" ]]; then
    _lab_msg "test hook: pausing 30 s after '$1'"
    sleep 30
  fi
  if [[ ${LAB_FAIL_AT:-} == "$1" ]]; then
    _lab_err "test hook: failing after '$1'"
    return 1
  fi
}

# Removes every namespace of run id ID (and with them their veths, the bridge and attached programs).
_lab_remove_id() {
  local id=$1 role ns pids i left
  _lab_valid_id "$id" || { _lab_err "refusing to remove bad run id '$id'"; return 1; }
  for role in "${_LAB_ALL_ROLES[@]}"; do
    ns=$id-$role
    [[ -e $LAB_NETNS_DIR/$ns ]] || continue
    # Processes still inside keep the namespace (and its interfaces, with their XDP programs) alive after
    # `ip netns del`: stop them first, by PID.
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ') || pids=
    if [[ -n ${pids// /} ]]; then
      _lab_msg "stopping processes left in $ns: $pids"
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
      for ((i = 0; i < 20; i++)); do
        [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] && break
        sleep 0.1
      done
      pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ') || pids=
      # shellcheck disable=SC2086
      [[ -z ${pids// /} ]] || kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
  done
  left=0
  for role in "${_LAB_ALL_ROLES[@]}"; do
    if [[ -e $LAB_NETNS_DIR/$id-$role ]]; then
      _lab_err "namespace $id-$role could not be removed"
      left=1
    fi
  done
  return "$left"
}

_lab_cmd_down() {
  local name=${1:?down NAME} file id tmp
  _lab_valid_name "$name" || { _lab_err "bad lab name '$name'"; return 2; }
  file=$LAB_STATE_DIR/$name
  if [[ ! -f $file ]]; then
    _lab_msg "no lab '$name' (nothing to remove)"
    return 0
  fi
  id=$(sed -n 's/^LAB_ID=//p' "$file" | tail -n 1)
  tmp=$(sed -n 's/^LAB_TMPDIR=//p' "$file" | tail -n 1)
  if [[ -n $id ]]; then
    _lab_remove_id "$id"
  fi
  if [[ -n $tmp && $tmp == /tmp/xdp-pipeline-lab.* && -d $tmp ]]; then
    rm -rf -- "$tmp"
  fi
  rm -f -- "$file"
  _lab_msg "lab '$name'${id:+ ($id)} removed"
}

_lab_abort() { # EXIT trap of `up`: undo a partial setup
  local rc=$1
  # Ignore, not default: a Ctrl-C reaches the whole process group and timeout(1) forwards it once more, so
  # a second SIGINT would otherwise kill this cleanup halfway and leave namespaces behind.
  trap - EXIT
  trap '' INT TERM HUP
  if [[ -n ${_LAB_CREATING:-} ]]; then
    _lab_err "setup of lab '$_LAB_CREATING' failed or was interrupted (status $rc); removing what was created"
    [[ -z ${_LAB_TMP:-} ]] || rm -rf -- "$_LAB_TMP"
    _lab_cmd_down "$_LAB_CREATING" || true
  fi
  exit "$rc"
}

_lab_compile_pass() { # DIR: writes DIR/xdp_pass.o
  local dir=$1
  cat >"$dir/xdp_pass.c" <<'EOF'
// Trivial XDP_PASS program for the bridge-side veth of the lab's load balancer: having an XDP program
// gives that veth NAPI, so frames the load balancer sends back with XDP_TX are delivered to the bridge.
// Multi-buffer aware (xdp.frags): only such a program attaches natively to a veth whose peer's MTU needs
// more than one buffer per frame (XDPP_LAB_MTU=9000).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp.frags")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
EOF
  clang -target bpf -O2 -g -idirafter /usr/include/x86_64-linux-gnu \
    -c "$dir/xdp_pass.c" -o "$dir/xdp_pass.o"
}

_lab_cmd_up() {
  local name=${1:?up NAME} id="" i role key ns hostif port mac pmac n net o okey

  [[ $(id -u) -eq 0 ]] || { _lab_err "must run as root"; return 1; }
  _lab_valid_name "$name" || { _lab_err "bad lab name '$name' (letters, digits, _ . -; max 64)"; return 2; }
  for i in ip bridge clang sysctl od; do
    command -v "$i" >/dev/null || { _lab_err "'$i' not found (run scripts/install-deps.sh)"; return 1; }
  done
  if [[ -n ${XDPP_LAB_NET:-} ]]; then
    if ! [[ $XDPP_LAB_NET =~ ^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$ ]] ||
      ((BASH_REMATCH[1] > 255 || BASH_REMATCH[2] > 255 || BASH_REMATCH[3] > 255)); then
      _lab_err "XDPP_LAB_NET must be three octets, e.g. 10.200.7 (got '$XDPP_LAB_NET')"
      return 2
    fi
    [[ $XDPP_LAB_NET =~ ^(10\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.) ]] ||
      { _lab_err "XDPP_LAB_NET must be in a private range (10/8, 172.16/12, 192.168/16)"; return 2; }
  fi

  local mtu=${XDPP_LAB_MTU:-1500}
  [[ $mtu =~ ^[0-9]{2,5}$ ]] && ((mtu >= 68 && mtu <= 65535)) ||
    { _lab_err "XDPP_LAB_MTU must be a number from 68 to 65535 (got '$mtu')"; return 2; }

  mkdir -p "$LAB_STATE_DIR"
  chmod 0755 "$LAB_STATE_DIR"
  _LAB_STATE=$LAB_STATE_DIR/$name
  # Claim the name atomically.
  if ! (set -o noclobber && : >"$_LAB_STATE") 2>/dev/null; then
    _lab_err "lab '$name' already exists ($_LAB_STATE); remove it first: $_LAB_SELF down $name"
    return 1
  fi
  _LAB_CREATING=$name
  trap '_lab_abort $?' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP

  # A run id no namespace and no other lab uses.
  for ((i = 0; i < 16; i++)); do
    id=xp$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    compgen -G "$LAB_NETNS_DIR/$id-*" >/dev/null && continue
    grep -qsx "LAB_ID=$id" "$LAB_STATE_DIR"/* && continue
    break
  done
  _lab_valid_id "$id" || { _lab_err "could not pick a unique run id"; return 1; }
  _lab_state_set LAB_ID "$id"
  # 10.200.X.0/24, X from the run id, skipping the subnets of the other labs that exist (not needed for
  # isolation, each lab has its own bridge, but it keeps captures from two labs apart).
  if [[ -n ${XDPP_LAB_NET:-} ]]; then
    net=$XDPP_LAB_NET
  else
    n=$((16#${id:2:2} % 254))
    for ((i = 0; i < 254; i++)); do
      net=10.200.$(((n + i) % 254 + 1))
      grep -qsx "LAB_NET=$net" "$LAB_STATE_DIR"/* || break
    done
  fi
  _lab_state_set LAB_NET "$net"
  _lab_state_set LAB_PREFIX 24
  _lab_state_set LAB_SUBNET "$net.0/24"
  _lab_state_set LAB_MTU "$mtu"
  _lab_msg "creating lab '$name': run id $id, subnet $net.0/24"

  # Namespaces. Anything named $id-* is ours (checked above), so a failure from here on removes it.
  for role in "${_LAB_ALL_ROLES[@]}"; do
    key=$(_lab_key "$role")
    ns=$id-$role
    _lab_state_set "LAB_NS_$key" "$ns"
    _lab_state_set "LAB_NETNS_$key" "$LAB_NETNS_DIR/$ns"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # No IPv6: no neighbour discovery or MLD frames in captures and flow logs.
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null
  done
  _lab_step namespaces

  # The switch.
  _lab_state_set LAB_BRIDGE "$id-br"
  ip -n "$id-sw" link add "$id-br" address "02:${id:2:2}:${id:4:2}:${id:6:2}:02:00" mtu "$mtu" type bridge \
    stp_state 0 mcast_snooping 0
  ip -n "$id-sw" link set "$id-br" up

  # One veth per host: HOST end in the host's namespace, bridge-side end ("port") in sw.
  # MACs: 02:<id>:00:0N for the hosts, 02:<id>:01:0N for the ports (N = 1..4: client, lb, be1, be2).
  n=0
  for role in "${_LAB_ROLES[@]}"; do
    n=$((n + 1))
    key=$(_lab_key "$role")
    case $role in client) hostif=$id-cl ;; lb) hostif=$id-lb ;; be1) hostif=$id-b1 ;; be2) hostif=$id-b2 ;; esac
    port=${hostif}p
    mac=02:${id:2:2}:${id:4:2}:${id:6:2}:00:0$n
    pmac=02:${id:2:2}:${id:4:2}:${id:6:2}:01:0$n
    _lab_state_set "LAB_IF_$key" "$hostif"
    _lab_state_set "LAB_PORT_$key" "$port"
    _lab_state_set "LAB_MAC_$key" "$mac"
    _lab_state_set "LAB_IP_$key" "$net.$n"
    ip -n "$id-sw" link add "$port" address "$pmac" mtu "$mtu" type veth peer name "$hostif" address "$mac" mtu "$mtu" \
      netns "$id-$role"
    ip -n "$id-$role" addr add "$net.$n/24" dev "$hostif"
    ip -n "$id-$role" link set "$hostif" up
    ip -n "$id-sw" link set "$port" master "$id-br"
    bridge -n "$id-sw" link set dev "$port" learning on flood on
    ip -n "$id-sw" link set "$port" up
  done
  _lab_state_set LAB_VIP "$net.2"
  _lab_step links
  _lab_step bridge

  # XDP_PASS on the lb's bridge-side port, so that XDP_TX from the lb is delivered (see the header).
  _LAB_TMP=$(mktemp -d /tmp/xdp-pipeline-lab.XXXXXX)
  _lab_state_set LAB_TMPDIR "$_LAB_TMP"
  _lab_compile_pass "$_LAB_TMP"
  ip -n "$id-sw" link set dev "$id-lbp" xdpdrv obj "$_LAB_TMP/xdp_pass.o" sec xdp.frags
  _lab_state_set LAB_XDP_PASS_PORT "$id-lbp"
  rm -rf -- "$_LAB_TMP"
  _LAB_TMP=
  _lab_step xdp

  # Permanent neighbours on every host and static FDB entries on the bridge: no ARP, no flooding.
  n=0
  for role in "${_LAB_ROLES[@]}"; do
    n=$((n + 1))
    key=$(_lab_key "$role")
    mac=LAB_MAC_$key
    mac=$(sed -n "s/^$mac=//p" "$_LAB_STATE")
    port=$(sed -n "s/^LAB_PORT_$key=//p" "$_LAB_STATE")
    bridge -n "$id-sw" fdb replace "$mac" dev "$port" master static
    for o in "${_LAB_ROLES[@]}"; do
      [[ $o != "$role" ]] || continue
      okey=$(_lab_key "$o")
      ip -n "$id-$o" neigh replace "$net.$n" lladdr "$mac" dev "$(sed -n "s/^LAB_IF_$okey=//p" "$_LAB_STATE")" nud permanent
    done
  done
  _lab_step neigh

  _lab_state_set LAB_COMPLETE 1
  _LAB_CREATING=
  trap - EXIT INT TERM HUP
  _lab_msg "lab '$name' is up (state: $_LAB_STATE; remove with: $_LAB_SELF down $name)"
}

_lab_cmd_env() {
  local name=${1:?env NAME} k
  lab_load "$name" || return
  for k in LAB_NAME LAB_STATE_FILE LAB_NETNS_DIR $(sed -n 's/^\(LAB_[A-Z0-9_]*\)=.*/\1/p' "$LAB_STATE_FILE" | sort -u); do
    [[ $k != LAB_TMPDIR ]] || continue
    printf '%s=%s\n' "$k" "${!k}"
  done
}

_lab_cmd_list() {
  local f
  [[ -d $LAB_STATE_DIR ]] || return 0
  for f in "$LAB_STATE_DIR"/*; do
    [[ -f $f ]] || continue
    printf '%s\t%s\t%s\n' "${f##*/}" "$(sed -n 's/^LAB_ID=//p' "$f" | tail -n 1)" \
      "$(sed -n 's/^LAB_SUBNET=//p' "$f" | tail -n 1)"
  done
}

_lab_usage() {
  sed -n '/^# As a command/,/^#   scripts\/lab.sh list/p' "$_LAB_SELF" | sed 's/^# \{0,1\}//' >&2
}

_lab_main() {
  set -euo pipefail
  local cmd=${1:-}
  shift || true
  case $cmd in
  up)
    [[ $# -eq 1 ]] || { _lab_usage; return 2; }
    _lab_cmd_up "$1"
    _lab_cmd_env "$1"
    ;;
  down)
    [[ $# -eq 1 ]] || { _lab_usage; return 2; }
    _lab_cmd_down "$1"
    ;;
  env)
    [[ $# -eq 1 ]] || { _lab_usage; return 2; }
    _lab_cmd_env "$1"
    ;;
  exec)
    [[ $# -ge 3 ]] || { _lab_usage; return 2; }
    lab_load "$1"
    shift
    lab_exec "$@"
    ;;
  list) _lab_cmd_list ;;
  -h | --help | help) _lab_usage ;;
  *)
    _lab_usage
    return 2
    ;;
  esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  _lab_main "$@"
fi
