/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * metadata: one struct metadata_event per packet (or one in `sample`) into the ring buffer
 * metadata_events, for the plugin to print. Never decides: every packet continues.
 *
 * The event is written in place (bpf_ringbuf_reserve/submit), not built on the stack and copied. A full
 * ring refuses the reservation: the event is lost and counted, the packet goes on.
 */
#include <xdp_pipeline/stage.h>
#include "metadata.h"

/* The stage's maps (the plugin opens them by name; layouts and names in metadata.h). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, METADATA_DEFAULT_RING_SIZE);   /* the plugin may resize it before load */
} metadata_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct metadata_config);
} metadata_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} metadata_seq SEC(".maps");

char LICENSE[] SEC("license") = "GPL";

XDPP_STAGE(metadata)(struct xdp_md *xdp, struct xdpp_packet *pkt)
{
	__u32 zero = 0;
	struct metadata_config *cfg = bpf_map_lookup_elem(&metadata_cfg, &zero);
	if (!cfg)
		return XDPP_CONTINUE;
	__u32 sample = cfg->sample;
	__u32 wakeup_batch = cfg->wakeup_batch;
	if (sample == 0)
		return XDPP_CONTINUE;

	__u64 *seq = bpf_map_lookup_elem(&metadata_seq, &zero);
	if (!seq)
		return XDPP_CONTINUE;
	/* Per CPU, so a plain increment is exact. */
	__u64 seen = (*seq)++;
	/* The number of this CPU's event. The division is skipped in the common "every packet" case. */
	__u64 event_no = seen;
	if (sample > 1) {
		if (seen % sample)
			return XDPP_CONTINUE;
		event_no = seen / sample;
	}

	/* Batching: the reader is woken by every wakeup_batch-th event only. */
	__u64 rb_flags = 0;
	if (wakeup_batch > 1)
		rb_flags = (event_no + 1) % wakeup_batch ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP;

	struct metadata_event *event = bpf_ringbuf_reserve(&metadata_events, sizeof(*event), 0);
	if (!event) {
		xdpp_count_event_lost();
		return XDPP_CONTINUE;
	}
	event->timestamp_ns = bpf_ktime_get_ns();
	event->ifindex = xdp->ingress_ifindex;
	event->rx_queue = xdp->rx_queue_index;
	/* The whole frame, all buffers: parse's record when it ran (it asked the kernel only if the frame
	 * needed it), else the kernel's answer. */
	event->pkt_len = (pkt->flags & XDPP_F_PARSED) ? pkt->pkt_len : bpf_xdp_get_buff_len(xdp);
	event->packet_flags = pkt->flags;
	metadata_fill_event(event, pkt);
	bpf_ringbuf_submit(event, rb_flags);
	return XDPP_CONTINUE;
}
