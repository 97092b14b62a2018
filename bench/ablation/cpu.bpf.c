/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Ablation (xdpp-bench --sections 2 --compare cpu): the direct tail call plus the CPU number (the inlined
 * helper contract 4's stages use to find their context line) and a branch on it. */
#include <xdp_pipeline/stage.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp.frags") int ablation(struct xdp_md *xdp)
{
	if (bpf_get_smp_processor_id() >= XDPP_MAX_CPUS)
		return XDP_ABORTED;
	if (xdpp_next_slot != XDPP_NO_NEXT)
		bpf_tail_call(xdp, &xdpp_chain, xdpp_next_slot);
	return xdpp_default_verdict;
}
