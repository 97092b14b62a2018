#!/usr/bin/env bash
# An upgrade of xdp-pipeline under a persisted pipeline (issue 15), in a lab (scripts/lab.sh), with pings
# every 5 ms crossing the load balancer throughout:
#   - a daemon of this build (contract version N) runs the pipeline persisted and is stopped (SIGTERM);
#   - a daemon of a second build whose contract version is N+1 (a test-only build) adopts it: a complete new
#     chain switched in by one bpf_link update; state carried over (the backends keep alternating, no
#     counter goes back), zero pings lost;
#   - that daemon is killed; the file now names a stage object whose map changed shape: the next run refuses
#     to adopt, says why, and leaves the running pipeline exactly as it was; with --reset-state it applies it;
#   - detach (by the new build) leaves the interface and /sys/fs/bpf clean.
# Usage (root): persist_upgrade.sh XDP_PIPELINE XDP_PIPELINE_CONTRACT2 ICMP_LB_SHAPE_CONTRACT2_OBJECT
XDPP=$(readlink -f "${1:?usage: $0 XDP_PIPELINE XDP_PIPELINE_CONTRACT2 SHAPE_OBJECT}")
XDPP2=$(readlink -f "${2:?usage: $0 XDP_PIPELINE XDP_PIPELINE_CONTRACT2 SHAPE_OBJECT}")
SHAPE=$(readlink -f "${3:?usage: $0 XDP_PIPELINE XDP_PIPELINE_CONTRACT2 SHAPE_OBJECT}")
source "$(dirname "$(readlink -f "$0")")/common.sh"
live_require bpftool
[[ -x $XDPP2 && -f $SHAPE ]] || fail "the contract-2 build is missing: $XDPP2, $SHAPE"

live_setup lvupgrade
write_pipeline "$T/p.toml" "parse no-8080 ping-lb" 'persist = true'
run_daemon "$T/p.toml"
v1=$(jq .contract_version "/run/xdp-pipeline/$PIPELINE_NAME.json")
ok "pipeline $PIPELINE_NAME persisted by the contract-$v1 build (pid $PIPELINE_PID)"

pings_during_changes 1400
sleep 1
end_daemon TERM
before=$(assert_no_daemon_status)
sleep 0.5

# --- the upgrade ----------------------------------------------------------------------------------------
XDPP_RUN=$XDPP2 run_daemon "$T/p.toml"
v2=$(jq .contract_version "/run/xdp-pipeline/$PIPELINE_NAME.json")
((v2 == v1 + 1)) || fail "after the upgrade the state says contract $v2, expected $((v1 + 1))"
grep -q "a new chain replaces it: it was built by contract version $v1" "$PIPELINE_LOG" ||
  fail "the upgrade did not build a new chain: $(tail -n 5 "$PIPELINE_LOG")"
grep -q "switched in atomically" "$PIPELINE_LOG" || fail "the upgrade did not switch atomically: $(tail -n 5 "$PIPELINE_LOG")"
after=$(status_json)
[[ $(prog_ids "$before") != "$(prog_ids "$after")" ]] || fail "the upgrade left the old programs running"
assert_grown "$before" "$after" "upgrade"
ok "the contract-$v2 build adopted and upgraded it: $(grep -o 'new chain of [0-9]* stages switched in atomically' "$PIPELINE_LOG")"
sleep 1

# --- a stage object changed on disk and cannot be applied: refused, nothing changes -------------------------
end_daemon KILL
mkdir -m 0700 "$T/objs"
cp "$SHAPE" "$T/objs/icmp_lb.bpf.o"
sed "s|^plugin = \"icmp_lb\"|plugin = \"icmp_lb\"\nobject = \"$T/objs/icmp_lb.bpf.o\"|" "$T/p.toml" >"$T/shape.toml"
grep -q "^object = " "$T/shape.toml" || fail "could not write $T/shape.toml"
before=$(status_json)
expect_exit1 "adoption with a changed-shape object" \
  "$XDPP2" run "$T/shape.toml" --netns "$LAB_NS_LB" --interface "$LAB_IF_LB" --mode native
out=$OUT
grep -q "adoption refused, the running pipeline is left as it was" <<<"$out" || fail "no clear refusal: $out"
grep -q "map '.data.stage' changed shape" <<<"$out" || fail "the refusal does not say why: $out"
after=$(assert_no_daemon_status)
[[ $(prog_ids "$before") == "$(prog_ids "$after")" ]] || fail "the refused adoption changed the programs: $(prog_ids "$before") -> $(prog_ids "$after")"
ok "refused: $(grep -o "stage 'ping-lb': map '.data.stage' changed shape[^;]*" <<<"$out")"

XDPP_RUN=$XDPP2 run_daemon "$T/shape.toml" --reset-state
grep -q "switched in atomically" "$PIPELINE_LOG" || fail "--reset-state did not apply the new object: $(tail -n 5 "$PIPELINE_LOG")"
bytes=$(pinned_data_bytes "/sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME/ping-lb")
((bytes == $(stage_data_bytes "$SHAPE"))) ||
  fail "after --reset-state the data of ping-lb has $bytes bytes, the new object's $(stage_data_bytes "$SHAPE")"
ok "with --reset-state the changed object is applied (its data now has $bytes bytes)"

assert_pings_survived 1400 "through the upgrade"
ok "pings: $sent sent, $received received through the upgrade, the refusal and the reset, strict alternation"

end_daemon TERM
out=$("$XDPP2" detach "$PIPELINE_NAME" 2>&1) || fail "detach failed: $out"
xdp=$(ip -n "$LAB_NS_LB" -j link show dev "$LAB_IF_LB" | jq -r '.[0].xdp.prog.id // 0')
((xdp == 0)) || fail "after detach the interface still runs program $xdp"
[[ ! -e /sys/fs/bpf/xdp-pipeline/$PIPELINE_NAME ]] || fail "after detach, pins remain"
ok "detach: $out"
