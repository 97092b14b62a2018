/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * parse: reads the headers once and fills struct xdpp_packet (contract.h) for every later stage.
 *
 * Ethernet, up to two VLAN tags (802.1Q / 802.1ad, any order), IPv4 with any IHL 5..15, IPv6 with the
 * hop-by-hop / routing / destination / fragment extension headers skipped, then TCP, UDP, ICMP or ICMPv6.
 * A header that is cut short or inconsistent makes the packet malformed: flagged, nothing past it read,
 * and the chain ends here with the load-time verdict parse_malformed_verdict.
 *
 * The shape is xdp-tools' parsing_helpers.h idea: a cursor walks the packet and one small parse_*()
 * helper per header checks its bounds, records what it learnt and returns the next protocol, or
 * PARSE_MALFORMED. Each bounds check compares a pointer derived from the cursor with data_end just before
 * the access, which is the form the verifier understands (it then knows the accessed range is inside the
 * packet), and which is also the correct check: header start + header length <= data_end. Headers after
 * the IP header must also lie inside the IP datagram (total / payload length), see struct cursor.
 */
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <xdp_pipeline/stage.h>
#include "parse.h"

char LICENSE[] SEC("license") = "GPL";

/* XDP_PASS or XDP_DROP, set by the plugin before load. */
const volatile __u32 parse_malformed_verdict = XDP_PASS;

#define PARSE_MALFORMED (-1)

/* Neither the VLAN tag, the IPv6 fragment header nor the ICMP header has a uapi struct that compiles
 * under -target bpf (<linux/icmp.h> pulls in glibc), so they are spelled out here. */
struct vlan_tag {
	__be16 tci;
	__be16 encap_proto;
};

struct ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;        /* offset in 8-byte units << 3 | M */
	__be32 identification;
};

/* The first 8 bytes of every ICMP and ICMPv6 message: type, code, checksum, 4 type-specific bytes. */
struct icmp_hdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest;
};

#define IPV4_MF 0x2000          /* more fragments */
#define IPV4_OFFSET 0x1fff      /* fragment offset, 8-byte units */
#define IPV6_FRAG_OFFSET 0xfff8
#define IPV6_FRAG_MF 0x0001
#define VLAN_VID_MASK 0x0fff
#define MAX_VLAN_DEPTH 2

struct cursor {
	void *pos;
	void *end;
	/* Bytes of the IP datagram left at pos (total / payload length minus the headers walked). A frame
	 * can be longer than its datagram (Ethernet pads to 60 bytes): headers past the datagram's end are
	 * cut short as much as headers past data_end, and padding is never read as ports. */
	__u32 room;
};

/* The bounds check every header does: in the frame (for the verifier and for safety), and in the
 * datagram. The pointer comparison must stay a comparison with c->end, the form the verifier learns
 * a packet range from. */
static __always_inline int header_fits(const struct cursor *c, __u32 len)
{
	return c->pos + len <= c->end && len <= c->room;
}

/* struct ethhdr is packed, so clang reads h_proto as two bytes. Ethertypes sit at even offsets from
 * data, and the verifier checks the alignment of packet reads only on architectures without efficient
 * unaligned access (not x86), so one 16-bit load is safe. */
static __always_inline __be16 load_be16(const void *p)
{
	return *(const __be16 *)p;
}

static __always_inline int is_vlan(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

/* Ethernet and up to two VLAN tags. Returns the innermost ethertype (host order). */
static __always_inline int parse_eth(struct cursor *c, struct xdpp_packet *pkt, __u32 *flags)
{
	struct ethhdr *eth = c->pos;
	if ((void *)(eth + 1) > c->end)
		return PARSE_MALFORMED;   /* runt frame */
	c->pos = eth + 1;

	__be16 proto = load_be16(&eth->h_proto);
#pragma unroll
	for (int i = 0; i < MAX_VLAN_DEPTH; i++) {
		if (!is_vlan(proto))
			break;
		struct vlan_tag *tag = c->pos;
		if ((void *)(tag + 1) > c->end)
			return PARSE_MALFORMED;
		c->pos = tag + 1;
		pkt->vlan_id[i] = bpf_ntohs(tag->tci) & VLAN_VID_MASK;
		pkt->vlan_depth = i + 1;
		*flags |= XDPP_F_VLAN;
		proto = load_be16(&tag->encap_proto);
	}
	/* A third tag is left alone: eth_proto is then 0x8100/0x88A8, an ethertype parse does not know. */
	pkt->eth_proto = bpf_ntohs(proto);
	return bpf_ntohs(proto);
}

/* IPv4 header and options. Returns the IP protocol. */
static __always_inline int parse_ipv4(struct cursor *c, struct xdpp_packet *pkt, __u32 *flags)
{
	struct iphdr *iph = c->pos;
	if ((void *)(iph + 1) > c->end)
		return PARSE_MALFORMED;
	if (iph->version != 4 || iph->ihl < 5)
		return PARSE_MALFORMED;

	__u32 hdr_len = iph->ihl * 4;      /* 20..60: the verifier knows the bound from the 4-bit field */
	__u32 tot_len = bpf_ntohs(iph->tot_len);
	if (tot_len < hdr_len)
		return PARSE_MALFORMED;
	/* A frame may be longer than the datagram (Ethernet padding), never shorter. */
	if (c->pos + tot_len > c->end)
		return PARSE_MALFORMED;
	/* Implied by the two checks above, but the verifier cannot learn a packet range from a length of up
	 * to 65535 (it only does below MAX_PACKET_OFF), so the options get their own check. */
	if (c->pos + hdr_len > c->end)
		return PARSE_MALFORMED;
	c->pos += hdr_len;
	c->room = tot_len - hdr_len;

	*flags |= XDPP_F_IPV4;
	if (hdr_len > sizeof(*iph))
		*flags |= XDPP_F_IP_OPTIONS;
	__u16 frag = bpf_ntohs(iph->frag_off);
	if (frag & (IPV4_MF | IPV4_OFFSET)) {
		*flags |= XDPP_F_FRAGMENT;
		if (!(frag & IPV4_OFFSET))
			*flags |= XDPP_F_FIRST_FRAG;
	}
	pkt->ttl = iph->ttl;
	__builtin_memcpy(pkt->saddr, &iph->saddr, sizeof(iph->saddr));
	__builtin_memcpy(pkt->daddr, &iph->daddr, sizeof(iph->daddr));
	return iph->protocol;
}

/*
 * IPv6 extension headers: skips hop-by-hop, routing, destination options and fragment headers, at most
 * PARSE_MAX_IPV6_EXT of them. Returns the next header after them (or the one it stopped at: another
 * extension header, ESP, "no next header", or the upper protocol of a non-first fragment).
 *
 * Unrolled: each header adds a variable length to the cursor, and the verifier keeps checking each access
 * against data_end with the accumulated variable offset (at most 6 * 2048 + 62, far below 64 KiB).
 */
static __always_inline int parse_ipv6_ext(struct cursor *c, __u8 nexthdr, __u32 *flags)
{
#pragma unroll
	for (int i = 0; i < PARSE_MAX_IPV6_EXT; i++) {
		switch (nexthdr) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS: {
			struct ipv6_opt_hdr *opt = c->pos;
			/* Every extension header is a multiple of 8 bytes, at least 8. */
			if (!header_fits(c, 8))
				return PARSE_MALFORMED;
			__u32 len = (opt->hdrlen + 1) * 8;
			if (!header_fits(c, len))
				return PARSE_MALFORMED;
			nexthdr = opt->nexthdr;
			c->pos += len;
			c->room -= len;
			*flags |= XDPP_F_IP_OPTIONS;
			break;
		}
		case IPPROTO_FRAGMENT: {
			struct ipv6_frag_hdr *fh = c->pos;
			if (!header_fits(c, sizeof(*fh)))
				return PARSE_MALFORMED;
			c->pos = fh + 1;
			c->room -= sizeof(*fh);
			*flags |= XDPP_F_IP_OPTIONS;
			nexthdr = fh->nexthdr;
			__u16 frag = bpf_ntohs(fh->frag_off);
			/* Offset 0 without M is an atomic fragment (RFC 6946): a whole datagram. */
			if (frag & (IPV6_FRAG_OFFSET | IPV6_FRAG_MF)) {
				*flags |= XDPP_F_FRAGMENT;
				if (frag & IPV6_FRAG_OFFSET)
					return nexthdr;   /* the rest is payload: no header to walk */
				*flags |= XDPP_F_FIRST_FRAG;
			}
			break;
		}
		default:
			return nexthdr;
		}
	}
	/* Still an extension header after PARSE_MAX_IPV6_EXT of them: the upper-layer header cannot be
	 * located, so no port rule could be applied to it. Malformed, so that the operator's malformed
	 * verdict decides, rather than a silent pass past every later stage's rules. */
	switch (nexthdr) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_DSTOPTS:
	case IPPROTO_FRAGMENT:
		return PARSE_MALFORMED;
	}
	return nexthdr;
}

/* IPv6 fixed header, then its extension headers. Returns the upper-layer protocol. */
static __always_inline int parse_ipv6(struct cursor *c, struct xdpp_packet *pkt, __u32 *flags)
{
	struct ipv6hdr *ip6h = c->pos;
	if ((void *)(ip6h + 1) > c->end)
		return PARSE_MALFORMED;
	if (ip6h->version != 6)
		return PARSE_MALFORMED;
	/* The payload must fit in the frame. Length 0 bounds it to nothing: a jumbogram (RFC 2675) is longer
	 * than 64 KiB and never an XDP frame, so an upper-layer header behind length 0 is cut short. Trusting
	 * the frame instead would read Ethernet padding as ports. */
	__u32 payload_len = bpf_ntohs(ip6h->payload_len);
	if ((void *)(ip6h + 1) + payload_len > c->end)
		return PARSE_MALFORMED;
	c->pos = ip6h + 1;
	c->room = payload_len;

	*flags |= XDPP_F_IPV6;
	pkt->ttl = ip6h->hop_limit;
	__builtin_memcpy(pkt->saddr, &ip6h->saddr, sizeof(ip6h->saddr));
	__builtin_memcpy(pkt->daddr, &ip6h->daddr, sizeof(ip6h->daddr));
	return parse_ipv6_ext(c, ip6h->nexthdr, flags);
}

static __always_inline int parse_tcp(struct cursor *c, struct xdpp_packet *pkt)
{
	struct tcphdr *tcph = c->pos;
	if (!header_fits(c, sizeof(*tcph)))
		return PARSE_MALFORMED;
	if (tcph->doff < 5)
		return PARSE_MALFORMED;
	/* The options must be there too: doff * 4 is at most 60, a range the verifier tracks. */
	if (!header_fits(c, tcph->doff * 4))
		return PARSE_MALFORMED;
	pkt->sport = bpf_ntohs(tcph->source);
	pkt->dport = bpf_ntohs(tcph->dest);
	pkt->tcp_flags = ((__u8 *)tcph)[13];   /* FIN..URG, plus ECE/CWR in the top bits */
	return 0;
}

static __always_inline int parse_udp(struct cursor *c, struct xdpp_packet *pkt)
{
	struct udphdr *udph = c->pos;
	if (!header_fits(c, sizeof(*udph)))
		return PARSE_MALFORMED;
	pkt->sport = bpf_ntohs(udph->source);
	pkt->dport = bpf_ntohs(udph->dest);
	return 0;
}

static __always_inline int parse_icmp(struct cursor *c, struct xdpp_packet *pkt)
{
	struct icmp_hdr *icmph = c->pos;
	if (!header_fits(c, sizeof(*icmph)))
		return PARSE_MALFORMED;
	pkt->icmp_type = icmph->type;
	pkt->icmp_code = icmph->code;
	return 0;
}

/*
 * The L4 header at the cursor, if parse knows it. Returns 1 when one was read (XDPP_F_L4), 0 for a
 * protocol without a header parse knows, PARSE_MALFORMED when the header is cut short.
 */
static __always_inline int parse_l4(struct cursor *c, struct xdpp_packet *pkt, int proto, __u32 flags)
{
	int ret;

	if (proto == IPPROTO_TCP)
		ret = parse_tcp(c, pkt);
	else if (proto == IPPROTO_UDP)
		ret = parse_udp(c, pkt);
	else if ((proto == IPPROTO_ICMP && (flags & XDPP_F_IPV4)) ||
		 (proto == IPPROTO_ICMPV6 && (flags & XDPP_F_IPV6)))
		ret = parse_icmp(c, pkt);
	else
		return 0;
	return ret < 0 ? PARSE_MALFORMED : 1;
}

XDPP_STAGE(parse)(struct xdp_md *xdp, struct xdpp_packet *pkt)
{
	void *data = (void *)(long)xdp->data;
	void *data_end = (void *)(long)xdp->data_end;
	struct cursor c = { .pos = data, .end = data_end, .room = 0 };
	__u32 flags = 0;
	int proto;

	/* Every field starts at "does not apply"; the helpers fill what the packet has. Map values are
	 * 8-byte aligned, which lets the zeroing use 8-byte stores. */
	__builtin_memset(__builtin_assume_aligned(pkt, 8), 0, sizeof(*pkt));
	pkt->pkt_len = data_end - data;

	proto = parse_eth(&c, pkt, &flags);
	if (proto < 0)
		goto malformed;
	pkt->l3_off = c.pos - data;

	if (proto == ETH_P_IP)
		proto = parse_ipv4(&c, pkt, &flags);
	else if (proto == ETH_P_IPV6)
		proto = parse_ipv6(&c, pkt, &flags);
	else
		goto done;   /* ARP, LLDP, ...: known to be not IP, and the chain goes on */
	if (proto < 0)
		goto malformed;

	/* l4_off is where the upper protocol's bytes start, also for a protocol parse does not read. */
	pkt->l4_off = c.pos - data;
	pkt->l4_proto = proto;

	/* A non-first fragment starts in the middle of the datagram: what sits at l4_off is payload, and
	 * reading "ports" from it would be a guess. */
	if ((flags & (XDPP_F_FRAGMENT | XDPP_F_FIRST_FRAG)) == XDPP_F_FRAGMENT)
		goto done;

	switch (parse_l4(&c, pkt, proto, flags)) {
	case PARSE_MALFORMED:
		goto malformed;
	case 1:
		flags |= XDPP_F_L4;
		break;
	}

done:
	pkt->flags = flags | XDPP_F_PARSED;
	return XDPP_CONTINUE;

malformed:
	pkt->flags = flags | XDPP_F_PARSED | XDPP_F_MALFORMED;
	return parse_malformed_verdict;
}
