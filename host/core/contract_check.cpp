// Compile-time checks that the C++ view of the BPF contract is the BPF view: sizes and offsets as
// clang -target bpf lays them out (natural alignment, no packing). A layout change in contract.h that
// forgets XDPP_CONTRACT_VERSION breaks the build here rather than a packet later.
#include <cstddef>

extern "C" {
#include <xdp_pipeline/contract.h>
}

// XDPP_CONTRACT_UPGRADE_REHEARSAL: the test-only build of tests/live that bumps the version, layouts unchanged.
#ifndef XDPP_CONTRACT_UPGRADE_REHEARSAL
static_assert(XDPP_CONTRACT_VERSION == 4, "contract changed: review the layouts below and bump them together");
#endif
static_assert(XDPP_MAX_STAGES == 33, "the kernel allows 33 tail calls per packet");

static_assert(sizeof(xdpp_packet) == 60);
// One line per CPU in the packet context section (stage.h), indexed by CPU number & (XDPP_MAX_CPUS - 1).
static_assert(sizeof(xdpp_packet) <= XDPP_CONTEXT_LINE);
static_assert((XDPP_MAX_CPUS & (XDPP_MAX_CPUS - 1)) == 0, "XDPP_MAX_CPUS is a power of 2 (stage.h masks with it)");
// libbpf names a custom section's map by the section name only while it fits a kernel object name (15
// characters); longer, it would be truncated, and the host finds the map by that name.
static_assert(sizeof(XDPP_CONTEXT_SECTION) <= 16);
static_assert(offsetof(xdpp_packet, flags) == 0);
static_assert(offsetof(xdpp_packet, eth_proto) == 4);
static_assert(offsetof(xdpp_packet, l3_off) == 6);
static_assert(offsetof(xdpp_packet, l4_off) == 8);
static_assert(offsetof(xdpp_packet, l4_proto) == 10);
static_assert(offsetof(xdpp_packet, vlan_depth) == 11);
static_assert(offsetof(xdpp_packet, vlan_id) == 12);
static_assert(offsetof(xdpp_packet, sport) == 16);
static_assert(offsetof(xdpp_packet, dport) == 18);
static_assert(offsetof(xdpp_packet, icmp_type) == 20);
static_assert(offsetof(xdpp_packet, tcp_flags) == 22);
static_assert(offsetof(xdpp_packet, ttl) == 23);
static_assert(offsetof(xdpp_packet, pkt_len) == 24);
static_assert(offsetof(xdpp_packet, saddr) == 28);
static_assert(offsetof(xdpp_packet, daddr) == 44);

// Contract 2: counted once per packet where its way ends; one cache line per CPU and slot.
static_assert(sizeof(xdpp_counters) == 8 * 8);
static_assert(offsetof(xdpp_counters, bytes) == 0);
static_assert(offsetof(xdpp_counters, verdict) == 8);
static_assert(offsetof(xdpp_counters, fell_off) == 48);
static_assert(offsetof(xdpp_counters, events_lost) == 56);
static_assert(XDPP_COUNTER_SLOTS == 2);
