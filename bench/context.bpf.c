/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The packet context lever, measured apart (bench section 7): where a stage finds what an earlier stage
 * recorded. Each program does what one chain needs for it and returns XDP_DROP:
 *   ctx_none    nothing: the floor;
 *   ctx_meta    in the XDP metadata area: bpf_xdp_adjust_meta(-32) on entry, a 4-byte write, and
 *               bpf_xdp_adjust_meta(+32) again before the verdict (what a chain must do before XDP_PASS, TX or
 *               REDIRECT, so that its bytes do not reach the stack (skb metadata, GRO), a TC program or a peer;
 *               BPF_PROG_TEST_RUN's repeat also reuses the buffer, so the area must not grow);
 *   ctx_percpu  in a per-CPU array: one inlined lookup and the same write (what each stage of contract 3
 *               paid);
 *   ctx_cpu     in global data, one 64-byte line per CPU indexed by the CPU number (an inlined helper) and
 *               the same write (what each stage of contract 4 pays; stage.h).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[4]);
} ctx_scratch SEC(".maps");

struct ctx_line {
	__u64 words[4];
} __attribute__((aligned(64)));

struct ctx_line ctx_lines[1024] SEC(".bss.ctx_lines");

SEC("xdp") int ctx_cpu(struct xdp_md *xdp)
{
	*(__u32 *)&ctx_lines[bpf_get_smp_processor_id() & 1023] = 1;
	return XDP_DROP;
}

SEC("xdp") int ctx_none(struct xdp_md *xdp)
{
	return XDP_DROP;
}

SEC("xdp") int ctx_meta(struct xdp_md *xdp)
{
	if (bpf_xdp_adjust_meta(xdp, -32))
		return XDP_ABORTED;
	void *meta = (void *)(long)xdp->data_meta;
	if (meta + 32 > (void *)(long)xdp->data)
		return XDP_ABORTED;
	*(__u32 *)meta = 1;
	bpf_xdp_adjust_meta(xdp, 32);
	return XDP_DROP;
}

SEC("xdp") int ctx_percpu(struct xdp_md *xdp)
{
	__u32 zero = 0;
	__u64 *slot = bpf_map_lookup_elem(&ctx_scratch, &zero);
	if (!slot)
		return XDP_ABORTED;
	*(__u32 *)slot = 1;
	return XDP_DROP;
}
