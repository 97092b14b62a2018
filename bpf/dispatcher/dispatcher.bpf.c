/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The chain's root object (contract 2). It creates the maps every stage of the chain shares (xdpp_chain,
 * xdpp_if_packets and, since contract 4, the packet context in global data, all declared in
 * <xdp_pipeline/stage.h>) and keeps them, pinned as NAME/dispatcher/ in a persisted run, whatever stage is
 * swapped. It is no longer a hop: the interface runs the stage of slot 0
 * directly (contract 1 ran this program first, and a persisted contract-1 pipeline is adopted and upgraded
 * from it). libbpf loads an object through a program, so it keeps one that is never attached.
 */
#include <xdp_pipeline/stage.h>

char LICENSE[] SEC("license") = "GPL";

SEC(XDPP_SEC) int xdpp_dispatcher(struct xdp_md *xdp)
{
	/* Uses the shared maps, so that the object declares (and the kernel creates) them with this program. */
	xdpp_this_cpu_packet()->flags = 0;
	bpf_tail_call(xdp, &xdpp_chain, 0);
	return XDP_PASS;
}
