/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Ablation (xdpp-bench --sections 2 --compare lookup): the direct tail call plus contract 3's way to the
 * context: an inlined lookup of a one-entry per-CPU array, null-checked (key on the stack, the ctx kept in a
 * callee-saved register across the call). */
#include <xdp_pipeline/stage.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdpp_packet);
} ablation_scratch SEC(".maps");

SEC("xdp.frags") int ablation(struct xdp_md *xdp)
{
	__u32 zero = 0;
	if (!bpf_map_lookup_elem(&ablation_scratch, &zero))
		return XDP_ABORTED;
	if (xdpp_next_slot != XDPP_NO_NEXT)
		bpf_tail_call(xdp, &xdpp_chain, xdpp_next_slot);
	return xdpp_default_verdict;
}
