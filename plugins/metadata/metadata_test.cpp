// [parse, metadata] through the chain: one event per packet, decoded by the plugin into the text
// line and the JSON object; sampling.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "packet.h"
#include "test_pipeline.h"

namespace xdpp::test {
namespace {

std::string pipeline_toml(const std::string& format, int sample = 1) {
  return std::string(kParseFirst) + R"(
[[stage]]
name = "flows"
plugin = "metadata"
format = ")" + format + R"("
sample = )" + std::to_string(sample) + "\n";
}

struct MetadataCase {
  std::string description;
  Packet packet;
  std::string text;        // the exact line in format = "text"
  std::string src;         // JSON fields
  std::string dst;
  int sport;
  int dport;
  std::string protocol;
};

std::vector<MetadataCase> cases() {
  return {
      {.description = "tcp to ssh",
       .packet = {.l3 = Ipv4{.src = "192.168.1.3", .dst = "192.168.1.2"}, .l4 = Tcp{.sport = 35668, .dport = 22}},
       .text = "Packet: 192.168.1.3:35668 -> 192.168.1.2:22, protocol: TCP",
       .src = "192.168.1.3", .dst = "192.168.1.2", .sport = 35668, .dport = 22, .protocol = "TCP"},
      {.description = "udp dns",
       .packet = {.l3 = Ipv4{.src = "10.0.0.1", .dst = "10.0.0.53"}, .l4 = Udp{.sport = 53000, .dport = 53},
                  .payload = pattern(30)},
       .text = "Packet: 10.0.0.1:53000 -> 10.0.0.53:53, protocol: UDP",
       .src = "10.0.0.1", .dst = "10.0.0.53", .sport = 53000, .dport = 53, .protocol = "UDP"},
      {.description = "icmp echo has no ports",
       .packet = {.l3 = Ipv4{.src = "192.168.1.100", .dst = "192.168.1.2"}, .l4 = Icmp{}, .payload = pattern(56)},
       .text = "Packet: 192.168.1.100:0 -> 192.168.1.2:0, protocol: ICMP",
       .src = "192.168.1.100", .dst = "192.168.1.2", .sport = 0, .dport = 0, .protocol = "ICMP"},
      {.description = "gre is unknown",
       .packet = {.l3 = Ipv4{.src = "1.2.3.4", .dst = "5.6.7.8", .protocol = 47}, .payload = pattern(20)},
       .text = "Packet: 1.2.3.4:0 -> 5.6.7.8:0, protocol: UNKNOWN",
       .src = "1.2.3.4", .dst = "5.6.7.8", .sport = 0, .dport = 0, .protocol = "UNKNOWN"},
      {.description = "vlan tcp",
       .packet = {.vlans = {{.id = 12}}, .l3 = Ipv4{.src = "192.168.1.3", .dst = "192.168.1.2"},
                  .l4 = Tcp{.sport = 1234, .dport = 8080}},
       .text = "Packet: 192.168.1.3:1234 -> 192.168.1.2:8080, protocol: TCP",
       .src = "192.168.1.3", .dst = "192.168.1.2", .sport = 1234, .dport = 8080, .protocol = "TCP"},
      {.description = "qinq ipv4 options udp",
       .packet = {.vlans = {{.tpid = kEth8021AD, .id = 1}, {.id = 2}},
                  .l3 = Ipv4{.src = "172.16.0.1", .dst = "172.16.0.2", .options = ipv4_options(10)},
                  .l4 = Udp{.sport = 65535, .dport = 1}},
       .text = "Packet: 172.16.0.1:65535 -> 172.16.0.2:1, protocol: UDP",
       .src = "172.16.0.1", .dst = "172.16.0.2", .sport = 65535, .dport = 1, .protocol = "UDP"},
      {.description = "non first fragment has no ports",
       .packet = {.l3 = Ipv4{.src = "192.168.1.3", .dst = "192.168.1.2", .fragment_offset = 100},
                  .l4 = Tcp{.sport = 35668, .dport = 8080}},
       .text = "Packet: 192.168.1.3:0 -> 192.168.1.2:0, protocol: TCP",
       .src = "192.168.1.3", .dst = "192.168.1.2", .sport = 0, .dport = 0, .protocol = "TCP"},
      // IPv6 addresses in brackets, as the plugin documents (and URLs, ss): the port stays readable.
      {.description = "ipv6 tcp",
       .packet = {.l3 = Ipv6{.src = "2001:db8::3", .dst = "2001:db8::2"}, .l4 = Tcp{.sport = 35668, .dport = 443}},
       .text = "Packet: [2001:db8::3]:35668 -> [2001:db8::2]:443, protocol: TCP",
       .src = "2001:db8::3", .dst = "2001:db8::2", .sport = 35668, .dport = 443, .protocol = "TCP"},
      {.description = "ipv6 extension headers udp",
       .packet = {.l3 = Ipv6{.src = "fe80::1", .dst = "ff02::fb",
                             .extensions = {{.type = Ipv6Extension::hop_by_hop},
                                            {.type = Ipv6Extension::destination, .size = 16}}},
                  .l4 = Udp{.sport = 5353, .dport = 5353}},
       .text = "Packet: [fe80::1]:5353 -> [ff02::fb]:5353, protocol: UDP",
       .src = "fe80::1", .dst = "ff02::fb", .sport = 5353, .dport = 5353, .protocol = "UDP"},
      {.description = "icmpv6 echo",
       .packet = {.l3 = Ipv6{.src = "2001:db8:1::1", .dst = "2001:db8:2::2"}, .l4 = Icmpv6{.type = 128},
                  .payload = pattern(8)},
       .text = "Packet: [2001:db8:1::1]:0 -> [2001:db8:2::2]:0, protocol: ICMP",
       .src = "2001:db8:1::1", .dst = "2001:db8:2::2", .sport = 0, .dport = 0, .protocol = "ICMP"},
  };
}

struct MetadataParam {
  MetadataCase test;
  std::string format;
};

void PrintTo(const MetadataParam& param, std::ostream* os) { *os << param.test.description << ", format = " << param.format; }

class MetadataTest : public BpfTestWithParam<MetadataParam> {};

TEST_P(MetadataTest, OneDecodedEventPerPacket) {
  const MetadataCase& c = GetParam().test;
  const std::string& format = GetParam().format;
  auto pipeline = load_pipeline(pipeline_toml(format));
  ASSERT_NE(pipeline, nullptr);

  Frame frame = build(c.packet);
  SCOPED_TRACE(c.description + "\nframe:\n" + hex(frame.bytes));
  auto result = run(*pipeline, frame);
  ASSERT_TRUE(result);
  EXPECT_EQ(action_name(result->verdict), action_name(kPass));
  EXPECT_EQ(result->stage, "flows");
  EXPECT_EQ(result->packet, frame.bytes);
  ASSERT_EQ(result->events.size(), 1u);

  const StageEvent& event = result->events[0];
  EXPECT_EQ(event.stage, "flows");
  const nlohmann::json& json = event.record.json;
  if (format == "text") {
    EXPECT_EQ(event.record.text, c.text);
  } else {
    nlohmann::json line = nlohmann::json::parse(event.record.text, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(line.is_discarded()) << "not a JSON line: " << event.record.text;
    EXPECT_EQ(line, json) << "the JSON line and the JSON object differ";
  }
  ASSERT_TRUE(json.is_object()) << json.dump();
  EXPECT_EQ(json.value("src", "?"), c.src) << json.dump();
  EXPECT_EQ(json.value("dst", "?"), c.dst) << json.dump();
  EXPECT_EQ(json.value("sport", -1), c.sport) << json.dump();
  EXPECT_EQ(json.value("dport", -1), c.dport) << json.dump();
  EXPECT_EQ(json.value("protocol", "?"), c.protocol) << json.dump();
  if (json.contains("len")) { EXPECT_EQ(json["len"].get<std::size_t>(), frame.size()); }

  CounterTotals flows = counters(*pipeline, "flows");
  EXPECT_EQ(flows.packets, 1u);
  EXPECT_EQ(flows.verdict[kPass], 1u);
  EXPECT_EQ(flows.events_lost, 0u);
}

std::vector<MetadataParam> params() {
  std::vector<MetadataParam> out;
  for (const char* format : {"text", "json"})
    for (MetadataCase& c : cases()) out.push_back({std::move(c), format});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, MetadataTest, ::testing::ValuesIn(params()),
                         [](const ::testing::TestParamInfo<MetadataParam>& info) {
                           return case_name(info.param.test.description) + "_" + info.param.format;
                         });

class MetadataStreamTest : public BpfTest {};

// sample = N: one event every N packets (per CPU; the test runs on CPU 0 only).
void expect_sampled(int sample, int packets) {
  auto pipeline = load_pipeline(pipeline_toml("text", sample));
  ASSERT_NE(pipeline, nullptr);
  std::vector<int> emitted;
  for (int i = 0; i < packets; ++i) {
    Frame frame = build({.l3 = Ipv4{}, .l4 = Tcp{.sport = static_cast<std::uint16_t>(40000 + i), .dport = 22}});
    auto result = run(*pipeline, frame);
    ASSERT_TRUE(result);
    EXPECT_EQ(action_name(result->verdict), action_name(kPass));
    ASSERT_LE(result->events.size(), 1u);
    if (!result->events.empty()) {
      emitted.push_back(i);
      EXPECT_EQ(result->events[0].record.text,
                "Packet: 192.168.1.3:" + std::to_string(40000 + i) + " -> 192.168.1.2:22, protocol: TCP");
    }
  }
  ASSERT_EQ(emitted.size(), static_cast<std::size_t>(packets / sample))
      << "sample = " << sample << " over " << packets << " packets";
  // Evenly spaced: exactly one event in every run of `sample` consecutive packets.
  for (std::size_t k = 1; k < emitted.size(); ++k)
    EXPECT_EQ(emitted[k] - emitted[k - 1], sample) << "events at packets " << emitted[k - 1] << " and " << emitted[k];
  CounterTotals flows = counters(*pipeline, "flows");
  EXPECT_EQ(flows.packets, static_cast<std::uint64_t>(packets));
  EXPECT_EQ(flows.verdict[kPass], static_cast<std::uint64_t>(packets));
  EXPECT_EQ(flows.events_lost, 0u);
}

TEST_F(MetadataStreamTest, EveryPacketByDefault) { expect_sampled(1, 6); }
TEST_F(MetadataStreamTest, SampleTwoEmitsEveryOtherPacket) { expect_sampled(2, 10); }
TEST_F(MetadataStreamTest, SampleThreeEmitsOneInThree) { expect_sampled(3, 12); }

TEST_F(MetadataStreamTest, SampleZeroEmitsNothing) {
  auto pipeline = load_pipeline(pipeline_toml("text", 0));
  ASSERT_NE(pipeline, nullptr);
  for (int i = 0; i < 4; ++i) {
    auto result = run(*pipeline, build({.l3 = Ipv4{}, .l4 = Udp{}}));
    ASSERT_TRUE(result);
    EXPECT_TRUE(result->events.empty());
    EXPECT_EQ(action_name(result->verdict), action_name(kPass));
  }
}

TEST_F(MetadataStreamTest, MalformedPacketsEndAtParseWithoutEvent) {
  auto pipeline = load_pipeline(pipeline_toml("json"));
  ASSERT_NE(pipeline, nullptr);
  auto result = run(*pipeline, build({.l3 = Ipv4{.ihl = 2}, .l4 = Tcp{}}));
  ASSERT_TRUE(result);
  EXPECT_EQ(action_name(result->verdict), action_name(kPass));
  EXPECT_EQ(result->stage, "parse");
  EXPECT_TRUE(result->events.empty());
  EXPECT_EQ(counters(*pipeline, "flows").packets, 0u);
}

}  // namespace
}  // namespace xdpp::test
