// The whole chain through the real chain: parse -> no-8080 (port_filter) -> ping-lb (icmp_lb) ->
// flows (metadata). Which stage decides each packet, with what verdict, output bytes and events; the
// counters over a stream; and packets that fall off an emptied chain slot.
#include <gtest/gtest.h>

#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "packet.h"
#include "test_pipeline.h"

namespace xdpp::test {
namespace {

// The stages after parse, one table each, so that tests can put them in other orders.
const std::string kNo8080 = R"(
[[stage]]
name = "no-8080"
plugin = "port_filter"
drop_tcp_dst = [8080, "9000-9100"]
drop_udp_dst = [53]
fragments = "drop"
)";
const std::string kPingLb = R"(
[[stage]]
name = "ping-lb"
plugin = "icmp_lb"
vip = "192.168.1.2"
backends = [ { ip = "192.168.1.3", mac = "52:54:00:ff:ff:55" }, { ip = "192.168.1.4", mac = "52:54:00:5d:6e:a1" } ]
)";
const std::string kFlows = R"(
[[stage]]
name = "flows"
plugin = "metadata"
format = "text"
sample = 1
)";

const std::string kFourStages = std::string(kParseFirst) + kNo8080 + kPingLb + kFlows;

const std::vector<std::string> kStageNames = {"parse", "no-8080", "ping-lb", "flows"};

struct ChainCase {
  std::string description;
  Packet packet;
  std::uint32_t verdict;
  std::string stage;                      // the deciding stage
  std::optional<std::string> event;       // the metadata line, when flows sees the packet
  std::optional<std::string> backend_ip;  // for XDP_TX: the rewritten destination
  std::optional<std::string> backend_mac;
};

Packet ping(std::uint16_t seq) {
  return {.l3 = Ipv4{.src = "192.168.1.100", .dst = "192.168.1.2"}, .l4 = Icmp{.type = 8, .seq = seq},
          .payload = pattern(56)};
}

std::vector<ChainCase> cases() {
  return {
      {.description = "tcp ssh reaches the flight recorder",
       .packet = {.l3 = Ipv4{.src = "192.168.1.3", .dst = "192.168.1.2"}, .l4 = Tcp{.sport = 35668, .dport = 22}},
       .verdict = kPass, .stage = "flows",
       .event = "Packet: 192.168.1.3:35668 -> 192.168.1.2:22, protocol: TCP"},
      {.description = "tcp 8080 dropped by the filter",
       .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080}}, .verdict = kDrop, .stage = "no-8080"},
      {.description = "qinq tcp 9001 dropped by the filter",
       .packet = {.vlans = {{.tpid = kEth8021AD, .id = 10}, {.id = 20}}, .l3 = Ipv4{}, .l4 = Tcp{.dport = 9001}},
       .verdict = kDrop, .stage = "no-8080"},
      {.description = "ipv6 extension headers tcp 8080 dropped by the filter",
       .packet = {.l3 = Ipv6{.extensions = {{.type = Ipv6Extension::hop_by_hop},
                                            {.type = Ipv6Extension::routing, .size = 24}}},
                  .l4 = Tcp{.dport = 8080}},
       .verdict = kDrop, .stage = "no-8080"},
      {.description = "ipv4 options udp 53 dropped by the filter",
       .packet = {.l3 = Ipv4{.options = ipv4_options(7)}, .l4 = Udp{.dport = 53}}, .verdict = kDrop,
       .stage = "no-8080"},
      {.description = "non first fragment dropped by fragment policy",
       .packet = {.l3 = Ipv4{.fragment_offset = 64}, .l4 = Tcp{.dport = 22}}, .verdict = kDrop, .stage = "no-8080"},
      {.description = "echo request to the vip balanced",
       .packet = ping(1), .verdict = kTx, .stage = "ping-lb",
       .backend_ip = "192.168.1.3", .backend_mac = "52:54:00:ff:ff:55"},
      {.description = "vlan echo request to the vip balanced",
       .packet = [] { Packet p = ping(2); p.vlans = {{.id = 77}}; return p; }(), .verdict = kTx, .stage = "ping-lb",
       .backend_ip = "192.168.1.3", .backend_mac = "52:54:00:ff:ff:55"},
      {.description = "echo reply to the vip recorded",
       .packet = {.l3 = Ipv4{.src = "192.168.1.100", .dst = "192.168.1.2"}, .l4 = Icmp{.type = 0}},
       .verdict = kPass, .stage = "flows",
       .event = "Packet: 192.168.1.100:0 -> 192.168.1.2:0, protocol: ICMP"},
      {.description = "echo request elsewhere recorded",
       .packet = {.l3 = Ipv4{.src = "192.168.1.100", .dst = "8.8.8.8"}, .l4 = Icmp{.type = 8}},
       .verdict = kPass, .stage = "flows",
       .event = "Packet: 192.168.1.100:0 -> 8.8.8.8:0, protocol: ICMP"},
      {.description = "ipv6 udp 443 recorded",
       .packet = {.l3 = Ipv6{.src = "2001:db8::3", .dst = "2001:db8::2"}, .l4 = Udp{.sport = 4433, .dport = 443}},
       .verdict = kPass, .stage = "flows",
       .event = "Packet: [2001:db8::3]:4433 -> [2001:db8::2]:443, protocol: UDP"},
      {.description = "malformed ihl 4 passed by parse",
       .packet = {.l3 = Ipv4{.ihl = 4}, .l4 = Tcp{.dport = 8080}}, .verdict = kPass, .stage = "parse"},
      {.description = "truncated tcp header passed by parse",
       .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080}, .truncate_to = 14 + 20 + 12}, .verdict = kPass,
       .stage = "parse"},
  };
}

void PrintTo(const ChainCase& c, std::ostream* os) { *os << c.description; }

class ChainTest : public BpfTestWithParam<ChainCase> {};

TEST_P(ChainTest, DecidedByTheRightStage) {
  const ChainCase& c = GetParam();
  auto pipeline = load_pipeline(kFourStages);
  ASSERT_NE(pipeline, nullptr);

  Frame frame = build(c.packet);
  SCOPED_TRACE(c.description + "\nframe:\n" + hex(frame.bytes));
  auto result = run(*pipeline, frame);
  ASSERT_TRUE(result);
  EXPECT_EQ(action_name(result->verdict), action_name(c.verdict));
  EXPECT_EQ(result->stage, c.stage);

  if (c.backend_ip) {
    ASSERT_EQ(result->packet.size(), frame.size());
    EXPECT_EQ(to_string(read_mac(result->packet, kEthDst)), *c.backend_mac);
    EXPECT_EQ(to_string(read_mac(result->packet, kEthSrc)), to_string(kInterfaceMac));
    EXPECT_EQ(read_ipv4(result->packet, frame.l3_off + kIpv4Daddr), ipv4(*c.backend_ip));
    EXPECT_TRUE(ipv4_checksum_valid(result->packet, frame.l3_off));
    EXPECT_LE(differing_bytes(frame.bytes, result->packet).size(), 12u + 2 + 4) << "MACs, checksum, daddr only";
  } else {
    EXPECT_EQ(result->packet, frame.bytes) << "only the load balancer rewrites";
  }

  if (c.event) {
    ASSERT_EQ(result->events.size(), 1u);
    EXPECT_EQ(result->events[0].stage, "flows");
    EXPECT_EQ(result->events[0].record.text, *c.event);
  } else {
    EXPECT_TRUE(result->events.empty()) << "a packet decided before flows has no event; got "
                                        << (result->events.empty() ? "" : result->events[0].record.text);
  }

  // Counted into every stage up to the decider, decided once, nowhere else.
  bool reached = true;
  for (const std::string& name : kStageNames) {
    CounterTotals totals = counters(*pipeline, name);
    EXPECT_EQ(totals.packets, reached ? 1u : 0u) << name;
    EXPECT_EQ(totals.fell_off, 0u) << name;
    std::uint64_t decided = 0;
    for (int v = 0; v < XDPP_VERDICTS; ++v) decided += totals.verdict[v];
    EXPECT_EQ(decided, name == c.stage ? 1u : 0u) << name;
    if (name == c.stage) {
      EXPECT_EQ(totals.verdict[c.verdict], 1u) << name;
      reached = false;
    }
  }
  CounterTotals total = counters(*pipeline, kPipelineTotal);
  EXPECT_EQ(total.packets, 1u);
  EXPECT_EQ(total.fell_off, 0u);
}

INSTANTIATE_TEST_SUITE_P(Cases, ChainTest, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<ChainCase>& info) {
                           return case_name(info.param.description);
                         });

class ChainStreamTest : public BpfTest {};

// One pipeline, a mixed stream: verdict counters add up to the packets sent, stage by stage, and the
// balancer keeps alternating across the other traffic.
TEST_F(ChainStreamTest, CountersMatchPacketsSent) {
  auto pipeline = load_pipeline(kFourStages);
  ASSERT_NE(pipeline, nullptr);

  const std::vector<ChainCase> table = cases();
  int sent = 0;
  int pings = 0;
  std::map<std::string, std::array<std::uint64_t, XDPP_VERDICTS>> expected;
  std::map<std::string, std::uint64_t> entered;
  for (int round = 0; round < 3; ++round) {
    for (const ChainCase& c : table) {
      Frame frame = build(c.packet);
      auto result = run(*pipeline, frame);
      ASSERT_TRUE(result) << c.description;
      ++sent;
      EXPECT_EQ(action_name(result->verdict), action_name(c.verdict)) << c.description;
      EXPECT_EQ(result->stage, c.stage) << c.description;
      if (c.verdict == kTx) {
        const char* backend = pings++ % 2 == 0 ? "192.168.1.3" : "192.168.1.4";
        EXPECT_EQ(read_ipv4(result->packet, frame.l3_off + kIpv4Daddr), ipv4(backend))
            << c.description << ", request " << pings;
      }
      expected[c.stage][c.verdict]++;
      for (const std::string& name : kStageNames) {
        entered[name]++;
        if (name == c.stage) break;
      }
    }
  }

  CounterTotals total = counters(*pipeline, kPipelineTotal);
  EXPECT_EQ(total.packets, static_cast<std::uint64_t>(sent));
  std::uint64_t decided = 0, total_decided = 0;
  for (int v = 0; v < XDPP_VERDICTS; ++v) total_decided += total.verdict[v];
  EXPECT_EQ(total_decided, static_cast<std::uint64_t>(sent)) << "the pipeline's verdicts are every packet's";
  for (const std::string& name : kStageNames) {
    CounterTotals totals = counters(*pipeline, name);
    EXPECT_EQ(totals.packets, entered[name]) << name;
    EXPECT_EQ(totals.fell_off, 0u) << name;
    for (int v = 0; v < XDPP_VERDICTS; ++v) {
      EXPECT_EQ(totals.verdict[v], expected[name][v]) << name << " " << action_name(v);
      decided += totals.verdict[v];
    }
  }
  EXPECT_EQ(decided, static_cast<std::uint64_t>(sent)) << "every packet is decided exactly once";
}

// A packet whose next slot is empty falls off: counted in fell_off of the stage that tried, and ends with
// the pipeline's default verdict (pass).
TEST_F(ChainStreamTest, EmptySlotMeansFellOff) {
  auto pipeline = load_pipeline(kFourStages);
  ASSERT_NE(pipeline, nullptr);
  const int lb = stage_index(*pipeline, "ping-lb");
  ASSERT_GE(lb, 0);
  Status cleared = clear_chain_slot(*pipeline, static_cast<std::uint32_t>(pipeline->stages()[lb].slot));
  ASSERT_TRUE(cleared.ok()) << cleared.error().message;

  // TCP 22 passes the filter and tries ping-lb's slot: falls off at no-8080.
  Frame frame = build({.l3 = Ipv4{}, .l4 = Tcp{.dport = 22}});
  auto result = run(*pipeline, frame);
  ASSERT_TRUE(result);
  EXPECT_EQ(action_name(result->verdict), action_name(kPass));
  EXPECT_EQ(result->stage, "no-8080");
  EXPECT_TRUE(result->events.empty());
  // TCP 8080 is still decided by the filter, before the hole.
  auto dropped = run(*pipeline, build({.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080}}));
  ASSERT_TRUE(dropped);
  EXPECT_EQ(action_name(dropped->verdict), action_name(kDrop));

  CounterTotals filter = counters(*pipeline, "no-8080");
  EXPECT_EQ(filter.packets, 2u);
  EXPECT_EQ(filter.fell_off, 1u);
  EXPECT_EQ(filter.verdict[kPass], 1u);
  EXPECT_EQ(filter.verdict[kDrop], 1u);
  EXPECT_EQ(counters(*pipeline, "ping-lb").packets, 0u);
  EXPECT_EQ(counters(*pipeline, "flows").packets, 0u);
}

// Contract 2 counts a packet only where its way ends and derives "packets in". A reload that reorders the chain
// counts in the other slot, and what the old chain counted becomes the new chain's bases: every stage's
// packets in stay exactly what entered it, in either order; a swap with fresh maps keeps the counters; a swap
// of the first stage (what an interface runs) keeps the chain running and counting.
TEST_F(ChainStreamTest, CountersStayExactAcrossReorderAndSwaps) {
  auto pipeline = load_pipeline(kFourStages);
  ASSERT_NE(pipeline, nullptr);
  const Frame drop = build({.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080}});  // no-8080 drops it
  const Frame pass = build({.l3 = Ipv4{}, .l4 = Tcp{.dport = 22}});    // passes after flows (default verdict)
  auto send = [&](Pipeline& p, int pairs) {
    for (int i = 0; i < pairs; ++i) {
      auto dropped = run(p, drop);
      auto passed = run(p, pass);
      ASSERT_TRUE(dropped && passed);
      EXPECT_EQ(action_name(dropped->verdict), action_name(kDrop));
      EXPECT_EQ(action_name(passed->verdict), action_name(kPass));
    }
  };
  send(*pipeline, 3);  // parse 6 in; no-8080 6 in, 3 dropped; ping-lb 3; flows 3, 3 passed
  const std::uint32_t first_slot = pipeline->counter_bases().slot;

  // no-8080 after ping-lb now.
  const std::string reordered = std::string(kParseFirst) + kPingLb + kNo8080 + kFlows;
  auto spec = parse_pipeline(reordered, "reordered.toml", Overrides{}, test_search_paths());
  ASSERT_TRUE(spec) << spec.error().message;
  auto rebuilt = LiveChanges(*pipeline).rebuild(std::move(*spec));
  ASSERT_TRUE(rebuilt) << rebuilt.error().message;
  std::unique_ptr<Pipeline> next = std::move(*rebuilt);
  ASSERT_EQ(next->stages()[2].spec.name, "no-8080");
  EXPECT_NE(next->counter_bases().slot, first_slot) << "a new chain counts in the other slot";
  send(*next, 2);  // parse 4 in; ping-lb 4; no-8080 4 in, 2 dropped; flows 2, 2 passed

  auto expect = [&](std::string_view name, std::uint64_t in, std::uint64_t dropped, std::uint64_t passed) {
    CounterTotals totals = counters(*next, name);
    EXPECT_EQ(totals.packets, in) << name;
    EXPECT_EQ(totals.verdict[kDrop], dropped) << name;
    EXPECT_EQ(totals.verdict[kPass], passed) << name;
  };
  expect(kPipelineTotal, 10, 5, 5);
  expect("parse", 10, 0, 0);
  expect("no-8080", 10, 5, 0);
  expect("ping-lb", 7, 0, 0);
  expect("flows", 5, 0, 5);
  EXPECT_EQ(counters(*next, "parse").bytes, 5 * (drop.size() + pass.size()));

  // Fresh maps for no-8080: its rules are rewritten by its plugin, its counters go on.
  Status swapped = LiveChanges(*next).swap_stage("no-8080", SwapRequest{.reset_state = true});
  ASSERT_TRUE(swapped.ok()) << swapped.error().message;
  expect("no-8080", 10, 5, 0);
  // The first stage, swapped: the chain runs through the new program, the counts go on.
  const std::uint32_t old_entry = next->entry_prog_id();
  swapped = LiveChanges(*next).swap_stage("parse", SwapRequest{});
  ASSERT_TRUE(swapped.ok()) << swapped.error().message;
  EXPECT_NE(next->entry_prog_id(), old_entry);
  send(*next, 1);
  expect(kPipelineTotal, 12, 6, 6);
  expect("no-8080", 12, 6, 0);
  expect("flows", 6, 0, 6);
}

// The interface runs the first stage itself (no dispatcher hop), so an empty slot 0 changes nothing: no
// packet enters the chain through it.
TEST_F(ChainStreamTest, EmptyFirstSlotIsNotOnThePacketsWay) {
  auto pipeline = load_pipeline(kFourStages);
  ASSERT_NE(pipeline, nullptr);
  Status cleared = clear_chain_slot(*pipeline, static_cast<std::uint32_t>(pipeline->stages()[0].slot));
  ASSERT_TRUE(cleared.ok()) << cleared.error().message;

  auto result = run(*pipeline, build({.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080}}));
  ASSERT_TRUE(result);
  EXPECT_EQ(action_name(result->verdict), action_name(kDrop));
  EXPECT_EQ(result->stage, "no-8080");
  EXPECT_EQ(counters(*pipeline, "parse").packets, 1u);
  EXPECT_EQ(counters(*pipeline, kPipelineTotal).packets, 1u);
  EXPECT_EQ(counters(*pipeline, kPipelineTotal).fell_off, 0u);
}

// [pipeline] default_verdict = "drop": what a packet that falls off gets.
TEST_F(ChainStreamTest, DefaultVerdictAppliesToFallenOffPackets) {
  std::string toml = kFourStages;
  toml.replace(toml.find("mode = \"generic\""), 16, "mode = \"generic\"\ndefault_verdict = \"drop\"");
  auto pipeline = load_pipeline(toml);
  ASSERT_NE(pipeline, nullptr);
  Status cleared = clear_chain_slot(*pipeline, static_cast<std::uint32_t>(pipeline->stages()[3].slot));
  ASSERT_TRUE(cleared.ok()) << cleared.error().message;
  auto result = run(*pipeline, build({.l3 = Ipv4{}, .l4 = Tcp{.dport = 22}}));
  ASSERT_TRUE(result);
  EXPECT_EQ(action_name(result->verdict), action_name(kDrop));
  EXPECT_EQ(result->stage, "ping-lb");
  EXPECT_EQ(counters(*pipeline, "ping-lb").fell_off, 1u);
}

}  // namespace
}  // namespace xdpp::test
