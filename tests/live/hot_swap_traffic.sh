#!/usr/bin/env bash
# Hot swap and live reload under real traffic (issue 6), in a lab (scripts/lab.sh):
#   - a steady stream crosses the pipeline while stages are swapped 100 times (ping-lb, no-8080, parse)
#     and a reordered file is reloaded 20 times (flows before / after no-8080): pings every 5 ms from the
#     client to the VIP, balanced by ping-lb, and UDP to port 9999, dropped by no-8080;
#   - every packet is accounted for: ping sent == received, every UDP datagram sent is counted by
#     no-8080's drop counter exactly, and the pipeline's packets == the sum of all verdicts;
#   - the LB alternates strictly between the two backends across all swaps and reloads (its round-robin
#     state survives);
#   - counters keep counting: no counter of any stage or of the pipeline ever goes back;
#   - `set ping-lb backends-=...` drains a backend live, `backends+=` adds it back;
#     `set no-8080 drop_tcp_dst+=8081` drops 8081 at once.
# Usage (root): hot_swap_traffic.sh XDP_PIPELINE_EXECUTABLE
XDPP=$(readlink -f "${1:?usage: $0 XDP_PIPELINE_EXECUTABLE}")
source "$(dirname "$(readlink -f "$0")")/common.sh"
live_require
SWAPS=${LIVE_SWAPS:-100}
RELOADS=${LIVE_RELOADS:-20}

live_setup lvswap
write_pipeline "$T/a.toml" "parse no-8080 ping-lb flows"
write_pipeline "$T/b.toml" "parse flows no-8080 ping-lb"
start_pipeline "$T/a.toml"
ok "pipeline $PIPELINE_NAME running on $LAB_IF_LB"

# Warm-up: the LB answers, and alternates.
read -r sent received < <(ping_chunk 20 "$T/warm.txt")
((sent == 20 && received == 20)) || fail "warm-up: $received of $sent pings answered"
assert_alternating "$T/warm.txt" "warm-up"
start=$(status_json)

# The changes, in the background, while traffic flows in the foreground; the last reply source
# sequence is checked as a whole (one file, chunks appended in order).
: >"$T/sources.txt"
cp "$T/warm.txt" "$T/sources.txt"
(
  set +e
  stages=(ping-lb no-8080 parse)
  for ((i = 0; i < SWAPS; i++)); do
    s=${stages[i % 3]}
    "$XDPP" swap "$s" -p "$PIPELINE_NAME" --json >>"$T/changes.log" 2>&1 || { echo "swap $s #$i failed" >"$T/changes.failed"; break; }
  done
  for ((i = 0; i < RELOADS; i++)); do
    f=$T/b.toml
    ((i % 2)) && f=$T/a.toml
    "$XDPP" reload "$f" -p "$PIPELINE_NAME" --json >>"$T/changes.log" 2>&1 || { echo "reload $f #$i failed" >"$T/changes.failed"; break; }
    sleep 0.05
  done
  touch "$T/changes.done"
) &
changes=$!
echo "$changes" >>"$T/bg"

udp_sent=0 ping_sent=0 ping_received=0 chunks=0 snapshots=0
prev=$start
while [[ ! -e $T/changes.done ]] || ((chunks == 0)); do
  # 100 pings (0.5 s) and 50 UDP datagrams at the same time, then a status snapshot.
  udp_burst 50 9999 &
  udp=$!
  read -r s r < <(ping_chunk 100 "$T/sources.txt")
  wait "$udp" || fail "UDP sender failed"
  udp_sent=$((udp_sent + 50))
  ping_sent=$((ping_sent + s)) ping_received=$((ping_received + r)) chunks=$((chunks + 1))
  ((r == s)) || fail "chunk $chunks: $((s - r)) of $s pings lost during the changes"
  # status is not read while a reload publishes (the state file is rewritten then): only between changes
  # is fine either way; a failed read is retried once.
  now=$("$XDPP" status "$PIPELINE_NAME" --json 2>/dev/null) || { sleep 0.2; now=$(status_json); }
  assert_grown "$prev" "$now" "chunk $chunks"
  prev=$now snapshots=$((snapshots + 1))
  ((chunks < 400)) || fail "the changes did not finish within 400 chunks"
done
wait "$changes" || true
[[ ! -e $T/changes.failed ]] || fail "$(cat "$T/changes.failed"): $(tail -n 3 "$T/changes.log")"
swaps_done=$(grep -c '"swapped stage' "$T/changes.log" || true)
reloads_done=$(grep -c '"reloaded ' "$T/changes.log" || true)
((swaps_done == SWAPS && reloads_done == RELOADS)) ||
  fail "expected $SWAPS swaps and $RELOADS reloads to succeed, saw $swaps_done and $reloads_done"
grep -q 'new chain' "$T/changes.log" || fail "the reloads did not build a new chain: $(tail -n 1 "$T/changes.log")"
ok "$SWAPS swaps and $RELOADS reloads done while $chunks chunks of traffic flowed"
ok "pings: $ping_sent sent, $ping_received received, 0 lost"

assert_alternating "$T/sources.txt" "across $SWAPS swaps and $RELOADS reloads"
ok "LB: $(wc -l <"$T/sources.txt") replies alternate strictly between $LAB_IP_BE1 and $LAB_IP_BE2"

end=$(status_json)
assert_grown "$start" "$end" "start -> end"
udp_dropped=$(($(counter "$end" no-8080 drop) - $(counter "$start" no-8080 drop)))
((udp_dropped == udp_sent)) || fail "UDP to 9999: $udp_sent sent, no-8080 counted $udp_dropped drops"
ok "UDP to 9999: $udp_sent sent, $udp_dropped counted as dropped by no-8080"
tx=$(($(counter "$end" ping-lb tx) - $(counter "$start" ping-lb tx)))
((tx == ping_sent)) || fail "ping-lb tx grew by $tx, $ping_sent pings sent"
ok "ping-lb tx grew by $tx == pings sent"
verdicts_balance "$end" || fail "pipeline packets != sum of all verdicts: $(jq -c . <<<"$end")"
ok "pipeline packets ($(counter "$end" pipeline packets)) == sum of all verdicts"
# The file now running is b.toml or a.toml, whichever the last reload named: the order shows it.
order=$(jq -r '[.stages[].name] | join(" ")' <<<"$end")
[[ $order == "parse no-8080 ping-lb flows" ]] || fail "after an even number of reloads the order is '$order'"

# Drain a backend live, then add it back.
be2="{ ip = \"$LAB_IP_BE2\", mac = \"$LAB_MAC_BE2\" }"
ctl_ok set ping-lb "backends-=$be2"
: >"$T/drained.txt"
read -r s r < <(ping_chunk 40 "$T/drained.txt")
((s == r)) || fail "drained: $((s - r)) of $s pings lost"
others=$(grep -vc "^$LAB_IP_BE1\$" "$T/drained.txt" || true)
((others == 0)) || fail "after draining $LAB_IP_BE2, $others replies still came from elsewhere"
ok "backends-= drained $LAB_IP_BE2: all $r replies from $LAB_IP_BE1"
ctl_ok set ping-lb "backends+=$be2"
: >"$T/back.txt"
read -r s r < <(ping_chunk 40 "$T/back.txt")
((s == r)) || fail "added back: $((s - r)) of $s pings lost"
assert_alternating "$T/back.txt" "after backends+="
ok "backends+= added $LAB_IP_BE2 back: replies alternate again"

# TCP 8081 reaches the kernel (refused with RST), then is dropped from the very next packet on.
refused=$(tcp_syns 5 8081)
((refused == 5)) || fail "before the set: only $refused of 5 connections to 8081 were refused (RST)"
before=$(status_json)
ctl_ok set no-8080 'drop_tcp_dst+=8081'
refused=$(tcp_syns 5 8081)
after=$(status_json)
((refused == 0)) || fail "after drop_tcp_dst+=8081: $refused of 5 SYNs still reached the kernel"
dropped=$(($(counter "$after" no-8080 drop) - $(counter "$before" no-8080 drop)))
((dropped == 5)) || fail "after drop_tcp_dst+=8081: no-8080 counted $dropped drops for 5 SYNs"
ok "drop_tcp_dst+=8081: the 5 SYNs that followed were all dropped and counted"

stop_pipeline
((PIPELINE_RC == 0)) || fail "run exited with status $PIPELINE_RC"
[[ ! -e /sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME && ! -e /run/xdp-pipeline/$PIPELINE_NAME.json &&
  ! -e /run/xdp-pipeline/$PIPELINE_NAME.sock ]] || fail "pins or /run files left after a clean exit"
ok "clean exit: no pins, state or socket left"
echo "PASS"
