#!/usr/bin/env bash
# Jumbo frames end to end: the lab (scripts/lab.sh) at MTU 9000 on every link, xdp-pipeline attached in
# native mode to the load balancer's veth (only multi-buffer aware programs can attach natively there).
#   - 8 pings of 8000 bytes to the VIP are answered alternately by the two backends; each backend's capture
#     holds 4 echo requests of 8042 bytes with a valid IPv4 header checksum and a valid ICMP checksum, and
#     each request's 8000 payload bytes are the ones the client sent (compared with the client's capture);
#   - the metadata stage reports len = 8042 for each ping (the whole frame, not the first buffer);
#   - TCP SYNs carrying 8000 bytes to the dropped port 8080 (hping3) are dropped: the listener sees none and
#     port_filter's drop counter counts every one;
#   - 64 KiB sent to 8081 arrive intact (sha256 of what the listener received = of what was sent);
#   - SIGINT: exit status 0, nothing attached. The lab is always removed.
# Usage (as root): tests/e2e/lab_jumbo.sh PATH/TO/xdp-pipeline. Exit: 0 passed, 1 failed, 77 skipped.
set -uo pipefail

HERE=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
LAB_SH=$(readlink -f "$HERE/../../scripts/lab.sh")
XDPP=$(readlink -f "${1:-}") || { echo "usage: $0 PATH/TO/xdp-pipeline" >&2; exit 2; }
HARNESS_ON_FAIL=go # report every check; the summary says how many failed
# shellcheck source=scripts/lib/harness.sh
source "$HERE/../../scripts/lib/harness.sh"
[[ -x $XDPP ]] || fatal "$XDPP is not an executable"
require_tools ip bridge clang ping socat tcpdump tshark hping3 jq sha256sum head timeout
require_lab_host

# shellcheck source=scripts/lab.sh
source "$LAB_SH"
export LAB_QUIET=1 XDPP_LAB_MTU=9000
LAB=jumbo-$$
PIPELINE_NAME=$LAB-p
TMP=$(mktemp -d /tmp/lab-jumbo.XXXXXX)

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  pipeline_stop INT 5
  stop_bg
  timeout 60 "$BASH" "$LAB_SH" down "$LAB" >/dev/null 2>&1
  pipeline_remove "$PIPELINE_NAME"
  if [[ -n ${LAB_ID:-} ]] && compgen -G "/run/netns/$LAB_ID-*" >/dev/null; then fail "namespaces of $LAB_ID left behind"; fi
  rm -rf -- "$TMP"
  harness_exit "$rc"
}
harness_trap cleanup

lab_up "$LAB" >"$TMP/lab.log" 2>&1 || fatal "lab_up $LAB at MTU 9000: $(cat "$TMP/lab.log")"
mtus=$(for r in client lb be1 be2; do v=LAB_IF_${r^^}; ip -n "$(lab_ns "$r")" -o link show dev "${!v}" | sed -n 's/.* mtu \([0-9]*\) .*/\1/p'; done | sort -u)
expect "lab $LAB: every host's link has MTU 9000 (got: $mtus)" [ "$mtus" = 9000 ]

pipeline_toml 'parse flows+format="json" no-8080 ping-lb' >"$TMP/$PIPELINE_NAME.toml"

for port in 8080 8081; do
  start_bg "$TMP/socat-$port.log" ip netns exec "$LAB_NS_LB" timeout 300 socat -d -d -u \
    "TCP-LISTEN:$port,bind=$LAB_VIP,reuseaddr" "CREATE:$TMP/received-$port"
done
for port in 8080 8081; do
  wait_listening "$port" || fatal "socat does not listen on $port"
done

declare -A CAP
for role in client be1 be2; do
  capture_start "$role" "$TMP/$role.pcap"
  CAP[$role]=$CAP_PID
done

pipeline_start "$TMP/run.out" "$TMP/run.err" "$TMP/$PIPELINE_NAME.toml"
pass "xdp-pipeline run attached to $LAB_IF_LB (MTU 9000): $(grep -o "attached to .*mode" "$TMP/run.err")"
expect "ip link shows the program in native mode ('xdp', not 'xdpgeneric') on $LAB_IF_LB at mtu 9000" \
  bash -c "ip -n '$LAB_NS_LB' link show dev '$LAB_IF_LB' | head -1 | grep -q ' mtu 9000 xdp '"

# 8000-byte pings: 8028-byte datagrams, 8042-byte frames, one buffer of about 3.5 KB and fragments.
lab_exec client timeout 40 ping -n -c 8 -i 0.2 -W 2 -s 8000 "$LAB_VIP" >"$TMP/ping.txt" 2>&1
grep '^8008 bytes from ' "$TMP/ping.txt" >"$TMP/replies.txt" || true
ping_replies "$TMP/replies.txt"
expect_alternating 8 "8 pings of 8000 bytes to the VIP, replies of 8008 bytes" || show "$TMP/ping.txt"

# TCP SYNs carrying 8000 bytes each to the dropped port.
lab_exec client timeout 20 hping3 -q -S -p 8080 -s 40000 -k -d 8000 -c 3 -i u200000 "$LAB_VIP" >"$TMP/hping.txt" 2>&1
# 64 KiB to 8081.
head -c 65536 /dev/urandom >"$TMP/sent-8081"
lab_exec client timeout 20 socat -u "OPEN:$TMP/sent-8081" "TCP:$LAB_VIP:8081" 2>"$TMP/send-8081.err" ||
  fail "sending 64 KiB to 8081 failed: $(cat "$TMP/send-8081.err")"
sleep 0.5
pipeline_status_json >"$TMP/status.json" 2>&1

for role in client be1 be2; do
  why=$(capture_stop "${CAP[$role]}" "$TMP/$role.pcap") || fail "$why"
done
pipeline_stop INT
expect "SIGINT: xdp-pipeline exited with status $PIPELINE_RC (0 expected)" [ "$PIPELINE_RC" = 0 ]
expect "SIGINT: no XDP program left on $LAB_IF_LB" bash -c "! ip -n '$LAB_NS_LB' link show dev '$LAB_IF_LB' | grep -q prog/xdp"

# Each backend: 4 echo requests of 8042 bytes, IPv4 and ICMP checksums valid (checksum status 1 = good in
# tshark's fields), to its own address and MAC.
tsh() { tshark -r "$1" -o ip.check_checksum:TRUE -Y "icmp.type == 8" -T fields -E separator=, "${@:2}" 2>/dev/null; }
tsh "$TMP/client.pcap" -e icmp.seq -e data.data | tr , ' ' | sort >"$TMP/client.payloads"
for b in be1 be2; do
  ipv=LAB_IP_${b^^} macv=LAB_MAC_${b^^}
  tsh "$TMP/$b.pcap" -e frame.len -e ip.dst -e eth.dst -e eth.src -e ip.checksum.status -e icmp.checksum_bad -e icmp.checksum.status >"$TMP/$b.fields"
  good=$(awk -F, -v ip="${!ipv}" -v mac="${!macv}" -v lb="$LAB_MAC_LB" \
    '$1 == 8042 && $2 == ip && tolower($3) == tolower(mac) && tolower($4) == tolower(lb) && $5 == 1 && $6 == "" && $7 == 1 { n++ } END { print n + 0 }' "$TMP/$b.fields")
  n=$(grep -c . "$TMP/$b.fields" || true)
  if [[ $n == 4 && $good == 4 ]]; then
    pass "$b's capture: 4 echo requests of 8042 bytes to ${!ipv} / ${!macv} from the lb's MAC, IPv4 header checksum valid (tshark), ICMP checksum valid"
  else
    fail "$b's capture: expected 4 well-formed 8042-byte echo requests; $n seen, $good well-formed:"
    show "$TMP/$b.fields"
  fi
  tsh "$TMP/$b.pcap" -e icmp.seq -e data.data | tr , ' ' | sort >"$TMP/$b.payloads"
  # tshark shows ping's leading timestamp apart (icmp.data_time): data.data is the rest, 7984-7992 bytes.
  intact=$(join "$TMP/client.payloads" "$TMP/$b.payloads" | awk '$2 == $3 && length($2) >= 2 * 7984 { n++ } END { print n + 0 }')
  if [[ $intact == 4 ]]; then
    pass "$b's capture: the payload of each request is the one the client sent, byte for byte (4 of 4)"
  else
    fail "$b's capture: $intact of 4 requests carry the payload the client sent (client: $(wc -l <"$TMP/client.payloads") requests, $b: $(wc -l <"$TMP/$b.payloads"))"
    awk '{ print "      | seq " $1 ": " length($2) / 2 " payload bytes" }' "$TMP/$b.payloads"
  fi
done

n_len=$(grep -c '"len":8042' "$TMP/run.out" || true)
n_icmp=$(grep '"protocol":"ICMP"' "$TMP/run.out" | grep -c '"len":8042' || true)
expect "metadata: the 8 pings reported with len 8042, the whole frame (got $n_icmp)" [ "$n_icmp" = 8 ]

syns=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$TMP/hping.txt")
drop=$(counter "$(cat "$TMP/status.json")" no-8080 drop 2>/dev/null)
expect "TCP SYNs with 8000 bytes to 8080: $syns sent, port_filter dropped $drop" [ "${syns:-0}" -ge 3 -a "$drop" = "$syns" ]
expect "TCP to 8080: the listener received nothing" [ ! -s "$TMP/received-8080" ]
if [[ $(sha256sum <"$TMP/sent-8081") == "$(sha256sum <"$TMP/received-8081" 2>/dev/null)" ]]; then
  pass "64 KiB to 8081 delivered intact (sha256 $(sha256sum <"$TMP/sent-8081" | cut -c1-16)...)"
else
  fail "64 KiB to 8081: received $(stat -c %s "$TMP/received-8081" 2>/dev/null || echo 0) bytes, not the ones sent"
fi
