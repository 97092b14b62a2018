/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Ablation (xdpp-bench --sections 2 --compare regs): the direct tail call of noop_direct.bpf.c plus four
 * callee-saved registers, which the JIT then saves in every stage's prologue and restores before the jump. */
#include <xdp_pipeline/stage.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp.frags") int ablation(struct xdp_md *xdp)
{
	asm volatile("r6 = 0; r7 = 0; r8 = 0; r9 = 0" ::: "r6", "r7", "r8", "r9");
	if (xdpp_next_slot != XDPP_NO_NEXT)
		bpf_tail_call(xdp, &xdpp_chain, xdpp_next_slot);
	return xdpp_default_verdict;
}
