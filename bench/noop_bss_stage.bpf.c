/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * For comparison only: the no-op stage with its tail-call key read from .bss instead of the frozen
 * .rodata constant xdpp_next_slot. The verifier cannot treat the key as a constant, so the JIT has to
 * emit the indirect (retpolined) tail call. Everything else is what XDPP_STAGE does; xdpp_next_slot still
 * says whether there is a next stage at all.
 */
#include <xdp_pipeline/stage.h>

char LICENSE[] SEC("license") = "GPL";

__u32 noop_bss_next;   /* set by the harness before load (initial value of .bss) */

SEC("xdp.frags") int noop_bss(struct xdp_md *xdp)
{
	struct xdpp_packet *pkt = xdpp_this_cpu_packet();
	if (xdpp_entry) {
		pkt->flags = 0;
		pkt->pkt_len = xdp->data_end - xdp->data;
	}
	if (xdpp_next_slot != XDPP_NO_NEXT) {
		bpf_tail_call(xdp, &xdpp_chain, noop_bss_next);
		return xdpp_end(xdpp_this_cpu_packet(), xdpp_default_verdict, 1);
	}
	return xdpp_end(pkt, xdpp_default_verdict, 0);
}
