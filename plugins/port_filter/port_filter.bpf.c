/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * port_filter: drops TCP/UDP packets by destination (and optionally source) port.
 *
 * Works on what parse recorded (no re-parsing), so VLAN tags, IPv6 extension headers and IPv4 options are
 * already behind it. Each port is one lookup in port_rules, an array indexed by set * 65536 + port whose
 * value says which lists the port is on: the cost is the same for one rule or ten thousand ranges.
 * Array lookups are inlined by the verifier, so a packet costs at most two loads, no helper call.
 */
#include <linux/in.h>
#include <xdp_pipeline/stage.h>
#include "port_filter.h"

/* The stage's maps (the plugin opens them by name; layouts and names in port_filter.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PORT_FILTER_SETS * PORT_FILTER_PORTS);
	__type(key, __u32);
	__type(value, __u8);
} port_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PORT_FILTER_SETS);
	__type(key, __u32);
	__type(value, struct port_filter_config);
} port_filter_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} port_filter_act SEC(".maps");

char LICENSE[] SEC("license") = "GPL";

/* Is `port` on the list `bit` of rule set `set`? */
static __always_inline int port_listed(__u32 set, __u16 port, __u32 bit)
{
	__u32 key = set * PORT_FILTER_PORTS + port;
	__u8 *lists = bpf_map_lookup_elem(&port_rules, &key);
	return lists && (*lists & bit);
}

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

	__u32 zero = 0;
	__u32 *active = bpf_map_lookup_elem(&port_filter_act, &zero);
	if (!active)
		return XDPP_CONTINUE;
	__u32 set = *active;   /* read once: the host may flip it while we run */
	/* An index out of range finds no config; the same bound keeps the rule keys inside the set. */
	struct port_filter_config *cfg = bpf_map_lookup_elem(&port_filter_cfg, &set);
	if (!cfg)
		return XDPP_CONTINUE;

	/* A non-first fragment has no ports. Its policy is pass or drop, never a guess at the ports. */
	if ((flags & (XDPP_F_FRAGMENT | XDPP_F_FIRST_FRAG)) == XDPP_F_FRAGMENT)
		return cfg->nonfirst_frag_verdict == XDP_DROP ? XDP_DROP : XDPP_CONTINUE;
	/* A TCP/UDP header that parse did not read (say, behind too many IPv6 extension headers). */
	if (!(flags & XDPP_F_L4))
		return XDPP_CONTINUE;

	__u32 lists = cfg->lists;
	if ((lists & dst_bit) && port_listed(set, pkt->dport, dst_bit))
		return XDP_DROP;
	if ((lists & src_bit) && port_listed(set, pkt->sport, src_bit))
		return XDP_DROP;
	return XDPP_CONTINUE;
}
