#!/usr/bin/env bash
# A persisted pipeline outlives its daemon (issue 15), in a lab (scripts/lab.sh), under real traffic:
#   - pings every 5 ms cross the load balancer for ~8 s while the daemon is killed with SIGKILL four times
#     and stopped with SIGTERM once, each time started again with the same file, which adopts what runs:
#     every ping answered, the backends alternate strictly across all restarts (the round-robin position
#     survives), the interface never without its program, no counter ever goes back;
#   - status says "running, no daemon (persisted)" (table and --json) while no daemon runs;
#   - metadata events of packets sent while no daemon ran are delivered by the next one: as many as packets;
#   - a zombie (a killed daemon its parent has not reaped) does not keep the name: the next run adopts; a
#     second run while a daemon lives is refused before it loads anything, and removes nothing;
#   - a swap after adoption loads a program that shares the running chain's packet context (the pinned map);
#   - a run over a record that cannot be read (a key of the wrong type) is refused, naming the key, and
#     leaves the pipeline running;
#   - detach leaves the interface without a program and /sys/fs/bpf and /run clean; a second detach says
#     there is nothing to detach.
# Usage (root): persist_restarts.sh XDP_PIPELINE_EXECUTABLE
XDPP=$(readlink -f "${1:?usage: $0 XDP_PIPELINE_EXECUTABLE}")
source "$(dirname "$(readlink -f "$0")")/common.sh"
live_require

live_setup lvpersist
write_pipeline "$T/p.toml" "parse flows ping-lb" 'persist = true'
run_daemon "$T/p.toml"
ok "pipeline $PIPELINE_NAME running persisted on $LAB_IF_LB (pid $PIPELINE_PID)"
read -r sent received < <(ping_chunk 10 "$T/warm.txt")
((sent == 10 && received == 10)) || fail "warm-up: $received of $sent pings answered"
assert_alternating "$T/warm.txt" "warm-up"

# --- restarts under traffic --------------------------------------------------------------------------
pings_during_changes 1800
prev=$(status_json)
signals=(KILL KILL TERM KILL KILL)
for ((i = 0; i < ${#signals[@]}; i++)); do
  sleep 0.4
  sig=${signals[i]}
  end_daemon "$sig"
  [[ $sig == KILL ]] || ((PIPELINE_RC == 0)) || fail "SIGTERM: the daemon exited with $PIPELINE_RC: $(tail -n 5 "$PIPELINE_LOG")"
  [[ $sig == KILL ]] || grep -q 'keeps running .* without a daemon (persisted)' "$PIPELINE_LOG" ||
    fail "SIGTERM: the daemon did not say it leaves the pipeline running: $(tail -n 3 "$PIPELINE_LOG")"
  now=$(assert_no_daemon_status "$((i == 0))")
  assert_grown "$prev" "$now" "SIG$sig #$((i + 1)), no daemon"
  prev=$now
  run_daemon "$T/p.toml"
  grep -q 'adopted from pid' "$PIPELINE_LOG" || fail "restart #$((i + 1)) did not adopt: $(tail -n 5 "$PIPELINE_LOG")"
  now=$(status_json)
  jq -e --argjson pid "$PIPELINE_PID" '.daemon == true and .pid == $pid' >/dev/null <<<"$now" ||
    fail "status after restart #$((i + 1)) does not show the new daemon: $now"
  assert_grown "$prev" "$now" "restart #$((i + 1)) after SIG$sig"
  prev=$now
  ok "SIG$sig #$((i + 1)): the pipeline ran on without a daemon, restart adopted it"
done
kill -0 "$PINGER" 2>/dev/null || fail "the pings ended before the last restart: the machine is too slow for this test's timing"
assert_pings_survived 1800 "across 5 restarts"
samples=$(wc -l <"$T/watch.ids")
distinct=$(sort -u "$T/watch.ids" | wc -l)
((distinct == 1)) || fail "the interface's program changed across plain restarts: $(sort -u "$T/watch.ids" | tr '\n' ' ')"
ok "pings: $sent sent, $received received across 4 SIGKILL + 1 SIGTERM, strict alternation"
ok "the interface had its program (the same one) in all $samples samples"

# --- events while no daemon ran -----------------------------------------------------------------------
sleep 0.5 # the daemon has read every event so far
end_daemon KILL
gap=40
read -r sent received < <(ping_chunk "$gap" "$T/gap.txt")
((sent == gap && received == gap)) || fail "without a daemon: $received of $sent pings answered"
run_daemon "$T/p.toml"
sleep 0.5
events=$(grep -c "^Packet: $LAB_IP_CLIENT:0 -> $LAB_VIP:0, protocol: ICMP" "$EVENTS_LOG" || true)
((events == gap)) || fail "$gap pings were sent while no daemon ran, the next one printed $events events: $(head -n 3 "$EVENTS_LOG")"
grep -q "$gap event(s) queued meanwhile delivered" "$PIPELINE_LOG" || fail "the adoption did not report $gap queued events"
ok "$gap metadata events of packets sent while no daemon ran were delivered after adoption"

# --- one daemon per name; a zombie holds nothing --------------------------------------------------------
end_daemon KILL
# The parent of this daemon execs into sleep, which never reaps: the daemon becomes a zombie when killed.
bash -c '"$@" >/dev/null 2>"'"$T"'/zombie.log" & echo $! >"'"$T"'/zombie.pid"; exec sleep 120' _ \
  "$XDPP" run "$T/p.toml" --netns "$LAB_NS_LB" --interface "$LAB_IF_LB" --mode native &
reaper=$!
echo "$reaper" >>"$T/bg"
for _ in $(seq 200); do
  zpid=$(cat "$T/zombie.pid" 2>/dev/null || true)
  [[ -n $zpid && $(jq -r .pid "/run/xdp-pipeline/$PIPELINE_NAME.json" 2>/dev/null) == "$zpid" ]] && break
  sleep 0.05
done
[[ $(jq -r .pid "/run/xdp-pipeline/$PIPELINE_NAME.json") == "$zpid" ]] || fail "the daemon under a non-reaping parent did not start: $(cat "$T/zombie.log")"
kill -KILL "$zpid"
for _ in $(seq 50); do [[ $(awk '/^State:/ {print $2}' "/proc/$zpid/status" 2>/dev/null) == Z ]] && break; sleep 0.05; done
[[ $(awk '/^State:/ {print $2}' "/proc/$zpid/status") == Z ]] || fail "pid $zpid is not a zombie"
run_daemon "$T/p.toml"
grep -q "adopted from pid $zpid" "$PIPELINE_LOG" || fail "the run after a zombie did not adopt: $(tail -n 5 "$PIPELINE_LOG")"
ok "a run while the previous daemon (pid $zpid) is a zombie adopts the pipeline"
kill "$reaper" 2>/dev/null || true

before=$(status_json)
expect_exit1 "a second run while a daemon lives" \
  "$XDPP" run "$T/p.toml" --netns "$LAB_NS_LB" --interface "$LAB_IF_LB" --mode native
second=$OUT
grep -q "is already running (daemon pid $PIPELINE_PID)" <<<"$second" || fail "the second run did not say why: $second"
! grep -qi 'load\|attach' <<<"$second" || fail "the second run loaded or attached something: $second"
[[ -S /run/xdp-pipeline/$PIPELINE_NAME.sock && -f /run/xdp-pipeline/$PIPELINE_NAME.json ]] ||
  fail "the second run removed the live daemon's control socket or state file"
after=$(status_json)
[[ $(prog_ids "$before") == "$(prog_ids "$after")" ]] || fail "the second run changed the programs: $(prog_ids "$before") -> $(prog_ids "$after")"
ctl_ok set ping-lb "backends=[{ ip = \"$LAB_IP_BE1\", mac = \"$LAB_MAC_BE1\" }, { ip = \"$LAB_IP_BE2\", mac = \"$LAB_MAC_BE2\" }]"
read -r sent received < <(ping_chunk 10 "$T/after-second.txt")
((sent == 10 && received == 10)) || fail "after the refused second run: $received of $sent pings answered"
ok "a second run while the daemon lives is refused before loading anything: $(head -n 1 <<<"$second")"

# --- a swap after adoption shares the running chain's packet context ------------------------------------
# The daemon adopted the chain from its pins; a program it loads now must use the context map the running
# stages use (pinned as dispatcher/packet-context), or it would read lines nobody writes.
context_id=$(bpftool -j map show pinned "/sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME/dispatcher/packet-context" | jq .id)
[[ $context_id =~ ^[0-9]+$ ]] || fail "no packet context pinned under dispatcher/: $context_id"
uses_context() { bpftool -j prog show id "$1" | jq -e --argjson m "$context_id" '.map_ids | index($m) != null' >/dev/null; }
before=$(status_json)
parse_id=$(jq '.stages[] | select(.name == "parse") | .prog_id' <<<"$before")
uses_context "$parse_id" || fail "the adopted parse (prog $parse_id) does not use the pinned packet context $context_id"
ctl_ok swap ping-lb
after=$(status_json)
lb_id=$(jq '.stages[] | select(.name == "ping-lb") | .prog_id' <<<"$after")
[[ $lb_id != "$(jq '.stages[] | select(.name == "ping-lb") | .prog_id' <<<"$before")" ]] || fail "the swap did not load a new ping-lb"
uses_context "$lb_id" || fail "ping-lb swapped in after adoption (prog $lb_id) does not use the packet context $context_id"
read -r sent received < <(ping_chunk 10 "$T/after-swap.txt")
((sent == 10 && received == 10)) || fail "after the swap: $received of $sent pings answered"
assert_alternating "$T/after-swap.txt" "after the swap"
ok "a swap after adoption shares the running chain's packet context (map $context_id): pings answered, alternating"

# --- detach --------------------------------------------------------------------------------------------
expect_exit1 "detach while a daemon runs" "$XDPP" detach "$PIPELINE_NAME"
grep -q "has a daemon" <<<"$OUT" || fail "detach while a daemon runs does not say why: $OUT"
end_daemon TERM
# A record that cannot be read (a stage's settings not a string) is refused by the next run, naming the key,
# and what runs is left as it is.
state=/run/xdp-pipeline/$PIPELINE_NAME.json
cp "$state" "$T/state.json"
jq '.stages[0].settings = 7' "$T/state.json" >"$state"
xdp_before=$(ip -n "$LAB_NS_LB" -j link show dev "$LAB_IF_LB" | jq -r '.[0].xdp.prog.id // 0')
expect_exit1 "a run over a malformed record" \
  "$XDPP" run "$T/p.toml" --netns "$LAB_NS_LB" --interface "$LAB_IF_LB" --mode native
grep -q "its state file cannot be read: stages\[0\]: key 'settings' must be a string; to start it afresh: xdp-pipeline detach" \
  <<<"$OUT" || fail "a run over a malformed record does not name the key: $OUT"
xdp_after=$(ip -n "$LAB_NS_LB" -j link show dev "$LAB_IF_LB" | jq -r '.[0].xdp.prog.id // 0')
((xdp_after == xdp_before && xdp_after != 0)) || fail "the refused run changed what runs: program $xdp_before -> $xdp_after"
[[ -e /sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME/links ]] || fail "the refused run removed the pinned links"
cp "$T/state.json" "$state"
ok "a run over a malformed record is refused, naming the key, and leaves the pipeline running: $(head -n 1 <<<"$OUT")"
out=$("$XDPP" detach "$PIPELINE_NAME" 2>&1) || fail "detach failed: $out"
ok "detach: $out"
xdp=$(ip -n "$LAB_NS_LB" -j link show dev "$LAB_IF_LB" | jq -r '.[0].xdp.prog.id // 0')
((xdp == 0)) || fail "after detach the interface still runs program $xdp"
[[ ! -e /sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME ]] || fail "after detach, pins remain: $(find "/sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME")"
left=$(compgen -G "/run/xdp-pipeline/$PIPELINE_NAME.*" || true)
[[ -z $left ]] || fail "after detach, files remain in /run/xdp-pipeline: $left"
raw=$(lab_exec client ping -n -c 3 -i 0.2 -W 1 "$LAB_VIP" 2>&1) || true
grep -q "from $LAB_VIP:" <<<"$raw" || fail "after detach the VIP should answer itself (no balancer): $raw"
expect_exit1 "a second detach" "$XDPP" detach "$PIPELINE_NAME"
grep -q "nothing to detach" <<<"$OUT" || fail "a second detach does not say there is nothing to detach: $OUT"
ok "second detach: $OUT"
