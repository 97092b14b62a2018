// [parse, port_filter] through the chain: which packets the port lists drop, across VLAN tags,
// IPv6 (with extension headers), IPv4 options and fragments, under both fragment policies.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "packet.h"
#include "test_pipeline.h"

namespace xdpp::test {
namespace {

std::string pipeline_toml(const std::string& fragments) {
  return std::string(kParseFirst) + R"(
[[stage]]
name = "no-8080"
plugin = "port_filter"
drop_tcp_dst = [8080, "9000-9100"]
drop_udp_dst = [53, 5353, "60000-60002"]
drop_tcp_src = [6666]
drop_udp_src = ["1000-1002"]
fragments = ")" + fragments + "\"\n";
}

// A TCP header's first bytes, as a non-first fragment's payload: they "look like" port 8080.
Bytes fake_tcp_ports_8080() { return {0x8b, 0x54, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0}; }

struct PortCase {
  std::string description;
  Packet packet;
  std::uint32_t verdict;                                 // with fragments = "pass"
  std::optional<std::uint32_t> verdict_fragments_drop;   // with fragments = "drop", when it differs
  std::string stage = "no-8080";                         // the stage that decides
};

std::vector<PortCase> cases() {
  return {
      // ---- destination ports and ranges ----
      {.description = "tcp to 8080", .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080}}, .verdict = kDrop},
      {.description = "tcp to 8081", .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 8081}}, .verdict = kPass},
      {.description = "tcp to 8079", .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 8079}}, .verdict = kPass},
      {.description = "tcp to 22", .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 22}}, .verdict = kPass},
      {.description = "tcp to 8999 below range", .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 8999}},
       .verdict = kPass},
      {.description = "tcp to 9000 range start", .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 9000}},
       .verdict = kDrop},
      {.description = "tcp to 9050 inside range", .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 9050}},
       .verdict = kDrop},
      {.description = "tcp to 9100 range end", .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 9100}},
       .verdict = kDrop},
      {.description = "tcp to 9101 above range", .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 9101}},
       .verdict = kPass},
      {.description = "tcp ack with payload to 8080",
       .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080, .flags = kTcpAck | kTcpPsh}, .payload = pattern(200)},
       .verdict = kDrop},
      {.description = "udp to 8080 only tcp listed", .packet = {.l3 = Ipv4{}, .l4 = Udp{.dport = 8080}},
       .verdict = kPass},
      {.description = "tcp to 53 only udp listed", .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 53}},
       .verdict = kPass},
      {.description = "udp to 53", .packet = {.l3 = Ipv4{}, .l4 = Udp{.dport = 53}, .payload = pattern(20)},
       .verdict = kDrop},
      {.description = "udp to 5353", .packet = {.l3 = Ipv4{}, .l4 = Udp{.dport = 5353}}, .verdict = kDrop},
      {.description = "udp to 60001 in udp range", .packet = {.l3 = Ipv4{}, .l4 = Udp{.dport = 60001}},
       .verdict = kDrop},
      {.description = "udp to 60003 past udp range", .packet = {.l3 = Ipv4{}, .l4 = Udp{.dport = 60003}},
       .verdict = kPass},
      {.description = "udp to 54", .packet = {.l3 = Ipv4{}, .l4 = Udp{.dport = 54}}, .verdict = kPass},
      // ---- source ports ----
      {.description = "tcp from 6666", .packet = {.l3 = Ipv4{}, .l4 = Tcp{.sport = 6666, .dport = 80}},
       .verdict = kDrop},
      {.description = "tcp from 6667", .packet = {.l3 = Ipv4{}, .l4 = Tcp{.sport = 6667, .dport = 80}},
       .verdict = kPass},
      {.description = "udp from 6666 only tcp src listed",
       .packet = {.l3 = Ipv4{}, .l4 = Udp{.sport = 6666, .dport = 80}}, .verdict = kPass},
      {.description = "udp from 1001", .packet = {.l3 = Ipv4{}, .l4 = Udp{.sport = 1001, .dport = 80}},
       .verdict = kDrop},
      {.description = "udp from 1003", .packet = {.l3 = Ipv4{}, .l4 = Udp{.sport = 1003, .dport = 80}},
       .verdict = kPass},
      {.description = "tcp from 1001 only udp src listed",
       .packet = {.l3 = Ipv4{}, .l4 = Tcp{.sport = 1001, .dport = 80}}, .verdict = kPass},
      {.description = "tcp from 8080 is not to 8080", .packet = {.l3 = Ipv4{}, .l4 = Tcp{.sport = 8080, .dport = 80}},
       .verdict = kPass},
      // ---- other protocols ----
      {.description = "icmp echo", .packet = {.l3 = Ipv4{}, .l4 = Icmp{}, .payload = pattern(56)}, .verdict = kPass},
      {.description = "arp", .packet = {.eth = {.type = kEthArp}, .payload = pattern(28)}, .verdict = kPass},
      // ---- VLAN ----
      {.description = "vlan tcp to 8080", .packet = {.vlans = {{.id = 100}}, .l3 = Ipv4{}, .l4 = Tcp{.dport = 8080}},
       .verdict = kDrop},
      {.description = "vlan tcp to 22", .packet = {.vlans = {{.id = 100}}, .l3 = Ipv4{}, .l4 = Tcp{.dport = 22}},
       .verdict = kPass},
      {.description = "qinq 88a8 8100 tcp to 8080",
       .packet = {.vlans = {{.tpid = kEth8021AD, .id = 300}, {.id = 100}}, .l3 = Ipv4{}, .l4 = Tcp{.dport = 8080}},
       .verdict = kDrop},
      {.description = "qinq 8100 8100 tcp to 9050",
       .packet = {.vlans = {{.id = 300}, {.id = 100}}, .l3 = Ipv4{}, .l4 = Tcp{.dport = 9050}}, .verdict = kDrop},
      {.description = "qinq udp to 53",
       .packet = {.vlans = {{.tpid = kEth8021AD, .id = 1}, {.id = 2}}, .l3 = Ipv4{}, .l4 = Udp{.dport = 53}},
       .verdict = kDrop},
      {.description = "qinq ipv6 tcp to 8080",
       .packet = {.vlans = {{.tpid = kEth8021AD, .id = 1}, {.id = 2}}, .l3 = Ipv6{}, .l4 = Tcp{.dport = 8080}},
       .verdict = kDrop},
      // ---- IPv6 ----
      {.description = "ipv6 tcp to 8080", .packet = {.l3 = Ipv6{}, .l4 = Tcp{.dport = 8080}}, .verdict = kDrop},
      {.description = "ipv6 tcp to 80", .packet = {.l3 = Ipv6{}, .l4 = Tcp{.dport = 80}}, .verdict = kPass},
      {.description = "ipv6 udp to 5353", .packet = {.l3 = Ipv6{}, .l4 = Udp{.dport = 5353}}, .verdict = kDrop},
      {.description = "ipv6 tcp from 6666", .packet = {.l3 = Ipv6{}, .l4 = Tcp{.sport = 6666, .dport = 443}},
       .verdict = kDrop},
      {.description = "ipv6 hop by hop tcp to 8080",
       .packet = {.l3 = Ipv6{.extensions = {{.type = Ipv6Extension::hop_by_hop}}}, .l4 = Tcp{.dport = 8080}},
       .verdict = kDrop},
      {.description = "ipv6 hop by hop routing destination tcp to 9100",
       .packet = {.l3 = Ipv6{.extensions = {{.type = Ipv6Extension::hop_by_hop, .size = 16},
                                            {.type = Ipv6Extension::routing, .size = 40},
                                            {.type = Ipv6Extension::destination, .size = 8}}},
                  .l4 = Tcp{.dport = 9100}},
       .verdict = kDrop},
      {.description = "ipv6 destination options tcp to 80",
       .packet = {.l3 = Ipv6{.extensions = {{.type = Ipv6Extension::destination}}}, .l4 = Tcp{.dport = 80}},
       .verdict = kPass},
      {.description = "ipv6 first fragment tcp to 8080",
       .packet = {.l3 = Ipv6{.extensions = {{.type = Ipv6Extension::fragment, .more_fragments = true}}},
                  .l4 = Tcp{.dport = 8080}, .payload = pattern(64)},
       .verdict = kDrop},
      {.description = "ipv6 first fragment tcp to 80",
       .packet = {.l3 = Ipv6{.extensions = {{.type = Ipv6Extension::fragment, .more_fragments = true}}},
                  .l4 = Tcp{.dport = 80}, .payload = pattern(64)},
       .verdict = kPass},
      {.description = "ipv6 non first fragment payload looks like 8080",
       .packet = {.l3 = Ipv6{.extensions = {{.type = Ipv6Extension::fragment, .fragment_offset = 9,
                                             .more_fragments = true}},
                             .next_header = 6},
                  .payload = fake_tcp_ports_8080()},
       .verdict = kPass, .verdict_fragments_drop = kDrop},
      // ---- IPv4 options ----
      {.description = "ipv4 options ihl 6 tcp to 8080",
       .packet = {.l3 = Ipv4{.options = ipv4_options(1)}, .l4 = Tcp{.dport = 8080}}, .verdict = kDrop},
      {.description = "ipv4 options ihl 10 udp to 53",
       .packet = {.l3 = Ipv4{.options = ipv4_options(5)}, .l4 = Udp{.dport = 53}}, .verdict = kDrop},
      {.description = "ipv4 options ihl 15 tcp to 8080",
       .packet = {.l3 = Ipv4{.options = ipv4_options(10)}, .l4 = Tcp{.dport = 8080}}, .verdict = kDrop},
      {.description = "ipv4 options ihl 15 tcp to 80",
       .packet = {.l3 = Ipv4{.options = ipv4_options(10)}, .l4 = Tcp{.dport = 80}}, .verdict = kPass},
      {.description = "vlan ipv4 options tcp to 8080",
       .packet = {.vlans = {{.id = 5}}, .l3 = Ipv4{.options = ipv4_options(3)}, .l4 = Tcp{.dport = 8080}},
       .verdict = kDrop},
      // ---- IPv4 fragments ----
      {.description = "ipv4 first fragment tcp to 8080",
       .packet = {.l3 = Ipv4{.more_fragments = true}, .l4 = Tcp{.dport = 8080}, .payload = pattern(64)},
       .verdict = kDrop},
      {.description = "ipv4 first fragment tcp to 80",
       .packet = {.l3 = Ipv4{.more_fragments = true}, .l4 = Tcp{.dport = 80}, .payload = pattern(64)},
       .verdict = kPass},
      {.description = "ipv4 first fragment udp to 53",
       .packet = {.l3 = Ipv4{.more_fragments = true}, .l4 = Udp{.dport = 53}, .payload = pattern(64)},
       .verdict = kDrop},
      {.description = "ipv4 non first fragment payload looks like 8080",
       .packet = {.l3 = Ipv4{.more_fragments = true, .fragment_offset = 185, .protocol = 6},
                  .payload = fake_tcp_ports_8080()},
       .verdict = kPass, .verdict_fragments_drop = kDrop},
      {.description = "ipv4 last fragment payload looks like 8080",
       .packet = {.l3 = Ipv4{.fragment_offset = 185, .protocol = 6}, .payload = fake_tcp_ports_8080()},
       .verdict = kPass, .verdict_fragments_drop = kDrop},
      {.description = "ipv4 non first fragment with a tcp header like 8080 in its payload",
       .packet = {.l3 = Ipv4{.more_fragments = true, .fragment_offset = 1}, .l4 = Tcp{.dport = 8080}},
       .verdict = kPass, .verdict_fragments_drop = kDrop},
      {.description = "vlan ipv4 non first udp fragment",
       .packet = {.vlans = {{.id = 9}}, .l3 = Ipv4{.more_fragments = true, .fragment_offset = 100},
                  .l4 = Udp{.dport = 53}},
       .verdict = kPass, .verdict_fragments_drop = kDrop},
      // ---- malformed: parse ends the chain (pass by default), port_filter never sees them ----
      {.description = "ipv4 ihl 4 tcp to 8080", .packet = {.l3 = Ipv4{.ihl = 4}, .l4 = Tcp{.dport = 8080}},
       .verdict = kPass, .stage = "parse"},
      {.description = "ipv4 total length below header tcp to 8080",
       .packet = {.l3 = Ipv4{.total_length = 16}, .l4 = Tcp{.dport = 8080}}, .verdict = kPass, .stage = "parse"},
      {.description = "tcp header cut short to 8080",
       .packet = {.l3 = Ipv4{.total_length = 20 + 8}, .l4 = Tcp{.dport = 8080}, .truncate_to = 14 + 20 + 8},
       .verdict = kPass, .stage = "parse"},
      {.description = "ipv4 header cut short",
       .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080}, .truncate_to = 14 + 19}, .verdict = kPass,
       .stage = "parse"},
  };
}

struct PortParam {
  PortCase test;
  std::string fragments;
};

void PrintTo(const PortParam& param, std::ostream* os) { *os << param.test.description << ", fragments = " << param.fragments; }

class PortFilterTest : public BpfTestWithParam<PortParam> {};

TEST_P(PortFilterTest, Verdict) {
  const PortCase& c = GetParam().test;
  const std::string& fragments = GetParam().fragments;
  auto pipeline = load_pipeline(pipeline_toml(fragments));
  ASSERT_NE(pipeline, nullptr);

  Frame frame = build(c.packet);
  SCOPED_TRACE(c.description + " (fragments = " + fragments + ")\nframe:\n" + hex(frame.bytes));
  auto result = run(*pipeline, frame);
  ASSERT_TRUE(result);

  const std::uint32_t expected = fragments == "drop" ? c.verdict_fragments_drop.value_or(c.verdict) : c.verdict;
  EXPECT_EQ(action_name(result->verdict), action_name(expected));
  EXPECT_EQ(result->stage, c.stage);
  EXPECT_EQ(result->packet, frame.bytes) << "port_filter must not change the packet";
  EXPECT_TRUE(result->events.empty());

  CounterTotals parse = counters(*pipeline, "parse");
  CounterTotals filter = counters(*pipeline, "no-8080");
  EXPECT_EQ(parse.packets, 1u);
  EXPECT_EQ(filter.packets, c.stage == "parse" ? 0u : 1u);
  const CounterTotals& decider = c.stage == "parse" ? parse : filter;
  EXPECT_EQ(decider.verdict[expected], 1u);
  EXPECT_EQ(parse.fell_off + filter.fell_off, 0u);
}

std::vector<PortParam> params() {
  std::vector<PortParam> out;
  for (const char* fragments : {"pass", "drop"})
    for (PortCase& c : cases()) out.push_back({std::move(c), fragments});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, PortFilterTest, ::testing::ValuesIn(params()),
                         [](const ::testing::TestParamInfo<PortParam>& info) {
                           return case_name(info.param.test.description) + "_fragments_" + info.param.fragments;
                         });

// malformed = "drop" in parse drops what port_filter would never see; counters add up over a stream.
class PortFilterStreamTest : public BpfTest {};

TEST_F(PortFilterStreamTest, CountersMatchPacketsSent) {
  auto pipeline = load_pipeline(std::string(kParseFirst) + R"(malformed = "drop"

[[stage]]
name = "no-8080"
plugin = "port_filter"
drop_tcp_dst = [8080]
)");
  ASSERT_NE(pipeline, nullptr);

  const std::vector<std::pair<Packet, std::uint32_t>> stream = {
      {{.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080}}, kDrop},
      {{.l3 = Ipv4{}, .l4 = Tcp{.dport = 22}}, kPass},
      {{.l3 = Ipv4{.ihl = 3}, .l4 = Tcp{.dport = 22}}, kDrop},                // malformed: parse drops
      {{.vlans = {{.id = 4}}, .l3 = Ipv6{}, .l4 = Tcp{.dport = 8080}}, kDrop},
      {{.l3 = Ipv4{}, .l4 = Udp{.dport = 8080}}, kPass},
      {{.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080}, .truncate_to = 14 + 20 + 3}, kDrop},  // malformed
  };
  for (const auto& [packet, verdict] : stream) {
    auto result = run(*pipeline, build(packet));
    ASSERT_TRUE(result);
    EXPECT_EQ(action_name(result->verdict), action_name(verdict));
  }
  CounterTotals total = counters(*pipeline, kPipelineTotal);
  CounterTotals parse = counters(*pipeline, "parse");
  CounterTotals filter = counters(*pipeline, "no-8080");
  EXPECT_EQ(total.packets, 6u);
  EXPECT_EQ(parse.packets, 6u);
  EXPECT_EQ(parse.verdict[kDrop], 2u);
  EXPECT_EQ(parse.verdict[kPass], 0u);
  EXPECT_EQ(filter.packets, 4u);
  EXPECT_EQ(filter.verdict[kDrop], 2u);
  EXPECT_EQ(filter.verdict[kPass], 2u);
  EXPECT_EQ(parse.fell_off + filter.fell_off, 0u);
  std::uint64_t decided = 0, total_decided = 0;
  for (int v = 0; v < XDPP_VERDICTS; ++v) {
    decided += parse.verdict[v] + filter.verdict[v];
    total_decided += total.verdict[v];
    EXPECT_EQ(total.verdict[v], parse.verdict[v] + filter.verdict[v]) << action_name(v);
  }
  EXPECT_EQ(decided, 6u) << "every packet is decided exactly once";
  EXPECT_EQ(total_decided, 6u);
}

}  // namespace
}  // namespace xdpp::test
