/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The one contract between the stages of a chain and the host.
 *
 * Included by BPF C (clang -target bpf) and by the C++ host alike, so it uses only fixed-width types
 * from <linux/types.h>. The host static_asserts the sizes and offsets below (host/contract_check.cpp);
 * change a layout here and bump XDPP_CONTRACT_VERSION in the same commit.
 */
#ifndef XDP_PIPELINE_CONTRACT_H
#define XDP_PIPELINE_CONTRACT_H

#include <linux/types.h>

/* Bumped whenever a struct or map below changes shape. Objects carry it in .rodata (xdpp_contract_version)
 * and the host refuses an object built against another version. A persisted pipeline records it, so that
 * the next daemon knows whether it adopts its own kind or upgrades. Only the test build that rehearses
 * such an upgrade (tests/live/CMakeLists.txt) defines it on the command line. */
#ifndef XDPP_CONTRACT_VERSION
#define XDPP_CONTRACT_VERSION 4
#endif

/* The kernel allows 33 tail calls per packet (MAX_TAIL_CALL_CNT). The interface runs the stage of slot 0
 * itself (no tail call) and each stage spends one to reach the next, so a chain of 33 stages uses 32. The
 * limit stays 33 (what contract 1 allowed with its dispatcher hop). */
#define XDPP_MAX_STAGES 33

/* Value of xdpp_next_slot for the last stage: it ends the chain itself instead of tail-calling an empty
 * slot, so a packet that leaves the last stage is a verdict, not a "fell off". */
#define XDPP_NO_NEXT 0xffffffffu

/* Names of the maps every stage of a chain shares (bpf_map__reuse_fd before load). The chain's root object
 * (bpf/dispatcher/dispatcher.bpf.c, pinned as NAME/dispatcher/) creates them; it is never attached. */
#define XDPP_CHAIN_MAP_NAME "xdpp_chain"
#define XDPP_COUNTERS_MAP_NAME "xdpp_counters"

/* The packet context of every CPU (contract 4): global data in this ELF section, one 64-byte line (struct
 * xdpp_packet) per CPU, indexed by the CPU number. Every object that includes stage.h declares it; the chain's
 * root object creates the map (a one-entry array, like all global data) and every stage reuses it, so that a
 * stage finds its CPU's context with the CPU number and a shift: no map lookup. Pinned as XDPP_CONTEXT_PIN.
 * The host refuses to build a chain on a machine with more possible CPUs than XDPP_MAX_CPUS (a power of 2). */
#define XDPP_CONTEXT_SECTION ".bss.xdpp_ctx"
#define XDPP_CONTEXT_PIN "packet-context"
#define XDPP_MAX_CPUS 1024
#define XDPP_CONTEXT_LINE 64   /* bytes per CPU: struct xdpp_packet, aligned to a cache line */

/* A stage's own global data (contract 3): the variables a stage declares with XDPP_STAGE_DATA (stage.h) live
 * in this ELF section, which libbpf loads as a one-entry, mmapable array map of this name. The program reads
 * them with plain loads (no map lookup on the packet path); the plugin writes them in place through
 * MapHandle::mmap() (host/include/xdp_pipeline/plugin.h). The host treats the map as the stage's state like
 * its other maps: pinned (as XDPP_STAGE_DATA_PIN: bpffs refuses dots in names), carried over a swap of the
 * program, taken over from the pin on adoption. */
#define XDPP_STAGE_DATA_SECTION ".data.stage"
#define XDPP_STAGE_DATA_PIN "data-stage"

/* Packets per receiving interface, counted by the entry stage when one pipeline is attached to several (the host sets
 * xdpp_count_interfaces), indexed by the receiving ifindex; an interface whose ifindex is XDPP_MAX_IFINDEX
 * or above is counted in the totals only. */
#define XDPP_IF_COUNTERS_MAP_NAME "xdpp_if_packets"
#define XDPP_MAX_IFINDEX 4096
struct xdpp_if_counters {
	__u64 packets;
};

/* Flags in xdpp_packet.flags, written by the parse stage. */
enum xdpp_packet_flags {
	XDPP_F_PARSED = 1u << 0,      /* parse ran on this packet: every other field is valid */
	XDPP_F_VLAN = 1u << 1,        /* at least one 802.1Q / 802.1ad tag */
	XDPP_F_IPV4 = 1u << 2,
	XDPP_F_IPV6 = 1u << 3,
	XDPP_F_FRAGMENT = 1u << 4,    /* part of a fragmented datagram (first or not) */
	XDPP_F_FIRST_FRAG = 1u << 5,  /* the fragment at offset 0: carries the L4 header */
	XDPP_F_L4 = 1u << 6,          /* l4_off points at a complete TCP/UDP/ICMP/ICMPv6 header */
	XDPP_F_MALFORMED = 1u << 7,   /* a header was cut short or inconsistent; nothing past it was read */
	XDPP_F_IP_OPTIONS = 1u << 8,  /* IPv4 with IHL > 5, or IPv6 with extension headers */
};

/*
 * What parse learnt about the packet, for every later stage. Lives in this CPU's line of the packet context
 * (XDPP_CONTEXT_SECTION above), which the first stage of the chain resets (flags = 0) on entry: an XDP
 * program runs to completion on one CPU, so the line belongs to this packet until the chain ends.
 *
 * Offsets are from ctx->data. Addresses are in network byte order (IPv4 in the first 4 bytes of the 16);
 * ports in host byte order, 0 where the protocol has none or the packet is a non-first fragment.
 */
struct xdpp_packet {
	__u32 flags;            /* enum xdpp_packet_flags */
	__u16 eth_proto;        /* host order, innermost after VLAN tags: 0x0800, 0x86DD, ... */
	__u16 l3_off;
	__u16 l4_off;
	__u8 l4_proto;          /* IPPROTO_*, after IPv6 extension headers */
	__u8 vlan_depth;        /* 0..2 */
	__u16 vlan_id[2];       /* outer first, host order, 12 bits */
	__u16 sport;
	__u16 dport;
	__u8 icmp_type;         /* ICMP or ICMPv6 */
	__u8 icmp_code;
	__u8 tcp_flags;         /* FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 URG=0x20 */
	__u8 ttl;               /* IPv4 TTL or IPv6 hop limit */
	__u32 pkt_len;          /* bytes of the frame: the whole frame (all buffers) once parse ran; before
	                         * that, the first buffer (data_end - data), which the first stage sets */
	__u8 saddr[16];
	__u8 daddr[16];
};

/* Verdict slots in the counters; the index is the XDP action (XDP_ABORTED=0 .. XDP_REDIRECT=4). */
#define XDPP_VERDICTS 5

/* Entries of each stage's counters map. A chain writes one of them (the load-time constant
 * xdpp_counters_slot); the host gives each new chain (a reload that adds, removes or reorders stages) the
 * other one, so that what the old chain counted, also by packets still in it during the switch, stays apart
 * from what the new one counts: the host derives "packets in" from the order of the chain that counted. */
#define XDPP_COUNTER_SLOTS 2

/*
 * Per-stage, per-CPU counters, kept by the framework (bpf/include/xdp_pipeline/stage.h), never by hand.
 * Written once per packet, by the stage where the packet's way ends (its verdict, or the default after
 * falling off), in one map update. Every packet ends in exactly one stage, so the packets that entered
 * stage i are those that ended in stage i or after it: the host derives them exactly (host/pipeline.cpp,
 * chain_totals()). 64 bytes: one cache line per CPU and slot.
 */
struct xdpp_counters {
	__u64 bytes;                    /* pkt_len of the packets that ended here: whole frames once parse ran,
	                                 * first buffers before */
	__u64 verdict[XDPP_VERDICTS];   /* ended here, by XDP action (those that fell off included) */
	__u64 fell_off;                 /* tail call to the next slot failed (empty slot); verdict = default */
	__u64 events_lost;              /* events dropped because a ring buffer was full */
};

#endif /* XDP_PIPELINE_CONTRACT_H */
