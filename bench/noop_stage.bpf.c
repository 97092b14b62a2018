/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* A stage that does nothing: the cost of one more link of the chain (framework wrapper + tail call). */
#include <xdp_pipeline/stage.h>

char LICENSE[] SEC("license") = "GPL";

XDPP_STAGE(noop)(struct xdp_md *xdp, struct xdpp_packet *pkt)
{
	return XDPP_CONTINUE;
}
