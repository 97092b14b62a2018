/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* icmp_lb: shared between icmp_lb.bpf.c and its plugin. */
#ifndef XDPP_STAGE_ICMP_LB_H
#define XDPP_STAGE_ICMP_LB_H

#include <linux/types.h>

/* The documented maximum number of backends. */
#define ICMP_LB_MAX_BACKENDS 64

struct icmp_lb_backend {
	__be32 ip;
	__u8 mac[6];
	__u8 pad[2];
};

/* One complete configuration. */
struct icmp_lb_set {
	__be32 vip;
	__u32 backend_count;          /* 0 disables balancing: every packet continues */
	__u8 lb_mac[6];               /* source MAC of rewritten frames: the LB's own interface */
	__u8 pad[2];
	struct icmp_lb_backend backends[ICMP_LB_MAX_BACKENDS];
};
#ifndef ICMP_LB_SETS
#define ICMP_LB_SETS 2   /* overridable only to build a variant whose data has another shape (tests/live) */
#endif

/*
 * The stage's configuration, in its global data (XDPP_STAGE_DATA, section XDPP_STAGE_DATA_SECTION): the
 * program reads it with plain loads, the plugin writes it in place. A change writes the set that is not
 * active and then flips `active`, so no packet sees a VIP from one configuration and backends from another.
 */
struct icmp_lb_data {
	__u32 active;                          /* the set in use, < ICMP_LB_SETS */
	__u32 pad;
	struct icmp_lb_set sets[ICMP_LB_SETS];
};

/* icmp_lb_rr: BPF_MAP_TYPE_ARRAY, 1 entry, __u64 = requests balanced so far. Shared by all CPUs and
 * advanced atomically, so one ping stream alternates strictly and many CPUs still spread evenly. It is state,
 * kept apart from the configuration on purpose: it survives a swap of the program and also a new program
 * whose configuration changed shape (an upgrade), where the data section starts afresh. One inlined array
 * lookup, on balanced packets only. */
#define ICMP_LB_RR_MAP "icmp_lb_rr"

#ifdef __bpf__
/* BPF side only: the checksum update of the rewrite, shared with the monolithic comparator (bench/mono.bpf.c). */
#include <bpf/bpf_helpers.h>

/*
 * RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), for a 32-bit field (two 16-bit words) that changed from
 * `from` to `to`. The one's complement sum is byte-order independent (RFC 1071, 2.B), so the words are
 * summed as they lie in memory, without swapping. Only the words that changed enter the sum, so the
 * header length (options or not) does not matter.
 */
static __always_inline __u16 icmp_lb_csum_replace4(__u16 check, __u32 from, __u32 to)
{
	__u32 sum = (__u16)~check;
	sum += (__u16)~from + (__u16)~(from >> 16);
	sum += (to & 0xffff) + (to >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}
#endif /* __bpf__ */

#endif
