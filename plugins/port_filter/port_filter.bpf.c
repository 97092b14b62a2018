/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * port_filter: drops TCP/UDP packets by destination (and optionally source) port.
 *
 * Works on what parse recorded (no re-parsing), so VLAN tags, IPv6 extension headers and IPv4 options are
 * already behind it. The configuration is the stage's global data (port_filter.h): per port checked, one
 * byte of a 64 Ki table says which lists the port is on, so the cost is the same for one rule or ten
 * thousand ranges, and a packet makes no map lookup and no helper call.
 */
#include <linux/in.h>
#include <xdp_pipeline/stage.h>
#include "port_filter.h"

/* The stage's configuration (layout in port_filter.h), written in place by the plugin. */
struct port_filter_data port_filter_data XDPP_STAGE_DATA;

char LICENSE[] SEC("license") = "GPL";

XDPP_STAGE(port_filter)(struct xdp_md *xdp, struct xdpp_packet *pkt)
{
	if (!(pkt->flags & XDPP_F_PARSED) || !(pkt->flags & (XDPP_F_IPV4 | XDPP_F_IPV6)))
		return XDPP_CONTINUE;
	/* Read once: the plugin may flip it while we run. The mask keeps the index in range for the verifier. */
	__u32 set = XDPP_READ_ONCE(port_filter_data.active) & (PORT_FILTER_SETS - 1);
	const struct port_filter_config *cfg = &port_filter_data.config[set];
	return port_filter_decide(pkt, cfg->lists, cfg->nonfirst_frag_verdict, port_filter_data.rules[set]);
}
