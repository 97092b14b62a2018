/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Baselines for the benchmarks (bench/):
 *   bench_pass  the floor: returns XDP_PASS and does nothing else;
 *   bench_drop  a bare drop that counts what it drops (per-CPU counter), so that its packet rate can be
 *               read at the receiver like the pipeline's and the monolithic program's;
 *   bench_pass_counted  the same for XDP_PASS (live traffic that goes on to the stack);
 *   bench_tx    the live-frames traffic generator: every frame goes back out (XDP_TX) of the sending veth
 *               into its peer.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bench_drop_count SEC(".maps");

SEC("xdp.frags") int bench_pass(struct xdp_md *xdp)
{
	return XDP_PASS;
}

SEC("xdp.frags") int bench_drop(struct xdp_md *xdp)
{
	__u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(&bench_drop_count, &zero);
	if (count)
		(*count)++;
	return XDP_DROP;
}

SEC("xdp.frags") int bench_pass_counted(struct xdp_md *xdp)
{
	__u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(&bench_drop_count, &zero);
	if (count)
		(*count)++;
	return XDP_PASS;
}

SEC("xdp.frags") int bench_tx(struct xdp_md *xdp)
{
	return XDP_TX;
}
