/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The monolithic alternative to the four-stage pipeline, for the benchmarks: one XDP program that parses,
 * filters ports, balances ICMP echo requests and records metadata inline, with the semantics of the
 * stages parse, port_filter, icmp_lb and metadata chained in that order (bpf/stages/).
 *
 * It declares its maps with the names and layouts of the stages' maps (the headers in bpf/stages/) and the same
 * .rodata knob (parse_malformed_verdict), so the stages' own plugins configure it from the same TOML as
 * the pipeline. The differences are the ones a hand-written program gets for free: the parsed record
 * lives on the stack instead of a per-CPU map, there are no tail calls, and one counters entry (the
 * layout of struct xdpp_counters) instead of one per stage.
 */
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <xdp_pipeline/contract.h>
#include "icmp_lb.h"
#include "metadata.h"
#include "port_filter.h"

char LICENSE[] SEC("license") = "GPL";

/* The host's LoadedObject checks this, as for any stage. */
const volatile __u32 xdpp_contract_version = XDPP_CONTRACT_VERSION;
/* parse's knob, same name, set by the parse plugin. */
const volatile __u32 parse_malformed_verdict = XDP_PASS;
/* [pipeline] default_verdict: what a packet gets when nothing decided. */
const volatile __u32 mono_default_verdict = XDP_PASS;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdpp_counters);
} xdpp_counters SEC(".maps");

#define BAD (-1)   /* a header cut short or inconsistent */

struct vlan_hdr_b {
	__be16 tci;
	__be16 next;
};

struct ip6_frag_b {
	__u8 nexthdr;
	__u8 reserved;
	__be16 off_m;
	__be32 id;
};

struct icmp_b {
	__u8 type;
	__u8 code;
	__sum16 csum;
	__be32 rest;
};

/* Where we are in the packet, and how much of the IP datagram is left from there. */
struct walk {
	void *at;
	void *end;
	__u32 left;
};

static __always_inline int fits(const struct walk *w, __u32 len)
{
	return w->at + len <= w->end && len <= w->left;
}

static __always_inline __be16 be16_at(const void *p)
{
	return *(const __be16 *)p;
}

/* The parse step: fills *pkt (on the stack) and returns the L3 header or NULL for non-IP; BAD via *err. */
static __always_inline int parse_all(struct xdp_md *xdp, struct xdpp_packet *pkt, struct iphdr **ip4)
{
	void *data = (void *)(long)xdp->data;
	struct walk w = { .at = data, .end = (void *)(long)xdp->data_end, .left = 0 };
	__u32 f = 0;
	int proto;

	if (w.at + ETH_HLEN > w.end)
		goto bad;
	__be16 type = be16_at(w.at + 12);
	w.at += ETH_HLEN;
#pragma unroll
	for (int depth = 0; depth < 2; depth++) {
		if (type != bpf_htons(ETH_P_8021Q) && type != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_hdr_b *v = w.at;
		if ((void *)(v + 1) > w.end)
			goto bad;
		pkt->vlan_id[depth] = bpf_ntohs(v->tci) & 0x0fff;
		pkt->vlan_depth = depth + 1;
		f |= XDPP_F_VLAN;
		type = be16_at(&v->next);
		w.at = v + 1;
	}
	pkt->eth_proto = bpf_ntohs(type);
	pkt->l3_off = w.at - data;

	if (type == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = w.at;
		if ((void *)(ip + 1) > w.end || ip->version != 4 || ip->ihl < 5)
			goto bad;
		__u32 hlen = ip->ihl * 4;
		__u32 total = bpf_ntohs(ip->tot_len);
		if (total < hlen || w.at + total > w.end || w.at + hlen > w.end)
			goto bad;
		w.at += hlen;
		w.left = total - hlen;
		f |= XDPP_F_IPV4;
		if (hlen > 20)
			f |= XDPP_F_IP_OPTIONS;
		__u16 frag = bpf_ntohs(ip->frag_off);
		if (frag & 0x3fff) {
			f |= XDPP_F_FRAGMENT;
			if (!(frag & 0x1fff))
				f |= XDPP_F_FIRST_FRAG;
		}
		pkt->ttl = ip->ttl;
		__builtin_memcpy(pkt->saddr, &ip->saddr, 4);
		__builtin_memcpy(pkt->daddr, &ip->daddr, 4);
		proto = ip->protocol;
		*ip4 = ip;
	} else if (type == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = w.at;
		if ((void *)(ip6 + 1) > w.end || ip6->version != 6)
			goto bad;
		__u32 plen = bpf_ntohs(ip6->payload_len);
		if (plen && (void *)(ip6 + 1) + plen > w.end)
			goto bad;
		w.at = ip6 + 1;
		w.left = plen ? plen : 0xffffffff;
		f |= XDPP_F_IPV6;
		pkt->ttl = ip6->hop_limit;
		__builtin_memcpy(pkt->saddr, &ip6->saddr, 16);
		__builtin_memcpy(pkt->daddr, &ip6->daddr, 16);
		proto = ip6->nexthdr;
#pragma unroll
		for (int i = 0; i < 6; i++) {
			if (proto == IPPROTO_HOPOPTS || proto == IPPROTO_ROUTING || proto == IPPROTO_DSTOPTS) {
				if (!fits(&w, 8))
					goto bad;
				__u32 len = (((__u8 *)w.at)[1] + 1) * 8;
				if (!fits(&w, len))
					goto bad;
				proto = ((__u8 *)w.at)[0];
				w.at += len;
				w.left -= len;
				f |= XDPP_F_IP_OPTIONS;
			} else if (proto == IPPROTO_FRAGMENT) {
				struct ip6_frag_b *fh = w.at;
				if (!fits(&w, sizeof(*fh)))
					goto bad;
				w.at = fh + 1;
				w.left -= sizeof(*fh);
				f |= XDPP_F_IP_OPTIONS;
				proto = fh->nexthdr;
				__u16 off_m = bpf_ntohs(fh->off_m);
				if (off_m & 0xfff9) {
					f |= XDPP_F_FRAGMENT;
					if (off_m & 0xfff8)
						break;
					f |= XDPP_F_FIRST_FRAG;
				}
			} else {
				break;
			}
		}
	} else {
		pkt->flags = f | XDPP_F_PARSED;
		return 0;
	}

	pkt->l4_off = w.at - data;
	pkt->l4_proto = proto;
	if ((f & (XDPP_F_FRAGMENT | XDPP_F_FIRST_FRAG)) != XDPP_F_FRAGMENT) {
		if (proto == IPPROTO_TCP) {
			struct tcphdr *t = w.at;
			if (!fits(&w, sizeof(*t)) || t->doff < 5 || !fits(&w, t->doff * 4))
				goto bad;
			pkt->sport = bpf_ntohs(t->source);
			pkt->dport = bpf_ntohs(t->dest);
			pkt->tcp_flags = ((__u8 *)t)[13];
			f |= XDPP_F_L4;
		} else if (proto == IPPROTO_UDP) {
			struct udphdr *u = w.at;
			if (!fits(&w, sizeof(*u)))
				goto bad;
			pkt->sport = bpf_ntohs(u->source);
			pkt->dport = bpf_ntohs(u->dest);
			f |= XDPP_F_L4;
		} else if ((proto == IPPROTO_ICMP && (f & XDPP_F_IPV4)) ||
			   (proto == IPPROTO_ICMPV6 && (f & XDPP_F_IPV6))) {
			struct icmp_b *ic = w.at;
			if (!fits(&w, sizeof(*ic)))
				goto bad;
			pkt->icmp_type = ic->type;
			pkt->icmp_code = ic->code;
			f |= XDPP_F_L4;
		}
	}
	pkt->flags = f | XDPP_F_PARSED;
	return 0;
bad:
	pkt->flags = f | XDPP_F_PARSED | XDPP_F_MALFORMED;
	return BAD;
}

/* The port filter step: XDP_DROP or -1 (go on). */
static __always_inline int filter_ports(const struct xdpp_packet *pkt)
{
	__u32 f = pkt->flags;
	__u32 dbit, sbit;
	if (pkt->l4_proto == IPPROTO_TCP) {
		dbit = PORT_FILTER_TCP_DST;
		sbit = PORT_FILTER_TCP_SRC;
	} else if (pkt->l4_proto == IPPROTO_UDP) {
		dbit = PORT_FILTER_UDP_DST;
		sbit = PORT_FILTER_UDP_SRC;
	} else {
		return -1;
	}
	__u32 zero = 0;
	__u32 *act = bpf_map_lookup_elem(&port_filter_act, &zero);
	if (!act)
		return -1;
	__u32 set = *act;
	struct port_filter_config *cfg = bpf_map_lookup_elem(&port_filter_cfg, &set);
	if (!cfg)
		return -1;
	if ((f & (XDPP_F_FRAGMENT | XDPP_F_FIRST_FRAG)) == XDPP_F_FRAGMENT)
		return cfg->nonfirst_frag_verdict == XDP_DROP ? XDP_DROP : -1;
	if (!(f & XDPP_F_L4))
		return -1;
	__u32 lists = cfg->lists;
	if (lists & dbit) {
		__u32 key = set * PORT_FILTER_PORTS + pkt->dport;
		__u8 *on = bpf_map_lookup_elem(&port_rules, &key);
		if (on && (*on & dbit))
			return XDP_DROP;
	}
	if (lists & sbit) {
		__u32 key = set * PORT_FILTER_PORTS + pkt->sport;
		__u8 *on = bpf_map_lookup_elem(&port_rules, &key);
		if (on && (*on & sbit))
			return XDP_DROP;
	}
	return -1;
}

static __always_inline __u16 fold_csum4(__u16 check, __u32 old, __u32 new)
{
	__u32 s = (__u16)~check;
	s += (__u16)~old + (__u16)~(old >> 16) + (new & 0xffff) + (new >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s;
}

/* The ICMP LB step: XDP_TX after rewriting, or -1. */
static __always_inline int balance_icmp(struct xdp_md *xdp, const struct xdpp_packet *pkt, struct iphdr *ip)
{
	const __u32 want = XDPP_F_PARSED | XDPP_F_IPV4 | XDPP_F_L4;
	if ((pkt->flags & (want | XDPP_F_FRAGMENT | XDPP_F_MALFORMED)) != want)
		return -1;
	if (pkt->l4_proto != IPPROTO_ICMP || pkt->icmp_type != 8 || !ip)
		return -1;
	__u32 zero = 0;
	__u32 *act = bpf_map_lookup_elem(&icmp_lb_active, &zero);
	if (!act)
		return -1;
	struct icmp_lb_set *set = bpf_map_lookup_elem(&icmp_lb_sets, act);
	if (!set)
		return -1;
	__u32 n = set->backend_count;
	if (n == 0 || n > ICMP_LB_MAX_BACKENDS)
		return -1;
	void *data = (void *)(long)xdp->data;
	void *data_end = (void *)(long)xdp->data_end;
	struct ethhdr *eth = data;
	/* Both checked by the parse step already; repeated for the verifier, whose knowledge of these
	 * pointers did not survive the helper calls in between as ranges it can use. */
	if ((void *)(eth + 1) > data_end || (void *)(ip + 1) > data_end)
		return -1;
	if (ip->daddr != set->vip)
		return -1;
	__u64 *rr = bpf_map_lookup_elem(&icmp_lb_rr, &zero);
	if (!rr)
		return -1;
	__u32 i = __sync_fetch_and_add(rr, 1) % n;
	if (i >= ICMP_LB_MAX_BACKENDS)
		return -1;
	struct icmp_lb_backend *b = &set->backends[i];
	__u32 old = ip->daddr;
	ip->daddr = b->ip;
	ip->check = fold_csum4(ip->check, old, b->ip);
	__builtin_memcpy(eth->h_dest, b->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, set->lb_mac, ETH_ALEN);
	return XDP_TX;
}

/* The metadata step: never decides. */
static __always_inline void record(struct xdp_md *xdp, const struct xdpp_packet *pkt,
				   struct xdpp_counters *counters)
{
	__u32 zero = 0;
	struct metadata_config *cfg = bpf_map_lookup_elem(&metadata_cfg, &zero);
	if (!cfg)
		return;
	__u32 sample = cfg->sample, batch = cfg->wakeup_batch;
	if (!sample)
		return;
	__u64 *seq = bpf_map_lookup_elem(&metadata_seq, &zero);
	if (!seq)
		return;
	__u64 n = (*seq)++;
	if (sample > 1) {
		if (n % sample)
			return;
		n /= sample;
	}
	__u64 wake = 0;
	if (batch > 1)
		wake = (n + 1) % batch ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP;
	struct metadata_event *e = bpf_ringbuf_reserve(&metadata_events, sizeof(*e), 0);
	if (!e) {
		counters->events_lost++;
		return;
	}
	e->timestamp_ns = bpf_ktime_get_ns();
	e->ifindex = xdp->ingress_ifindex;
	e->rx_queue = xdp->rx_queue_index;
	e->pkt_len = xdp->data_end - xdp->data;
	e->packet_flags = pkt->flags;
	metadata_fill_event(e, pkt);   /* the stage's own code: the same event, byte for byte */
	bpf_ringbuf_submit(e, wake);
}

SEC("xdp.frags") int xdpp_mono(struct xdp_md *xdp)
{
	__u32 zero = 0;
	struct xdpp_counters *counters = bpf_map_lookup_elem(&xdpp_counters, &zero);
	if (!counters)
		return XDP_ABORTED;
	counters->packets++;
	counters->bytes += xdp->data_end - xdp->data;

	struct xdpp_packet pkt;
	__builtin_memset(&pkt, 0, sizeof(pkt));
	struct iphdr *ip4 = 0;
	int verdict;

	if (parse_all(xdp, &pkt, &ip4) == BAD) {
		verdict = parse_malformed_verdict;
		goto out;
	}
	verdict = filter_ports(&pkt);
	if (verdict >= 0)
		goto out;
	verdict = balance_icmp(xdp, &pkt, ip4);
	if (verdict >= 0)
		goto out;
	record(xdp, &pkt, counters);
	verdict = mono_default_verdict;
out:
	if (verdict < XDP_ABORTED || verdict > XDP_REDIRECT)
		verdict = XDP_ABORTED;
	counters->verdict[verdict]++;
	return verdict;
}
