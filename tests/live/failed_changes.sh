#!/usr/bin/env bash
# Failed changes change nothing (issue 6), on a running pipeline in a lab:
#   swap with a nonexistent object, with another stage's object, with an object whose map changed shape,
#   with a plugin outside the plugin path, with a world-writable plugin; set with an out-of-range port
#   and with an unknown key; reload of a file with a syntax error; SIGHUP with a broken file.
# Each client exits non-zero with a clear message; afterwards the program ids are the same, the traffic
# behaves as before (pings alternate, UDP 9999 dropped and counted, TCP 8081 refused by the kernel) and
# the counters have kept counting. Then `swap --reset-state` with the shape-changed object succeeds and
# the stage starts with fresh maps (round robin from the first backend; its counters carry over).
# Usage (root): failed_changes.sh XDP_PIPELINE_EXECUTABLE SHAPE_CHANGED_ICMP_LB_OBJECT
XDPP=$(readlink -f "${1:?usage: $0 XDP_PIPELINE_EXECUTABLE SHAPE_CHANGED_OBJECT}")
SHAPE_OBJECT=$(readlink -f "${2:?usage: $0 XDP_PIPELINE_EXECUTABLE SHAPE_CHANGED_OBJECT}")
source "$(dirname "$(readlink -f "$0")")/common.sh"
live_require
[[ -f $SHAPE_OBJECT ]] || fail "no shape-changed object at $SHAPE_OBJECT"
BUILTIN_PLUGINS=$(dirname "$XDPP")/../lib/xdp-pipeline/plugins
BUILTIN_BPF=$(dirname "$XDPP")/../lib/xdp-pipeline/bpf
[[ -f $BUILTIN_PLUGINS/icmp_lb.so && -f $BUILTIN_BPF/port_filter.bpf.o ]] || fail "no built-in plugins/objects next to $XDPP"

live_setup lvfail
# A plugin directory of this pipeline's own (root-owned, 0755), searched before the built-in one; it
# holds a copy of icmp_lb only once the pipeline runs.
mkdir -m 0755 "$T/plugins"
write_pipeline "$T/p.toml" "parse no-8080 ping-lb flows" "plugin_dir = \"$T/plugins\""
start_pipeline "$T/p.toml"
ok "pipeline $PIPELINE_NAME running"

LAST_SOURCES=$T/all-sources.txt
: >"$LAST_SOURCES"
# behaviour: 10 pings alternate (continuing the sequence so far), 10 UDP to 9999 are all dropped and
# counted, 2 TCP connections to 8081 are refused by the kernel (not dropped); counters only grew.
CHECKS=0
behaves_as_before() {
  local what=$1 before after s r refused
  before=$(status_json)
  read -r s r < <(ping_chunk 10 "$LAST_SOURCES")
  ((s == 10 && r == 10)) || fail "$what: $r of $s pings answered"
  assert_alternating "$LAST_SOURCES" "$what"
  udp_burst 10 9999
  refused=$(tcp_syns 2 8081)
  ((refused == 2)) || fail "$what: only $refused of 2 connections to 8081 refused (dropped?)"
  after=$(status_json)
  assert_grown "$before" "$after" "$what"
  (($(counter "$after" no-8080 drop) - $(counter "$before" no-8080 drop) == 10)) ||
    fail "$what: no-8080 did not count exactly the 10 UDP datagrams as dropped"
  (($(counter "$after" ping-lb tx) - $(counter "$before" ping-lb tx) == 10)) ||
    fail "$what: ping-lb did not count exactly the 10 pings as tx"
  verdicts_balance "$after" || fail "$what: pipeline packets != sum of verdicts"
  CHECKS=$((CHECKS + 1))
}
behaves_as_before "before any change"
IDS=$(prog_ids "$(status_json)")

# refused EXIT EXPECTED_TEXT CMD...: the client exits EXIT (2: the request is invalid, as `check` exits
# for a bad file; 1: a valid change failed while being applied) and says EXPECTED_TEXT (an extended
# regex); then nothing changed.
refused() {
  local want=$1 expected=$2 rc=0 out
  shift 2
  out=$("$XDPP" "$@" -p "$PIPELINE_NAME" 2>&1) || rc=$?
  ((rc != 0)) || fail "'$*' succeeded, should have been refused: $out"
  ((rc == want)) || fail "'$*' exited $rc, not $want: $out"
  grep -Eq -- "$expected" <<<"$out" || fail "'$*': the message does not say /$expected/: $out"
  [[ $(prog_ids "$(status_json)") == "$IDS" ]] || fail "'$*' was refused but the program ids changed"
  behaves_as_before "after '$*'"
  ok "refused (exit $rc): $* -> $(head -n 1 <<<"$out")"
}

refused 2 "$T/nonexistent.bpf.o.*(No such file|not found)" swap ping-lb --object "$T/nonexistent.bpf.o"
refused 1 "no program named 'icmp_lb'" swap ping-lb --object "$BUILTIN_BPF/port_filter.bpf.o"
refused 1 "map '\\.data\\.stage' changed shape.*\`xdp-pipeline swap ping-lb --reset-state\` starts the stage with fresh maps" \
  swap ping-lb --object "$SHAPE_OBJECT"
mkdir -m 0700 "$T/elsewhere"
cp "$BUILTIN_PLUGINS/icmp_lb.so" "$T/elsewhere/icmp_lb.so"
refused 2 "not in the plugin path" swap ping-lb --plugin "$T/elsewhere/icmp_lb.so"
cp "$BUILTIN_PLUGINS/icmp_lb.so" "$T/plugins/icmp_lb.so"
chmod 0666 "$T/plugins/icmp_lb.so"
refused 2 "writable by group or others" swap ping-lb --plugin "$T/plugins/icmp_lb.so"
rm "$T/plugins/icmp_lb.so" # the plugin directory is searched first: leave no refused plugin in it
# A command line has no file position: set's messages begin with the stage (no "set:0:0:").
refused 2 "^xdp-pipeline: error: stage 'no-8080': key 'drop_tcp_dst': .*70000.*out of range" set no-8080 'drop_tcp_dst+=70000'
refused 2 "^xdp-pipeline: error: stage 'no-8080': key 'bogus': unknown key" set no-8080 'bogus=1'
refused 2 "key 'drop_tcp_dts': unknown key; did you mean 'drop_tcp_dst'\?" set no-8080 'drop_tcp_dts=[1]'
refused 2 "not a port" set no-8080 'drop_tcp_dst=["http"]'
refused 2 "the value is not TOML \(the array of 'drop_tcp_dst' that starts here is not closed.*values are TOML" \
  set no-8080 'drop_tcp_dst=[80'
refused 2 "no stage 'nope' in pipeline '$PIPELINE_NAME' \(its stages: parse, no-8080, ping-lb, flows\)" set nope 'x=1'
# A ring buffer's size is fixed when the map is made: the hint names an option this command has.
refused 1 "changed shape.*add --reset-state to this \`xdp-pipeline set\`" set flows ring_size=2097152
sed 's/^drop_tcp_dst = \[8080\]$/drop_tcp_dst = [8080/' "$T/p.toml" >"$T/syntax.toml"
refused 2 "syntax.toml:[0-9]+:16: syntax error: the array of 'drop_tcp_dst' that starts here is not closed" reload "$T/syntax.toml"
# A reordered file whose new chain cannot load (ping-lb given another stage's object, refused by libbpf
# after the root object and the first stages of the new chain were loaded) is refused as a whole, too.
write_pipeline "$T/badchain.toml" "parse flows no-8080 ping-lb" "plugin_dir = \"$T/plugins\""
sed -i "s|^plugin = \"icmp_lb\"\$|plugin = \"icmp_lb\"\nobject = \"$BUILTIN_BPF/port_filter.bpf.o\"|" "$T/badchain.toml"
grep -q '^object = ' "$T/badchain.toml" || fail "could not write badchain.toml"
refused 1 "no program named 'icmp_lb'" reload "$T/badchain.toml"

# SIGHUP with a broken file: the daemon says why, and keeps running as it was.
cp "$T/p.toml" "$T/p.toml.good"
printf '\n[[stage]\nname = "broken"\n' >>"$T/p.toml"
kill -HUP "$PIPELINE_PID"
for _ in $(seq 50); do grep -q 'SIGHUP: reload refused' "$PIPELINE_LOG" && break; sleep 0.1; done
grep -q 'SIGHUP: reload refused, nothing changed' "$PIPELINE_LOG" || fail "SIGHUP with a broken file: no refusal logged"
kill -0 "$PIPELINE_PID" || fail "SIGHUP with a broken file killed the pipeline"
[[ $(prog_ids "$(status_json)") == "$IDS" ]] || fail "SIGHUP with a broken file changed the program ids"
behaves_as_before "after SIGHUP with a broken file"
ok "SIGHUP with a broken file refused: $(grep 'SIGHUP: reload refused' "$PIPELINE_LOG" | head -n 1)"
cp "$T/p.toml.good" "$T/p.toml"

# The shape-changed object with --reset-state: it goes in, with fresh maps.
read -r s r < <(ping_chunk 1 "$LAST_SOURCES") # an odd number of pings so far: carried-over state would start at be2
last=$(tail -n 1 "$LAST_SOURCES")
[[ $last == "$LAB_IP_BE1" ]] || fail "the ping before the reset was not answered by $LAB_IP_BE1 (got '$last')"
before=$(status_json)
ctl_ok swap ping-lb --object "$SHAPE_OBJECT" --reset-state
after=$(status_json)
[[ $(prog_id "$after" ping-lb) != "$(prog_id "$before" ping-lb)" ]] || fail "--reset-state swap: same prog id"
# Contract 2: the framework's counters carry over even with fresh maps (the stage's state starts afresh),
# so that no derived count ever goes back.
(($(counter "$after" ping-lb packets) == $(counter "$before" ping-lb packets))) ||
  fail "--reset-state: ping-lb's counters did not carry over ($(counter "$before" ping-lb packets) -> $(counter "$after" ping-lb packets))"
tx_before=$(counter "$after" ping-lb tx)
(($(counter "$after" no-8080 drop) == $(counter "$before" no-8080 drop))) || fail "--reset-state touched another stage"
: >"$T/reset.txt"
read -r s r < <(ping_chunk 10 "$T/reset.txt")
((s == 10 && r == 10)) || fail "after --reset-state: $r of $s pings answered"
[[ $(head -n 1 "$T/reset.txt") == "$LAB_IP_BE1" ]] || fail "after --reset-state the round robin did not start again from $LAB_IP_BE1"
assert_alternating "$T/reset.txt" "after --reset-state"
after=$(status_json)
(($(counter "$after" ping-lb tx) == tx_before + 10)) || fail "after --reset-state ping-lb tx is $(counter "$after" ping-lb tx), not $tx_before + 10"
shape=$(pinned_data_bytes "/sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME/ping-lb")
((shape == $(stage_data_bytes "$SHAPE_OBJECT"))) ||
  fail "the pinned data of ping-lb has $shape bytes, the new object's $(stage_data_bytes "$SHAPE_OBJECT")"
ok "--reset-state: the shape-changed object went in with fresh maps (counters carried over, round robin from $LAB_IP_BE1, pins updated)"

# A bare word is the string it obviously is (parse's malformed is a load-time constant: a swap).
# (Not through `refused`: the round robin restarted with the reset above, so the sources no longer
# continue the sequence that `behaves_as_before` checks.)
rc=0
out=$("$XDPP" set parse malformed=dorp -p "$PIPELINE_NAME" 2>&1) || rc=$?
((rc == 2)) && grep -q "key 'malformed': 'dorp' is not" <<<"$out" || fail "set parse malformed=dorp: exit $rc, '$out'"
before=$(status_json)
ctl_ok set parse malformed=drop
[[ $(prog_id "$(status_json)" parse) != "$(prog_id "$before" parse)" ]] || fail "set parse malformed=drop: parse was not swapped"
ok "set parse malformed=drop: a bare word is taken as a string (and 'dorp' is refused by the plugin)"

# The refused ring_size change goes in with --reset-state: the ring is made anew at the new size.
ctl_ok set flows ring_size=2097152 --reset-state
size=$(bpftool -j map show pinned "/sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME/flows/metadata_events" | jq .max_entries)
((size == 2097152)) || fail "after set flows ring_size=2097152 --reset-state the pinned ring has $size bytes"
ok "set flows ring_size=2097152 --reset-state: the ring buffer was made anew at 2 MiB"

stop_pipeline
((PIPELINE_RC == 0)) || fail "run exited with status $PIPELINE_RC"
echo "PASS ($CHECKS behaviour checks)"
