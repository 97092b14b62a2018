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
	__u32 flags = pkt->flags;
	__u32 dst_bit, src_bit;

	if (!(flags & XDPP_F_PARSED) || !(flags & (XDPP_F_IPV4 | XDPP_F_IPV6)))
		return XDPP_CONTINUE;
	if (pkt->l4_proto == IPPROTO_TCP) {
		dst_bit = PORT_FILTER_TCP_DST;
		src_bit = PORT_FILTER_TCP_SRC;
	} else if (pkt->l4_proto == IPPROTO_UDP) {
		dst_bit = PORT_FILTER_UDP_DST;
		src_bit = PORT_FILTER_UDP_SRC;
	} else {
		return XDPP_CONTINUE;
	}

	/* Read once: the plugin may flip it while we run. The mask keeps the index in range for the verifier. */
	__u32 set = XDPP_READ_ONCE(port_filter_data.active) & (PORT_FILTER_SETS - 1);
	const struct port_filter_config *cfg = &port_filter_data.config[set];
	const __u8 *rules = port_filter_data.rules[set];

	/* A non-first fragment has no ports. Its policy is pass or drop, never a guess at the ports. */
	if ((flags & (XDPP_F_FRAGMENT | XDPP_F_FIRST_FRAG)) == XDPP_F_FRAGMENT)
		return cfg->nonfirst_frag_verdict == XDP_DROP ? XDP_DROP : XDPP_CONTINUE;
	/* A TCP/UDP header that parse did not read (say, behind too many IPv6 extension headers). */
	if (!(flags & XDPP_F_L4))
		return XDPP_CONTINUE;

	__u32 lists = cfg->lists;
	if ((lists & dst_bit) && (rules[pkt->dport] & dst_bit))
		return XDP_DROP;
	if ((lists & src_bit) && (rules[pkt->sport] & src_bit))
		return XDP_DROP;
	return XDPP_CONTINUE;
}
