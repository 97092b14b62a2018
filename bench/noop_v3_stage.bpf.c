/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * For comparison only: the no-op stage with contract 3's wrapper, to measure what contract 4 took out of every
 * stage. Contract 3 found the packet context with an inlined lookup of a one-entry per-CPU array (key on the
 * stack, the array's per-CPU pointer, the CPU's offset) and kept the context, the ctx and the verdict across
 * the tail call, so that the JIT saved and restored four callee-saved registers in every stage. Its counters
 * and the rest of the wrapper are contract 4's (unchanged).
 */
#include "contract3_context.h"

char LICENSE[] SEC("license") = "GPL";

/* Contract 3's finish: pkt and the verdict stay live across the tail call (the end itself is contract 4's). */
static __always_inline int finish_v3(struct xdp_md *xdp, const struct xdpp_packet *pkt, int verdict)
{
	__u64 fell_off = 0;

	if (verdict == XDPP_CONTINUE) {
		if (xdpp_next_slot != XDPP_NO_NEXT) {
			bpf_tail_call(xdp, &xdpp_chain, xdpp_next_slot);
			fell_off = 1;
		}
		verdict = xdpp_default_verdict;
	}
	return xdpp_end(pkt, verdict, fell_off);
}

SEC("xdp.frags") int noop_v3(struct xdp_md *xdp)
{
	__u32 zero = 0;
	struct xdpp_packet *pkt = bpf_map_lookup_elem(&xdpp_scratch, &zero);
	if (!pkt)
		return XDP_ABORTED;
	if (xdpp_entry) {
		pkt->flags = 0;
		pkt->pkt_len = xdp->data_end - xdp->data;
		if (xdpp_count_interfaces)
			xdpp_count_interface(xdp);
	}
	return finish_v3(xdp, pkt, XDPP_CONTINUE);
}
