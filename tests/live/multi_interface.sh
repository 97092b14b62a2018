#!/usr/bin/env bash
# Several interfaces (issue 16): one pipeline attached to two interfaces of a host, chosen by rules the
# daemon resolves on the node: `interface = [{ default_route = true }, { first_of = ["nosuch0", B] }]`.
# A host namespace "dut" has two veth links, A to peer1 and B to peer2 (the default route goes out of A).
#   - one bpf_link per interface, the same first stage on both; status --json lists both interfaces;
#   - packets per interface in status equal what each peer sent, and the shared counters add up;
#   - TCP 8080 is dropped on both links, 8081 passes on both; one `set` changes both at once
#     (8080 passes on both, 8081 dropped on both), and a `reload` that adds a stage switches both links
#     to the new chain;
#   - persisted (--persist): the daemon killed with SIGKILL leaves both links pinned and running; the next
#     run adopts both (no packet lost on either: pings through the gap), a `set` after adoption changes
#     both; SIGTERM leaves both running; `detach` removes both links and every pin;
#   - a rule that matches nothing is refused with the reason (exit 2, nothing loaded); SIGINT detaches both.
# Every process this test starts dies with it (setpriv --pdeathsig), also when it is killed.
# Usage (root): multi_interface.sh XDP_PIPELINE_EXECUTABLE
XDPP=$(readlink -f "${1:?usage: $0 XDP_PIPELINE_EXECUTABLE}")
source "$(dirname "$(readlink -f "$0")")/common.sh"
live_require

# Namespaces and links of this run only.
ID=$(printf '%04x' $(($$ % 65536)))
DUT=xpm$ID-dut P1=xpm$ID-p1 P2=xpm$ID-p2
IFA=xm${ID}a IFB=xm${ID}b
NET=10.201.$(($$ % 250))
T=$(mktemp -d /tmp/xdpp-lvmulti.XXXXXX)
PIPELINE_NAME=lvmulti-$$
PIPELINE_LOG=$T/run.log
cleanup() {
  local rc=$?
  set +e
  if [[ -n $PIPELINE_PID ]] && kill -0 "$PIPELINE_PID" 2>/dev/null; then
    kill -INT "$PIPELINE_PID"
    wait "$PIPELINE_PID" 2>/dev/null
  fi
  [[ -n ${PING_PID:-} ]] && kill "$PING_PID" 2>/dev/null
  "$XDPP" detach "$PIPELINE_NAME" >/dev/null 2>&1 # a persisted run's links and pins
  for ns in "$DUT" "$P1" "$P2"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "/sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME" /run/xdp-pipeline/"$PIPELINE_NAME".* "$T"
  rmdir /sys/fs/bpf/xdp-pipeline 2>/dev/null
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for ns in "$DUT" "$P1" "$P2"; do ip netns add "$ns"; done
ip link add "$IFA" netns "$DUT" type veth peer name "${IFA}p" netns "$P1"
ip link add "$IFB" netns "$DUT" type veth peer name "${IFB}p" netns "$P2"
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
for ns in "$DUT" "$P1" "$P2"; do nsx "$ns" ip link set lo up; nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1; done
nsx "$DUT" ip addr add "$NET.1/30" dev "$IFA"
nsx "$P1" ip addr add "$NET.2/30" dev "${IFA}p"
nsx "$DUT" ip addr add "$NET.5/30" dev "$IFB"
nsx "$P2" ip addr add "$NET.6/30" dev "${IFB}p"
for pair in "$DUT:$IFA" "$DUT:$IFB" "$P1:${IFA}p" "$P2:${IFB}p"; do nsx "${pair%%:*}" ip link set "${pair#*:}" up; done
nsx "$DUT" ip route add default via "$NET.2"
# Permanent neighbours: no ARP in the counts.
nsx "$P1" ip neigh replace "$NET.1" lladdr "$(nsx "$DUT" ip -br link show "$IFA" | awk '{print $3}')" dev "${IFA}p" nud permanent
nsx "$P2" ip neigh replace "$NET.5" lladdr "$(nsx "$DUT" ip -br link show "$IFB" | awk '{print $3}')" dev "${IFB}p" nud permanent
nsx "$DUT" ip neigh replace "$NET.2" lladdr "$(nsx "$P1" ip -br link show "${IFA}p" | awk '{print $3}')" dev "$IFA" nud permanent
nsx "$DUT" ip neigh replace "$NET.6" lladdr "$(nsx "$P2" ip -br link show "${IFB}p" | awk '{print $3}')" dev "$IFB" nud permanent
note "dut $DUT: $IFA $NET.1 (default route) to $P1, $IFB $NET.5 to $P2"

write() { # write FILE INTERFACE_LINE [extra stage]
  {
    printf '[pipeline]\nname = "%s"\n%s\nmode = "native"\n' "$PIPELINE_NAME" "$2"
    printf '\n[[stage]]\nname = "parse"\nplugin = "parse"\n'
    printf '\n[[stage]]\nname = "no-8080"\nplugin = "port_filter"\ndrop_tcp_dst = [8080]\n'
    [[ -z ${3:-} ]] || printf '\n[[stage]]\nname = "no-9999"\nplugin = "port_filter"\ndrop_udp_dst = [9999]\n'
  } >"$1"
}

# A rule that matches nothing: refused before anything is loaded.
write "$T/none.toml" 'interface = { first_of = ["nosuch0", "nosuch1"] }'
rc=0
out=$("$XDPP" run "$T/none.toml" --netns "$DUT" 2>&1) || rc=$?
((rc == 2)) && grep -q "interface rule first_of \[nosuch0, nosuch1\]: none of them exists in network namespace '$DUT' (interfaces there: lo, " <<<"$out" ||
  fail "a rule matching nothing: exit $rc, '$out'"
ok "first_of with no existing candidate: refused ('$(tail -n 1 <<<"$out")')"

write "$T/p.toml" "interface = [{ default_route = true }, { first_of = [\"nosuch0\", \"$IFB\"] }]"
"$XDPP" check "$T/p.toml" >/dev/null || fail "check refused the rules"
# run_daemon [run options...]: the daemon, which dies with this test however it ends.
run_daemon() {
  setpriv --pdeathsig INT "$XDPP" run "$T/p.toml" --netns "$DUT" "$@" >>"$T/events.log" 2>>"$PIPELINE_LOG" &
  PIPELINE_PID=$!
  wait_published "xdp-pipeline run" 100 0.1
}
run_daemon
grep -q "attached to $IFA in native mode" "$PIPELINE_LOG" && grep -q "attached to $IFB in native mode" "$PIPELINE_LOG" ||
  fail "not attached to both: $(cat "$PIPELINE_LOG")"
st=$(status_json)
jq -e --arg a "$IFA" --arg b "$IFB" '[.interfaces[].name] == [$a, $b] and ([.interfaces[].link_id] | unique | length) == 2
  and .interface == "\($a),\($b)"' >/dev/null <<<"$st" || fail "status does not list both interfaces: $(jq -c .interfaces <<<"$st")"
dispatcher_id=$(jq -r .pipeline.prog_id <<<"$st")
for ifc in "$IFA" "$IFB"; do
  nsx "$DUT" ip link show dev "$ifc" | grep -q "prog/xdp id $dispatcher_id " ||
    fail "$ifc does not run the chain's first stage (prog id $dispatcher_id): $(nsx "$DUT" ip link show dev "$ifc")"
done
ok "default_route -> $IFA, first_of -> $IFB: one bpf_link each, both running the first stage, prog $dispatcher_id"

# syns PEER ADDR PORT COUNT: connection attempts; prints how many were refused (reached dut's kernel).
syns() {
  nsx "$1" bash -c 'refused=0
    for ((i = 0; i < $3; i++)); do
      if timeout 0.3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; then :; else [[ $? -eq 1 ]] && refused=$((refused + 1)); fi
    done; echo $refused' _ "$2" "$3" "$4"
}
N=5
for side in "$P1 $NET.1" "$P2 $NET.5"; do
  read -r peer addr <<<"$side"
  (($(syns "$peer" "$addr" 8080 $N) == 0)) || fail "8080 not dropped from $peer"
  (($(syns "$peer" "$addr" 8081 $N) == N)) || fail "8081 not passed from $peer"
done
st=$(status_json)
a=$(jq -r --arg i "$IFA" '.interfaces[] | select(.name == $i) | .packets' <<<"$st")
b=$(jq -r --arg i "$IFB" '.interfaces[] | select(.name == $i) | .packets' <<<"$st")
total=$(counter "$st" pipeline packets)
drops=$(counter "$st" no-8080 drop)
# Each peer sent N SYNs to 8080 (dropped) and N SYNs + N final ACK/RST-less... count only what is certain:
((a >= 2 * N && b >= 2 * N && a + b == total)) || fail "per-interface packets $IFA $a + $IFB $b != pipeline $total"
((drops == 2 * N)) || fail "no-8080 dropped $drops, expected $((2 * N)) (N from each peer)"
"$XDPP" status "$PIPELINE_NAME" | grep -q "if .*$IFB" || fail "the status table has no line for $IFB"
ok "8080 dropped and 8081 passed on both links; status: $IFA $a + $IFB $b packets = pipeline $total, shared no-8080 drop $drops"

# One live change applies to both.
ctl_ok set no-8080 'drop_tcp_dst=[8081]'
for side in "$P1 $NET.1" "$P2 $NET.5"; do
  read -r peer addr <<<"$side"
  (($(syns "$peer" "$addr" 8080 $N) == N)) || fail "after set: 8080 not passed from $peer"
  (($(syns "$peer" "$addr" 8081 $N) == 0)) || fail "after set: 8081 not dropped from $peer"
done
ok "set no-8080 drop_tcp_dst=[8081]: applied to both links at once"

# A reload that adds a stage: a new chain, switched in on both links.
write "$T/p.toml" "interface = [{ default_route = true }, { first_of = [\"nosuch0\", \"$IFB\"] }]" extra
ctl_ok reload "$T/p.toml"
st=$(status_json)
new_id=$(jq -r .pipeline.prog_id <<<"$st")
[[ $new_id != "$dispatcher_id" ]] || fail "the reload did not switch in a new chain (first stage)"
for ifc in "$IFA" "$IFB"; do
  nsx "$DUT" ip link show dev "$ifc" | grep -q "prog/xdp id $new_id " ||
    fail "$ifc does not run the new dispatcher $new_id: $(nsx "$DUT" ip link show dev "$ifc" | grep prog/xdp)"
done
for side in "$P1 $NET.1" "$P2 $NET.5"; do
  read -r peer addr <<<"$side"
  (($(syns "$peer" "$addr" 8080 $N) == 0)) || fail "after reload: 8080 not dropped from $peer"
done
ok "reload with a new stage: both links switched to dispatcher $new_id; 8080 dropped again on both"

stop_pipeline
((PIPELINE_RC == 0)) || fail "run exited $PIPELINE_RC on SIGINT"
for ifc in "$IFA" "$IFB"; do
  ! nsx "$DUT" ip link show dev "$ifc" | grep -q "xdp" || fail "$ifc still has an XDP program after SIGINT"
done
ok "SIGINT: both links detached"

# --- persisted on both interfaces: killed, adopted, detached --------------------------------------------
links=/sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME/links
run_daemon --persist
[[ -e $links/$IFA && -e $links/$IFB ]] || fail "persist did not pin a link per interface: $(ls "$links" 2>&1)"
# Pings from both peers every 10 ms through the kill and the adoption.
nsx "$P1" ping -q -i 0.01 -w 30 "$NET.1" >"$T/ping1.txt" 2>&1 &
PING_PID=$!
nsx "$P2" ping -q -i 0.01 -c 150 "$NET.5" >"$T/ping2.txt" 2>&1 &
ping2=$!
sleep 0.3
kill -KILL "$PIPELINE_PID"
wait "$PIPELINE_PID" 2>/dev/null || true
PIPELINE_PID=
for ifc in "$IFA" "$IFB"; do
  nsx "$DUT" ip link show dev "$ifc" | grep -q "prog/xdp id" || fail "$ifc lost its program when the daemon was killed"
done
(($(syns "$P2" "$NET.5" 8080 2) == 0)) || fail "without a daemon 8080 is not dropped on $IFB"
st=$("$XDPP" status "$PIPELINE_NAME" --json) || fail "status of the persisted pipeline failed"
jq -e '.daemon == false and (.interfaces | length) == 2' >/dev/null <<<"$st" ||
  fail "status without a daemon: $(jq -c '{daemon, interfaces}' <<<"$st")"
run_daemon --persist
grep -q "adopted from pid .* on $IFA, $IFB" "$PIPELINE_LOG" || fail "the second run did not adopt both: $(tail -n 5 "$PIPELINE_LOG")"
wait "$ping2" || true
kill -INT "$PING_PID" 2>/dev/null
wait "$PING_PID" 2>/dev/null || true
PING_PID=
for f in ping1 ping2; do
  loss=$(grep -o '[0-9.]*% packet loss' "$T/$f.txt" | cut -d% -f1)
  [[ $loss == 0 ]] || fail "$f lost packets across the kill and the adoption: $(cat "$T/$f.txt")"
done
ctl_ok set no-8080 'drop_tcp_dst=[8082]'
for side in "$P1 $NET.1" "$P2 $NET.5"; do
  read -r peer addr <<<"$side"
  (($(syns "$peer" "$addr" 8082 $N) == 0)) || fail "after adoption and set: 8082 not dropped from $peer"
  (($(syns "$peer" "$addr" 8080 $N) == N)) || fail "after adoption and set: 8080 not passed from $peer"
done
ok "persisted: SIGKILL left both links pinned and filtering, the next run adopted both ($(grep -o '[0-9]* packets transmitted' "$T/ping1.txt" | cut -d' ' -f1)+$(grep -o '[0-9]* packets transmitted' "$T/ping2.txt" | cut -d' ' -f1) pings, none lost), set applied to both"
kill -TERM "$PIPELINE_PID"
wait "$PIPELINE_PID" 2>/dev/null || true
PIPELINE_PID=
nsx "$DUT" ip link show dev "$IFB" | grep -q "prog/xdp id" || fail "SIGTERM of a persisted run detached $IFB"
out=$("$XDPP" detach "$PIPELINE_NAME") || fail "detach failed: $out"
grep -q "detached from .*$IFA.*$IFB\|detached from .*$IFB.*$IFA" <<<"$out" || fail "detach does not name both links: $out"
for ifc in "$IFA" "$IFB"; do
  ! nsx "$DUT" ip link show dev "$ifc" | grep -q "xdp" || fail "$ifc still has an XDP program after detach"
done
[[ ! -e /sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME ]] || fail "detach left pins: $(find "/sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME")"
ok "SIGTERM left both running; detach removed both links and every pin ('$out')"
echo "PASS"
