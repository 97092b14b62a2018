// parse alone, through the chain: what it writes into the packet context for each kind of frame,
// and the verdict for malformed frames under both policies. parse is the last stage here, so a
// well-formed packet leaves it with the default verdict (pass), decided by "parse".
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "packet.h"
#include "test_pipeline.h"

namespace xdpp::test {
namespace {

constexpr std::uint32_t kTcpUdpV4 = XDPP_F_PARSED | XDPP_F_IPV4 | XDPP_F_L4;
constexpr std::uint32_t kTcpUdpV6 = XDPP_F_PARSED | XDPP_F_IPV6 | XDPP_F_L4;

struct ParseCase {
  std::string description;
  Packet packet;
  bool malformed = false;                    // MALFORMED set, L4 clear; verdict = the malformed policy
  std::optional<std::uint32_t> flags;        // the exact flag word (well-formed packets)
  std::optional<std::uint16_t> eth_proto;
  std::optional<std::uint16_t> l3_off;
  std::optional<std::uint16_t> l4_off;
  std::optional<std::uint8_t> l4_proto;
  std::optional<std::uint8_t> vlan_depth;
  std::vector<std::uint16_t> vlan_ids;       // outer first
  std::optional<std::uint16_t> sport;
  std::optional<std::uint16_t> dport;
  std::optional<std::uint8_t> icmp_type;
  std::optional<std::uint8_t> icmp_code;
  std::optional<std::uint8_t> tcp_flags;
  std::optional<std::uint8_t> ttl;
  std::optional<std::string> saddr;          // IPv4 or IPv6 text
  std::optional<std::string> daddr;
};

std::vector<std::uint8_t> address_bytes(const std::string& text) {
  if (text.find(':') != std::string::npos) {
    auto a = ipv6(text);
    return {a.begin(), a.end()};
  }
  auto a = ipv4(text);
  std::vector<std::uint8_t> out(a.begin(), a.end());
  out.resize(16, 0);  // IPv4 in the first 4 bytes of the 16, the rest zero
  return out;
}

// A TCP header's first bytes, as a non-first fragment's payload: they "look like" port 8080.
Bytes fake_tcp_ports_8080() { return {0x8b, 0x54, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0}; }

std::vector<ParseCase> cases() {
  return {
      // ---- well-formed IPv4 ----
      {.description = "ipv4 tcp",
       .packet = {.l3 = Ipv4{.ttl = 57}, .l4 = Tcp{.sport = 35668, .dport = 22, .flags = kTcpSyn | kTcpAck}},
       .flags = kTcpUdpV4, .eth_proto = 0x0800, .l3_off = 14, .l4_off = 34, .l4_proto = 6, .vlan_depth = 0,
       .sport = 35668, .dport = 22, .tcp_flags = kTcpSyn | kTcpAck, .ttl = 57,
       .saddr = "192.168.1.3", .daddr = "192.168.1.2"},
      {.description = "ipv4 tcp with options and payload",
       .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 443, .flags = kTcpPsh | kTcpAck,
                                          .options = {0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x04, 0x02}},
                  .payload = pattern(100)},
       .flags = kTcpUdpV4, .l4_off = 34, .l4_proto = 6, .sport = 35668, .dport = 443,
       .tcp_flags = kTcpPsh | kTcpAck},
      {.description = "ipv4 udp",
       .packet = {.l3 = Ipv4{.src = "10.0.0.1", .dst = "10.0.0.2"}, .l4 = Udp{.sport = 5353, .dport = 53},
                  .payload = pattern(12)},
       .flags = kTcpUdpV4, .l4_off = 34, .l4_proto = 17, .sport = 5353, .dport = 53,
       .saddr = "10.0.0.1", .daddr = "10.0.0.2"},
      {.description = "ipv4 udp padded to 60 bytes",
       .packet = {.l3 = Ipv4{}, .l4 = Udp{.dport = 9}, .trailer = Bytes(18, 0)},
       .flags = kTcpUdpV4, .l4_proto = 17, .dport = 9},
      {.description = "ipv4 icmp echo request",
       .packet = {.l3 = Ipv4{}, .l4 = Icmp{.type = 8, .code = 0}, .payload = pattern(56)},
       .flags = kTcpUdpV4, .l4_off = 34, .l4_proto = 1, .sport = 0, .dport = 0, .icmp_type = 8, .icmp_code = 0},
      {.description = "ipv4 icmp port unreachable",
       .packet = {.l3 = Ipv4{}, .l4 = Icmp{.type = 3, .code = 3}, .payload = pattern(28)},
       .flags = kTcpUdpV4, .l4_proto = 1, .icmp_type = 3, .icmp_code = 3},
      {.description = "ipv4 gre has no l4 header parse reads",
       .packet = {.l3 = Ipv4{.protocol = 47}, .payload = pattern(24)},
       .flags = XDPP_F_PARSED | XDPP_F_IPV4, .l4_off = 34, .l4_proto = 47, .sport = 0, .dport = 0},
      {.description = "ipv4 options ihl 6",
       .packet = {.l3 = Ipv4{.options = ipv4_options(1)}, .l4 = Tcp{.dport = 8080}},
       .flags = kTcpUdpV4 | XDPP_F_IP_OPTIONS, .l4_off = 38, .l4_proto = 6, .dport = 8080},
      {.description = "ipv4 options ihl 15",
       .packet = {.l3 = Ipv4{.options = ipv4_options(10)}, .l4 = Tcp{.dport = 8080}},
       .flags = kTcpUdpV4 | XDPP_F_IP_OPTIONS, .l4_off = 74, .l4_proto = 6, .dport = 8080},
      {.description = "ipv4 dont fragment is not a fragment",
       .packet = {.l3 = Ipv4{.dont_fragment = true}, .l4 = Tcp{.dport = 80}},
       .flags = kTcpUdpV4, .dport = 80},
      {.description = "ipv4 first fragment",
       .packet = {.l3 = Ipv4{.more_fragments = true}, .l4 = Tcp{.dport = 8080}, .payload = pattern(64)},
       .flags = kTcpUdpV4 | XDPP_F_FRAGMENT | XDPP_F_FIRST_FRAG, .l4_proto = 6, .sport = 35668, .dport = 8080},
      {.description = "ipv4 middle fragment ports never read from payload",
       .packet = {.l3 = Ipv4{.more_fragments = true, .fragment_offset = 185, .protocol = 6},
                  .payload = fake_tcp_ports_8080()},
       .flags = XDPP_F_PARSED | XDPP_F_IPV4 | XDPP_F_FRAGMENT, .l4_off = 34, .l4_proto = 6, .sport = 0, .dport = 0},
      {.description = "ipv4 last fragment ports never read from payload",
       .packet = {.l3 = Ipv4{.fragment_offset = 3, .protocol = 6}, .payload = fake_tcp_ports_8080()},
       .flags = XDPP_F_PARSED | XDPP_F_IPV4 | XDPP_F_FRAGMENT, .l4_proto = 6, .sport = 0, .dport = 0,
       .tcp_flags = 0},
      // ---- VLAN ----
      {.description = "vlan 802.1q tcp",
       .packet = {.vlans = {{.id = 100, .pcp = 5}}, .l3 = Ipv4{}, .l4 = Tcp{.dport = 8080}},
       .flags = kTcpUdpV4 | XDPP_F_VLAN, .eth_proto = 0x0800, .l3_off = 18, .l4_off = 38, .vlan_depth = 1,
       .vlan_ids = {100}, .dport = 8080},
      {.description = "qinq 802.1ad then 802.1q tcp",
       .packet = {.vlans = {{.tpid = kEth8021AD, .id = 4094, .pcp = 7}, {.id = 1}}, .l3 = Ipv4{},
                  .l4 = Tcp{.dport = 8080}},
       .flags = kTcpUdpV4 | XDPP_F_VLAN, .eth_proto = 0x0800, .l3_off = 22, .l4_off = 42, .vlan_depth = 2,
       .vlan_ids = {4094, 1}, .dport = 8080},
      {.description = "qinq two 802.1q tags ipv6 udp",
       .packet = {.vlans = {{.id = 10}, {.id = 20}}, .l3 = Ipv6{}, .l4 = Udp{.dport = 53}},
       .flags = kTcpUdpV6 | XDPP_F_VLAN, .eth_proto = 0x86DD, .l3_off = 22, .l4_off = 62, .vlan_depth = 2,
       .vlan_ids = {10, 20}, .dport = 53},
      // ---- IPv6 ----
      {.description = "ipv6 tcp",
       .packet = {.l3 = Ipv6{.hop_limit = 33}, .l4 = Tcp{.sport = 40000, .dport = 8080, .flags = kTcpSyn}},
       .flags = kTcpUdpV6, .eth_proto = 0x86DD, .l3_off = 14, .l4_off = 54, .l4_proto = 6, .vlan_depth = 0,
       .sport = 40000, .dport = 8080, .tcp_flags = kTcpSyn, .ttl = 33, .saddr = "2001:db8::3",
       .daddr = "2001:db8::2"},
      {.description = "ipv6 icmpv6 echo request",
       .packet = {.l3 = Ipv6{}, .l4 = Icmpv6{.type = 128}, .payload = pattern(32)},
       .flags = kTcpUdpV6, .l4_proto = 58, .sport = 0, .dport = 0, .icmp_type = 128, .icmp_code = 0},
      {.description = "ipv6 hop by hop routing destination tcp",
       .packet = {.l3 = Ipv6{.extensions = {{.type = Ipv6Extension::hop_by_hop, .size = 8},
                                            {.type = Ipv6Extension::routing, .size = 24},
                                            {.type = Ipv6Extension::destination, .size = 16}}},
                  .l4 = Tcp{.dport = 8080}},
       .flags = kTcpUdpV6 | XDPP_F_IP_OPTIONS, .l4_off = 54 + 48, .l4_proto = 6, .dport = 8080},
      {.description = "ipv6 first fragment",
       .packet = {.l3 = Ipv6{.extensions = {{.type = Ipv6Extension::fragment, .more_fragments = true}}},
                  .l4 = Udp{.sport = 1000, .dport = 53}, .payload = pattern(40)},
       .flags = kTcpUdpV6 | XDPP_F_IP_OPTIONS | XDPP_F_FRAGMENT | XDPP_F_FIRST_FRAG, .l4_off = 62,
       .l4_proto = 17, .sport = 1000, .dport = 53},
      {.description = "ipv6 non first fragment ports never read from payload",
       .packet = {.l3 = Ipv6{.extensions = {{.type = Ipv6Extension::hop_by_hop},
                                            {.type = Ipv6Extension::fragment, .fragment_offset = 100,
                                             .more_fragments = true}},
                             .next_header = 6},
                  .payload = fake_tcp_ports_8080()},
       .flags = XDPP_F_PARSED | XDPP_F_IPV6 | XDPP_F_IP_OPTIONS | XDPP_F_FRAGMENT, .l4_proto = 6, .sport = 0,
       .dport = 0},
      // ---- not IP ----
      {.description = "arp is not ip and not malformed",
       .packet = {.eth = {.type = kEthArp}, .payload = pattern(28)},
       .flags = XDPP_F_PARSED, .eth_proto = 0x0806, .vlan_depth = 0},
      {.description = "ethernet header only non ip",
       .packet = {.eth = {.type = 0x88cc}},
       .flags = XDPP_F_PARSED, .eth_proto = 0x88cc},
      // ---- malformed ----
      {.description = "ethernet header only ipv4", .packet = {.eth = {.type = kEthIpv4}}, .malformed = true},
      {.description = "vlan tag cut short",
       .packet = {.vlans = {{.id = 7}}, .l3 = Ipv4{}, .l4 = Tcp{}, .truncate_to = 16},
       .malformed = true},
      {.description = "ipv4 ihl 4",
       .packet = {.l3 = Ipv4{.ihl = 4}, .l4 = Tcp{.dport = 8080}}, .malformed = true},
      {.description = "ipv4 ihl 0",
       .packet = {.l3 = Ipv4{.ihl = 0}, .l4 = Tcp{.dport = 8080}}, .malformed = true},
      {.description = "ipv4 total length shorter than header",
       .packet = {.l3 = Ipv4{.total_length = 19}, .l4 = Tcp{.dport = 8080}}, .malformed = true},
      {.description = "ipv4 total length shorter than header with options",
       .packet = {.l3 = Ipv4{.options = ipv4_options(2), .total_length = 24}, .l4 = Tcp{.dport = 8080}},
       .malformed = true},
      {.description = "ipv4 header cut short",
       .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080}, .truncate_to = 14 + 12}, .malformed = true},
      {.description = "ipv4 options cut short",
       .packet = {.l3 = Ipv4{.options = ipv4_options(10)}, .truncate_to = 14 + 40}, .malformed = true},
      {.description = "ipv4 options past total length and frame",
       .packet = {.l3 = Ipv4{.ihl = 15, .total_length = 20}, .l4 = Udp{}}, .malformed = true},
      {.description = "tcp header cut by frame end",
       .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080}, .truncate_to = 14 + 20 + 10}, .malformed = true},
      {.description = "tcp header shorter than 20 bytes within total length",
       .packet = {.l3 = Ipv4{.total_length = 20 + 10}, .l4 = Tcp{.dport = 8080}, .truncate_to = 14 + 20 + 10},
       .malformed = true},
      {.description = "tcp data offset past frame end",
       .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080, .data_offset = 15}}, .malformed = true},
      {.description = "tcp data offset below 5",
       .packet = {.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080, .data_offset = 4}}, .malformed = true},
      {.description = "udp header cut short",
       .packet = {.l3 = Ipv4{.total_length = 20 + 4}, .l4 = Udp{.dport = 53}, .truncate_to = 14 + 20 + 4},
       .malformed = true},
      {.description = "icmp header cut short",
       .packet = {.l3 = Ipv4{.total_length = 20 + 2}, .l4 = Icmp{}, .truncate_to = 14 + 20 + 2},
       .malformed = true},
      {.description = "ipv6 header cut short",
       .packet = {.l3 = Ipv6{}, .l4 = Tcp{.dport = 8080}, .truncate_to = 14 + 30}, .malformed = true},
      // More extension headers than parse walks: the TCP header behind them cannot be located, so no port
      // rule could see it. Malformed, not a silent pass around port_filter.
      {.description = "tcp behind seven ipv6 extension headers",
       .packet = {.l3 = Ipv6{.extensions = {{.type = Ipv6Extension::destination}, {.type = Ipv6Extension::destination},
                                            {.type = Ipv6Extension::destination}, {.type = Ipv6Extension::destination},
                                            {.type = Ipv6Extension::destination}, {.type = Ipv6Extension::destination},
                                            {.type = Ipv6Extension::destination}}},
                  .l4 = Tcp{.dport = 8080}},
       .malformed = true},
      // Payload length 0 is no jumbogram in an XDP frame: the bytes behind the header are not TCP.
      {.description = "ipv6 payload length 0 before tcp bytes",
       .packet = {.l3 = Ipv6{.payload_length = 0}, .l4 = Tcp{.dport = 8080}}, .malformed = true},
      {.description = "ipv6 extension header cut short",
       .packet = {.l3 = Ipv6{.extensions = {{.type = Ipv6Extension::destination, .size = 32}},
                             .payload_length = 16},
                  .truncate_to = 14 + 40 + 16},
       .malformed = true},
      {.description = "ipv6 tcp header cut short",
       .packet = {.l3 = Ipv6{.payload_length = 12}, .l4 = Tcp{.dport = 8080}, .truncate_to = 14 + 40 + 12},
       .malformed = true},
  };
}

struct ParseParam {
  ParseCase test;
  std::string malformed_policy;  // "pass" or "drop"
};

void PrintTo(const ParseParam& param, std::ostream* os) { *os << param.test.description << ", malformed = " << param.malformed_policy; }

class ParseTest : public BpfTestWithParam<ParseParam> {};

TEST_P(ParseTest, FillsPacketContext) {
  const ParseCase& c = GetParam().test;
  const std::string& policy = GetParam().malformed_policy;
  auto pipeline = load_pipeline(std::string(kParseFirst) + R"(malformed = ")" + policy + "\"\n");
  ASSERT_NE(pipeline, nullptr);

  Frame frame = build(c.packet);
  auto result = run(*pipeline, frame);
  ASSERT_TRUE(result);
  SCOPED_TRACE(c.description + "\nframe:\n" + hex(frame.bytes));

  const std::uint32_t expected_verdict = c.malformed && policy == "drop" ? kDrop : kPass;
  EXPECT_EQ(action_name(result->verdict), action_name(expected_verdict));
  EXPECT_EQ(result->stage, "parse");
  EXPECT_EQ(result->packet, frame.bytes) << "parse must not change the packet";

  const xdpp_packet ctx = packet_context(*pipeline);
  EXPECT_EQ(ctx.pkt_len, frame.size());
  if (c.malformed) {
    EXPECT_TRUE(ctx.flags & XDPP_F_MALFORMED) << "flags 0x" << std::hex << ctx.flags;
    EXPECT_FALSE(ctx.flags & XDPP_F_L4) << "flags 0x" << std::hex << ctx.flags;
  }
  if (c.flags) {
    EXPECT_EQ(ctx.flags, *c.flags) << std::hex << "flags 0x" << ctx.flags << ", expected 0x" << *c.flags;
  }
  if (c.eth_proto) { EXPECT_EQ(ctx.eth_proto, *c.eth_proto); }
  if (c.l3_off) { EXPECT_EQ(ctx.l3_off, *c.l3_off); }
  if (c.l4_off) { EXPECT_EQ(ctx.l4_off, *c.l4_off); }
  if (c.l4_proto) { EXPECT_EQ(ctx.l4_proto, *c.l4_proto); }
  if (c.vlan_depth) { EXPECT_EQ(ctx.vlan_depth, *c.vlan_depth); }
  for (std::size_t i = 0; i < c.vlan_ids.size(); ++i) EXPECT_EQ(ctx.vlan_id[i], c.vlan_ids[i]) << "tag " << i;
  if (c.sport) { EXPECT_EQ(ctx.sport, *c.sport); }
  if (c.dport) { EXPECT_EQ(ctx.dport, *c.dport); }
  if (c.icmp_type) { EXPECT_EQ(ctx.icmp_type, *c.icmp_type); }
  if (c.icmp_code) { EXPECT_EQ(ctx.icmp_code, *c.icmp_code); }
  if (c.tcp_flags) { EXPECT_EQ(ctx.tcp_flags, *c.tcp_flags); }
  if (c.ttl) { EXPECT_EQ(ctx.ttl, *c.ttl); }
  if (c.saddr) {
    EXPECT_EQ(std::vector<std::uint8_t>(ctx.saddr, ctx.saddr + 16), address_bytes(*c.saddr));
  }
  if (c.daddr) {
    EXPECT_EQ(std::vector<std::uint8_t>(ctx.daddr, ctx.daddr + 16), address_bytes(*c.daddr));
  }

  // One packet: counted in once, decided once, by parse.
  CounterTotals total = counters(*pipeline, kPipelineTotal);
  CounterTotals parse = counters(*pipeline, "parse");
  EXPECT_EQ(total.packets, 1u);
  EXPECT_EQ(parse.packets, 1u);
  EXPECT_EQ(parse.bytes, frame.size());
  EXPECT_EQ(parse.verdict[expected_verdict], 1u);
  EXPECT_EQ(parse.fell_off, 0u);
  EXPECT_EQ(total.fell_off, 0u);
}

std::vector<ParseParam> params() {
  std::vector<ParseParam> out;
  for (const char* policy : {"pass", "drop"})
    for (ParseCase& c : cases()) out.push_back({std::move(c), policy});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, ParseTest, ::testing::ValuesIn(params()),
                         [](const ::testing::TestParamInfo<ParseParam>& info) {
                           return case_name(info.param.test.description) + "_malformed_" +
                                  info.param.malformed_policy;
                         });

// Runt frames: BPF_PROG_TEST_RUN refuses anything shorter than an Ethernet header (ETH_HLEN) with
// EINVAL before the program runs, so the pipeline must report an error and count nothing.
class ParseRuntTest : public BpfTest {};

TEST_F(ParseRuntTest, FramesShorterThanEthernetAreRefusedByTestRun) {
  auto pipeline = load_pipeline(std::string(kParseFirst) + R"(malformed = "drop"
)");
  ASSERT_NE(pipeline, nullptr);
  for (std::size_t size : {1u, 6u, 13u}) {
    Bytes frame = build({.l3 = Ipv4{}, .l4 = Tcp{}, .truncate_to = size}).bytes;
    ASSERT_EQ(frame.size(), size);
    auto result = TestRunner(*pipeline).run(frame);
    EXPECT_FALSE(result.ok()) << size << "-byte frame: expected BPF_PROG_TEST_RUN to refuse it, got "
                              << action_name(result.ok() ? result.value().verdict : 0);
    if (!result.ok()) { EXPECT_FALSE(result.error().message.empty()); }
  }
  EXPECT_EQ(counters(*pipeline, kPipelineTotal).packets, 0u);
  EXPECT_EQ(counters(*pipeline, "parse").packets, 0u);

  // 14 bytes is the shortest frame the kernel runs: an IPv4 ethertype with no header is malformed.
  auto result = run(*pipeline, build({.eth = {.type = kEthIpv4}}));
  ASSERT_TRUE(result);
  EXPECT_EQ(action_name(result->verdict), action_name(kDrop));
  EXPECT_EQ(result->stage, "parse");
  EXPECT_TRUE(packet_context(*pipeline).flags & XDPP_F_MALFORMED);
}

}  // namespace
}  // namespace xdpp::test
