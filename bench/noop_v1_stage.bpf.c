/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * For comparison only: the no-op stage with contract 1's wrapper, to measure what contract 2 took out of every
 * stage. Contract 1's XDPP_STAGE looked up two per-CPU entries in every stage (its counters and the packet
 * context), counted packets and bytes as the packet entered, and its verdict where it ended. The layout of its
 * counters here is contract 2's (the fields it wrote are the same stores).
 */
#include <xdp_pipeline/stage.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp.frags") int noop_v1(struct xdp_md *xdp)
{
	__u32 zero = 0;
	struct xdpp_counters *counters = bpf_map_lookup_elem(&xdpp_counters, &zero);
	struct xdpp_packet *pkt = bpf_map_lookup_elem(&xdpp_scratch, &zero);
	if (!counters || !pkt)
		return XDP_ABORTED;
	counters->fell_off++;   /* contract 1's packets++ */
	counters->bytes += pkt->pkt_len;
	if (xdpp_entry) {
		pkt->flags = 0;
		pkt->pkt_len = xdp->data_end - xdp->data;
	}
	if (xdpp_next_slot != XDPP_NO_NEXT)
		bpf_tail_call(xdp, &xdpp_chain, xdpp_next_slot);
	__u32 verdict = xdpp_default_verdict;
	if (verdict > XDP_REDIRECT)
		verdict = XDP_ABORTED;
	counters->verdict[verdict]++;
	return verdict;
}
