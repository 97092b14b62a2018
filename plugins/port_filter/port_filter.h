/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* port_filter: shared between port_filter.bpf.c and its plugin. */
#ifndef XDPP_STAGE_PORT_FILTER_H
#define XDPP_STAGE_PORT_FILTER_H

#include <linux/types.h>

/* Bits of a port_rules value: which lists the port is on. */
#define PORT_FILTER_TCP_DST (1u << 0)
#define PORT_FILTER_UDP_DST (1u << 1)
#define PORT_FILTER_TCP_SRC (1u << 2)
#define PORT_FILTER_UDP_SRC (1u << 3)

/* Two complete rule sets, so that a live change writes the inactive one and then flips
 * port_filter_active: no packet ever sees half a rule set. */
#define PORT_FILTER_SETS 2
#define PORT_FILTER_PORTS 65536

/* port_rules: BPF_MAP_TYPE_ARRAY, key = set * 65536 + port, value = __u8 bitmask above.
 * One array lookup per port checked: the cost does not grow with the number of rules or ranges. */
#define PORT_FILTER_RULES_MAP "port_rules"

/* port_filter_config: BPF_MAP_TYPE_ARRAY, 2 entries (one per set), value below. */
#define PORT_FILTER_CONFIG_MAP "port_filter_cfg"
struct port_filter_config {
	__u32 lists;                   /* OR of the PORT_FILTER_* bits that have any port: skip the rest */
	__u32 nonfirst_frag_verdict;   /* XDP_PASS (default) or XDP_DROP for non-first fragments */
	__u64 rules_digest;            /* host only: FNV-1a of the set's 65536 values, so that a swap or an
	                                * unchanged reload need not rewrite a set that is already in place */
};

/* port_filter_active: BPF_MAP_TYPE_ARRAY, 1 entry, __u32 = the set in use (0 or 1). */
#define PORT_FILTER_ACTIVE_MAP "port_filter_act"


#endif
