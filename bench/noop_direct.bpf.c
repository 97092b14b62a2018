/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The floor of chaining, beside the framework's no-op stage: a program that only makes the direct tail call
 * to the next slot (constant key) and returns xdpp_default_verdict at the end of the chain. No packet
 * context, no counters. Chained with itself by the harness exactly as the framework's stages are.
 */
#include <xdp_pipeline/stage.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp.frags") int noop_direct(struct xdp_md *xdp)
{
	if (xdpp_next_slot != XDPP_NO_NEXT)
		bpf_tail_call(xdp, &xdpp_chain, xdpp_next_slot);
	return xdpp_default_verdict;
}
