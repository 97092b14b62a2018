/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The root program, the only one attached to the interface. It resets the per-CPU packet context and
 * enters slot 0 of the chain (xdpp_next_slot = 0, set by the host). With an empty slot 0 the packet
 * takes the default verdict and is counted as fallen off, in the dispatcher's own counters.
 * It also counts packets per receiving interface when the pipeline is attached to several: one dispatcher
 * serves every interface of the pipeline.
 */
#include <xdp_pipeline/stage.h>

char LICENSE[] SEC("license") = "GPL";

/* An array indexed by ifindex rather than a hash: the verifier inlines a per-CPU array lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPP_MAX_IFINDEX);
	__type(key, __u32);
	__type(value, struct xdpp_if_counters);
} xdpp_if_packets SEC(".maps");

/* Set by the host for a pipeline attached to more than one interface. A load-time constant: with one
 * interface the verifier removes the counting (its packets are the dispatcher's own). */
const volatile __u32 xdpp_count_interfaces = 0;

XDPP_STAGE(xdpp_dispatcher)(struct xdp_md *xdp, struct xdpp_packet *pkt)
{
	/* Only the flag word: parse fills every other field before it sets XDPP_F_PARSED. The first buffer's
	 * length stands for the frame's until parse learns the whole length: asking the kernel
	 * (bpf_xdp_get_buff_len) on every packet would cost a helper call where most frames have one buffer. */
	pkt->flags = 0;
	pkt->pkt_len = xdp->data_end - xdp->data;
	if (xdpp_count_interfaces) {
		__u32 ifindex = xdp->ingress_ifindex;
		struct xdpp_if_counters *by_interface = bpf_map_lookup_elem(&xdpp_if_packets, &ifindex);
		if (by_interface)
			by_interface->packets++;
	}
	return XDPP_CONTINUE;
}
