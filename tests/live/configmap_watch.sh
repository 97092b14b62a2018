#!/usr/bin/env bash
# Live configuration and health (issue 16), end to end in a lab:
#   - the pipeline file lives in a directory laid out exactly as kubelet lays out a ConfigMap volume
#     (p.toml -> ..data/p.toml, ..data -> ..TIMESTAMP/) and `run --watch` follows kubelet's update sequence
#     (a new timestamped directory, a ..data_tmp symlink renamed over ..data, the old directory removed):
#     a good update is applied within 2 s (TCP 8080 passes and 8081 is dropped on real traffic), a broken
#     one is refused, logged and counted while the daemon stays alive with the old behaviour, then a good
#     one is applied again;
#   - /readyz answers 503 before the pipeline is attached and 200 after, /healthz 200, and the metrics page
#     has xdp_pipeline_up 1, xdp_pipeline_config_reloads_total{result} and xdp_pipeline_build_info;
#   - a real Prometheus (Debian's package, started here on loopback inside the lb's namespace, its own
#     storage directory) scrapes the daemon; its HTTP API shows the per-stage series with their labels,
#     the counter rose by exactly the pings sent, rate() over the traffic matches them, and
#     xdp_pipeline_up is 1.
# Every process this test starts dies with it (setpriv --pdeathsig), also when it is killed; the trap stops
# them on any other exit. Ports are free ones picked at run time.
# Usage (root): configmap_watch.sh XDP_PIPELINE_EXECUTABLE
XDPP=$(readlink -f "${1:?usage: $0 XDP_PIPELINE_EXECUTABLE}")
source "$(dirname "$(readlink -f "$0")")/common.sh"
live_require curl /usr/bin/python3
command -v prometheus >/dev/null || skip "Debian's prometheus package is not installed (scripts/install-deps.sh installs it)"

live_setup lvcm
PROM_PID=
stop_prometheus() {
  if [[ -n $PROM_PID ]]; then
    kill "$PROM_PID" 2>/dev/null
    wait "$PROM_PID" 2>/dev/null || true # its exit status on SIGTERM
    PROM_PID=
  fi
}
trap 'rc=$?; stop_prometheus; (exit $rc); live_cleanup' EXIT

# A free TCP port on loopback inside the lb's namespace.
free_port() {
  lab_exec lb /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
http_code() { lab_exec lb curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT$1" || true; }
metrics() { lab_exec lb curl -sf --max-time 5 "http://127.0.0.1:$PORT/metrics" || fail "curl of the metrics page failed"; }
metric() { awk -v want="$1" '$1 == want { print $2; found = 1 } END { if (!found) print "missing" }' <<<"$2"; }

# --- the ConfigMap volume, as kubelet's atomic writer makes it ---------------------------------------
CM=$T/configmap
mkdir -p "$CM"
# cm_write DROP_TCP_PORT [broken]: a pipeline file dropping TCP DROP_TCP_PORT, written as kubelet does:
# a new ..TIMESTAMP directory, ..data_tmp -> it, renamed over ..data, then the old directory removed.
cm_write() {
  local port=$1 broken=${2:-} dir old
  dir=..$(date -u +%Y_%m_%d_%H_%M_%S.%N)
  mkdir "$CM/$dir"
  write_pipeline "$CM/$dir/p.toml" "parse no-8080 ping-lb" "metrics = \"127.0.0.1:$PORT\"
watch = true"
  sed -i "s/^drop_tcp_dst = \[8080\]/drop_tcp_dst = [$port]/" "$CM/$dir/p.toml"
  [[ -z $broken ]] || sed -i 's/^drop_tcp_dst = .*/drop_tcp_dst = [8080, "9100-9000"]/' "$CM/$dir/p.toml"
  chmod 0644 "$CM/$dir/p.toml"
  old=$(readlink "$CM/..data" 2>/dev/null || true)
  ln -s "$dir" "$CM/..data_tmp"
  mv -T "$CM/..data_tmp" "$CM/..data"
  [[ -e $CM/p.toml || -L $CM/p.toml ]] || ln -s ..data/p.toml "$CM/p.toml"
  [[ -z $old ]] || rm -rf "${CM:?}/$old"
}
cm_write 8080
[[ $(readlink "$CM/p.toml") == ..data/p.toml ]] || fail "the ConfigMap layout is wrong"

# --- /readyz before and after attach -----------------------------------------------------------------
PIPELINE_LOG=$T/run.log
setpriv --pdeathsig INT "$XDPP" run "$CM/p.toml" --netns "$LAB_NS_LB" --metrics-netns pipeline --interface "$LAB_IF_LB" \
  --mode native >"$T/events.log" 2>"$PIPELINE_LOG" &
PIPELINE_PID=$!
# Poll /readyz as fast as curl goes until it says 200: the loading and verifying before attach takes long
# enough to be seen.
: >"$T/readyz.txt"
for _ in $(seq 400); do
  code=$(http_code /readyz)
  echo "$code" >>"$T/readyz.txt"
  [[ $code == 200 ]] && break
  kill -0 "$PIPELINE_PID" 2>/dev/null || fail "run exited early"
done
[[ $(tail -n 1 "$T/readyz.txt") == 200 ]] || fail "/readyz never said 200: $(sort "$T/readyz.txt" | uniq -c | tr '\n' ' ')"
grep -qx 503 "$T/readyz.txt" || fail "/readyz never said 503 before the pipeline was attached: $(uniq -c "$T/readyz.txt" | tr '\n' ' ')"
before_attach=$(grep -c -x 503 "$T/readyz.txt")
[[ -f /run/xdp-pipeline/$PIPELINE_NAME.json ]] || sleep 0.5
grep -q "attached to $LAB_IF_LB" "$PIPELINE_LOG" || fail "200 before the pipeline said it was attached"
[[ $(http_code /healthz) == 200 ]] || fail "/healthz is not 200"
[[ $(http_code /nothing) == 404 ]] || fail "an unknown path is not 404"
ok "/readyz: 503 ($before_attach times) while loading, then 200 once attached; /healthz 200"
grep -q "watching $CM/p.toml" "$PIPELINE_LOG" || fail "run does not say it watches the file (watch = true)"

page=$(metrics)
[[ $(metric "xdp_pipeline_up{pipeline=\"$PIPELINE_NAME\"}" "$page") == 1 ]] || fail "xdp_pipeline_up is not 1: $(grep up "$page")"
version=$("$XDPP" --version | awk '{print $2}')
grep -q "^xdp_pipeline_build_info{pipeline=\"$PIPELINE_NAME\",version=\"$version\"} 1" <<<"$page" ||
  fail "no build info: $(grep build_info <<<"$page")"
[[ $(metric "xdp_pipeline_config_reloads_total{pipeline=\"$PIPELINE_NAME\",result=\"success\"}" "$page") == 0 &&
  $(metric "xdp_pipeline_config_reloads_total{pipeline=\"$PIPELINE_NAME\",result=\"failure\"}" "$page") == 0 ]] ||
  fail "reload counters are not 0 at start: $(grep reloads "$page")"
ok "metrics: xdp_pipeline_up 1, xdp_pipeline_build_info, xdp_pipeline_config_reloads_total{result} 0"

# --- traffic before any update ------------------------------------------------------------------------
N=6
refused=$(tcp_syns "$N" 8080)
((refused == 0)) || fail "8080 should be dropped at start: $refused of $N SYNs reached the lb's kernel"
refused=$(tcp_syns "$N" 8081)
((refused == N)) || fail "8081 should pass at start: $refused of $N"
ok "at start: TCP 8080 dropped, 8081 passes"

# passes_within PORT SECONDS: SYNs to PORT every ~0.1 s until one is refused (reached the kernel); prints
# the milliseconds it took, or fails.
passes_within() {
  local port=$1 limit_ms=$(($2 * 1000)) start now
  start=$(date +%s%N)
  while :; do
    if (($(tcp_syns 1 "$port") == 1)); then
      now=$(date +%s%N)
      echo $(((now - start) / 1000000))
      return 0
    fi
    now=$(date +%s%N)
    (((now - start) / 1000000 > limit_ms)) && return 1
    sleep 0.05
  done
}

# --- a good update: 8081 dropped instead of 8080 --------------------------------------------------------
cm_write 8081
ms=$(passes_within 8080 2) || fail "the update was not applied within 2 s (8080 still dropped): $(tail -n 5 "$PIPELINE_LOG")"
refused=$(tcp_syns "$N" 8081)
((refused == 0)) || fail "after the update 8081 should be dropped: $refused of $N passed"
grep -q "p.toml changed: reloaded" "$PIPELINE_LOG" || fail "the log does not say the file changed and was reloaded"
ok "kubelet update (..data_tmp renamed over ..data): applied in $ms ms; 8080 passes, 8081 dropped"

# --- a broken update: refused, counted, nothing changes -------------------------------------------------
cm_write 8080 broken
for _ in $(seq 30); do
  grep -q "reload refused" "$PIPELINE_LOG" && break
  sleep 0.1
done
grep -q "p.toml changed: reload refused, nothing changed: .*p.toml:[0-9]*:[0-9]*: .*drop_tcp_dst" "$PIPELINE_LOG" ||
  fail "the broken update was not refused with file:line:column and the key: $(tail -n 3 "$PIPELINE_LOG")"
kill -0 "$PIPELINE_PID" 2>/dev/null || fail "the daemon died on a broken update"
refused=$(tcp_syns "$N" 8080)
((refused == N)) || fail "after a refused update 8080 should still pass: $refused of $N"
refused=$(tcp_syns "$N" 8081)
((refused == 0)) || fail "after a refused update 8081 should still be dropped: $refused of $N passed"
page=$(metrics)
[[ $(metric "xdp_pipeline_config_reloads_total{pipeline=\"$PIPELINE_NAME\",result=\"failure\"}" "$page") == 1 &&
  $(metric "xdp_pipeline_config_reloads_total{pipeline=\"$PIPELINE_NAME\",result=\"success\"}" "$page") == 1 ]] ||
  fail "reload counters after one good and one broken update: $(grep reloads_total <<<"$page")"
[[ $(http_code /readyz) == 200 && $(http_code /healthz) == 200 ]] || fail "probes not 200 after a refused update"
ok "broken update refused (logged with its position, counted result=\"failure\"), daemon alive, 8080 passes, 8081 dropped"

# --- a good one again -----------------------------------------------------------------------------------
cm_write 8080
ms=$(passes_within 8081 2) || fail "the second good update was not applied within 2 s"
refused=$(tcp_syns "$N" 8080)
((refused == 0)) || fail "after the second update 8080 should be dropped: $refused of $N passed"
page=$(metrics)
[[ $(metric "xdp_pipeline_config_reloads_total{pipeline=\"$PIPELINE_NAME\",result=\"success\"}" "$page") == 2 ]] ||
  fail "reloads success should be 2: $(grep reloads_total <<<"$page")"
ok "then a good update: applied in $ms ms (8080 dropped, 8081 passes), reloads{success} 2, {failure} 1"

# --- a real Prometheus scrapes the daemon -------------------------------------------------------------------
PPORT=$(free_port)
while [[ $PPORT == "$PORT" ]]; do PPORT=$(free_port); done
mkdir -p "$T/prom"
cat >"$T/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: xdp-pipeline
    static_configs:
      - targets: ["127.0.0.1:$PORT"]
YML
# Started directly (not through a shell function, whose subshell would be the pid killed), so that
# PROM_PID is prometheus itself.
setpriv --pdeathsig TERM ip netns exec "$LAB_NS_LB" prometheus --config.file="$T/prometheus.yml" \
  --storage.tsdb.path="$T/prom" --web.listen-address="127.0.0.1:$PPORT" --log.level=warn >"$T/prometheus.log" 2>&1 &
PROM_PID=$!
promq() { # promq QUERY [TIME]: the API's result array
  local args=(--data-urlencode "query=$1")
  [[ -z ${2:-} ]] || args+=(--data-urlencode "time=$2")
  lab_exec lb curl -sf --max-time 5 "http://127.0.0.1:$PPORT/api/v1/query" "${args[@]}" | jq -c '.data.result'
}
for _ in $(seq 150); do
  up=$(promq "up{job=\"xdp-pipeline\"}" 2>/dev/null | jq -r '.[0].value[1] // empty' 2>/dev/null || true)
  [[ $up == 1 ]] && break
  kill -0 "$PROM_PID" 2>/dev/null || fail "prometheus exited: $(tail -n 5 "$T/prometheus.log")"
  sleep 0.2
done
[[ $up == 1 ]] || fail "prometheus never scraped the daemon: $(tail -n 5 "$T/prometheus.log")"
ok "prometheus $(prometheus --version 2>&1 | head -n 1 | awk '{print $3}') scrapes 127.0.0.1:$PORT every second"

sleep 10 # samples before the traffic
t0=$(date +%s.%N)
NPING=150
: >"$T/sources.txt"
read -r s r < <(ping_chunk "$NPING" "$T/sources.txt")
((s == NPING && r == NPING)) || fail "$r of $s pings answered"
sleep 4 # samples after it
t1=$(date +%s.%N)
# The rate window: from 8 s before the traffic to t1 (4 s after it): long against the 1 s scrape interval,
# so that Prometheus' extrapolation to the window's edges stays within a few per cent.
window=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", b - a + 8.999 }')

series=$(promq "xdp_pipeline_stage_packets_total{pipeline=\"$PIPELINE_NAME\"}")
jq -e '[.[].metric | "\(.stage)/\(.plugin // "")"] | sort == ["(pipeline)/", "no-8080/port_filter", "parse/parse", "ping-lb/icmp_lb"]' \
  >/dev/null <<<"$series" || fail "per-stage series and labels in prometheus: $series"
jq -e '[.[].metric.job] | unique == ["xdp-pipeline"]' >/dev/null <<<"$series" || fail "series without the job label: $series"
tx_series=$(promq "xdp_pipeline_stage_verdicts_total{pipeline=\"$PIPELINE_NAME\",stage=\"ping-lb\",verdict=\"tx\"}")
[[ $(jq length <<<"$tx_series") == 1 ]] || fail "no ping-lb tx series: $tx_series"
ok "prometheus has the per-stage series {pipeline, stage, plugin[, verdict]}: (pipeline), parse, no-8080, ping-lb"

# The counter rose by exactly the pings sent (samples taken before and after the traffic).
value_at() { promq "$1" "$2" | jq -r '.[0].value[1]'; }
q="xdp_pipeline_stage_verdicts_total{pipeline=\"$PIPELINE_NAME\",stage=\"ping-lb\",verdict=\"tx\"}"
delta=$(($(value_at "$q" "$t1") - $(value_at "$q" "$t0")))
((delta == NPING)) || fail "prometheus: ping-lb tx rose by $delta between the samples around the traffic, $NPING pings sent"
qd="xdp_pipeline_stage_packets_total{pipeline=\"$PIPELINE_NAME\",stage=\"(pipeline)\"}"
ddelta=$(($(value_at "$qd" "$t1") - $(value_at "$qd" "$t0")))
((ddelta == NPING)) || fail "prometheus: the pipeline's packets rose by $ddelta, $NPING pings sent (nothing else was sent)"
# rate() over the window holding the traffic (with quiet seconds around it), times the window: the pings
# sent, within 15 % (Prometheus extrapolates from the samples, one a second, to the window's edges).
rate=$(promq "rate(${q}[${window}s])" "$t1" | jq -r '.[0].value[1]')
awk -v r="$rate" -v w="$window" -v n="$NPING" 'BEGIN { x = r * w; exit !(x > n * 0.85 && x < n * 1.15) }' ||
  fail "prometheus: rate() $rate/s over ${window}s = $(awk -v r="$rate" -v w="$window" 'BEGIN{print r*w}') packets, $NPING sent"
upv=$(value_at "xdp_pipeline_up{pipeline=\"$PIPELINE_NAME\"}" "$t1")
[[ $upv == 1 ]] || fail "prometheus: xdp_pipeline_up is $upv"
reloads=$(value_at "xdp_pipeline_config_reloads_total{pipeline=\"$PIPELINE_NAME\",result=\"failure\"}" "$t1")
[[ $reloads == 1 ]] || fail "prometheus: reloads{failure} is $reloads"
ok "prometheus: ping-lb tx and the pipeline's packets rose by $delta = $NPING pings; rate()x${window}s = $(awk -v r="$rate" -v w="$window" 'BEGIN{printf "%.1f", r*w}'); xdp_pipeline_up 1"
stop_prometheus

stop_pipeline
((PIPELINE_RC == 0)) || fail "run exited $PIPELINE_RC on SIGINT"
echo "PASS"
