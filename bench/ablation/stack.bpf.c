/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Ablation (xdpp-bench --sections 2 --compare stack): the direct tail call plus a stack frame with one slot
 * written in every stage (what a map key on the stack costs), no callee-saved register. */
#include <xdp_pipeline/stage.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp.frags") int ablation(struct xdp_md *xdp)
{
	volatile __u32 slot = 0;
	if (xdpp_next_slot != XDPP_NO_NEXT)
		bpf_tail_call(xdp, &xdpp_chain, xdpp_next_slot);
	return xdpp_default_verdict + slot;
}
