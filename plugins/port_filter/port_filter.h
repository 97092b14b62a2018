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

#endif
