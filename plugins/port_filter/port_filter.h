/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* port_filter: shared between port_filter.bpf.c and its plugin. */
#ifndef XDPP_STAGE_PORT_FILTER_H
#define XDPP_STAGE_PORT_FILTER_H

#include <linux/types.h>

/* Bits of a byte of the rules table (port_filter_data.rules): which lists the port is on. */
#define PORT_FILTER_TCP_DST (1u << 0)
#define PORT_FILTER_UDP_DST (1u << 1)
#define PORT_FILTER_TCP_SRC (1u << 2)
#define PORT_FILTER_UDP_SRC (1u << 3)

/* Two complete rule sets, so that a live change writes the inactive one and then flips `active`: no
 * packet ever sees half a rule set. */
#define PORT_FILTER_SETS 2
#define PORT_FILTER_PORTS 65536

struct port_filter_config {
	__u32 lists;                   /* OR of the PORT_FILTER_* bits that have any port: skip the rest */
	__u32 nonfirst_frag_verdict;   /* XDP_PASS (default) or XDP_DROP for non-first fragments */
};

/*
 * The stage's configuration, in its global data (XDPP_STAGE_DATA, section XDPP_STAGE_DATA_SECTION): the
 * program reads it with plain loads, the plugin writes it in place. A packet reads `active` once, then that
 * set's config and, per port checked, one byte of its rules: the cost is the same for one rule or ten
 * thousand ranges.
 */
struct port_filter_data {
	__u32 active;                                          /* the set in use: 0 or 1 */
	__u32 pad;
	struct port_filter_config config[PORT_FILTER_SETS];
	__u8 rules[PORT_FILTER_SETS][PORT_FILTER_PORTS];       /* PORT_FILTER_* bits, by port */
};

#ifdef __bpf__
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <xdp_pipeline/contract.h>

/*
 * The decision for a parsed IPv4/IPv6 packet, given one set's lists, fragment policy and rules: XDP_DROP, or
 * -1 (XDPP_CONTINUE: not this stage's to decide). Shared by port_filter.bpf.c and bench/mono.bpf.c, the
 * monolithic program the stage is measured against, so that both decide alike by construction.
 */
static __always_inline int port_filter_decide(const struct xdpp_packet *pkt, __u32 lists, __u32 nonfirst_frag_verdict,
					      const __u8 *rules)
{
	__u32 dst_bit, src_bit;

	if (pkt->l4_proto == IPPROTO_TCP) {
		dst_bit = PORT_FILTER_TCP_DST;
		src_bit = PORT_FILTER_TCP_SRC;
	} else if (pkt->l4_proto == IPPROTO_UDP) {
		dst_bit = PORT_FILTER_UDP_DST;
		src_bit = PORT_FILTER_UDP_SRC;
	} else {
		return -1;
	}
	/* A non-first fragment has no ports. Its policy is pass or drop, never a guess at the ports. */
	if ((pkt->flags & (XDPP_F_FRAGMENT | XDPP_F_FIRST_FRAG)) == XDPP_F_FRAGMENT)
		return nonfirst_frag_verdict == XDP_DROP ? XDP_DROP : -1;
	/* A TCP/UDP header that parse did not read (say, behind too many IPv6 extension headers). */
	if (!(pkt->flags & XDPP_F_L4))
		return -1;
	if ((lists & dst_bit) && (rules[pkt->dport] & dst_bit))
		return XDP_DROP;
	if ((lists & src_bit) && (rules[pkt->sport] & src_bit))
		return XDP_DROP;
	return -1;
}
#endif

#endif
