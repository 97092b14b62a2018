/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* syn_guard: shared between syn_guard.bpf.c and its plugin syn_guard.cpp. */
#ifndef SYN_GUARD_H
#define SYN_GUARD_H

#include <linux/types.h>

/* syn_guard_src: BPF_MAP_TYPE_LRU_HASH, one entry per source that sent a SYN. When it is full the least
 * recently seen source is forgotten, so a flood of spoofed sources costs memory, never correctness:
 * a forgotten source simply starts again with a full burst. max_entries = `max_sources`. */
#define SYN_GUARD_SOURCES_MAP "syn_guard_src"
#define SYN_GUARD_DEFAULT_SOURCES 65536

/* Family 4: addr[0] is the IPv4 address, addr[1..3] zero. Family 6: the IPv6 address masked to the
 * configured prefix, so that one /64 (what one host usually gets) shares one limit. Words in network
 * byte order, as in the packet. */
struct syn_guard_key {
	__u32 addr[4];
	__u32 family;           /* 4 or 6 */
};

/* The rate limit is GCRA (the virtual-scheduling form of a token bucket): a source may send a SYN when
 * its theoretical arrival time, pushed one interval further, stays within `burst` intervals of now. One
 * u64 per source, no division on the packet path, no refill timer. */
struct syn_guard_source {
	__u64 tat_ns;           /* theoretical arrival time of the next SYN (bpf_ktime_get_ns clock) */
	__u64 reported_ns;      /* when the last event for this source was sent */
	__u64 dropped;          /* SYNs dropped since that event */
	__u32 over;             /* 1 while the source is over its limit (since its last allowed SYN) */
	__u32 pad;
};

/* syn_guard_cfg: BPF_MAP_TYPE_ARRAY, 2 entries (two complete configs); syn_guard_act: ARRAY, 1 entry,
 * __u32 = the config in use. A live change writes the inactive config and then flips the index: no
 * packet ever sees a new interval with an old burst. */
#define SYN_GUARD_CONFIG_MAP "syn_guard_cfg"
#define SYN_GUARD_ACTIVE_MAP "syn_guard_act"
#define SYN_GUARD_CONFIGS 2
struct syn_guard_config {
	__u64 interval_ns;      /* 1e9 / syn_per_second */
	__u64 tolerance_ns;     /* burst * interval_ns */
	__u64 report_ns;        /* at most one event per source per report interval */
	__u32 ipv6_mask[4];     /* network order; /64 by default */
	__u32 syn_per_second;   /* for the events */
	__u32 burst;
};

/* syn_guard_events: BPF_MAP_TYPE_RINGBUF. One event when a source goes over its limit, then at most
 * one per report interval while it stays over (a flood does not become an event flood). */
#define SYN_GUARD_EVENTS_MAP "syn_guard_events"
#define SYN_GUARD_RING_SIZE (1u << 16)
struct syn_guard_event {
	__u64 timestamp_ns;
	__u64 dropped;          /* SYNs dropped from the source since its previous event, this one included */
	__u32 addr[4];          /* as in struct syn_guard_key */
	__u32 family;
	__u32 syn_per_second;
	__u32 burst;
	__u32 first;            /* 1: the source has just gone over its limit; 0: it is still over */
};

#endif
