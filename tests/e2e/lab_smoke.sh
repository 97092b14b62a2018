#!/usr/bin/env bash
# End-to-end check of the network lab itself (scripts/lab.sh), before any pipeline runs on it:
#   - `up` creates five namespaces (client, lb, be1, be2, sw) with the documented names, addresses, MACs,
#     a learning bridge, static neighbours and the XDP_PASS program on the lb's bridge port;
#   - every host pings every other host, and the VIP is answered by the lb;
#   - two labs at once get distinct names and subnets and do not disturb each other; a name in use is
#     refused;
#   - `down` works from another process, is idempotent, and stops processes left inside the namespaces;
#   - a setup that fails or is interrupted (SIGINT) midway removes what it had created;
#   - at the end nothing is left: no namespace, no interface, no state file.
#
# Usage (as root):  tests/e2e/lab_smoke.sh [--lab PATH/TO/lab.sh]
# Exit status: 0 passed, 1 failed, 77 skipped (not root, network namespaces or tools unavailable).
set -euo pipefail

HERE=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
LAB_SH=$HERE/../../scripts/lab.sh
while (($#)); do
  case $1 in
  --lab)
    LAB_SH=${2:?--lab PATH}
    shift 2
    ;;
  *)
    echo "usage: $0 [--lab PATH/TO/lab.sh]" >&2
    exit 2
    ;;
  esac
done
LAB_SH=$(readlink -f "$LAB_SH")

HARNESS_ON_FAIL=go # report every check; the summary says how many failed
# shellcheck source=scripts/lib/harness.sh
source "$HERE/../../scripts/lib/harness.sh"
require_tools ip bridge clang ping timeout
require_lab_host

# shellcheck source=scripts/lab.sh
source "$LAB_SH"
export LAB_QUIET=1
reap_stale labsmoke

RUN=labsmoke-$$
LABS=("$RUN-a" "$RUN-b" "$RUN-c" "$RUN-d" "$RUN-e")
IDS=() # every run id seen, checked at the end
TMP=$(mktemp -d /tmp/lab-smoke.XXXXXX)

check() { # DESCRIPTION CMD...: PASS, or FAIL with CMD's output
  local what=$1
  shift
  if "$@" >"$TMP/out" 2>&1; then
    pass "$what"
  else
    fail "$what"
    show "$TMP/out"
  fi
}

leftovers() { # prints what is left of the run ids in IDS; non-zero status if something is
  local id found=0
  for id in "${IDS[@]}"; do
    if compgen -G "$LAB_NETNS_DIR/$id-*"; then found=1; fi
    if ip -o link | grep -- "$id-"; then found=1; fi
  done
  for name in "${LABS[@]}"; do
    if [[ -e $LAB_STATE_DIR/$name ]]; then
      echo "state file $LAB_STATE_DIR/$name"
      found=1
    fi
  done
  ((found == 0))
}

cleanup() {
  local rc=$? name
  trap - EXIT INT TERM
  set +e
  for name in "${LABS[@]}"; do timeout 30 "$BASH" "$LAB_SH" down "$name" >/dev/null 2>&1; done
  if ! leftovers >"$TMP/left"; then
    fail "left behind after cleanup:"
    show "$TMP/left"
  fi
  rm -rf -- "$TMP"
  harness_exit "$rc"
}
harness_trap cleanup

state_get() { sed -n "s/^$2=//p" "$LAB_STATE_DIR/$1" | tail -n 1; }

# --- one lab, through the command ------------------------------------------------------------------
A=$RUN-a B=$RUN-b
check "lab.sh up $A (command)" timeout 60 "$LAB_SH" up "$A"
lab_load "$A"
IDS+=("$LAB_ID")
check "run id $LAB_ID is xp + 6 hex digits" _lab_valid_id "$LAB_ID"

ns_exist() {
  local r
  for r in CLIENT LB BE1 BE2 SW; do
    local n=LAB_NS_$r p=LAB_NETNS_$r
    ip netns list | grep -q "^${!n}\b" || { echo "no namespace ${!n}"; return 1; }
    [[ -e ${!p} ]] || { echo "no ${!p}"; return 1; }
  done
}
check "five namespaces exist (client lb be1 be2 sw)" ns_exist

host_ifs() {
  local r n=0
  for r in CLIENT LB BE1 BE2; do
    n=$((n + 1))
    local ns=LAB_NS_$r ifc=LAB_IF_$r ip=LAB_IP_$r mac=LAB_MAC_$r port=LAB_PORT_$r
    ((${#ifc} <= 15 && ${#port} <= 15)) || { echo "name too long"; return 1; }
    [[ ${!ip} == "$LAB_NET.$n" ]] || { echo "LAB_IP_$r=${!ip}, expected $LAB_NET.$n"; return 1; }
    ip -n "${!ns}" -br addr show dev "${!ifc}" | grep -q "UP.*${!ip}/24" ||
      { ip -n "${!ns}" -br addr show dev "${!ifc}"; return 1; }
    ip -n "${!ns}" -br link show dev "${!ifc}" | grep -qi "${!mac}" || { echo "MAC of ${!ifc} is not ${!mac}"; return 1; }
    ip -n "$LAB_NS_SW" -d link show dev "${!port}" | grep -q "master $LAB_BRIDGE .*state UP" ||
      { echo "${!port} not an up port of $LAB_BRIDGE"; return 1; }
    ip -n "$LAB_NS_SW" -d link show dev "${!port}" | grep -q "state forwarding .*learning on" ||
      { echo "${!port} not forwarding with learning on"; return 1; }
  done
  [[ $LAB_VIP == "$LAB_IP_LB" ]] || { echo "VIP $LAB_VIP is not the lb's address"; return 1; }
}
check "hosts have their addresses and MACs; ports forward with MAC learning on" host_ifs
check "the XDP_PASS program is on the lb's bridge port ($LAB_XDP_PASS_PORT)" \
  bash -c "ip -n '$LAB_NS_SW' link show dev '$LAB_PORT_LB' | grep -q 'prog/xdp'"
check "the client's neighbour for the VIP is the lb's MAC (permanent)" \
  bash -c "ip -n '$LAB_NS_CLIENT' neigh show '$LAB_VIP' | grep -qi 'lladdr $LAB_MAC_LB PERMANENT'"
check "lab.sh env and lab.sh exec work from another process" bash -c \
  "'$LAB_SH' env '$A' | grep -qx 'LAB_ID=$LAB_ID' &&
   '$LAB_SH' exec '$A' be1 ip -br addr show dev '$LAB_IF_BE1' | grep -q '$LAB_IP_BE1/24'"

check "every host pings every other host (12 pings)" lab_check
check "the VIP is answered by the lb itself" bash -c \
  "ip netns exec '$LAB_NS_CLIENT' timeout 10 ping -n -c 2 -W 2 '$LAB_VIP' | grep -q 'bytes from $LAB_VIP:'"

# --- a second lab at the same time, through the library --------------------------------------------
declare -A LA
for k in $(compgen -v LAB_); do LA[$k]=${!k}; done
if lab_up "$B"; then pass "lab_up $B (library)"; else fail "lab_up $B (library)"; fi
IDS+=("$LAB_ID")
distinct() {
  local k
  [[ $LAB_ID != "${LA[LAB_ID]}" ]] || { echo "same run id"; return 1; }
  for k in LAB_NS_CLIENT LAB_NS_LB LAB_NS_BE1 LAB_NS_BE2 LAB_NS_SW LAB_IF_LB LAB_BRIDGE LAB_MAC_LB LAB_SUBNET; do
    [[ ${!k} != "${LA[$k]}" ]] || { echo "$k is the same in both labs: ${!k}"; return 1; }
  done
}
check "two labs get distinct run ids, namespaces, interface names, MACs and subnets" distinct
check "both labs work at once (lab $B)" lab_check
check "the name $A is refused while in use" bash -c "! timeout 60 '$LAB_SH' up '$A'"
check "... and lab $A is unharmed" bash -c \
  "ip netns exec '${LA[LAB_NS_CLIENT]}' timeout 10 ping -n -c 1 -W 2 '${LA[LAB_IP_BE2]}' >/dev/null"

# --- down: from another process, idempotent, stops processes left inside ----------------------------
set -m
ip netns exec "$LAB_NS_BE1" timeout 60 sleep 60 &
SLEEPER=$!
set +m
check "lab.sh down $A from another process" timeout 60 "$BASH" "$LAB_SH" down "$A"
gone_a() {
  local r
  for r in client lb be1 be2 sw; do [[ ! -e $LAB_NETNS_DIR/${LA[LAB_ID]}-$r ]] || return 1; done
  [[ ! -e $LAB_STATE_DIR/$A ]]
}
check "... removed its namespaces and state file" gone_a
check "... and is idempotent" timeout 60 "$BASH" "$LAB_SH" down "$A"
check "lab $B still works" bash -c "ip netns exec '$LAB_NS_CLIENT' timeout 10 ping -n -c 1 -W 2 '$LAB_IP_BE1' >/dev/null"
check "lab_down $B" lab_down "$B"
sleeper_gone() {
  local i
  for ((i = 0; i < 50; i++)); do
    kill -0 "$SLEEPER" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}
check "... stopped the process left in $LAB_NS_BE1" sleeper_gone
wait "$SLEEPER" 2>/dev/null || true

# --- a setup that fails midway removes what it created ----------------------------------------------
failed_setup() { # NAME STEP
  local name=$1 step=$2 id
  if LAB_FAIL_AT=$step LAB_QUIET='' timeout 60 "$BASH" "$LAB_SH" up "$name" >"$TMP/up.out" 2>"$TMP/up.err"; then
    echo "up succeeded despite LAB_FAIL_AT=$step"
    return 1
  fi
  id=$(sed -n "s/.*run id \(xp[0-9a-f]\{6\}\),.*/\1/p" "$TMP/up.err")
  [[ -n $id ]] || { cat "$TMP/up.err"; return 1; }
  IDS+=("$id")
  grep -q "removing what was created" "$TMP/up.err" || { cat "$TMP/up.err"; return 1; }
  if compgen -G "$LAB_NETNS_DIR/$id-*"; then return 1; fi
  [[ ! -e $LAB_STATE_DIR/$name ]] || { echo "state file left"; return 1; }
}
check "a setup failing after the namespaces leaves nothing behind" failed_setup "$RUN-c" namespaces
check "a setup failing after the XDP program leaves nothing behind" failed_setup "$RUN-c" xdp

# --- a setup interrupted (SIGINT, as Ctrl-C) midway removes what it created -------------------------
interrupted_setup() {
  local name=$RUN-d pid i id rc=0
  set -m
  # A shell started as a background job of a non-interactive shell (as CI may start this test) inherits
  # SIGINT ignored, and bash cannot trap a signal ignored on entry: restore the default for `up`, so this
  # checks what Ctrl-C on a terminal does, however the test itself was started.
  LAB_PAUSE_AT=links LAB_QUIET='' env --default-signal=INT timeout 60 "$BASH" "$LAB_SH" up "$name" \
    >"$TMP/int.out" 2>"$TMP/int.err" &
  pid=$!
  set +m
  for ((i = 0; i < 200; i++)); do
    grep -q 'pausing' "$TMP/int.err" && break
    sleep 0.1
  done
  id=$(sed -n "s/.*run id \(xp[0-9a-f]\{6\}\),.*/\1/p" "$TMP/int.err")
  [[ -n $id ]] || { echo "no run id"; cat "$TMP/int.err"; kill -TERM -- "-$pid"; return 1; }
  IDS+=("$id")
  compgen -G "$LAB_NETNS_DIR/$id-*" >/dev/null || { echo "nothing created before the interrupt"; return 1; }
  kill -INT -- "-$pid" # the whole process group, as a terminal's Ctrl-C does
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  wait "$pid" || rc=$?
  ((rc != 0)) || { echo "up exited 0 after SIGINT"; return 1; }
  grep -q "removing what was created" "$TMP/int.err" || { cat "$TMP/int.err"; return 1; }
  if compgen -G "$LAB_NETNS_DIR/$id-*"; then return 1; fi
  [[ ! -e $LAB_STATE_DIR/$name ]] || { echo "state file left"; return 1; }
}
check "a setup interrupted with SIGINT midway leaves nothing behind" interrupted_setup

# --- nothing left ----------------------------------------------------------------------------------
check "no namespace, interface or state file of this test is left" leftovers
