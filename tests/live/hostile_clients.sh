#!/usr/bin/env bash
# Slow and stalled clients beside live requests and live traffic (issue 13): while 14 clients hold the
# control socket idle, 3 send a request one byte a second and 6 hold the metrics port idle (more than the
# HTTP server's threads), 3000 pings go through a pipeline whose flows stage emits one event per packet.
#   - every `set` beside them answers within 2 s, every scrape within 2 s;
#   - not one event is lost: events printed == packets that reached flows, events_lost == 0;
#   - SIGINT then stops the daemon within 3 s, cleanly.
# Usage (root): hostile_clients.sh XDP_PIPELINE_EXECUTABLE
XDPP=$(readlink -f "${1:?usage: $0 XDP_PIPELINE_EXECUTABLE}")
source "$(dirname "$(readlink -f "$0")")/common.sh"
live_require curl socat nc

live_setup lvhostile
PORT=$((20000 + ($$ * 7) % 20000))
# flows before ping-lb: every ping to the VIP passes it (and is then balanced by ping-lb).
write_pipeline "$T/p.toml" "parse flows no-8080 ping-lb" "metrics = \"127.0.0.1:$PORT\""
start_pipeline "$T/p.toml"
SOCK=/run/xdp-pipeline/$PIPELINE_NAME.sock
ok "pipeline $PIPELINE_NAME running in $LAB_NS_LB, metrics at 127.0.0.1:$PORT in the host's namespace"

# Stallers, each in a loop (the daemon closes them at its deadline; they come right back).
for i in $(seq 14); do
  (while :; do sleep 30 | socat - "UNIX-CONNECT:$SOCK" >/dev/null 2>&1; done) &
  echo $! >>"$T/bg"
done
for i in $(seq 3); do
  (while :; do
    for c in '{' '"' 'o' 'p' '"' ':'; do printf '%s' "$c"; sleep 1; done | socat - "UNIX-CONNECT:$SOCK" >/dev/null 2>&1
  done) &
  echo $! >>"$T/bg"
done
for i in $(seq 6); do
  (while :; do sleep 30 | nc 127.0.0.1 "$PORT" >/dev/null 2>&1; done) &
  echo $! >>"$T/bg"
done
sleep 1

NPING=3000
lab_exec client ping -n -q -c "$NPING" -i 0.002 -W 1 "$LAB_VIP" >"$T/ping.txt" 2>&1 &
ping_pid=$!
echo $ping_pid >>"$T/bg"

slowest_set=0 slowest_scrape=0
for round in $(seq 5); do
  t0=$(date +%s%N)
  "$XDPP" set no-8080 "drop_tcp_dst=[$((8080 + round))]" -p "$PIPELINE_NAME" >/dev/null 2>"$T/set.err" ||
    fail "set failed beside stalled clients: $(cat "$T/set.err")"
  ms=$((($(date +%s%N) - t0) / 1000000))
  ((ms > slowest_set)) && slowest_set=$ms
  t0=$(date +%s%N)
  curl -sf --max-time 10 "http://127.0.0.1:$PORT/metrics" >"$T/metrics.txt" ||
    fail "scrape failed beside idle HTTP connections"
  ms=$((($(date +%s%N) - t0) / 1000000))
  ((ms > slowest_scrape)) && slowest_scrape=$ms
  sleep 0.5
done
((slowest_set < 2000)) || fail "a set beside 17 stalled clients took $slowest_set ms"
((slowest_scrape < 2000)) || fail "a scrape beside 6 idle HTTP connections took $slowest_scrape ms"
ok "5 sets (slowest $slowest_set ms) and 5 scrapes (slowest $slowest_scrape ms) beside 17 stalled control clients and 6 idle HTTP connections"

wait "$ping_pid" || true
sleep 0.5 # events reach run's stdout within its 100 ms poll
st=$(status_json)
seen=$(counter "$st" flows packets)
lost=$(counter "$st" flows events_lost)
events=$(wc -l <"$T/events.log")
received=$(sed -n 's/^[0-9]* packets transmitted, \([0-9]*\) received.*/\1/p' "$T/ping.txt")
note "pings: $(grep 'packets transmitted' "$T/ping.txt")"
((seen >= NPING)) || fail "flows saw $seen packets, $NPING pings were sent"
((lost == 0)) || fail "flows lost $lost events while the control plane was stalled"
((events == seen)) || fail "flows printed $events events for $seen packets"
ok "$seen packets through flows, $events events printed, $lost lost; $received of $NPING pings answered"

while read -r p; do kill "$p" 2>/dev/null || true; done <"$T/bg"
: >"$T/bg"
t0=$(date +%s%N)
stop_pipeline
ms=$((($(date +%s%N) - t0) / 1000000))
((PIPELINE_RC == 0)) || fail "run exited $PIPELINE_RC"
((ms < 3000)) || fail "SIGINT took $ms ms"
ok "SIGINT stopped the daemon in $ms ms, exit 0"
echo "PASS"
