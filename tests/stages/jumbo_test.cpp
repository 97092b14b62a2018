// Multi-buffer frames through the whole chain (parse -> flows (metadata) -> no-8080 (port_filter) ->
// ping-lb (icmp_lb)) with BPF_PROG_TEST_RUN: frames of 4 KB, 9 KB and 64 KB, which the kernel builds as a
// first buffer of about 3.5 KB plus page-sized fragments, as a driver does at MTU 9000; and the same frames
// with the first buffer ending inside a header (the IP or the L4 header split across the first two buffers).
// For each: the deciding stage and verdict (port_filter's rules, icmp_lb's balancing), what parse recorded
// (offsets, ports, flags, pkt_len = the whole frame), metadata's event (len = the whole frame), and the frame
// that leaves, byte for byte (icmp_lb's rewrite checked against a checksum computed here from scratch).
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "packet.h"
#include "test_pipeline.h"

namespace xdpp::test {
namespace {

const std::string kChain = std::string(kParseFirst) + R"(
[[stage]]
name = "flows"
plugin = "metadata"
format = "json"
sample = 1

[[stage]]
name = "no-8080"
plugin = "port_filter"
drop_tcp_dst = [8080]
drop_udp_dst = [53]

[[stage]]
name = "ping-lb"
plugin = "icmp_lb"
vip = "192.168.1.2"
backends = [ { ip = "192.168.1.3", mac = "52:54:00:ff:ff:55" }, { ip = "192.168.1.4", mac = "52:54:00:5d:6e:a1" } ]
)";

// Where the first buffer ends.
enum class Split { kernel, in_l3_header, in_l4_header };
const char* split_name(Split split) {
  switch (split) {
    case Split::kernel: return "kernel split";
    case Split::in_l3_header: return "first buffer ends in the ip header";
    case Split::in_l4_header: return "first buffer ends in the l4 header";
  }
  return "";
}

struct Kind {
  std::string name;
  Packet headers;            // everything but the payload
  std::uint32_t verdict;
  std::string stage;
  std::string protocol;      // metadata's "protocol"
  std::uint16_t dport;
  std::uint8_t l4_proto;
};

std::vector<Kind> kinds() {
  return {
      {"tcp 8080", {.l3 = Ipv4{}, .l4 = Tcp{.dport = 8080, .flags = kTcpAck}}, kDrop, "no-8080", "TCP", 8080, 6},
      {"tcp 22", {.l3 = Ipv4{}, .l4 = Tcp{.dport = 22, .flags = kTcpAck}}, kPass, "ping-lb", "TCP", 22, 6},
      {"udp 53", {.l3 = Ipv4{.options = ipv4_options(3)}, .l4 = Udp{.dport = 53}}, kDrop, "no-8080", "UDP", 53, 17},
      {"ipv6 extension headers tcp 8080",
       {.l3 = Ipv6{.extensions = {{.type = Ipv6Extension::hop_by_hop}, {.type = Ipv6Extension::destination, .size = 24}}},
        .l4 = Tcp{.dport = 8080, .flags = kTcpAck}},
       kDrop, "no-8080", "TCP", 8080, 6},
      {"qinq udp 5353", {.vlans = {{.tpid = kEth8021AD, .id = 10}, {.id = 20}}, .l3 = Ipv4{}, .l4 = Udp{.dport = 5353}},
       kPass, "ping-lb", "UDP", 5353, 17},
      {"vlan echo request to the vip",
       {.vlans = {{.id = 7}}, .l3 = Ipv4{.src = "192.168.1.100", .dst = "192.168.1.2"}, .l4 = Icmp{.type = 8, .seq = 1}},
       kTx, "ping-lb", "ICMP", 0, 1},
  };
}

struct JumboCase {
  Kind kind;
  std::size_t size;
  Split split;
};

std::vector<JumboCase> cases() {
  std::vector<JumboCase> all;
  for (const Kind& kind : kinds())
    for (std::size_t size : {4096u, 9000u, 65536u})
      for (Split split : {Split::kernel, Split::in_l3_header, Split::in_l4_header}) all.push_back({kind, size, split});
  return all;
}

// The frame of `size` bytes: the headers, then a pattern as payload (counted in the IP lengths).
Frame jumbo(const Packet& headers, std::size_t size) {
  Packet packet = headers;
  const std::size_t header_bytes = build(headers).size();
  packet.payload = pattern(size - header_bytes, 0x40);
  return build(packet);
}

std::uint32_t first_buffer(const Frame& frame, Split split) {
  switch (split) {
    case Split::kernel: return 0;
    case Split::in_l3_header: return static_cast<std::uint32_t>(frame.l3_off + 10);
    case Split::in_l4_header: return static_cast<std::uint32_t>(frame.l4_off + 3);
  }
  return 0;
}

class JumboTest : public BpfTestWithParam<JumboCase> {};

TEST_P(JumboTest, WholeFrameParsedFilteredBalancedAndRecorded) {
  const JumboCase& c = GetParam();
  auto pipeline = load_pipeline(kChain);
  ASSERT_NE(pipeline, nullptr);
  const Frame frame = jumbo(c.kind.headers, c.size);
  ASSERT_EQ(frame.size(), c.size);
  const std::uint32_t first = first_buffer(frame, c.split);
  auto result = run(*pipeline, frame.bytes, first);
  ASSERT_TRUE(result);
  SCOPED_TRACE(c.kind.name + ", " + std::to_string(c.size) + " bytes, " + split_name(c.split) +
               (first ? " (first buffer " + std::to_string(first) + " bytes)" : ""));

  EXPECT_EQ(action_name(result->verdict), action_name(c.kind.verdict));
  EXPECT_EQ(result->stage, c.kind.stage);

  // parse's record: the whole frame, the headers where they are.
  const xdpp_packet ctx = packet_context(*pipeline);
  EXPECT_EQ(ctx.flags & (XDPP_F_PARSED | XDPP_F_MALFORMED | XDPP_F_L4), XDPP_F_PARSED | XDPP_F_L4);
  EXPECT_EQ(ctx.pkt_len, frame.size());
  EXPECT_EQ(ctx.l3_off, frame.l3_off);
  EXPECT_EQ(ctx.l4_off, frame.l4_off);
  EXPECT_EQ(ctx.l4_proto, c.kind.l4_proto);
  EXPECT_EQ(ctx.dport, c.kind.dport);
  EXPECT_EQ(ctx.vlan_depth, c.kind.headers.vlans.size());

  // metadata saw every packet (it comes before the deciding stages): one event, len = the whole frame.
  ASSERT_EQ(result->events.size(), 1u);
  const auto& event = result->events[0].record.json;
  EXPECT_EQ(result->events[0].stage, "flows");
  EXPECT_EQ(event.value("len", 0u), frame.size());
  EXPECT_EQ(event.value("protocol", ""), c.kind.protocol);
  EXPECT_EQ(event.value("dport", 0u), c.kind.dport);

  // The frame that leaves: unchanged, or (icmp_lb) rewritten in the MACs, the destination and the checksum
  // only, whatever buffer the bytes were in.
  ASSERT_EQ(result->packet.size(), frame.size());
  Bytes expected = frame.bytes;
  if (c.kind.verdict == kTx) {
    const Mac backend_mac = mac("52:54:00:ff:ff:55");
    const Ipv4Address backend_ip = ipv4("192.168.1.3");
    std::copy(backend_mac.begin(), backend_mac.end(), expected.begin() + kEthDst);
    std::copy(kInterfaceMac.begin(), kInterfaceMac.end(), expected.begin() + kEthSrc);
    std::copy(backend_ip.begin(), backend_ip.end(), expected.begin() + frame.l3_off + kIpv4Daddr);
    const std::uint16_t check = ipv4_header_checksum(expected, frame.l3_off);
    expected[frame.l3_off + kIpv4Checksum] = check >> 8;
    expected[frame.l3_off + kIpv4Checksum + 1] = check & 0xff;
    EXPECT_TRUE(ipv4_checksum_valid(result->packet, frame.l3_off)) << "the rewritten IPv4 header does not sum to -0";
  }
  const auto differ = differing_bytes(result->packet, expected);
  EXPECT_TRUE(differ.empty()) << differ.size() << " bytes differ, the first at offset " << (differ.empty() ? 0 : differ[0]);
}

INSTANTIATE_TEST_SUITE_P(Cases, JumboTest, ::testing::ValuesIn(cases()), [](const auto& info) {
  return case_name(info.param.kind.name + " " + std::to_string(info.param.size) + " " + split_name(info.param.split));
});

// Lengths are checked against the whole frame, not the first buffer, and never trusted past it.
struct MalformedCase {
  std::string description;
  Packet packet;
  std::size_t size;
  std::uint32_t first_buffer;
};

class JumboMalformedTest : public BpfTestWithParam<MalformedCase> {};

TEST_P(JumboMalformedTest, MalformedAndPassedByParse) {
  const MalformedCase& c = GetParam();
  auto pipeline = load_pipeline(kChain);
  ASSERT_NE(pipeline, nullptr);
  Frame frame = build(c.packet);
  frame.bytes.resize(std::min(frame.bytes.size(), c.size));
  auto result = run(*pipeline, frame.bytes, c.first_buffer);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->stage, "parse");
  EXPECT_EQ(action_name(result->verdict), action_name(kPass));
  const xdpp_packet ctx = packet_context(*pipeline);
  EXPECT_TRUE(ctx.flags & XDPP_F_MALFORMED);
  EXPECT_FALSE(ctx.flags & XDPP_F_L4);
  EXPECT_EQ(ctx.pkt_len, frame.size());
}

std::vector<MalformedCase> malformed_cases() {
  return {
      // The IP total length claims 100 bytes more than the 9000-byte frame holds.
      {"ipv4 total length past the end of a 9000 byte frame",
       {.l3 = Ipv4{.total_length = 9000 - 14 + 100}, .l4 = Tcp{.dport = 8080}, .payload = pattern(9000 - 54)}, 9000, 0},
      {"ipv6 payload length past the end of a 9000 byte frame",
       {.l3 = Ipv6{.payload_length = 9000}, .l4 = Udp{.dport = 53}, .payload = pattern(9000 - 62)}, 9000, 0},
      // A 64 KB datagram cut to 40000 bytes: its length is checked against the whole frame, not the first buffer.
      {"ipv4 64 KB datagram cut to 40000 bytes",
       {.l3 = Ipv4{}, .l4 = Udp{.dport = 53}, .payload = pattern(65000)}, 40000, 0},
      // The frame ends inside the TCP header, which begins in the first buffer and goes on in a fragment.
      {"tcp header cut short in the second buffer",
       {.l3 = Ipv4{.total_length = 40}, .l4 = Tcp{.dport = 8080}}, 14 + 20 + 12, 14 + 20 + 4},
  };
}

INSTANTIATE_TEST_SUITE_P(Cases, JumboMalformedTest, ::testing::ValuesIn(malformed_cases()),
                         [](const auto& info) { return case_name(info.param.description); });

// Every program of a chain must agree on multi-buffer awareness (the kernel's rule for a prog array): a
// single-buffer stage object is refused before load, by name, with what to do.
TEST_F(BpfTest, SingleBufferStageRefusedInMultiBufferChain) {
  const std::string toml = std::string(kParseFirst) + R"(
[[stage]]
name = "old-filter"
plugin = "port_filter"
object = ")" + std::string(XDPP_SINGLE_BUFFER_STAGE) + R"("
drop_tcp_dst = [8080]
)";
  auto spec = parse_pipeline(toml, "single-buffer.toml", Overrides{}, test_search_paths());
  ASSERT_TRUE(spec) << spec.error().message;
  auto pipeline = Pipeline::load(std::move(*spec), test_search_paths(), test_interface());
  ASSERT_FALSE(pipeline) << "a single-buffer stage was loaded into a multi-buffer chain";
  const std::string& message = pipeline.error().message;
  EXPECT_NE(message.find("stage 'old-filter'"), std::string::npos) << message;
  EXPECT_NE(message.find("program 'port_filter' is SEC(\"xdp\") (single buffer) but the dispatcher is "
                         "SEC(\"xdp.frags\") (multi-buffer aware)"), std::string::npos) << message;
  EXPECT_NE(message.find("rebuild the stage with XDPP_STAGE()"), std::string::npos) << message;
}

}  // namespace
}  // namespace xdpp::test
