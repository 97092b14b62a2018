/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * syn_guard: per-source rate limit of TCP connection attempts (SYN without ACK), IPv4 and IPv6.
 *
 * Reads the parse stage's struct xdpp_packet: no header is read twice. A source under its limit continues
 * down the chain; a SYN over it is dropped (counted by the framework as this stage's XDP_DROP verdict)
 * and the source is reported through the ring buffer syn_guard_events. Everything that is not a SYN
 * continues untouched: handshakes already admitted are never cut.
 */
#include <linux/in.h>
#include <xdp_pipeline/stage.h>
#include "syn_guard.h"

char LICENSE[] SEC("license") = "GPL";

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SYN_GUARD_DEFAULT_SOURCES);   /* the plugin sets `max_sources` before load */
	__type(key, struct syn_guard_key);
	__type(value, struct syn_guard_source);
} syn_guard_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SYN_GUARD_CONFIGS);
	__type(key, __u32);
	__type(value, struct syn_guard_config);
} syn_guard_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} syn_guard_act SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SYN_GUARD_RING_SIZE);
} syn_guard_events SEC(".maps");

/* The source of the packet as a map key. The address words are copied with memcpy: saddr is a byte
 * array, and the copy lets clang pick loads the verifier accepts whatever the alignment. */
static __always_inline void source_key(struct syn_guard_key *key, const struct xdpp_packet *pkt,
				       const struct syn_guard_config *cfg)
{
	__builtin_memset(key, 0, sizeof(*key));   /* hash keys are compared bytewise: no stray bytes */
	if (pkt->flags & XDPP_F_IPV4) {
		key->family = 4;
		__builtin_memcpy(&key->addr[0], pkt->saddr, 4);
		return;
	}
	key->family = 6;
	__builtin_memcpy(key->addr, pkt->saddr, 16);
#pragma unroll
	for (int i = 0; i < 4; i++)
		key->addr[i] &= cfg->ipv6_mask[i];
}

static __always_inline void report(const struct syn_guard_key *key, struct syn_guard_source *src,
				   const struct syn_guard_config *cfg, __u64 now)
{
	struct syn_guard_event event = {
		.timestamp_ns = now,
		.dropped = src->dropped,
		.family = key->family,
		.syn_per_second = cfg->syn_per_second,
		.burst = cfg->burst,
		.first = !src->over,
	};
	__builtin_memcpy(event.addr, key->addr, sizeof(event.addr));
	/* A full ring loses the event (counted in events_lost), never the decision. */
	xdpp_emit(&syn_guard_events, &event, sizeof(event), 0);
	src->reported_ns = now;
	src->dropped = 0;
}

XDPP_STAGE(syn_guard)(struct xdp_md *xdp, struct xdpp_packet *pkt)
{
	/* A connection attempt: a complete TCP header with SYN and without ACK (a SYN-ACK answers one of
	 * ours). Non-first fragments carry no TCP header and have no XDPP_F_L4. */
	const __u32 want = XDPP_F_PARSED | XDPP_F_L4;
	if ((pkt->flags & want) != want || pkt->l4_proto != IPPROTO_TCP)
		return XDPP_CONTINUE;
	if ((pkt->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
		return XDPP_CONTINUE;
	if (!(pkt->flags & (XDPP_F_IPV4 | XDPP_F_IPV6)))
		return XDPP_CONTINUE;

	__u32 zero = 0;
	__u32 *active = bpf_map_lookup_elem(&syn_guard_act, &zero);
	if (!active)
		return XDPP_CONTINUE;
	__u32 set = *active;   /* read once: the host may flip it while we run */
	struct syn_guard_config *cfg = bpf_map_lookup_elem(&syn_guard_cfg, &set);
	if (!cfg || cfg->interval_ns == 0)   /* not configured yet: let everything through */
		return XDPP_CONTINUE;

	struct syn_guard_key key;
	source_key(&key, pkt, cfg);
	__u64 now = bpf_ktime_get_ns();

	struct syn_guard_source *src = bpf_map_lookup_elem(&syn_guard_src, &key);
	if (!src) {
		/* First SYN of this source: it spends one interval of its burst. If another CPU inserted the
		 * same source meanwhile, BPF_NOEXIST keeps that entry; this one SYN is let through anyway. */
		struct syn_guard_source fresh = { .tat_ns = now + cfg->interval_ns };
		bpf_map_update_elem(&syn_guard_src, &key, &fresh, BPF_NOEXIST);
		return XDPP_CONTINUE;
	}

	/*
	 * GCRA. The entry is shared by all CPUs and updated without a lock: RSS spreads one source's
	 * connections over queues, and two CPUs may read the same tat and both admit a SYN. Under contention
	 * the limit is therefore a little generous, never strict; an exact limit would need a
	 * compare-and-swap loop on every SYN of a flood.
	 */
	__u64 tat = src->tat_ns > now ? src->tat_ns : now;
	__u64 next = tat + cfg->interval_ns;
	if (next - now <= cfg->tolerance_ns) {
		src->tat_ns = next;
		src->over = 0;
		return XDPP_CONTINUE;
	}

	src->dropped++;
	if (!src->over || now - src->reported_ns >= cfg->report_ns) {
		report(&key, src, cfg, now);
		src->over = 1;
	}
	return XDP_DROP;
}
