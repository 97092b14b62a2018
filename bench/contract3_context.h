/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* For comparison only: contract 3's packet context, a one-entry per-CPU array that the whole chain shared
 * (the harness reuses slot 0's map in every later stage). noop_v3_stage.bpf.c and ablation/lookup.bpf.c. */
#ifndef XDPP_BENCH_CONTRACT3_CONTEXT_H
#define XDPP_BENCH_CONTRACT3_CONTEXT_H

#include <xdp_pipeline/stage.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdpp_packet);
} xdpp_scratch SEC(".maps");

#endif
