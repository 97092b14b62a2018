/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* The monolithic comparator's configuration (bench/mono.bpf.c), shared with the harness that fills it. */
#ifndef XDPP_BENCH_MONO_H
#define XDPP_BENCH_MONO_H

#include <linux/types.h>
#include "icmp_lb.h"
#include "port_filter.h"

/* Everything the four stages' settings say, in one struct in .data (global data: read with plain loads). */
struct mono_config {
	__u32 malformed_verdict;        /* parse: XDP_PASS or XDP_DROP */
	__u32 default_verdict;          /* [pipeline] default_verdict */
	__u32 port_lists;               /* port_filter: OR of PORT_FILTER_* with any port */
	__u32 nonfirst_frag_verdict;    /* port_filter */
	__be32 vip;                     /* icmp_lb; backend_count 0 disables it */
	__u32 backend_count;
	__u8 lb_mac[6];
	__u8 pad[2];
	struct icmp_lb_backend backends[ICMP_LB_MAX_BACKENDS];
	__u32 sample;                   /* metadata: 0 = no events */
	__u32 wakeup_batch;
	__u8 ports[PORT_FILTER_PORTS];  /* port_filter: PORT_FILTER_* bits by port */
};

#endif
