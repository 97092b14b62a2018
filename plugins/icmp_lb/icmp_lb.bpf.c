/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * icmp_lb: round-robin load balancer for IPv4 ICMP echo requests sent to a virtual IP.
 *
 * The request goes to the next backend: IPv4 destination := backend IP (header checksum updated
 * incrementally, RFC 1624), destination MAC := backend MAC, source MAC := the balancer's own MAC, and the
 * frame leaves through the interface it came in on (XDP_TX). The backend answers the client directly.
 * Everything else (echo replies, other ICMP, other addresses, IPv6, fragments) continues down the chain.
 *
 * Multi-buffer frames (jumbo echo requests): the stage writes only the Ethernet header and the IPv4 header,
 * which drivers put in the first buffer; it reads and writes them there directly. Should they reach past
 * the first buffer (a frame built that way, e.g. in a test), they are copied out with bpf_xdp_load_bytes and
 * written back with bpf_xdp_store_bytes. The payload, in whichever buffer, is never touched, and the ICMP
 * checksum stays valid (it does not cover the IP header).
 */
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <xdp_pipeline/stage.h>
#include "icmp_lb.h"

/* The stage's configuration (layout in icmp_lb.h), written in place by the plugin. */
struct icmp_lb_data icmp_lb_data XDPP_STAGE_DATA;

/* The round-robin position (icmp_lb.h says why it is a map of its own). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} icmp_lb_rr SEC(".maps");

char LICENSE[] SEC("license") = "GPL";

#define ICMP_ECHO_REQUEST 8

/* Ethernet plus two VLAN tags: the furthest parse puts an IPv4 header. */
#define MAX_L3_OFF (ETH_HLEN + 2 * 4)


XDPP_STAGE(icmp_lb)(struct xdp_md *xdp, struct xdpp_packet *pkt)
{
	/* Cheap tests on parse's record first: almost every packet leaves here. */
	const __u32 want = XDPP_F_PARSED | XDPP_F_IPV4 | XDPP_F_L4;
	if ((pkt->flags & (want | XDPP_F_FRAGMENT | XDPP_F_MALFORMED)) != want)
		return XDPP_CONTINUE;
	if (pkt->l4_proto != IPPROTO_ICMP || pkt->icmp_type != ICMP_ECHO_REQUEST)
		return XDPP_CONTINUE;

	/* Read once: the plugin may flip it while we run. */
	__u32 active = XDPP_READ_ONCE(icmp_lb_data.active);
	if (active >= ICMP_LB_SETS)
		return XDPP_CONTINUE;
	const struct icmp_lb_set *set = &icmp_lb_data.sets[active];
	__u32 backend_count = set->backend_count;
	if (backend_count == 0 || backend_count > ICMP_LB_MAX_BACKENDS)
		return XDPP_CONTINUE;

	/* The verifier does not know parse's invariant l3_off <= 22; the bound makes the access provable,
	 * and the data_end check below keeps it correct for any frame length. */
	void *data = (void *)(long)xdp->data;
	void *data_end = (void *)(long)xdp->data_end;
	__u32 l3_off = pkt->l3_off;
	if (l3_off < ETH_HLEN || l3_off > MAX_L3_OFF)
		return XDPP_CONTINUE;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + l3_off;
	struct iphdr iph_copy;
	/* Two checks: the IP header pointer carries a variable offset, so a range learnt for it says nothing
	 * to the verifier about the Ethernet header at data. */
	const int in_first_buffer = (void *)(eth + 1) <= data_end && (void *)(iph + 1) <= data_end;
	if (!in_first_buffer) {
		/* Split across buffers: work on a copy of the IP header (parse saw it whole in the frame). */
		if (bpf_xdp_load_bytes(xdp, l3_off, &iph_copy, sizeof(iph_copy)))
			return XDPP_CONTINUE;
		iph = &iph_copy;
	}
	if (iph->daddr != set->vip)
		return XDPP_CONTINUE;

	__u32 zero = 0;
	__u64 *rr = bpf_map_lookup_elem(&icmp_lb_rr, &zero);
	if (!rr)
		return XDPP_CONTINUE;
	/* One atomic counter for all CPUs: consecutive requests get consecutive backends, whichever CPU
	 * they arrive on. */
	__u32 idx = __sync_fetch_and_add(rr, 1) % backend_count;
	/* idx < backend_count <= ICMP_LB_MAX_BACKENDS already; the verifier does not track a modulo. */
	if (idx >= ICMP_LB_MAX_BACKENDS)
		return XDPP_CONTINUE;
	const struct icmp_lb_backend *backend = &set->backends[idx];

	__u32 old_daddr = iph->daddr;
	__u32 new_daddr = backend->ip;
	iph->daddr = new_daddr;
	iph->check = icmp_lb_csum_replace4(iph->check, old_daddr, new_daddr);
	/* The ICMP checksum covers the ICMP message only, no pseudo-header: it stays valid. */

	if (in_first_buffer) {
		__builtin_memcpy(eth->h_dest, backend->mac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, set->lb_mac, ETH_ALEN);
		return XDP_TX;
	}
	/* Both MACs are the first 12 bytes of the frame; the helper writes across buffers. */
	__u8 macs[2 * ETH_ALEN];
	__builtin_memcpy(macs, backend->mac, ETH_ALEN);
	__builtin_memcpy(macs + ETH_ALEN, set->lb_mac, ETH_ALEN);
	if (bpf_xdp_store_bytes(xdp, l3_off, &iph_copy, sizeof(iph_copy)) ||
	    bpf_xdp_store_bytes(xdp, 0, macs, sizeof(macs)))
		return XDP_ABORTED;   /* cannot happen: both ranges were read from this frame */
	return XDP_TX;
}
