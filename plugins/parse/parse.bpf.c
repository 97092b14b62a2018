/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * parse: reads the headers once and fills struct xdpp_packet (contract.h) for every later stage.
 *
 * The header walk itself is parse_helpers.h (shared with the monolithic comparator in bench/): Ethernet, up
 * to two VLAN tags, IPv4 with options, IPv6 with extension headers, TCP/UDP/ICMP/ICMPv6, multi-buffer
 * frames. A header that is cut short or inconsistent makes the packet malformed: flagged, nothing past it
 * read, and the chain ends here with the load-time verdict parse_malformed_verdict.
 */
#include <xdp_pipeline/stage.h>
#include "parse_helpers.h"

char LICENSE[] SEC("license") = "GPL";

/* XDP_PASS or XDP_DROP, set by the plugin before load. */
const volatile __u32 parse_malformed_verdict = XDP_PASS;

XDPP_STAGE(parse)(struct xdp_md *xdp, struct xdpp_packet *pkt)
{
	return parse_packet(xdp, pkt) == PARSE_OK ? XDPP_CONTINUE : (int)parse_malformed_verdict;
}
