// [parse, icmp_lb] through the chain: strict round robin of echo requests to the VIP, every
// rewritten byte (MACs, destination address, IPv4 header checksum recomputed from scratch here), every
// other byte unchanged; and everything that is not an echo request to the VIP passing untouched.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "packet.h"
#include "test_pipeline.h"

namespace xdpp::test {
namespace {

struct Backend {
  std::string ip;
  std::string mac;
};

const std::vector<Backend> kTwoBackends = {{"192.168.1.3", "52:54:00:ff:ff:55"},
                                           {"192.168.1.4", "52:54:00:5d:6e:a1"}};
const std::vector<Backend> kThreeBackends = {{"10.1.0.10", "52:54:00:00:00:0a"},
                                             {"10.1.0.11", "52:54:00:00:00:0b"},
                                             {"172.16.255.254", "de:ad:be:ef:00:01"}};
constexpr const char* kVip = "192.168.1.2";
constexpr const char* kClient = "192.168.1.100";

std::string pipeline_toml(const std::vector<Backend>& backends, const std::string& lb_mac = "") {
  std::string text = std::string(kParseFirst) + R"(
[[stage]]
name = "ping-lb"
plugin = "icmp_lb"
vip = "192.168.1.2"
backends = [)";
  for (std::size_t i = 0; i < backends.size(); ++i)
    text += std::string(i ? ", " : "") + "{ ip = \"" + backends[i].ip + "\", mac = \"" + backends[i].mac + "\" }";
  text += "]\n";
  if (!lb_mac.empty()) text += "lb_mac = \"" + lb_mac + "\"\n";
  return text;
}

Packet echo_request(std::uint16_t seq, Ipv4 ip = {}) {
  ip.src = kClient;
  ip.dst = kVip;
  return {.eth = {.dst = kInterfaceMac, .src = mac("52:54:00:c1:1e:07")},
          .l3 = ip,
          .l4 = Icmp{.type = 8, .code = 0, .id = 0x1f2e, .seq = seq},
          .payload = pattern(56, static_cast<std::uint8_t>(seq))};
}

// Checks one rewritten frame against the frame sent: the rewritten fields, the checksum, and that no
// other byte moved.
void expect_rewritten(const Frame& sent, const std::vector<std::uint8_t>& got, const Backend& backend,
                      const Mac& lb_mac) {
  const std::size_t l3 = sent.l3_off;
  ASSERT_EQ(got.size(), sent.size()) << "the frame changed length";
  EXPECT_EQ(to_string(read_mac(got, kEthDst)), to_string(mac(backend.mac))) << "destination MAC";
  EXPECT_EQ(to_string(read_mac(got, kEthSrc)), to_string(lb_mac)) << "source MAC";
  EXPECT_EQ(read_ipv4(got, l3 + kIpv4Daddr), ipv4(backend.ip)) << "IPv4 destination";
  EXPECT_EQ(read_ipv4(got, l3 + kIpv4Saddr), ipv4(kClient)) << "IPv4 source";

  const std::uint16_t checksum = read_be16(got, l3 + kIpv4Checksum);
  const std::uint16_t from_scratch = ipv4_header_checksum(got, l3);
  EXPECT_TRUE(ipv4_checksum_valid(got, l3)) << std::hex << "IPv4 header checksum 0x" << checksum
                                            << " is wrong; computed from scratch: 0x" << from_scratch;
  // 0xFFFF is the other zero of one's complement: it verifies as well, though no sender computes it.
  if (!(from_scratch == 0 && checksum == 0xffff)) {
    EXPECT_EQ(checksum, from_scratch) << std::hex << "IPv4 header checksum 0x" << checksum
                                      << ", from scratch 0x" << from_scratch;
  }

  std::set<std::size_t> allowed;
  for (std::size_t i = 0; i < 12; ++i) allowed.insert(i);
  allowed.insert({l3 + kIpv4Checksum, l3 + kIpv4Checksum + 1});
  for (std::size_t i = 0; i < 4; ++i) allowed.insert(l3 + kIpv4Daddr + i);
  for (std::size_t index : differing_bytes(sent.bytes, got))
    EXPECT_TRUE(allowed.count(index)) << "byte " << index << " changed: 0x" << std::hex << int(sent.bytes[index])
                                      << " -> 0x" << int(got[index]);
}

class IcmpLbTest : public BpfTest {
 protected:
  // Sends `count` echo requests built by `make` and checks backend i % n for request i.
  void expect_round_robin(Pipeline& pipeline, const std::vector<Backend>& backends, const Mac& lb_mac, int count,
                          const std::function<Packet(int)>& make) {
    for (int i = 0; i < count; ++i) {
      Frame frame = build(make(i));
      const Backend& backend = backends[i % backends.size()];
      SCOPED_TRACE("request " + std::to_string(i) + ", expected backend " + std::to_string(i % backends.size()) +
                   " (" + backend.ip + ")\nsent:\n" + hex(frame.bytes));
      auto result = run(pipeline, frame);
      ASSERT_TRUE(result);
      EXPECT_EQ(action_name(result->verdict), action_name(kTx));
      EXPECT_EQ(result->stage, "ping-lb");
      EXPECT_TRUE(result->modified);
      expect_rewritten(frame, result->packet, backend, lb_mac);
      if (HasFatalFailure()) return;
    }
  }
};

TEST_F(IcmpLbTest, TwoBackendsAlternateStrictly) {
  auto pipeline = load_pipeline(pipeline_toml(kTwoBackends));
  ASSERT_NE(pipeline, nullptr);
  expect_round_robin(*pipeline, kTwoBackends, kInterfaceMac, 8, [](int i) {
    return echo_request(static_cast<std::uint16_t>(i + 1), Ipv4{.ttl = static_cast<std::uint8_t>(64 - i)});
  });
  CounterTotals lb = counters(*pipeline, "ping-lb");
  EXPECT_EQ(lb.packets, 8u);
  EXPECT_EQ(lb.verdict[kTx], 8u);
  EXPECT_EQ(lb.fell_off, 0u);
  EXPECT_EQ(counters(*pipeline, "parse").packets, 8u);
}

TEST_F(IcmpLbTest, ThreeBackendsInTurn) {
  auto pipeline = load_pipeline(pipeline_toml(kThreeBackends));
  ASSERT_NE(pipeline, nullptr);
  expect_round_robin(*pipeline, kThreeBackends, kInterfaceMac, 10, [](int i) {
    return echo_request(static_cast<std::uint16_t>(1000 + i), Ipv4{.id = static_cast<std::uint16_t>(0xfff0 + i)});
  });
  EXPECT_EQ(counters(*pipeline, "ping-lb").verdict[kTx], 10u);
}

TEST_F(IcmpLbTest, ExplicitLbMacIsTheSourceMac) {
  auto pipeline = load_pipeline(pipeline_toml(kTwoBackends, "52:54:00:aa:bb:cc"));
  ASSERT_NE(pipeline, nullptr);
  expect_round_robin(*pipeline, kTwoBackends, mac("52:54:00:aa:bb:cc"), 4,
                     [](int i) { return echo_request(static_cast<std::uint16_t>(i)); });
}

TEST_F(IcmpLbTest, VlanTaggedRequestsKeepTheirTags) {
  auto pipeline = load_pipeline(pipeline_toml(kTwoBackends));
  ASSERT_NE(pipeline, nullptr);
  expect_round_robin(*pipeline, kTwoBackends, kInterfaceMac, 4, [](int i) {
    Packet packet = echo_request(static_cast<std::uint16_t>(i));
    packet.vlans = {{.id = 42, .pcp = 3}};
    return packet;
  });
}

TEST_F(IcmpLbTest, QinQRequestsKeepTheirTags) {
  auto pipeline = load_pipeline(pipeline_toml(kThreeBackends));
  ASSERT_NE(pipeline, nullptr);
  expect_round_robin(*pipeline, kThreeBackends, kInterfaceMac, 4, [](int i) {
    Packet packet = echo_request(static_cast<std::uint16_t>(i), Ipv4{.options = ipv4_options(3)});
    packet.vlans = {{.tpid = kEth8021AD, .id = 100}, {.id = 200}};
    return packet;
  });
}

TEST_F(IcmpLbTest, EthernetPaddingIsLeftAlone) {
  auto pipeline = load_pipeline(pipeline_toml(kTwoBackends));
  ASSERT_NE(pipeline, nullptr);
  expect_round_robin(*pipeline, kTwoBackends, kInterfaceMac, 2, [](int i) {
    Packet packet = echo_request(static_cast<std::uint16_t>(i));
    packet.payload = {};
    packet.trailer = Bytes(18, 0xee);
    return packet;
  });
}

// Checksums at the edges of one's complement: a request whose checksum is 0x0000 before the rewrite,
// and one whose correct checksum after the rewrite is 0x0000.
std::uint16_t id_for_checksum(const std::string& daddr, std::uint16_t wanted) {
  for (std::uint32_t id = 0; id <= 0xffff; ++id) {
    Packet packet = echo_request(1, Ipv4{.id = static_cast<std::uint16_t>(id)});
    std::get<Ipv4>(packet.l3).dst = daddr;
    Frame frame = build(packet);
    if (read_be16(frame.bytes, frame.l3_off + kIpv4Checksum) == wanted) return static_cast<std::uint16_t>(id);
  }
  ADD_FAILURE() << "no IPv4 id gives checksum " << wanted;
  return 0;
}

TEST_F(IcmpLbTest, ChecksumEdgeCases) {
  auto pipeline = load_pipeline(pipeline_toml(kTwoBackends));
  ASSERT_NE(pipeline, nullptr);
  const std::uint16_t zero_before = id_for_checksum(kVip, 0x0000);
  const std::uint16_t zero_after = id_for_checksum(kTwoBackends[1].ip, 0x0000);
  const std::vector<std::uint16_t> ids = {zero_before, zero_after, 0x0000, 0xffff};
  expect_round_robin(*pipeline, kTwoBackends, kInterfaceMac, 4, [&](int i) {
    return echo_request(static_cast<std::uint16_t>(i), Ipv4{.id = ids[i]});
  });
}

// IHL 5..15: the checksum must be right over the whole header, options included.
class IcmpLbOptionsTest : public BpfTestWithParam<int> {};

TEST_P(IcmpLbOptionsTest, RewritesWithOptions) {
  const int ihl = GetParam();
  auto pipeline = load_pipeline(pipeline_toml(kTwoBackends));
  ASSERT_NE(pipeline, nullptr);
  for (int i = 0; i < 3; ++i) {
    Packet packet = echo_request(static_cast<std::uint16_t>(i),
                                 Ipv4{.ttl = 200, .tos = 0xb8, .id = static_cast<std::uint16_t>(0x8000 + ihl),
                                      .options = ipv4_options(static_cast<std::size_t>(ihl - 5))});
    Frame frame = build(packet);
    ASSERT_EQ(frame.l4_off - frame.l3_off, static_cast<std::size_t>(ihl) * 4);
    SCOPED_TRACE("IHL " + std::to_string(ihl) + ", request " + std::to_string(i) + "\nsent:\n" + hex(frame.bytes));
    auto result = run(*pipeline, frame);
    ASSERT_TRUE(result);
    EXPECT_EQ(action_name(result->verdict), action_name(kTx));
    EXPECT_EQ(result->stage, "ping-lb");
    expect_rewritten(frame, result->packet, kTwoBackends[i % 2], kInterfaceMac);
  }
}

INSTANTIATE_TEST_SUITE_P(Ihl, IcmpLbOptionsTest, ::testing::Range(5, 16),
                         [](const ::testing::TestParamInfo<int>& info) { return "ihl_" + std::to_string(info.param); });

// Everything that is not an echo request to the VIP: passes down the chain (here: the end, pass),
// unmodified, and does not move the round robin.
struct ContinueCase {
  std::string description;
  Packet packet;
};

std::vector<ContinueCase> continue_cases() {
  auto to_vip = [](Icmp icmp) {
    return Packet{.l3 = Ipv4{.src = kClient, .dst = kVip}, .l4 = icmp, .payload = pattern(56)};
  };
  return {
      {"echo reply to the vip", to_vip(Icmp{.type = 0})},
      {"destination unreachable to the vip", to_vip(Icmp{.type = 3, .code = 1})},
      {"timestamp request to the vip", to_vip(Icmp{.type = 13})},
      {"redirect to the vip", to_vip(Icmp{.type = 5, .code = 1})},
      {"echo reply code 1 to the vip", to_vip(Icmp{.type = 0, .code = 1})},
      {"echo request to another address",
       {.l3 = Ipv4{.src = kClient, .dst = "192.168.1.20"}, .l4 = Icmp{.type = 8}, .payload = pattern(56)}},
      {"echo request to a backend address",
       {.l3 = Ipv4{.src = kClient, .dst = "192.168.1.3"}, .l4 = Icmp{.type = 8}, .payload = pattern(56)}},
      {"echo request from the vip to another address",
       {.l3 = Ipv4{.src = kVip, .dst = kClient}, .l4 = Icmp{.type = 8}, .payload = pattern(56)}},
      {"tcp to the vip", {.l3 = Ipv4{.src = kClient, .dst = kVip}, .l4 = Tcp{.dport = 22}}},
      {"udp to the vip", {.l3 = Ipv4{.src = kClient, .dst = kVip}, .l4 = Udp{.dport = 7}}},
      {"icmpv6 echo request", {.l3 = Ipv6{}, .l4 = Icmpv6{.type = 128}, .payload = pattern(56)}},
      {"arp", {.eth = {.type = kEthArp}, .payload = pattern(28)}},
  };
}

void PrintTo(const ContinueCase& c, std::ostream* os) { *os << c.description; }

class IcmpLbContinueTest : public BpfTestWithParam<ContinueCase> {};

TEST_P(IcmpLbContinueTest, PassesUnmodified) {
  auto pipeline = load_pipeline(pipeline_toml(kTwoBackends));
  ASSERT_NE(pipeline, nullptr);

  // request (backend 0), the case, request: backend 1 if the case did not move the round robin.
  auto first = run(*pipeline, build(echo_request(1)));
  ASSERT_TRUE(first);
  ASSERT_EQ(action_name(first->verdict), action_name(kTx));

  Frame frame = build(GetParam().packet);
  SCOPED_TRACE(GetParam().description + "\nsent:\n" + hex(frame.bytes));
  auto result = run(*pipeline, frame);
  ASSERT_TRUE(result);
  EXPECT_EQ(action_name(result->verdict), action_name(kPass));
  EXPECT_EQ(result->stage, "ping-lb");
  EXPECT_FALSE(result->modified);
  EXPECT_EQ(result->packet, frame.bytes);

  Frame second_frame = build(echo_request(2));
  auto second = run(*pipeline, second_frame);
  ASSERT_TRUE(second);
  EXPECT_EQ(action_name(second->verdict), action_name(kTx));
  expect_rewritten(second_frame, second->packet, kTwoBackends[1], kInterfaceMac);

  CounterTotals lb = counters(*pipeline, "ping-lb");
  EXPECT_EQ(lb.packets, 3u);
  EXPECT_EQ(lb.verdict[kTx], 2u);
  EXPECT_EQ(lb.verdict[kPass], 1u);
}

INSTANTIATE_TEST_SUITE_P(Cases, IcmpLbContinueTest, ::testing::ValuesIn(continue_cases()),
                         [](const ::testing::TestParamInfo<ContinueCase>& info) {
                           return case_name(info.param.description);
                         });

}  // namespace
}  // namespace xdpp::test
