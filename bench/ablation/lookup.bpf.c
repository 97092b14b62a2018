/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Ablation (xdpp-bench --sections 2 --compare lookup): the direct tail call plus contract 3's way to the
 * context: an inlined lookup of a one-entry per-CPU array, null-checked (key on the stack, the ctx kept in a
 * callee-saved register across the call). */
#include "../contract3_context.h"

char LICENSE[] SEC("license") = "GPL";

SEC("xdp.frags") int ablation(struct xdp_md *xdp)
{
	__u32 zero = 0;
	if (!bpf_map_lookup_elem(&xdpp_scratch, &zero))
		return XDP_ABORTED;
	if (xdpp_next_slot != XDPP_NO_NEXT)
		bpf_tail_call(xdp, &xdpp_chain, xdpp_next_slot);
	return xdpp_default_verdict;
}
