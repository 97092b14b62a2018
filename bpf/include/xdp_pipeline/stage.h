/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * What a stage includes: the shared maps, the load-time constants the host sets, and XDPP_STAGE(), which
 * keeps the counters and the chain so that a stage body only decides.
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
 * What a stage costs per packet (contract 4; docs/benchmarks.md has the measurements): the CPU number (an
 * inlined helper) to find the packet context, the body, and either the tail call to the next stage (a direct jump: the
 * key is a load-time constant) or, in the stage where the packet's way ends, one update of that stage's
 * counters. The stage of slot 0 is what the interface runs (there is no dispatcher program in front of
 * it); the host loads it with xdpp_entry = 1, which makes it start the packet's context.
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
/* 1 for the stage in slot 0, the one the interface runs: it starts the packet's context. */
const volatile __u32 xdpp_entry = 0;
/* The entry of xdpp_counters this chain writes (0 or 1, XDPP_COUNTER_SLOTS in contract.h). */
const volatile __u32 xdpp_counters_slot = 0;
/* 1 for the entry stage of a pipeline attached to more than one interface: it counts packets per receiving
 * interface. With one interface the verifier removes the counting (its packets are the pipeline's). */
const volatile __u32 xdpp_count_interfaces = 0;

/* The chain. Created by the chain's root object (bpf/dispatcher/); every stage reuses the same map. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, XDPP_MAX_STAGES);
	__type(key, __u32);
	__type(value, __u32);
} xdpp_chain SEC(".maps");

/* The parsed packet, one 64-byte line per CPU, in global data shared by the whole chain (contract.h,
 * XDPP_CONTEXT_SECTION): the chain's root object creates it and every stage reuses it. A stage finds its
 * CPU's line with the CPU number (an inlined helper: two loads) and a shift, where contract 3's per-CPU
 * array took an inlined map lookup; docs/benchmarks.md has both measured. The host refuses a machine with
 * more possible CPUs than XDPP_MAX_CPUS, so the mask never folds two CPUs onto one line; it is there for
 * the verifier. (Carrying the context in the XDP metadata area was measured too, and costs more here.) */
struct xdpp_packet_line {
	struct xdpp_packet pkt;
} __attribute__((aligned(XDPP_CONTEXT_LINE)));

struct xdpp_packet_line xdpp_context[XDPP_MAX_CPUS] SEC(XDPP_CONTEXT_SECTION);

static __always_inline struct xdpp_packet *xdpp_this_cpu_packet(void)
{
	return &xdpp_context[bpf_get_smp_processor_id() & (XDPP_MAX_CPUS - 1)].pkt;
}

/* Packets per receiving interface (xdpp_count_interfaces), indexed by ifindex: an array rather than a hash,
 * so that the verifier inlines the per-CPU lookup. Created by the chain's root object, shared by all. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPP_MAX_IFINDEX);
	__type(key, __u32);
	__type(value, struct xdpp_if_counters);
} xdpp_if_packets SEC(".maps");

/*
 * A stage's configuration and state in global data: declare them XDPP_STAGE_DATA, e.g.
 *
 *     struct port_filter_data port_filter_data XDPP_STAGE_DATA;
 *
 * The body reads them with plain loads, no map lookup. The plugin writes them in place while the program
 * runs (object.map(XDPP_STAGE_DATA_SECTION) -> MapHandle::mmap()), so a setting that spans several fields
 * must be double-buffered behind an index that the body reads once (READ_ONCE below) and the plugin flips
 * last. They survive a swap of the program and a restart, like the stage's maps (contract.h).
 */
#define XDPP_STAGE_DATA SEC(XDPP_STAGE_DATA_SECTION)

/* One load of a value the host may change while the program runs: the compiler must not read it twice. */
#define XDPP_READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))

/* This object's own counters: they belong to the stage, so they survive a swap of its program. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPP_COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, struct xdpp_counters);
} xdpp_counters SEC(".maps");

static __always_inline struct xdpp_counters *xdpp_stage_counters(void)
{
	__u32 slot = xdpp_counters_slot;
	return bpf_map_lookup_elem(&xdpp_counters, &slot);
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
 * Ends the packet's way here: the one counters update of the packet, in the stage that decided (or where it
 * fell off: a tail call that returns failed, the slot is empty, and the packet takes the default verdict).
 */
static __always_inline int xdpp_end(const struct xdpp_packet *pkt, int verdict, __u64 fell_off)
{
	/* The verifier needs the index bounded; anything out of range is the program's error. */
	if (verdict < XDP_ABORTED || verdict > XDP_REDIRECT)
		verdict = XDP_ABORTED;
	struct xdpp_counters *counters = xdpp_stage_counters();
	if (counters) {
		counters->bytes += pkt->pkt_len;
		counters->verdict[verdict]++;
		counters->fell_off += fell_off;
	}
	return verdict;
}

/*
 * Hands the packet to the next slot, or ends it here. Nothing is kept across the tail call: after one that
 * failed, the context is found again. So the wrapper itself keeps only the xdp pointer across a call on the
 * way to the tail call, and the context's CPU number and the verdict across the counters' lookup where the
 * packet ends: the JIT saves and restores two callee-saved registers in a stage whose body calls no helper,
 * where contract 3's wrapper needed four (each costs, measured in docs/benchmarks.md).
 */
static __always_inline int xdpp_finish(struct xdp_md *xdp, const struct xdpp_packet *pkt, int verdict)
{
	if (verdict == XDPP_CONTINUE) {
		if (xdpp_next_slot != XDPP_NO_NEXT) {
			bpf_tail_call(xdp, &xdpp_chain, xdpp_next_slot);
			return xdpp_end(xdpp_this_cpu_packet(), xdpp_default_verdict, 1);
		}
		verdict = xdpp_default_verdict;
	}
	return xdpp_end(pkt, verdict, 0);
}

/* The entry's count of the packet on its receiving interface. */
static __always_inline void xdpp_count_interface(struct xdp_md *xdp)
{
	__u32 ifindex = xdp->ingress_ifindex;
	struct xdpp_if_counters *by_interface = bpf_map_lookup_elem(&xdpp_if_packets, &ifindex);
	if (by_interface)
		by_interface->packets++;
}

/* The section of every pipeline program: multi-buffer aware (see the top of this file). Overridable only so
 * that a test can build a single-buffer stage and check that the host refuses it in a multi-buffer chain. */
#ifndef XDPP_SEC
#define XDPP_SEC "xdp.frags"
#endif

/*
 * Defines SEC("xdp.frags") program NAME around the body that follows the macro. The wrapper finds the packet
 * context (and, in the entry stage, starts it), runs the body, and finishes the packet (next stage, or its
 * verdict counted here).
 *
 * Entry duties: only the flag word and the length. parse fills every other field before it sets
 * XDPP_F_PARSED. The first buffer's length stands for the frame's until parse learns the whole length:
 * asking the kernel (bpf_xdp_get_buff_len) on every packet would cost a helper call where most frames have
 * one buffer. Where it counts interfaces, the entry finds the context again after that count's lookup
 * rather than keeping the pointer across it in a callee-saved register.
 */
#define XDPP_STAGE(NAME)                                                                        \
	static __always_inline int NAME##_body(struct xdp_md *xdp, struct xdpp_packet *pkt);   \
	SEC(XDPP_SEC) int NAME(struct xdp_md *xdp)                                              \
	{                                                                                       \
		struct xdpp_packet *pkt = xdpp_this_cpu_packet();                               \
		if (xdpp_entry) {                                                               \
			pkt->flags = 0;                                                         \
			pkt->pkt_len = xdp->data_end - xdp->data;                               \
			if (xdpp_count_interfaces) {                                            \
				xdpp_count_interface(xdp);                                      \
				pkt = xdpp_this_cpu_packet();                                   \
			}                                                                       \
		}                                                                               \
		return xdpp_finish(xdp, pkt, NAME##_body(xdp, pkt));                            \
	}                                                                                       \
	static __always_inline int NAME##_body

#endif /* XDP_PIPELINE_STAGE_H */
