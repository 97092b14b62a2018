/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The header walk of the parse stage, shared with anything that must parse exactly as parse does (the
 * monolithic comparator in bench/mono.bpf.c). BPF side only. parse_packet() fills a struct xdpp_packet
 * (contract.h), wherever it lives: the per-CPU context (parse) or the stack (bench/mono.bpf.c).
 *
 * Ethernet, up to two VLAN tags (802.1Q / 802.1ad, any order), IPv4 with any IHL 5..15, IPv6 with the
 * hop-by-hop / routing / destination / fragment extension headers skipped, then TCP, UDP, ICMP or ICMPv6.
 * A header that is cut short or inconsistent makes the packet malformed: flagged, nothing past it read.
 *
 * The shape is xdp-tools' parsing_helpers.h idea: a cursor walks the packet and one small parse_*()
 * helper per header checks its bounds, records what it learnt and returns the next protocol, or
 * PARSE_MALFORMED. Headers after the IP header must also lie inside the IP datagram (total / payload
 * length), see struct cursor.
 *
 * Multi-buffer frames (jumbo MTU): the frame is the first buffer (data .. data_end) plus fragments. Lengths
 * are checked against the whole frame (bpf_xdp_get_buff_len), asked for only when a datagram reaches past
 * the first buffer, so a frame that fits in one buffer costs no helper call. Headers are read in one of two
 * modes, the same code compiled twice (`split` is a constant in each copy):
 *   - direct (split = 0): pointers into the first buffer, no helper call. Each bounds check compares a
 *     pointer derived from the cursor with data_end just before the access, the form the verifier
 *     understands. A header or a datagram that reaches past data_end, or a frame that is not IP (no length
 *     says whether fragments follow), ends this mode with PARSE_SPLIT;
 *   - split (split = 1): the frame is parsed again from the start, each header copied out of whichever
 *     buffers hold it with bpf_xdp_load_bytes, which fails past the frame's end (cut short: malformed).
 * Drivers fill the first buffer before they add fragments, so headers are split only in odd frames (and
 * in tests); a truncated frame also takes the second mode to be found malformed.
 */
#ifndef XDPP_STAGE_PARSE_HELPERS_H
#define XDPP_STAGE_PARSE_HELPERS_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <xdp_pipeline/contract.h>

/* IPv6 extension headers the walk follows (hop-by-hop, routing, destination, fragment) before giving up. */
#define PARSE_MAX_IPV6_EXT 6

#define PARSE_OK 0
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

/* A header reaches past the first buffer: parse the frame again in split mode. Not an XDP action, not
 * XDPP_CONTINUE. */
#define PARSE_SPLIT (-2)

struct cursor {
	void *data;             /* the first buffer: data .. end */
	void *end;
	void *pos;              /* direct mode: where the next header starts */
	__u32 off;              /* split mode: the same, as an offset from data */
	/* Bytes of the IP datagram left at the cursor (total / payload length minus the headers walked). A
	 * frame can be longer than its datagram (Ethernet pads to 60 bytes): headers past the datagram's end
	 * are cut short as much as headers past the frame's end, and padding is never read as ports. */
	__u32 room;
	__u32 frame_len;        /* the whole frame, all buffers; 0 until asked for */
	struct xdp_md *xdp;
};

static __always_inline __u32 cursor_off(const struct cursor *c, const int split)
{
	return split ? c->off : (__u32)(c->pos - c->data);
}

static __always_inline void advance(struct cursor *c, __u32 len, const int split)
{
	if (split)
		c->off += len;
	else
		c->pos += len;
}

/* The whole frame's length, all buffers: one helper call, remembered. */
static __always_inline __u32 whole_frame_len(struct cursor *c)
{
	if (!c->frame_len)
		c->frame_len = bpf_xdp_get_buff_len(c->xdp);
	return c->frame_len;
}

/* Whether the frame holds bytes up to offset `end_off`. Asks the kernel for the whole length only when
 * the first buffer is too short, so a one-buffer frame costs no helper call. */
static __always_inline int frame_holds(struct cursor *c, __u32 end_off)
{
	return end_off <= (__u32)(c->end - c->data) || end_off <= whole_frame_len(c);
}

/*
 * Points *out at the `len` bytes of header at the cursor. Direct: into the first buffer, or PARSE_SPLIT when
 * they reach past it. Split: at their copy in `copy`, or PARSE_MALFORMED when they reach past the frame.
 * `len` is a constant in split mode (the helper wants a known size). A status rather than a NULL pointer:
 * the compiler would otherwise test the packet pointer against NULL on every header of the fast path.
 */
static __always_inline int header_at(struct cursor *c, __u32 len, void *copy, void **out, const int split)
{
	if (split) {
		if (bpf_xdp_load_bytes(c->xdp, c->off, copy, len))
			return PARSE_MALFORMED;
		*out = copy;
		return 0;
	}
	if (c->pos + len > c->end)
		return PARSE_SPLIT;
	*out = c->pos;
	return 0;
}

/* The header must also lie in the datagram. */
static __always_inline int in_datagram(const struct cursor *c, __u32 len)
{
	return len <= c->room;
}

/* A variable-length part of a header (IPv4 or TCP options, an IPv6 extension header) that is skipped, not
 * read: direct mode needs it in the first buffer (the verifier checks every later access against it);
 * split mode only needs it in the datagram, which frame_holds() already placed in the frame. */
static __always_inline int skippable(const struct cursor *c, __u32 len, const int split)
{
	return split || c->pos + len <= c->end;
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
static __always_inline int parse_eth(struct cursor *c, struct xdpp_packet *pkt, __u32 *flags, const int split)
{
	struct ethhdr eth_copy;
	struct ethhdr *eth;
	int eth_status = header_at(c, sizeof(*eth), &eth_copy, (void **)&eth, split);
	if (eth_status)
		return eth_status;
	__be16 proto = load_be16(&eth->h_proto);
	advance(c, sizeof(*eth), split);

#pragma unroll
	for (int i = 0; i < MAX_VLAN_DEPTH; i++) {
		if (!is_vlan(proto))
			break;
		struct vlan_tag tag_copy;
		struct vlan_tag *tag;
		int tag_status = header_at(c, sizeof(*tag), &tag_copy, (void **)&tag, split);
		if (tag_status)
			return tag_status;
		pkt->vlan_id[i] = bpf_ntohs(tag->tci) & VLAN_VID_MASK;
		pkt->vlan_depth = i + 1;
		*flags |= XDPP_F_VLAN;
		proto = load_be16(&tag->encap_proto);
		advance(c, sizeof(*tag), split);
	}
	/* A third tag is left alone: eth_proto is then 0x8100/0x88A8, an ethertype parse does not know. */
	pkt->eth_proto = bpf_ntohs(proto);
	return bpf_ntohs(proto);
}

/* IPv4 header and options. Returns the IP protocol. */
static __always_inline int parse_ipv4(struct cursor *c, struct xdpp_packet *pkt, __u32 *flags, const int split)
{
	struct iphdr iph_copy;
	struct iphdr *iph;
	int iph_status = header_at(c, sizeof(*iph), &iph_copy, (void **)&iph, split);
	if (iph_status)
		return iph_status;
	if (iph->version != 4 || iph->ihl < 5)
		return PARSE_MALFORMED;

	__u32 hdr_len = iph->ihl * 4;      /* 20..60: the verifier knows the bound from the 4-bit field */
	__u32 tot_len = bpf_ntohs(iph->tot_len);
	if (tot_len < hdr_len)
		return PARSE_MALFORMED;
	/* A frame may be longer than the datagram (Ethernet padding), never shorter. Direct mode makes no
	 * helper call (a call makes the compiler keep the cursor on the stack): a datagram that reaches past
	 * the first buffer is split mode's, which asks the kernel for the whole frame's length. */
	if (!split && c->pos + tot_len > c->end)
		return PARSE_SPLIT;
	if (split && !frame_holds(c, c->off + tot_len))
		return PARSE_MALFORMED;
	/* The options are in the datagram (checked above), but the verifier cannot learn a packet range from a
	 * length of up to 65535 (it only does below MAX_PACKET_OFF), so they get their own check. */
	if (!skippable(c, hdr_len, split))
		return PARSE_SPLIT;

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
	int protocol = iph->protocol;
	advance(c, hdr_len, split);
	c->room = tot_len - hdr_len;
	return protocol;
}

/*
 * IPv6 extension headers: skips hop-by-hop, routing, destination options and fragment headers, at most
 * PARSE_MAX_IPV6_EXT of them. Returns the next header after them (or the one it stopped at: another
 * extension header, ESP, "no next header", or the upper protocol of a non-first fragment).
 *
 * Unrolled: each header adds a variable length to the cursor, and the verifier keeps checking each access
 * against data_end with the accumulated variable offset (at most 6 * 2048 + 62, far below 64 KiB).
 */
static __always_inline int parse_ipv6_ext(struct cursor *c, __u8 nexthdr, __u32 *flags, const int split)
{
#pragma unroll
	for (int i = 0; i < PARSE_MAX_IPV6_EXT; i++) {
		switch (nexthdr) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS: {
			/* Every extension header is a multiple of 8 bytes, at least 8. */
			struct ipv6_opt_hdr opt_copy;
			if (!in_datagram(c, 8))
				return PARSE_MALFORMED;
			struct ipv6_opt_hdr *opt;
			int opt_status = header_at(c, sizeof(*opt), &opt_copy, (void **)&opt, split);
			if (opt_status)
				return opt_status;
			__u32 len = (opt->hdrlen + 1) * 8;
			if (!in_datagram(c, len))
				return PARSE_MALFORMED;
			if (!skippable(c, len, split))
				return PARSE_SPLIT;
			nexthdr = opt->nexthdr;
			advance(c, len, split);
			c->room -= len;
			*flags |= XDPP_F_IP_OPTIONS;
			break;
		}
		case IPPROTO_FRAGMENT: {
			struct ipv6_frag_hdr fh_copy;
			if (!in_datagram(c, sizeof(fh_copy)))
				return PARSE_MALFORMED;
			struct ipv6_frag_hdr *fh;
			int fh_status = header_at(c, sizeof(*fh), &fh_copy, (void **)&fh, split);
			if (fh_status)
				return fh_status;
			nexthdr = fh->nexthdr;
			__u16 frag = bpf_ntohs(fh->frag_off);
			advance(c, sizeof(*fh), split);
			c->room -= sizeof(*fh);
			*flags |= XDPP_F_IP_OPTIONS;
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
static __always_inline int parse_ipv6(struct cursor *c, struct xdpp_packet *pkt, __u32 *flags, const int split)
{
	struct ipv6hdr ip6h_copy;
	struct ipv6hdr *ip6h;
	int ip6h_status = header_at(c, sizeof(*ip6h), &ip6h_copy, (void **)&ip6h, split);
	if (ip6h_status)
		return ip6h_status;
	if (ip6h->version != 6)
		return PARSE_MALFORMED;
	/* The payload must fit in the frame. Length 0 bounds it to nothing: a jumbogram (RFC 2675) is longer
	 * than 64 KiB and never an XDP frame, so an upper-layer header behind length 0 is cut short. Trusting
	 * the frame instead would read Ethernet padding as ports. */
	__u32 payload_len = bpf_ntohs(ip6h->payload_len);
	if (!split && (void *)(ip6h + 1) + payload_len > c->end)
		return PARSE_SPLIT;
	if (split && !frame_holds(c, c->off + sizeof(*ip6h) + payload_len))
		return PARSE_MALFORMED;

	*flags |= XDPP_F_IPV6;
	pkt->ttl = ip6h->hop_limit;
	__builtin_memcpy(pkt->saddr, &ip6h->saddr, sizeof(ip6h->saddr));
	__builtin_memcpy(pkt->daddr, &ip6h->daddr, sizeof(ip6h->daddr));
	__u8 nexthdr = ip6h->nexthdr;
	advance(c, sizeof(*ip6h), split);
	c->room = payload_len;
	return parse_ipv6_ext(c, nexthdr, flags, split);
}

static __always_inline int parse_tcp(struct cursor *c, struct xdpp_packet *pkt, const int split)
{
	struct tcphdr tcph_copy;
	if (!in_datagram(c, sizeof(tcph_copy)))
		return PARSE_MALFORMED;
	struct tcphdr *tcph;
	int tcph_status = header_at(c, sizeof(*tcph), &tcph_copy, (void **)&tcph, split);
	if (tcph_status)
		return tcph_status;
	if (tcph->doff < 5)
		return PARSE_MALFORMED;
	/* The options must be there too: doff * 4 is at most 60, a range the verifier tracks. */
	if (!in_datagram(c, tcph->doff * 4))
		return PARSE_MALFORMED;
	if (!skippable(c, tcph->doff * 4, split))
		return PARSE_SPLIT;
	pkt->sport = bpf_ntohs(tcph->source);
	pkt->dport = bpf_ntohs(tcph->dest);
	pkt->tcp_flags = ((__u8 *)tcph)[13];   /* FIN..URG, plus ECE/CWR in the top bits */
	return 0;
}

static __always_inline int parse_udp(struct cursor *c, struct xdpp_packet *pkt, const int split)
{
	struct udphdr udph_copy;
	if (!in_datagram(c, sizeof(udph_copy)))
		return PARSE_MALFORMED;
	struct udphdr *udph;
	int udph_status = header_at(c, sizeof(*udph), &udph_copy, (void **)&udph, split);
	if (udph_status)
		return udph_status;
	pkt->sport = bpf_ntohs(udph->source);
	pkt->dport = bpf_ntohs(udph->dest);
	return 0;
}

static __always_inline int parse_icmp(struct cursor *c, struct xdpp_packet *pkt, const int split)
{
	struct icmp_hdr icmph_copy;
	if (!in_datagram(c, sizeof(icmph_copy)))
		return PARSE_MALFORMED;
	struct icmp_hdr *icmph;
	int icmph_status = header_at(c, sizeof(*icmph), &icmph_copy, (void **)&icmph, split);
	if (icmph_status)
		return icmph_status;
	pkt->icmp_type = icmph->type;
	pkt->icmp_code = icmph->code;
	return 0;
}

/*
 * The L4 header at the cursor, if parse knows it. Returns 1 when one was read (XDPP_F_L4), 0 for a
 * protocol without a header parse knows, PARSE_MALFORMED when the header is cut short, PARSE_SPLIT.
 */
static __always_inline int parse_l4(struct cursor *c, struct xdpp_packet *pkt, int proto, __u32 flags,
				    const int split)
{
	int ret;

	if (proto == IPPROTO_TCP)
		ret = parse_tcp(c, pkt, split);
	else if (proto == IPPROTO_UDP)
		ret = parse_udp(c, pkt, split);
	else if ((proto == IPPROTO_ICMP && (flags & XDPP_F_IPV4)) ||
		 (proto == IPPROTO_ICMPV6 && (flags & XDPP_F_IPV6)))
		ret = parse_icmp(c, pkt, split);
	else
		return 0;
	return ret < 0 ? ret : 1;
}

/* The whole parse in one mode. Returns PARSE_OK, PARSE_MALFORMED (pkt says so in its flags), or PARSE_SPLIT
 * (direct mode only: the caller starts over in split mode, which overwrites everything written here). */
static __always_inline int parse_frame(struct cursor *c, struct xdpp_packet *pkt, const int split)
{
	__u32 flags = 0;
	int proto;

	/* Every field starts at "does not apply"; the helpers fill what the packet has. Map values are
	 * 8-byte aligned, which lets the zeroing use 8-byte stores. */
	__builtin_memset(__builtin_assume_aligned(pkt, 8), 0, sizeof(*pkt));

	proto = parse_eth(c, pkt, &flags, split);
	if (proto < 0)
		goto stop;
	pkt->l3_off = cursor_off(c, split);

	if (proto == ETH_P_IP) {
		proto = parse_ipv4(c, pkt, &flags, split);
	} else if (proto == ETH_P_IPV6) {
		proto = parse_ipv6(c, pkt, &flags, split);
	} else {
		/* ARP, LLDP, ...: known to be not IP, and the chain goes on. No IP length tells whether more
		 * buffers follow, so split mode asks the kernel (such frames are rare). */
		if (!split)
			return PARSE_SPLIT;
		whole_frame_len(c);
		goto done;
	}
	if (proto < 0)
		goto stop;

	/* l4_off is where the upper protocol's bytes start, also for a protocol parse does not read. */
	pkt->l4_off = cursor_off(c, split);
	pkt->l4_proto = proto;

	/* A non-first fragment starts in the middle of the datagram: what sits at l4_off is payload, and
	 * reading "ports" from it would be a guess. */
	if ((flags & (XDPP_F_FRAGMENT | XDPP_F_FIRST_FRAG)) == XDPP_F_FRAGMENT)
		goto done;

	int l4 = parse_l4(c, pkt, proto, flags, split);
	if (l4 < 0) {
		proto = l4;
		goto stop;
	}
	if (l4 == 1)
		flags |= XDPP_F_L4;

done:
	/* The whole frame in split mode; in direct mode the first buffer, which then holds the whole
	 * datagram: drivers fill it before adding fragments. */
	pkt->pkt_len = c->frame_len ? c->frame_len : (__u32)(c->end - c->data);
	pkt->flags = flags | XDPP_F_PARSED;
	return PARSE_OK;

stop:
	if (proto == PARSE_SPLIT)
		return PARSE_SPLIT;
	pkt->pkt_len = c->frame_len ? c->frame_len : (__u32)(c->end - c->data);
	pkt->flags = flags | XDPP_F_PARSED | XDPP_F_MALFORMED;
	return PARSE_MALFORMED;
}

/* Split mode, a BPF subprogram of its own: its helper calls then do not make the compiler spill the direct
 * mode's cursor to the stack on every packet. */
static __noinline int parse_split(struct xdp_md *xdp, struct xdpp_packet *pkt)
{
	void *data = (void *)(long)xdp->data;
	struct cursor c = { .data = data, .end = (void *)(long)xdp->data_end, .pos = data, .off = 0, .room = 0,
			    .frame_len = 0, .xdp = xdp };
	return parse_frame(&c, pkt, 1);
}

/* Parses the frame into *pkt: PARSE_OK or PARSE_MALFORMED. Direct first; a header or the datagram that
 * reaches past the first buffer (or past the frame: then split mode finds it cut short), or a frame that is
 * not IP, is parsed again in split mode. */
static __always_inline int parse_packet(struct xdp_md *xdp, struct xdpp_packet *pkt)
{
	void *data = (void *)(long)xdp->data;
	struct cursor c = { .data = data, .end = (void *)(long)xdp->data_end, .pos = data, .off = 0, .room = 0,
			    .frame_len = 0, .xdp = xdp };
	int status = parse_frame(&c, pkt, 0);
	if (status != PARSE_SPLIT)
		return status;
	return parse_split(xdp, pkt);
}

#endif /* XDPP_STAGE_PARSE_HELPERS_H */
