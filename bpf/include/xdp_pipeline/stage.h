/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * What a stage (and the dispatcher) includes: the shared maps, the load-time constants the host sets,
 * and XDPP_STAGE(), which keeps the counters and the chain so that a stage body only decides.
 *
 *     XDPP_STAGE(port_filter)(struct xdp_md *xdp, struct xdpp_packet *pkt)
 *     {
 *         if (!(pkt->flags & XDPP_F_L4))
 *             return XDPP_CONTINUE;
 *         return pkt->dport == 8080 ? XDP_DROP : XDPP_CONTINUE;
 *     }
 *
 * The body returns an XDP action to end the chain here, or XDPP_CONTINUE to hand the packet on.
 *
 * Multi-buffer frames. Every program is SEC("xdp.frags") (BPF_F_XDP_HAS_FRAGS): the kernel requires all
 * programs of one prog array to agree, and only such programs attach natively where the MTU needs more
 * than one buffer per frame (a veth at MTU 9000). A frame may then be a first buffer (data .. data_end)
 * followed by fragments: data_end - data is the first buffer only, bpf_xdp_get_buff_len() is the whole
 * frame, and bytes past data_end are read with bpf_xdp_load_bytes() and written with
 * bpf_xdp_store_bytes(). parse records the whole frame's length in pkt->pkt_len and reads headers split
 * across buffers; docs/writing-a-stage.md has the rules for a stage that reads or writes packet bytes.
 */
#ifndef XDP_PIPELINE_STAGE_H
#define XDP_PIPELINE_STAGE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <xdp_pipeline/contract.h>

/* A body's "not mine, pass it on". Outside the XDP action range on purpose. */
#define XDPP_CONTINUE (-1)

/*
 * Load-time constants, set by the host between open and load. libbpf freezes .rodata, so the verifier
 * sees them as constants: dead branches disappear, and the tail-call key below is a constant, which lets
 * the JIT patch a direct jump (about 1.3 ns) instead of a retpolined indirect call (about 10.5 ns).
 */
const volatile __u32 xdpp_contract_version = XDPP_CONTRACT_VERSION;
const volatile __u32 xdpp_next_slot = XDPP_NO_NEXT;
const volatile __u32 xdpp_default_verdict = XDP_PASS;

/* The chain. Created by the dispatcher's object; every stage reuses the same map. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, XDPP_MAX_STAGES);
	__type(key, __u32);
	__type(value, __u32);
} xdpp_chain SEC(".maps");

/* The parsed packet, one per CPU. Created by the dispatcher's object, shared by all. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdpp_packet);
} xdpp_scratch SEC(".maps");

/* This object's own counters: they belong to the stage, so they survive a swap of its program. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdpp_counters);
} xdpp_counters SEC(".maps");

static __always_inline struct xdpp_counters *xdpp_stage_counters(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&xdpp_counters, &zero);
}

/* Count an event that a full ring buffer refused. The packet goes on regardless. */
static __always_inline void xdpp_count_event_lost(void)
{
	struct xdpp_counters *counters = xdpp_stage_counters();
	if (counters)
		counters->events_lost++;
}

/* bpf_ringbuf_output that counts its failures; returns 0 when the event was queued. */
static __always_inline int xdpp_emit(void *ringbuf, void *event, __u64 size, __u64 flags)
{
	if (bpf_ringbuf_output(ringbuf, event, size, flags) == 0)
		return 0;
	xdpp_count_event_lost();
	return -1;
}

/*
 * Ends the packet's way through this stage: counts `verdict` here, or hands the packet to the next slot.
 * A tail call that returns failed (the slot is empty), so the packet "fell off" and takes the default.
 */
static __always_inline int xdpp_finish(struct xdp_md *xdp, struct xdpp_counters *counters, int verdict)
{
	if (verdict == XDPP_CONTINUE) {
		if (xdpp_next_slot != XDPP_NO_NEXT) {
			bpf_tail_call(xdp, &xdpp_chain, xdpp_next_slot);
			counters->fell_off++;
		}
		verdict = xdpp_default_verdict;
	}
	/* The verifier needs the index bounded; anything out of range is the program's error. */
	if (verdict < XDP_ABORTED || verdict > XDP_REDIRECT)
		verdict = XDP_ABORTED;
	counters->verdict[verdict]++;
	return verdict;
}

/* The section of every pipeline program: multi-buffer aware (see the top of this file). Overridable only so
 * that a test can build a single-buffer stage and check that the host refuses it in a multi-buffer chain. */
#ifndef XDPP_SEC
#define XDPP_SEC "xdp.frags"
#endif

/*
 * Defines SEC("xdp.frags") program NAME around the body that follows the macro. The wrapper counts the
 * packet in, runs the body, counts its bytes (pkt_len, which the body may have set: the dispatcher sets the
 * first buffer's length, parse the whole frame's), and finishes it (verdict or next stage).
 */
#define XDPP_STAGE(NAME)                                                                        \
	static __always_inline int NAME##_body(struct xdp_md *xdp, struct xdpp_packet *pkt);   \
	SEC(XDPP_SEC) int NAME(struct xdp_md *xdp)                                              \
	{                                                                                       \
		__u32 zero = 0;                                                                 \
		struct xdpp_counters *counters = bpf_map_lookup_elem(&xdpp_counters, &zero);    \
		struct xdpp_packet *pkt = bpf_map_lookup_elem(&xdpp_scratch, &zero);            \
		if (!counters || !pkt)                                                          \
			return XDP_ABORTED;                                                     \
		counters->packets++;                                                            \
		int verdict = NAME##_body(xdp, pkt);                                            \
		counters->bytes += pkt->pkt_len;                                                \
		return xdpp_finish(xdp, counters, verdict);                                     \
	}                                                                                       \
	static __always_inline int NAME##_body

#endif /* XDP_PIPELINE_STAGE_H */
