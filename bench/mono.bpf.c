/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The monolithic comparator for the benchmarks: one XDP program doing the work of the pipeline parse ->
 * port_filter -> icmp_lb -> metadata (plugins/NAME/), with the same semantics, written as someone who wants
 * it fast would write it by hand:
 *   - the headers are walked by parse's own code (bpf/stages/parse_helpers.h) into a record on the stack;
 *   - the configuration is global data (.data, one struct and the 64 Ki port table, written by the harness
 *     before load or through the map in place): reading it costs loads, no map lookup;
 *   - one per-CPU lookup per packet, for the counters (packets, bytes, verdicts, events lost) and the
 *     metadata sampling sequence together; the round-robin position is a global advanced atomically;
 *   - the event goes into a ring buffer reserved in place, byte for byte the metadata stage's event.
 * The harness (bench/xdpp_bench.cpp) checks that it returns the pipeline's verdict, frame and events for
 * every benchmarked packet before timing anything.
 */
#include <xdp_pipeline/contract.h>
#include "parse_helpers.h"
#include "icmp_lb.h"
#include "metadata.h"
#include "port_filter.h"
#include "mono.h"

char LICENSE[] SEC("license") = "GPL";

#define CONTINUE (-1)   /* a step that does not decide */

/* The host's LoadedObject checks this, as for any stage. */
const volatile __u32 xdpp_contract_version = XDPP_CONTRACT_VERSION;

struct mono_config mono_cfg SEC(".data") = {};
__u64 mono_rr = 0;   /* requests balanced so far, all CPUs */

struct mono_percpu {
	struct xdpp_counters counters;  /* the contract's layout, in slot 0 of this one entry */
	__u64 packets;
	__u64 seq;                      /* metadata: packets seen by this CPU, for sampling */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mono_percpu);
} mono_percpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, METADATA_DEFAULT_RING_SIZE);   /* the harness may resize it before load */
} metadata_events SEC(".maps");

/* port_filter's decision: XDP_DROP or CONTINUE (port_filter.h, the stage's own code). */
static __always_inline int filter_ports(const struct xdpp_packet *pkt)
{
	return port_filter_decide(pkt, mono_cfg.port_lists, mono_cfg.nonfirst_frag_verdict, mono_cfg.ports);
}

/* icmp_lb's decision: XDP_TX after the rewrite, or CONTINUE. First-buffer headers only (what the
 * benchmarks send); the stage also handles headers split across buffers. */
static __always_inline int balance_icmp(struct xdp_md *xdp, const struct xdpp_packet *pkt)
{
	const __u32 want = XDPP_F_PARSED | XDPP_F_IPV4 | XDPP_F_L4;
	if ((pkt->flags & (want | XDPP_F_FRAGMENT | XDPP_F_MALFORMED)) != want)
		return CONTINUE;
	if (pkt->l4_proto != IPPROTO_ICMP || pkt->icmp_type != 8)
		return CONTINUE;
	__u32 count = mono_cfg.backend_count;
	if (count == 0 || count > ICMP_LB_MAX_BACKENDS)
		return CONTINUE;
	void *data = (void *)(long)xdp->data;
	void *data_end = (void *)(long)xdp->data_end;
	__u32 l3_off = pkt->l3_off;
	if (l3_off > ETH_HLEN + 8)
		return CONTINUE;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + l3_off;
	if ((void *)(eth + 1) > data_end || (void *)(iph + 1) > data_end)
		return CONTINUE;
	if (iph->daddr != mono_cfg.vip)
		return CONTINUE;
	__u32 idx = __sync_fetch_and_add(&mono_rr, 1) % count;
	if (idx >= ICMP_LB_MAX_BACKENDS)
		return CONTINUE;
	const struct icmp_lb_backend *backend = &mono_cfg.backends[idx];
	__u32 old_daddr = iph->daddr;
	iph->daddr = backend->ip;
	iph->check = icmp_lb_csum_replace4(iph->check, old_daddr, backend->ip);
	__builtin_memcpy(eth->h_dest, backend->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mono_cfg.lb_mac, ETH_ALEN);
	return XDP_TX;
}

/* metadata's work: never decides. */
static __always_inline void record(struct xdp_md *xdp, const struct xdpp_packet *pkt, struct mono_percpu *cpu)
{
	__u32 sample = mono_cfg.sample, batch = mono_cfg.wakeup_batch;
	if (!sample)
		return;
	__u64 n = cpu->seq++;
	if (sample > 1) {
		if (n % sample)
			return;
		n /= sample;
	}
	__u64 wake = 0;
	if (batch > 1)
		wake = (n + 1) % batch ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP;
	struct metadata_event *event = bpf_ringbuf_reserve(&metadata_events, sizeof(*event), 0);
	if (!event) {
		cpu->counters.events_lost++;
		return;
	}
	event->timestamp_ns = bpf_ktime_get_ns();
	event->ifindex = xdp->ingress_ifindex;
	event->rx_queue = xdp->rx_queue_index;
	event->pkt_len = pkt->pkt_len;
	event->packet_flags = pkt->flags;
	metadata_fill_event(event, pkt);   /* the stage's own code: the same event, byte for byte */
	bpf_ringbuf_submit(event, wake);
}

SEC("xdp.frags") int xdpp_mono(struct xdp_md *xdp)
{
	__u32 zero = 0;
	struct mono_percpu *cpu = bpf_map_lookup_elem(&mono_percpu, &zero);
	if (!cpu)
		return XDP_ABORTED;

	struct xdpp_packet pkt __attribute__((aligned(8)));   /* parse_frame zeroes it with 8-byte stores */
	int verdict;
	if (parse_packet(xdp, &pkt) != PARSE_OK) {
		verdict = mono_cfg.malformed_verdict;
		goto out;
	}
	verdict = filter_ports(&pkt);
	if (verdict != CONTINUE)
		goto out;
	verdict = balance_icmp(xdp, &pkt);
	if (verdict != CONTINUE)
		goto out;
	record(xdp, &pkt, cpu);
	verdict = mono_cfg.default_verdict;
out:;
	/* Unsigned, so that one comparison bounds the index for the verifier. */
	__u32 action = verdict;
	if (action > XDP_REDIRECT)
		action = XDP_ABORTED;
	cpu->packets++;
	cpu->counters.bytes += pkt.pkt_len;
	cpu->counters.verdict[action]++;
	return action;
}
