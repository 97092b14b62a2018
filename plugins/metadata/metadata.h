/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* metadata: shared between metadata.bpf.c and its plugin. */
#ifndef XDPP_STAGE_METADATA_H
#define XDPP_STAGE_METADATA_H

#include <linux/types.h>

/* One event per (sampled) packet in the ring buffer "metadata_events" (BPF_MAP_TYPE_RINGBUF). */
#define METADATA_EVENTS_MAP "metadata_events"
struct metadata_event {
	__u64 timestamp_ns;     /* bpf_ktime_get_ns() */
	__u32 ifindex;          /* ingress interface */
	__u32 rx_queue;
	__u32 pkt_len;          /* bytes of the whole frame, all buffers (xdpp_packet.pkt_len) */
	__u32 packet_flags;     /* xdpp_packet.flags (0 when parse did not run) */
	__u16 eth_proto;        /* host order */
	__u8 l4_proto;
	__u8 tcp_flags;
	__u16 sport;            /* host order; 0 where the protocol has none */
	__u16 dport;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 pad[2];
	__u8 saddr[16];         /* network order; IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u32 reserved;         /* explicit tail padding (the struct is 8-aligned): written as 0, so that no
	                         * stale ring-buffer bytes reach user space */
};

/* metadata_cfg: BPF_MAP_TYPE_ARRAY, 1 entry. Runtime-changeable. */
#define METADATA_CONFIG_MAP "metadata_cfg"
struct metadata_config {
	__u32 sample;           /* one event every `sample` packets per CPU; 1 = every packet, 0 = none */
	__u32 wakeup_batch;     /* wake the reader every N events (BPF_RB_NO_WAKEUP between); 0/1 = always */
};

/* metadata_seq: BPF_MAP_TYPE_PERCPU_ARRAY, 1 entry, __u64 = packets seen, for sampling and batching. */
#define METADATA_SEQ_MAP "metadata_seq"

/* Default ring size in bytes (power of two, page multiple); `ring_size` in the stage's settings. */
#define METADATA_DEFAULT_RING_SIZE (1u << 20)

#ifdef __bpf__
/* BPF side only: the event the stage writes, shared with the monolithic comparator (bench/mono.bpf.c). */
#include <bpf/bpf_helpers.h>
#include <xdp_pipeline/contract.h>




/* Fills the packet part of the event; all zero when parse did not run (the record would be stale). */
static __always_inline void metadata_fill_event(struct metadata_event *event, const struct xdpp_packet *pkt)
{
	if (pkt->flags & XDPP_F_PARSED) {
		event->eth_proto = pkt->eth_proto;
		event->l4_proto = pkt->l4_proto;
		event->tcp_flags = pkt->tcp_flags;
		event->sport = pkt->sport;
		event->dport = pkt->dport;
		event->icmp_type = pkt->icmp_type;
		event->icmp_code = pkt->icmp_code;
		__builtin_memcpy(event->saddr, pkt->saddr, sizeof(event->saddr));
		__builtin_memcpy(event->daddr, pkt->daddr, sizeof(event->daddr));
	} else {
		event->eth_proto = 0;
		event->l4_proto = 0;
		event->tcp_flags = 0;
		event->sport = 0;
		event->dport = 0;
		event->icmp_type = 0;
		event->icmp_code = 0;
		__builtin_memset(event->saddr, 0, sizeof(event->saddr));
		__builtin_memset(event->daddr, 0, sizeof(event->daddr));
	}
	/* Ring memory is reused: leave no bytes of an older event behind. */
	event->pad[0] = 0;
	event->pad[1] = 0;
	event->reserved = 0;
}
#endif /* __bpf__ */

#endif
