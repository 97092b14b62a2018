/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The root program, the only one attached to the interface. It resets the per-CPU packet context and
 * enters slot 0 of the chain (xdpp_next_slot = 0, set by the host). With an empty slot 0 the packet
 * takes the default verdict and is counted as fallen off, in the dispatcher's own counters.
 */
#include <xdp_pipeline/stage.h>

char LICENSE[] SEC("license") = "GPL";

XDPP_STAGE(xdpp_dispatcher)(struct xdp_md *xdp, struct xdpp_packet *pkt)
{
	/* Only the flag word: parse fills every other field before it sets XDPP_F_PARSED. The first buffer's
	 * length stands for the frame's until parse learns the whole length: asking the kernel
	 * (bpf_xdp_get_buff_len) on every packet would cost a helper call where most frames have one buffer. */
	pkt->flags = 0;
	pkt->pkt_len = xdp->data_end - xdp->data;
	return XDPP_CONTINUE;
}
