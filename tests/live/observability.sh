#!/usr/bin/env bash
# Observability (issue 7): every packet accounted for, and visible to the operator.
#   - replay: the verdict counts per stage equal the packets of each kind in a pcap the test writes;
#   - veth traffic in a lab: N pings -> ping-lb tx == N, U UDP datagrams to a dropped port -> no-8080
#     drop == U, K TCP SYNs to port 22 -> pass by the last stage == K (one event each, none lost), and
#     the pipeline's packets == the sum of all verdicts;
#   - `status --json` shape; the table; `status` when nothing runs (clear message, non-zero exit);
#   - `bpftool map dump pinned .../NAME/STAGE/xdpp_counters` (what each stage counted where packets ended)
#     agrees with status: the same verdicts, and packets in == what ended in this stage or a later one;
#   - the Prometheus page (curl from the host: metrics listen in the namespace run started in, not in
#     --netns) == status, with pipeline/stage/plugin labels, and the build info;
#   - the control socket is 0600 in a 0700 directory, and a non-root user can neither connect nor use
#     the clients; a swap keeps the pins and logs no spurious warning;
#   - pins, state file and socket are removed on a clean exit.
# Usage (root): observability.sh XDP_PIPELINE_EXECUTABLE
XDPP=$(readlink -f "${1:?usage: $0 XDP_PIPELINE_EXECUTABLE}")
source "$(dirname "$(readlink -f "$0")")/common.sh"
live_require curl bpftool setpriv socat unshare
[[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import scapy' 2>/dev/null || skip "Debian's python3-scapy is needed to write the pcap"

live_setup lvobs
NPING=37 NUDP=23 NSYN=9

# --- replay: counters against the packets of a pcap -------------------------------------------------
write_pipeline "$T/p.toml" "parse no-8080 ping-lb flows"
/usr/bin/python3 - "$T/in.pcap" "$LAB_VIP" "$LAB_IP_CLIENT" "$LAB_MAC_LB" "$LAB_MAC_CLIENT" <<'EOF'
import sys
from scapy.all import Ether, IP, ICMP, UDP, TCP, wrpcap
out, vip, client, lb_mac, client_mac = sys.argv[1:]
e = lambda: Ether(src=client_mac, dst=lb_mac)
packets = [e() / IP(src=client, dst=vip) / ICMP(id=7, seq=i) / b"abcdefgh" for i in range(7)]
packets += [e() / IP(src=client, dst=vip) / UDP(sport=40000 + i, dport=9999) / b"x" for i in range(5)]
packets += [e() / IP(src=client, dst=vip) / TCP(sport=41000 + i, dport=8080, flags="S") for i in range(3)]
packets += [e() / IP(src=client, dst=vip) / TCP(sport=42000 + i, dport=22, flags="S") for i in range(4)]
wrpcap(out, packets)
EOF
"$XDPP" replay "$T/p.toml" --pcap "$T/in.pcap" --mac 02:00:00:00:00:aa --json --out "$T/out.pcap" -q >"$T/replay.json" ||
  fail "replay failed"
summary=$(tail -n 1 "$T/replay.json")
jq -e '.summary | .packets == 19 and .skipped == 0 and .written == 11 and
       .stages == {"ping-lb": {"tx": 7}, "no-8080": {"drop": 8}, "flows": {"pass": 4}} and
       .verdicts == {"tx": 7, "drop": 8, "pass": 4}' >/dev/null <<<"$summary" ||
  fail "replay summary does not match the pcap (7 pings, 5 UDP 9999, 3 TCP 8080, 4 TCP 22): $summary"
events=$(head -n -1 "$T/replay.json" | jq -s '[.[].events[]] | length')
((events == 4)) || fail "replay: $events events, expected 4 (one per packet reaching flows)"
alternate=$(head -n -1 "$T/replay.json" | jq -rs '[.[] | select(.stage == "ping-lb") | .data[0:12]] | unique | length')
((alternate == 2)) || fail "replay: the pings did not go to both backends"
ok "replay: per-stage verdicts == the packets written (tx 7, drop 8, pass 4), 4 events, 11 packets out"

# --- nothing running --------------------------------------------------------------------------------
rc=0
out=$("$XDPP" status "$PIPELINE_NAME" 2>&1) || rc=$?
((rc != 0)) && grep -q "no pipeline named '$PIPELINE_NAME' is running" <<<"$out" ||
  fail "status NAME with nothing of that name running: exit $rc, '$out'"
# With no name at all, other pipelines of other tests may run on this machine: look at an empty /run.
rc=0
out=$(unshare --mount --propagation private bash -c \
  'mkdir -p /run/xdp-pipeline && mount -t tmpfs -o mode=0700 none /run/xdp-pipeline && "$1" status' _ "$XDPP" 2>&1) || rc=$?
((rc != 0)) && grep -q "no pipeline is running" <<<"$out" || fail "status with nothing running: exit $rc, '$out'"
rc=0
out=$(unshare --mount --propagation private bash -c \
  'mkdir -p /run/xdp-pipeline && mount -t tmpfs -o mode=0700 none /run/xdp-pipeline && "$1" swap parse' _ "$XDPP" 2>&1) || rc=$?
((rc != 0)) && grep -q "no pipeline is running" <<<"$out" || fail "swap with nothing running: exit $rc, '$out'"
ok "nothing running: status NAME, status and swap say so and exit non-zero ('$out')"

# --- a running pipeline, with metrics from the file -------------------------------------------------
# The pipeline runs in the lb namespace (--netns), its metrics listen in the host's (the default), where
# a Prometheus on the host reaches them: a port free there.
for _ in $(seq 50); do
  PORT=$((20000 + RANDOM % 20000))
  [[ -z $(ss -Hltn "sport = :$PORT") ]] && break
done
write_pipeline "$T/p.toml" "parse no-8080 ping-lb flows" "metrics = \"127.0.0.1:$PORT\""
start_pipeline "$T/p.toml"
grep -q "metrics at http://127.0.0.1:$PORT/metrics in the host's network namespace" "$PIPELINE_LOG" ||
  fail "run does not say where its metrics are: $(grep metrics "$PIPELINE_LOG")"
ok "pipeline $PIPELINE_NAME running in $LAB_NS_LB, metrics at 127.0.0.1:$PORT in the host's network namespace"

start=$(status_json)
(($(counter "$start" pipeline packets) == 0)) || fail "packets counted before any traffic: $(counter_lines "$start")"

: >"$T/sources.txt"
read -r s r < <(ping_chunk "$NPING" "$T/sources.txt")
((s == NPING && r == NPING)) || fail "$r of $s pings answered"
udp_burst "$NUDP" 9999
refused=$(tcp_syns "$NSYN" 22)
((refused == NSYN)) || fail "only $refused of $NSYN connections to port 22 were refused by the lb's kernel"
sleep 0.3 # events reach run's stdout within its 100 ms poll
st=$(status_json)

# JSON shape.
jq -e --arg n "$PIPELINE_NAME" --arg i "$LAB_IF_LB" '
  def counters: (.counters | type == "object") and
    ([.counters | (.aborted, .drop, .pass, .tx, .redirect, .packets, .fell_off, .events_lost) | type == "number"] | all);
  .name == $n and .interface == $i and .mode == "native" and (.link_id | type == "number") and .link_id > 0 and
  (.pipeline.prog_id > 0) and (.pipeline | counters) and (.pipeline.prog_id == .stages[0].prog_id) and
  ([.stages[].name] == ["parse", "no-8080", "ping-lb", "flows"]) and
  ([.stages[].plugin] == ["parse", "port_filter", "icmp_lb", "metadata"]) and
  ([.stages[] | (.prog_id | type == "number") and .prog_id > 0 and counters and (.packets_per_second | type == "number")] | all)
' >/dev/null <<<"$st" || fail "status --json shape: $(jq -c . <<<"$st")"
ok "status --json: name, interface, mode, link id, pipeline (what the link runs: the first stage), stages [name, plugin, prog_id, counters{aborted drop pass tx redirect packets fell_off events_lost}]"

# Counters against the packets sent.
total=$((NPING + NUDP + NSYN))
(($(counter "$st" pipeline packets) == total)) || fail "pipeline packets $(counter "$st" pipeline packets), sent $total"
(($(counter "$st" parse packets) == total)) || fail "parse saw $(counter "$st" parse packets) packets, sent $total"
(($(counter "$st" ping-lb tx) == NPING)) || fail "ping-lb tx $(counter "$st" ping-lb tx), $NPING pings sent"
(($(counter "$st" ping-lb packets) == NPING + NSYN)) || fail "ping-lb entered by $(counter "$st" ping-lb packets)"
(($(counter "$st" no-8080 drop) == NUDP)) || fail "no-8080 drop $(counter "$st" no-8080 drop), $NUDP UDP sent"
(($(counter "$st" flows pass) == NSYN && $(counter "$st" flows packets) == NSYN)) ||
  fail "flows pass $(counter "$st" flows pass) / packets $(counter "$st" flows packets), $NSYN SYNs sent"
verdicts_balance "$st" || fail "pipeline packets != sum of all verdicts: $(counter_lines "$st")"
nonzero=$(jq '[.pipeline.counters, .stages[].counters | .aborted + .redirect + .fell_off + .events_lost] | add' <<<"$st")
((nonzero == 0)) || fail "aborted/redirect/fell_off/events_lost should all be 0: $(counter_lines "$st")"
events=$(grep -c "protocol: TCP" "$T/events.log" || true)
((events == NSYN)) || fail "flows printed $events TCP events for $NSYN SYNs"
ok "$NPING pings -> ping-lb tx $NPING; $NUDP UDP -> no-8080 drop $NUDP; $NSYN SYNs -> flows pass $NSYN, $events events; pipeline packets $total == sum of verdicts"

# The table.
"$XDPP" status "$PIPELINE_NAME" >"$T/table.txt" || fail "status (table) failed"
for s in '(pipeline)' parse no-8080 ping-lb flows "$LAB_IF_LB" native; do
  grep -qF -- "$s" "$T/table.txt" || fail "the status table does not show '$s': $(cat "$T/table.txt")"
done
timeout -s INT 2.5 "$XDPP" status "$PIPELINE_NAME" --watch >"$T/watch.txt" 2>&1 || true
(($(grep -c "pipeline $PIPELINE_NAME: " "$T/watch.txt") >= 2)) && grep -q $'\033\\[H' "$T/watch.txt" ||
  fail "status --watch did not refresh in place at least twice in 2.5 s: $(cat "$T/watch.txt")"
ok "status table and --watch show the pipeline and its stages"

# bpftool on the pins agrees with status. Each stage's map holds what ended in it, in the slot the chain
# writes (the state file's counter_bases.slot; no chain change here, so no bases): status shows those verdicts,
# and as packets in, what ended in that stage or a later one.
slot=$(jq '.counter_bases.slot' "/run/xdp-pipeline/$PIPELINE_NAME.json")
pinned_counters() { # DIR -> {"ended":..,"aborted":..,...} summed over CPUs
  bpftool map dump pinned "$1/xdpp_counters" |
    jq -c --argjson slot "$slot" '[.[$slot].values[].value] | {aborted: (map(.verdict[0]) | add),
           drop: (map(.verdict[1]) | add), pass: (map(.verdict[2]) | add), tx: (map(.verdict[3]) | add),
           redirect: (map(.verdict[4]) | add), fell_off: (map(.fell_off) | add), events_lost: (map(.events_lost) | add)}'
}
st=$(status_json)
root=/sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME
later=0
for s in flows ping-lb no-8080 parse; do
  [[ -e $root/$s/xdpp_counters ]] || fail "no pin $root/$s/xdpp_counters"
  pinned=$(pinned_counters "$root/$s")
  shown=$(jq -c ".stages[] | select(.name == \"$s\") | .counters | {aborted, drop, pass, tx, redirect, fell_off, events_lost}" <<<"$st")
  [[ $pinned == "$shown" ]] || fail "$s: bpftool says $pinned, status says $shown"
  later=$((later + $(jq '.aborted + .drop + .pass + .tx + .redirect' <<<"$pinned")))
  (($(counter "$st" "$s" packets) == later)) || fail "$s: status says $(counter "$st" "$s" packets) packets in, bpftool's verdicts from here on add up to $later"
done
ok "bpftool map dump pinned $root/STAGE/xdpp_counters agrees with status for every stage (verdicts, and packets in = ended here or later)"

# Prometheus page, from the host.
metrics=$(curl -sf --max-time 5 "http://127.0.0.1:$PORT/metrics") || fail "curl of the metrics page failed"
metric() { # NAME STAGE PLUGIN [VERDICT]
  local labels="pipeline=\"$PIPELINE_NAME\",stage=\"$2\",plugin=\"$3\""
  [[ -n ${4:-} ]] && labels+=",verdict=\"$4\""
  awk -v want="$1{$labels}" '$1 == want { printf "%d\n", $2; found = 1 } END { if (!found) print "missing" }' <<<"$metrics"
}
grep -q '^# TYPE xdp_pipeline_stage_packets_total counter' <<<"$metrics" || fail "no TYPE line for xdp_pipeline_stage_packets_total"
st=$(status_json)
declare -A plugin_of=([pipeline]="" [parse]=parse [no-8080]=port_filter [ping-lb]=icmp_lb [flows]=metadata)
for s in pipeline parse no-8080 ping-lb flows; do
  p=${plugin_of[$s]}
  label=$s
  [[ $s == pipeline ]] && label="(pipeline)" # the whole pipeline's series
  got=$(metric xdp_pipeline_stage_packets_total "$label" "$p")
  [[ $got == "$(counter "$st" "$s" packets)" ]] || fail "metrics: $s packets $got, status $(counter "$st" "$s" packets)"
  for v in aborted drop pass tx redirect; do
    got=$(metric xdp_pipeline_stage_verdicts_total "$label" "$p" "$v")
    [[ $got == "$(counter "$st" "$s" "$v")" ]] || fail "metrics: $s $v $got, status $(counter "$st" "$s" "$v")"
  done
  for f in fell_off events_lost; do
    got=$(metric "xdp_pipeline_stage_${f}_total" "$label" "$p")
    [[ $got == "$(counter "$st" "$s" "$f")" ]] || fail "metrics: $s $f $got, status $(counter "$st" "$s" "$f")"
  done
done
ok "metrics page: xdp_pipeline_stage_{packets,verdicts,fell_off,events_lost}_total{pipeline,stage,plugin[,verdict]} == status"
grep -q "^xdp_pipeline_build_info{pipeline=\"$PIPELINE_NAME\",version=\"[0-9][^\"]*\"} 1" <<<"$metrics" ||
  fail "no xdp_pipeline_build_info line with the version"
if lab_exec lb curl -sf --max-time 2 "http://127.0.0.1:$PORT/metrics" >/dev/null 2>&1; then
  fail "the metrics page also answers inside $LAB_NS_LB: it should listen in the host's namespace only"
fi

# Control socket: root only.
sock=/run/xdp-pipeline/$PIPELINE_NAME.sock
[[ $(stat -c '%a %U' "$sock") == "600 root" ]] || fail "control socket is $(stat -c '%a %U' "$sock"), not 600 root"
[[ $(stat -c '%a %U' /run/xdp-pipeline) == "700 root" ]] || fail "/run/xdp-pipeline is $(stat -c '%a %U' /run/xdp-pipeline)"
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
if out=$("${nobody[@]}" socat -t 2 - "UNIX-CONNECT:$sock" <<<'{"op":"swap","stage":"parse"}' 2>&1); then
  fail "uid 65534 connected to the control socket: $out"
fi
grep -qi "permission denied" <<<"$out" || fail "uid 65534: unexpected failure connecting: $out"
rc=0
out=$("${nobody[@]}" "$XDPP" swap parse -p "$PIPELINE_NAME" 2>&1) || rc=$?
((rc != 0)) && grep -q "root only" <<<"$out" || fail "swap as uid 65534: exit $rc, '$out'"
rc=0
out=$("${nobody[@]}" "$XDPP" status "$PIPELINE_NAME" 2>&1) || rc=$?
((rc != 0)) && grep -q "needs root" <<<"$out" || fail "status as uid 65534: exit $rc, '$out'"
[[ $(prog_ids "$(status_json)") == "$(prog_ids "$st")" ]] || fail "a non-root attempt changed the pipeline"
ok "control socket 0600 root in a 0700 directory; uid 65534 cannot connect ($(head -n 1 <<<"$out"))"

# A swap keeps the pins (same maps) and says nothing about a missing bpffs (it is there).
ino=$(stat -c %i "$root/ping-lb/xdpp_counters")
ctl_ok swap ping-lb
ctl_ok set no-8080 'drop_tcp_dst+=8081'
[[ -e $root/ping-lb/xdpp_counters ]] || fail "the pins of ping-lb are gone after a swap"
pinned=$(pinned_counters "$root/ping-lb")
[[ $(jq .tx <<<"$pinned") == "$NPING" ]] || fail "after a swap the pinned counters of ping-lb say $pinned"
if grep -n "no bpffs" "$PIPELINE_LOG"; then
  fail "after a swap/set the run logged that /sys/fs/bpf is no bpffs, though it is and the pins are there"
fi
ok "swap and set keep the pins (ping-lb tx still $NPING; pin inode $ino) and log no spurious bpffs warning"

# Every log line of a stage names it.
bad=$(grep -E '^\S+: (info|warning|error): +\[[0-9]+\]' "$PIPELINE_LOG" | grep -vE "\] (parse|no-8080|ping-lb|flows) " || true)
[[ -z $bad ]] || fail "stage log lines without their stage's name: $bad"

# Clean exit: nothing left.
stop_pipeline
((PIPELINE_RC == 0)) || fail "run exited with status $PIPELINE_RC"
[[ ! -e $root ]] || fail "pins left after a clean exit: $(ls -R "$root")"
[[ ! -e /run/xdp-pipeline/$PIPELINE_NAME.json && ! -e $sock ]] || fail "state file or socket left after a clean exit"
lab_exec lb ip -d link show "$LAB_IF_LB" | grep -q 'xdp' && fail "an XDP program is still attached to $LAB_IF_LB"
rc=0
out=$("$XDPP" status "$PIPELINE_NAME" 2>&1) || rc=$?
((rc != 0)) || fail "status still finds $PIPELINE_NAME after it exited"
ok "clean exit: pins, state file and socket removed, interface detached, status says '$out'"
echo "PASS"
