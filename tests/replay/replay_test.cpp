// `xdp-pipeline replay` end to end: the real executable over pcap files that these tests write with
// libpcap, frames crafted byte by byte here. Checked: each packet's verdict, deciding stage, modified
// flag and leaving bytes (the ICMP LB rewrite, IPv4 checksum recomputed from scratch, RFC 1071), the
// metadata events, the summary line, determinism, the --out pcap (read back with libpcap, and by tshark
// when it is installed), the human format, and every bad-input case of the replay issue.
#define PCAP_DONT_INCLUDE_PCAP_BPF_H  // libbpf and libpcap both define struct bpf_insn
#include <pcap/dlt.h>
#include <pcap/pcap.h>
#include <sys/mount.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "packet.h"

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using xdpp::test::Bytes;
using xdpp::test::Mac;

// ---- frames: built by the tests' one packet builder (tests/support/packet.h) -------------------------

namespace pkt = xdpp::test;
using pkt::mac;

// Replay's --json "data": the leaving bytes as one lowercase hex string.
std::string hex(const Bytes& bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string text;
  for (auto byte : bytes) {
    text.push_back(digits[byte >> 4]);
    text.push_back(digits[byte & 15]);
  }
  return text;
}

Bytes unhex(const std::string& text) {
  Bytes bytes;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) bytes.push_back(std::stoi(text.substr(i, 2), nullptr, 16));
  return bytes;
}

const Mac kClientMac = mac("02:00:00:00:00:01");
const Mac kRouterMac = mac("02:00:00:00:00:02");
const pkt::Ethernet kToRouter{.dst = kRouterMac, .src = kClientMac};

// A TCP segment (SYN, or PSH ACK with `payload` bytes) in IPv4, every checksum right (tshark checks them).
Bytes tcp_v4(const std::string& src, std::uint16_t sport, const std::string& dst, std::uint16_t dport,
             std::size_t payload = 0) {
  return pkt::build({.eth = kToRouter,
                     .l3 = pkt::Ipv4{.src = src, .dst = dst},
                     .l4 = pkt::Tcp{.sport = sport, .dport = dport, .seq = 1,
                                    .flags = payload ? std::uint8_t(pkt::kTcpPsh | pkt::kTcpAck) : pkt::kTcpSyn},
                     .payload = pkt::pattern(payload)})
      .bytes;
}

Bytes udp_v4(const std::string& src, std::uint16_t sport, const std::string& dst, std::uint16_t dport,
             std::size_t payload = 16) {
  return pkt::build({.eth = kToRouter,
                     .l3 = pkt::Ipv4{.src = src, .dst = dst},
                     .l4 = pkt::Udp{.sport = sport, .dport = dport},
                     .payload = pkt::pattern(payload)})
      .bytes;
}

Bytes udp_v6(std::uint16_t sport, std::uint16_t dport, std::size_t payload) {
  return pkt::build({.eth = kToRouter,
                     .l3 = pkt::Ipv6{.src = "2001:db8::1", .dst = "2001:db8::2"},
                     .l4 = pkt::Udp{.sport = sport, .dport = dport},
                     .payload = pkt::pattern(payload)})
      .bytes;
}

// An ICMP echo request (type 8) or reply (type 0) with `payload` bytes of data; the IPv4 id follows `seq`.
Bytes ping(const std::string& src, const std::string& dst, std::uint16_t seq, std::uint8_t type = 8,
           std::size_t payload = 32) {
  return pkt::build({.eth = kToRouter,
                     .l3 = pkt::Ipv4{.src = src, .dst = dst, .id = static_cast<std::uint16_t>(0x1000 + seq)},
                     .l4 = pkt::Icmp{.type = type, .id = 0x4242, .seq = seq},
                     .payload = pkt::pattern(payload)})
      .bytes;
}

// What icmp_lb must make of an echo request: destination MAC and address of the backend, source MAC
// of the balancer, the IPv4 header checksum recomputed here from scratch; every other byte as it was.
Bytes balanced(const Bytes& request, Mac backend_mac, const std::string& backend_ip, Mac source_mac) {
  Bytes out = request;
  std::memcpy(&out[pkt::kEthDst], backend_mac.data(), 6);
  std::memcpy(&out[pkt::kEthSrc], source_mac.data(), 6);
  std::memcpy(&out[14 + pkt::kIpv4Daddr], pkt::ipv4(backend_ip).data(), 4);
  std::uint16_t checksum = pkt::ipv4_header_checksum(out, 14);
  out[14 + pkt::kIpv4Checksum] = static_cast<std::uint8_t>(checksum >> 8);
  out[14 + pkt::kIpv4Checksum + 1] = static_cast<std::uint8_t>(checksum);
  return out;
}

// ---- pcap files ---------------------------------------------------------------------------------------

constexpr std::int64_t kBaseSeconds = 1700000000;

timeval capture_time(std::size_t index) {
  return timeval{.tv_sec = kBaseSeconds + static_cast<time_t>(index), .tv_usec = static_cast<suseconds_t>(1000 * index + 7)};
}

std::uint64_t capture_ns(std::size_t index) {
  timeval t = capture_time(index);
  return std::uint64_t(t.tv_sec) * 1000000000ull + std::uint64_t(t.tv_usec) * 1000ull;
}

void write_pcap(const fs::path& path, const std::vector<Bytes>& frames, int linktype = DLT_EN10MB) {
  pcap_t* dead = pcap_open_dead(linktype, 262144);
  ASSERT_NE(dead, nullptr);
  pcap_dumper_t* dumper = pcap_dump_open(dead, path.c_str());
  ASSERT_NE(dumper, nullptr) << pcap_geterr(dead);
  for (std::size_t i = 0; i < frames.size(); ++i) {
    pcap_pkthdr header{};
    header.ts = capture_time(i);
    header.caplen = header.len = static_cast<bpf_u_int32>(frames[i].size());
    pcap_dump(reinterpret_cast<u_char*>(dumper), &header, frames[i].data());
  }
  pcap_dump_close(dumper);
  pcap_close(dead);
}

struct Capture {
  int linktype = -1;
  std::vector<Bytes> frames;
  std::vector<timeval> times;
  std::string error;
};

Capture read_pcap(const fs::path& path) {
  Capture capture;
  char error[PCAP_ERRBUF_SIZE] = {};
  pcap_t* handle = pcap_open_offline(path.c_str(), error);
  if (!handle) {
    capture.error = error;
    return capture;
  }
  capture.linktype = pcap_datalink(handle);
  pcap_pkthdr* header;
  const u_char* data;
  int got;
  while ((got = pcap_next_ex(handle, &header, &data)) == 1) {
    capture.frames.emplace_back(data, data + header->caplen);
    capture.times.push_back(header->ts);
  }
  if (got != PCAP_ERROR_BREAK) capture.error = pcap_geterr(handle);
  pcap_close(handle);
  return capture;
}

// ---- running the executable ---------------------------------------------------------------------------

struct Outcome {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
  std::vector<json> lines;  // stdout, parsed line by line (when it is JSON)

  std::string describe() const { return "exit " + std::to_string(exit_code) + "\nstdout:\n" + out + "stderr:\n" + err; }
};

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Outcome run(const std::vector<std::string>& args, const fs::path& scratch, const std::string& program = XDPP_TEST_EXECUTABLE) {
  const fs::path out_file = scratch / "stdout.txt", err_file = scratch / "stderr.txt";
  std::vector<std::string> argv_strings = {program};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);

  std::fflush(nullptr);
  pid_t child = fork();
  if (child == 0) {
    int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0) _exit(126);
    dup2(out, 1);
    dup2(err, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  Outcome outcome;
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child) return outcome;
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  outcome.out = slurp(out_file);
  outcome.err = slurp(err_file);
  std::istringstream lines(outcome.out);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) outcome.lines.push_back(json::parse(line, nullptr, false));
  return outcome;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ---- pipelines ----------------------------------------------------------------------------------------

const std::string kVip = "192.168.1.2";
const std::string kClient = "192.168.1.100";
const std::string kBackend1 = "192.168.1.3", kBackend2 = "192.168.1.4";
const Mac kBackend1Mac = mac("52:54:00:ff:ff:55"), kBackend2Mac = mac("52:54:00:5d:6e:a1");
const std::string kFileMac = "02:00:00:00:00:aa";  // [pipeline] mac
const std::string kFlagMac = "02:00:00:00:00:bb";  // --mac
const std::string kNoInterface = "xdpp-replay0";   // an interface that does not exist

std::string pipeline_header(const std::string& interface, const std::string& mac_line) {
  return "[pipeline]\nname = \"replay-test\"\ninterface = \"" + interface + "\"\nmode = \"generic\"\n" + mac_line +
         "\n";
}

const std::string kLbStages = R"(
[[stage]]
name = "parse"
plugin = "parse"

[[stage]]
name = "ping-lb"
plugin = "icmp_lb"
vip = "192.168.1.2"
backends = [
  { ip = "192.168.1.3", mac = "52:54:00:ff:ff:55" },
  { ip = "192.168.1.4", mac = "52:54:00:5d:6e:a1" },
]
)";

const std::string kFullStages = R"(
[[stage]]
name = "parse"
plugin = "parse"
malformed = "drop"

[[stage]]
name = "no-8080"
plugin = "port_filter"
drop_tcp_dst = [8080]

[[stage]]
name = "ping-lb"
plugin = "icmp_lb"
vip = "192.168.1.2"
backends = [
  { ip = "192.168.1.3", mac = "52:54:00:ff:ff:55" },
  { ip = "192.168.1.4", mac = "52:54:00:5d:6e:a1" },
]

[[stage]]
name = "flows"
plugin = "metadata"
format = "json"
sample = 1
)";

const std::string kRecorderStages = R"(
[[stage]]
name = "parse"
plugin = "parse"

[[stage]]
name = "flows"
plugin = "metadata"
sample = 1
)";

class ReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "replay loads BPF programs (BPF_PROG_TEST_RUN): run the tests as root";
    char pattern[] = "/tmp/xdpp-replay-test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  fs::path write_file(const std::string& name, const std::string& text) {
    fs::path path = dir_ / name;
    std::ofstream(path) << text;
    return path;
  }
  fs::path pcap(const std::string& name, const std::vector<Bytes>& frames, int linktype = DLT_EN10MB) {
    fs::path path = dir_ / name;
    write_pcap(path, frames, linktype);
    return path;
  }
  Outcome replay(const fs::path& pipeline, const fs::path& input, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"replay", pipeline.string(), "--pcap", input.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args, dir_);
  }

  fs::path dir_;
};

// Checks one packet line of --json output; `data` must be there exactly when the packet was rewritten.
void expect_packet(const json& line, std::size_t index, const std::string& verdict, const std::string& stage,
                   const std::optional<Bytes>& rewritten) {
  SCOPED_TRACE("packet " + std::to_string(index) + ": " + line.dump());
  ASSERT_TRUE(line.is_object());
  EXPECT_EQ(line.value("packet", -1), static_cast<int>(index));
  EXPECT_EQ(line.value("verdict", ""), verdict);
  EXPECT_EQ(line.value("stage", ""), stage);
  ASSERT_TRUE(line.contains("modified"));
  EXPECT_EQ(line["modified"].get<bool>(), rewritten.has_value());
  EXPECT_EQ(line.contains("data"), rewritten.has_value());
  if (rewritten && line.contains("data")) {
    EXPECT_EQ(line["data"].get<std::string>(), hex(*rewritten));
  }
  ASSERT_TRUE(line.contains("events"));
  EXPECT_TRUE(line["events"].is_array());
}

void expect_event(const json& event, const std::string& src, const std::string& dst, int sport, int dport,
                  const std::string& protocol) {
  SCOPED_TRACE("event " + event.dump());
  EXPECT_EQ(event.value("stage", ""), "flows");
  EXPECT_EQ(event.value("src", "?"), src);
  EXPECT_EQ(event.value("dst", "?"), dst);
  EXPECT_EQ(event.value("sport", -1), sport);
  EXPECT_EQ(event.value("dport", -1), dport);
  EXPECT_EQ(event.value("protocol", ""), protocol);
}

const json& summary_of(const Outcome& outcome) {
  static const json none;
  if (outcome.lines.empty() || !outcome.lines.back().is_object() || !outcome.lines.back().contains("summary"))
    return none;
  return outcome.lines.back()["summary"];
}

// ---- the ICMP load balancer ---------------------------------------------------------------------------

TEST_F(ReplayTest, LbRewritesEchoRequestsAndAlternatesBackends) {
  auto file = write_file("lb.toml", pipeline_header(kNoInterface, "mac = \"" + kFileMac + "\"") + kLbStages);
  std::vector<Bytes> frames;
  for (std::uint16_t seq = 0; seq < 6; ++seq) frames.push_back(ping(kClient, kVip, seq));
  frames.push_back(ping(kClient, kVip, 99, /*type=*/0));      // an echo reply: not balanced
  frames.push_back(ping(kClient, "192.168.1.9", 100));        // another address: not balanced
  frames.push_back(ping(kClient, kVip, 6));                   // the round robin goes on where it was
  auto outcome = replay(file, pcap("lb.pcap", frames), {"--json"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.describe();
  ASSERT_EQ(outcome.lines.size(), frames.size() + 1) << outcome.describe();
  EXPECT_TRUE(contains(outcome.err, "interface " + kNoInterface + " has MAC " + kFileMac + " (from [pipeline] mac)"))
      << outcome.err;

  std::size_t balanced_count = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    if (i == 6 || i == 7) {  // fell off the end of the chain, default verdict pass, counted by the last stage
      expect_packet(outcome.lines[i], i, "pass", "ping-lb", std::nullopt);
      continue;
    }
    const bool first = balanced_count++ % 2 == 0;
    Bytes expected = balanced(frames[i], first ? kBackend1Mac : kBackend2Mac, first ? kBackend1 : kBackend2, mac(kFileMac));
    expect_packet(outcome.lines[i], i, "tx", "ping-lb", expected);

    // The same, stated byte by byte on what replay printed.
    Bytes out = unhex(outcome.lines[i].value("data", ""));
    ASSERT_EQ(out.size(), frames[i].size());
    const Mac& backend_mac = first ? kBackend1Mac : kBackend2Mac;
    EXPECT_TRUE(std::equal(out.begin(), out.begin() + 6, backend_mac.begin()));
    EXPECT_TRUE(std::equal(out.begin() + 6, out.begin() + 12, mac(kFileMac).begin()));
    EXPECT_TRUE(std::equal(out.begin() + 30, out.begin() + 34, pkt::ipv4(first ? kBackend1 : kBackend2).begin()));
    EXPECT_TRUE(pkt::ipv4_checksum_valid(out, 14)) << "IPv4 header checksum of the leaving packet is wrong";
    for (std::size_t at = 12; at < out.size(); ++at)
      if (at != 24 && at != 25 && (at < 30 || at >= 34)) {
        EXPECT_EQ(out[at], frames[i][at]) << "byte " << at;
      }
  }

  const json& summary = summary_of(outcome);
  ASSERT_TRUE(summary.is_object()) << outcome.out;
  EXPECT_EQ(summary["packets"], frames.size());
  EXPECT_EQ(summary["skipped"], 0);
  EXPECT_EQ(summary["verdicts"], (json{{"tx", 7}, {"pass", 2}}));
  EXPECT_EQ(summary["stages"], (json{{"ping-lb", {{"tx", 7}, {"pass", 2}}}}));
}

TEST_F(ReplayTest, MacComesFromFlagThenFileThenLocalInterface) {
  const std::vector<Bytes> frames = {ping(kClient, kVip, 1)};
  auto input = pcap("one-ping.pcap", frames);
  auto source_mac_of = [](const Outcome& outcome) -> std::string {
    if (outcome.lines.empty() || !outcome.lines[0].contains("data")) return "";
    Bytes out = unhex(outcome.lines[0]["data"].get<std::string>());
    char text[18];
    std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", out[6], out[7], out[8], out[9], out[10], out[11]);
    return text;
  };

  // --mac wins over [pipeline] mac.
  auto with_file_mac = write_file("mac.toml", pipeline_header(kNoInterface, "mac = \"" + kFileMac + "\"") + kLbStages);
  auto flag = replay(with_file_mac, input, {"--json", "--mac", kFlagMac});
  ASSERT_EQ(flag.exit_code, 0) << flag.describe();
  EXPECT_EQ(source_mac_of(flag), kFlagMac);
  EXPECT_TRUE(contains(flag.err, "has MAC " + kFlagMac + " (from --mac)")) << flag.err;

  // No MAC anywhere and no such interface: the LB cannot know its source MAC, and says so.
  auto no_mac = write_file("no-mac.toml", pipeline_header(kNoInterface, "") + kLbStages);
  auto refused = replay(no_mac, input, {"--json"});
  EXPECT_NE(refused.exit_code, 0) << refused.describe();
  EXPECT_TRUE(contains(refused.err, "--mac")) << refused.err;
  EXPECT_TRUE(contains(refused.err, "lb_mac")) << refused.err;
  EXPECT_TRUE(refused.lines.empty()) << refused.out;

  // The stage's own lb_mac is what the LB writes, whatever the interface's MAC.
  std::string lb_mac_stages = kLbStages + "lb_mac = \"02:00:00:00:00:cc\"\n";
  auto lb_mac = write_file("lb-mac.toml", pipeline_header(kNoInterface, "mac = \"" + kFileMac + "\"") + lb_mac_stages);
  auto own = replay(lb_mac, input, {"--json", "--mac", kFlagMac});
  ASSERT_EQ(own.exit_code, 0) << own.describe();
  EXPECT_EQ(source_mac_of(own), "02:00:00:00:00:cc");

  // Neither --mac nor [pipeline] mac: the MAC of the local interface of that name, if there is one.
  std::optional<std::pair<std::string, std::string>> ethernet_interface;
  if (struct if_nameindex* names = if_nameindex()) {
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    for (auto* entry = names; entry->if_index != 0 && !ethernet_interface; ++entry) {
      ifreq request{};
      std::strncpy(request.ifr_name, entry->if_name, IFNAMSIZ - 1);
      if (sock >= 0 && ioctl(sock, SIOCGIFHWADDR, &request) == 0 && request.ifr_hwaddr.sa_family == ARPHRD_ETHER) {
        auto* b = reinterpret_cast<const std::uint8_t*>(request.ifr_hwaddr.sa_data);
        char text[18];
        std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
        ethernet_interface = {entry->if_name, text};
      }
    }
    if (sock >= 0) close(sock);
    if_freenameindex(names);
  }
  if (!ethernet_interface) GTEST_SKIP() << "no local Ethernet interface to take a MAC from";
  auto local = write_file("local.toml", pipeline_header(ethernet_interface->first, "") + kLbStages);
  auto from_interface = replay(local, input, {"--json"});
  ASSERT_EQ(from_interface.exit_code, 0) << from_interface.describe();
  EXPECT_EQ(source_mac_of(from_interface), ethernet_interface->second);
  // A MAC borrowed from this machine's interface is a guess about another machine: a warning that says
  // where it came from and how to give the right one.
  EXPECT_TRUE(contains(from_interface.err, "warning: replay: the MAC of interface " + ethernet_interface->first +
                                               " is taken from the interface " + ethernet_interface->first +
                                               " of this machine, in "))
      << from_interface.err;
  EXPECT_TRUE(contains(from_interface.err, "give --mac MAC or [pipeline] mac")) << from_interface.err;
}

// ---- the whole chain, events, summary, determinism ------------------------------------------------------

std::vector<Bytes> chain_frames() {
  return {
      ping(kClient, kVip, 1),                                           // 0 tx by ping-lb, backend 1
      tcp_v4("192.168.1.3", 35668, kVip, 8080),                         // 1 drop by no-8080
      tcp_v4("192.168.1.3", 35668, kVip, 22),                           // 2 pass (falls off after flows)
      ping(kClient, kVip, 2),                                           // 3 tx by ping-lb, backend 2
      udp_v4("10.0.0.1", 5353, "10.0.0.2", 53),                         // 4 pass
      pkt::build({.eth = {.dst = kRouterMac, .src = kClientMac, .type = pkt::kEthIpv4},  // 5 drop by parse:
                  .payload = {0x45, 0x00, 0x00}}).bytes,                              //   malformed IPv4
      udp_v6(8080, 53, 0),                                              // 6 pass, IPv6 event
      ping(kClient, kVip, 3),                                           // 7 tx by ping-lb, backend 1
      ping(kClient, kVip, 4, /*type=*/0),                               // 8 pass: an echo reply, ICMP event
  };
}

TEST_F(ReplayTest, ChainVerdictsStagesEventsAndSummary) {
  auto file = write_file("full.toml", pipeline_header(kNoInterface, "") + kFullStages);
  auto frames = chain_frames();
  auto outcome = replay(file, pcap("chain.pcap", frames), {"--json", "--mac", kFlagMac});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.describe();
  ASSERT_EQ(outcome.lines.size(), frames.size() + 1) << outcome.describe();
  const auto& l = outcome.lines;
  const Mac lb = mac(kFlagMac);

  expect_packet(l[0], 0, "tx", "ping-lb", balanced(frames[0], kBackend1Mac, kBackend1, lb));
  expect_packet(l[1], 1, "drop", "no-8080", std::nullopt);
  expect_packet(l[2], 2, "pass", "flows", std::nullopt);
  expect_packet(l[3], 3, "tx", "ping-lb", balanced(frames[3], kBackend2Mac, kBackend2, lb));
  expect_packet(l[4], 4, "pass", "flows", std::nullopt);
  expect_packet(l[5], 5, "drop", "parse", std::nullopt);
  expect_packet(l[6], 6, "pass", "flows", std::nullopt);
  expect_packet(l[7], 7, "tx", "ping-lb", balanced(frames[7], kBackend1Mac, kBackend1, lb));
  expect_packet(l[8], 8, "pass", "flows", std::nullopt);

  // Only the packet parse could not read whole is labelled malformed.
  for (std::size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(l[i].value("malformed", i != 5), i == 5) << l[i].dump();

  // Only packets that reach the metadata stage have an event, exactly one each, for that packet.
  for (std::size_t i : {0, 1, 3, 5, 7}) EXPECT_TRUE(l[i]["events"].empty()) << l[i].dump();
  for (std::size_t i : {2, 4, 6, 8}) {
    ASSERT_EQ(l[i]["events"].size(), 1u) << l[i].dump();
    // ts_ns is the capture time of the packet, not the kernel's clock.
    EXPECT_EQ(l[i]["events"][0].value("ts_ns", std::uint64_t{0}), capture_ns(i)) << l[i].dump();
    EXPECT_EQ(l[i]["events"][0].value("len", 0), static_cast<int>(frames[i].size()));
  }
  expect_event(l[2]["events"][0], "192.168.1.3", kVip, 35668, 22, "TCP");
  expect_event(l[4]["events"][0], "10.0.0.1", "10.0.0.2", 5353, 53, "UDP");
  expect_event(l[6]["events"][0], "2001:db8::1", "2001:db8::2", 8080, 53, "UDP");
  expect_event(l[8]["events"][0], kClient, kVip, 0, 0, "ICMP");

  const json& summary = summary_of(outcome);
  ASSERT_TRUE(summary.is_object()) << outcome.out;
  EXPECT_EQ(summary["packets"], 9);
  EXPECT_EQ(summary["skipped"], 0);
  EXPECT_EQ(summary["malformed"], 1);
  EXPECT_EQ(summary["verdicts"], (json{{"tx", 3}, {"drop", 2}, {"pass", 4}}));
  EXPECT_EQ(summary["stages"],
            (json{{"ping-lb", {{"tx", 3}}}, {"no-8080", {{"drop", 1}}}, {"parse", {{"drop", 1}}}, {"flows", {{"pass", 4}}}}));
  EXPECT_FALSE(summary.contains("written"));  // only with --out
}

// Jumbo frames (9000 and 65535 bytes, held by the kernel in a first buffer and fragments): every verdict and
// event is what a dissector's reading of the same frames implies. tshark reads the pcap; for each frame the
// expected verdict follows from its fields (TCP to 8080: drop by no-8080; echo request to the VIP: tx by
// ping-lb; else pass by flows), and the flows event carries tshark's addresses, ports, protocol and frame
// length (the whole frame, not the first buffer).
TEST_F(ReplayTest, JumboFramesMatchTshark) {
  const char* tshark_path = access("/usr/bin/tshark", X_OK) == 0 ? "/usr/bin/tshark" : "/usr/local/bin/tshark";
  if (access(tshark_path, X_OK) != 0) GTEST_SKIP() << "tshark is not installed (scripts/install-deps.sh installs it)";
  std::vector<Bytes> frames = {
      tcp_v4("192.168.1.3", 35668, kVip, 8080, 9000 - 54),       // drop by no-8080
      tcp_v4("192.168.1.3", 35668, kVip, 22, 65535 - 54),        // pass
      udp_v4("10.0.0.1", 5353, "10.0.0.2", 53, 9000 - 42),       // pass
      ping(kClient, kVip, 1, 8, 9000 - 42),                      // tx by ping-lb
      udp_v6(5353, 53, 65535 - 14 - 40 - 8),                     // pass
      ping(kClient, kVip, 2, 0, 65535 - 42),                     // pass: an echo reply
  };
  ASSERT_EQ(frames[1].size(), 65535u);
  ASSERT_EQ(frames[4].size(), 65535u);
  auto file = write_file("full.toml", pipeline_header(kNoInterface, "") + kFullStages);
  auto input = pcap("jumbo.pcap", frames);
  auto outcome = replay(file, input, {"--json", "--mac", kFlagMac});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.describe();
  ASSERT_EQ(outcome.lines.size(), frames.size() + 1) << outcome.describe();

  auto dissected = run({"-r", input.string(), "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f", "-e",
                        "frame.len", "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst", "-e",
                        "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "icmp.type"},
                       dir_, tshark_path);
  ASSERT_EQ(dissected.exit_code, 0) << dissected.describe();
  std::istringstream rows(dissected.out);
  std::string row;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    ASSERT_TRUE(std::getline(rows, row)) << dissected.out;
    std::vector<std::string> f;
    std::istringstream cells(row);
    for (std::string cell; std::getline(cells, cell, '\t');) f.push_back(cell);
    f.resize(10);
    SCOPED_TRACE("frame " + std::to_string(i) + ", tshark: " + row);
    const json& line = outcome.lines[i];
    const std::string src = f[1].empty() ? f[3] : f[1], dst = f[2].empty() ? f[4] : f[2];
    const bool tcp = !f[6].empty(), udp = !f[8].empty(), icmp = !f[9].empty();
    const int sport = tcp ? std::stoi(f[5]) : udp ? std::stoi(f[7]) : 0;
    const int dport = tcp ? std::stoi(f[6]) : udp ? std::stoi(f[8]) : 0;
    EXPECT_EQ(std::stoul(f[0]), frames[i].size());
    if (tcp && dport == 8080) {
      expect_packet(line, i, "drop", "no-8080", std::nullopt);
      EXPECT_TRUE(line["events"].empty());
    } else if (icmp && f[9] == "8" && dst == kVip) {
      expect_packet(line, i, "tx", "ping-lb", balanced(frames[i], kBackend1Mac, kBackend1, mac(kFlagMac)));
      EXPECT_EQ(line.value("length", 0), static_cast<int>(frames[i].size()));
    } else {
      expect_packet(line, i, "pass", "flows", std::nullopt);
      ASSERT_EQ(line["events"].size(), 1u) << line.dump();
      expect_event(line["events"][0], src, dst, sport, dport, tcp ? "TCP" : udp ? "UDP" : "ICMP");
      EXPECT_EQ(line["events"][0].value("len", 0ul), std::stoul(f[0]));
    }
  }
}

TEST_F(ReplayTest, ShippedFullConfigReplays) {
  auto frames = chain_frames();
  auto outcome = run({"replay", std::string(XDPP_SOURCE_DIR) + "/configs/full.toml", "--pcap",
                      pcap("shipped.pcap", frames).string(), "--json", "--mac", kFlagMac},
                     dir_);
  ASSERT_EQ(outcome.exit_code, 0) << outcome.describe();
  ASSERT_EQ(outcome.lines.size(), frames.size() + 1) << outcome.describe();
  expect_packet(outcome.lines[0], 0, "tx", "ping-lb", balanced(frames[0], kBackend1Mac, kBackend1, mac(kFlagMac)));
  expect_packet(outcome.lines[1], 1, "drop", "no-8080", std::nullopt);
  expect_packet(outcome.lines[5], 5, "pass", "parse", std::nullopt);  // full.toml: malformed = "pass"
}

TEST_F(ReplayTest, TwoRunsGiveIdenticalOutput) {
  auto file = write_file("full.toml", pipeline_header(kNoInterface, "mac = \"" + kFileMac + "\"") + kFullStages);
  auto input = pcap("chain.pcap", chain_frames());
  auto first = replay(file, input, {"--json"});
  auto second = replay(file, input, {"--json"});
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  ASSERT_EQ(second.exit_code, 0) << second.describe();
  EXPECT_EQ(first.out, second.out);
  // The LB position starts fresh: the first request of each run goes to the first backend.
  ASSERT_FALSE(second.lines.empty());
  EXPECT_EQ(second.lines[0].value("data", ""), hex(balanced(chain_frames()[0], kBackend1Mac, kBackend1, mac(kFileMac))));

  auto human_first = replay(file, input);
  auto human_second = replay(file, input);
  EXPECT_EQ(human_first.out, human_second.out);
}

TEST_F(ReplayTest, SampledEventsAreDeterministic) {
  // metadata's sample counter is per CPU: replay runs every packet on one CPU, so a 1-in-3 sample
  // always picks packets 0, 3, 6, ... however the scheduler moves the process.
  std::string stages = kRecorderStages;
  stages.replace(stages.find("sample = 1"), 10, "sample = 3");
  auto file = write_file("sampled.toml", pipeline_header(kNoInterface, "") + stages);
  std::vector<Bytes> frames;
  for (std::uint16_t i = 0; i < 300; ++i) frames.push_back(udp_v4("10.0.0.1", 1000 + i, "10.0.0.2", 53));
  auto input = pcap("sampled.pcap", frames);
  auto first = replay(file, input, {"--json", "-q"});
  auto second = replay(file, input, {"--json", "-q"});
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  EXPECT_EQ(first.out, second.out);
  ASSERT_EQ(first.lines.size(), frames.size() + 1);
  for (std::size_t i = 0; i < frames.size(); ++i) {
    ASSERT_EQ(first.lines[i]["events"].size(), i % 3 == 0 ? 1u : 0u) << first.lines[i].dump();
    if (i % 3 == 0) expect_event(first.lines[i]["events"][0], "10.0.0.1", "10.0.0.2", 1000 + int(i), 53, "UDP");
  }
}

// ---- --out ----------------------------------------------------------------------------------------------

TEST_F(ReplayTest, OutFileHoldsTheLeavingPackets) {
  auto file = write_file("full.toml", pipeline_header(kNoInterface, "") + kFullStages);
  auto frames = chain_frames();
  const fs::path out = dir_ / "out.pcap";
  auto outcome = replay(file, pcap("chain.pcap", frames), {"--json", "--mac", kFlagMac, "--out", out.string()});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.describe();
  ASSERT_EQ(outcome.lines.size(), frames.size() + 1);

  // Expected: every tx/pass/redirect packet in file order, as it left (rewritten or not).
  std::vector<Bytes> expected;
  std::vector<std::size_t> indices;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    std::string verdict = outcome.lines[i].value("verdict", "");
    if (verdict != "tx" && verdict != "pass" && verdict != "redirect") continue;
    expected.push_back(outcome.lines[i].contains("data") ? unhex(outcome.lines[i]["data"].get<std::string>()) : frames[i]);
    indices.push_back(i);
  }
  ASSERT_EQ(indices, (std::vector<std::size_t>{0, 2, 3, 4, 6, 7, 8}));
  expected[0] = balanced(frames[0], kBackend1Mac, kBackend1, mac(kFlagMac));  // not only "what replay said"

  Capture written = read_pcap(out);
  ASSERT_TRUE(written.error.empty()) << written.error;
  EXPECT_EQ(written.linktype, DLT_EN10MB);
  ASSERT_EQ(written.frames.size(), expected.size());
  for (std::size_t k = 0; k < expected.size(); ++k) {
    EXPECT_EQ(hex(written.frames[k]), hex(expected[k])) << "written packet " << k << " (input " << indices[k] << ")";
    EXPECT_EQ(written.times[k].tv_sec, capture_time(indices[k]).tv_sec);
    EXPECT_EQ(written.times[k].tv_usec, capture_time(indices[k]).tv_usec);
  }
  EXPECT_EQ(summary_of(outcome).value("written", -1), static_cast<int>(expected.size()));

  if (access("/usr/bin/tshark", X_OK) != 0 && access("/usr/local/bin/tshark", X_OK) != 0) {
    GTEST_SKIP() << "tshark is not installed; the --out file was checked with libpcap only";
  }
  auto tshark = run({"-r", out.string(), "-T", "fields", "-e", "frame.number", "-e", "ip.dst"}, dir_,
                    access("/usr/bin/tshark", X_OK) == 0 ? "/usr/bin/tshark" : "/usr/local/bin/tshark");
  EXPECT_EQ(tshark.exit_code, 0) << tshark.describe();
  EXPECT_EQ(std::count(tshark.out.begin(), tshark.out.end(), '\n'), static_cast<long>(expected.size())) << tshark.out;
  EXPECT_TRUE(contains(tshark.out, "1\t" + kBackend1)) << tshark.out;
  EXPECT_TRUE(contains(tshark.out, "3\t" + kBackend2)) << tshark.out;
}

// ---- the human format ---------------------------------------------------------------------------------

// A full filesystem under --out (a 16 KiB tmpfs at a path of the test's own): replay must not say it
// wrote what it could not, and must fail.
TEST_F(ReplayTest, OutOntoAFullFilesystemFails) {
  const fs::path small = dir_ / "small";
  fs::create_directories(small);
  if (::mount("xdpp-replay-test", small.c_str(), "tmpfs", 0, "size=16k") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
  std::unique_ptr<const fs::path, void (*)(const fs::path*)> unmount(&small, [](const fs::path* at) { ::umount2(at->c_str(), MNT_DETACH); });
  auto file = write_file("full.toml", pipeline_header(kNoInterface, "") + kFullStages);
  std::vector<Bytes> frames;
  for (int i = 0; i < 200; ++i)
    for (const Bytes& frame : chain_frames()) frames.push_back(frame);
  auto outcome = replay(file, pcap("many.pcap", frames), {"--mac", kFlagMac, "--out", (small / "out.pcap").string()});
  EXPECT_EQ(outcome.exit_code, 1) << outcome.describe();
  EXPECT_NE(outcome.err.find("No space left on device"), std::string::npos) << outcome.describe();
  EXPECT_EQ(outcome.err.find("wrote "), std::string::npos) << outcome.describe();
}

TEST_F(ReplayTest, HumanOutputNamesVerdictAndStage) {
  auto file = write_file("full.toml", pipeline_header(kNoInterface, "") + kFullStages);
  auto frames = chain_frames();
  auto outcome = replay(file, pcap("chain.pcap", frames), {"--mac", kFlagMac});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.describe();
  EXPECT_TRUE(contains(outcome.out, "#0 tx by ping-lb, rewritten")) << outcome.out;
  EXPECT_TRUE(contains(outcome.out, "#1 drop by no-8080")) << outcome.out;
  EXPECT_TRUE(contains(outcome.out, "#2 pass by flows")) << outcome.out;
  // A malformed packet says so, and no other does.
  EXPECT_TRUE(contains(outcome.out, "#5 drop by parse (malformed), 17 bytes")) << outcome.out;
  EXPECT_EQ(outcome.out.find("(malformed)"), outcome.out.rfind("(malformed)")) << outcome.out;
  EXPECT_FALSE(contains(outcome.out, "#1 drop by no-8080, rewritten")) << outcome.out;
  // the leaving bytes of a rewritten packet, and the event lines (format = "json" in this file)
  EXPECT_TRUE(contains(outcome.out, hex(balanced(frames[0], kBackend1Mac, kBackend1, mac(kFlagMac))))) << outcome.out;
  EXPECT_TRUE(contains(outcome.out, "\"src\":\"192.168.1.3\"")) << outcome.out;
  // ... whose ts_ns is the capture time there too
  EXPECT_TRUE(contains(outcome.out, "\"ts_ns\":" + std::to_string(capture_ns(2)))) << outcome.out;
  // no JSON lines and no summary on stdout; the summary goes to stderr
  EXPECT_FALSE(contains(outcome.out, "{\"summary\"")) << outcome.out;
  EXPECT_TRUE(contains(outcome.err, "replay: 9 packets, 0 skipped, 1 malformed")) << outcome.err;
  EXPECT_TRUE(contains(outcome.err, "ping-lb: tx 3")) << outcome.err;

  // The text format of the metadata stage, as `run` prints it.
  auto recorder = write_file("recorder.toml", pipeline_header(kNoInterface, "") + kRecorderStages);
  auto text = replay(recorder, pcap("tcp.pcap", {tcp_v4("192.168.1.3", 35668, kVip, 22)}));
  ASSERT_EQ(text.exit_code, 0) << text.describe();
  EXPECT_TRUE(contains(text.out, "#0 pass by flows")) << text.out;
  EXPECT_TRUE(contains(text.out, "flows: Packet: 192.168.1.3:35668 -> 192.168.1.2:22, protocol: TCP")) << text.out;
}

// ---- bad input ------------------------------------------------------------------------------------------

TEST_F(ReplayTest, ShortPacketsAreSkippedAndTheRunGoesOn) {
  auto file = write_file("recorder.toml", pipeline_header(kNoInterface, "") + kRecorderStages);
  const Bytes full = udp_v4("10.0.0.1", 1111, "10.0.0.2", 2222);
  std::vector<Bytes> frames = {Bytes(full.begin(), full.begin() + 13), full, Bytes{}, Bytes(1, 0xff), full,
                               Bytes(full.begin(), full.begin() + 14)};
  auto input = pcap("short.pcap", frames);
  auto outcome = replay(file, input, {"--json"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.describe();
  ASSERT_EQ(outcome.lines.size(), frames.size() + 1) << outcome.out;
  for (std::size_t i : {0, 2, 3}) {
    const json& line = outcome.lines[i];
    EXPECT_EQ(line.value("packet", -1), static_cast<int>(i)) << line.dump();
    EXPECT_TRUE(line.contains("skipped")) << line.dump();
    EXPECT_EQ(line.value("length", -1), static_cast<int>(frames[i].size())) << line.dump();
    EXPECT_FALSE(line.contains("verdict")) << line.dump();
  }
  for (std::size_t i : {1, 4}) {
    expect_packet(outcome.lines[i], i, "pass", "flows", std::nullopt);
    ASSERT_EQ(outcome.lines[i]["events"].size(), 1u);
    expect_event(outcome.lines[i]["events"][0], "10.0.0.1", "10.0.0.2", 1111, 2222, "UDP");
  }
  // Exactly an Ethernet header is long enough to run: parse finds the IPv4 header missing and gives
  // malformed packets its default verdict, pass.
  expect_packet(outcome.lines[5], 5, "pass", "parse", std::nullopt);
  const json& summary = summary_of(outcome);
  EXPECT_EQ(summary.value("packets", -1), 3);
  EXPECT_EQ(summary.value("skipped", -1), 3);

  auto human = replay(file, input);
  ASSERT_EQ(human.exit_code, 0) << human.describe();
  EXPECT_TRUE(contains(human.out, "#0 skipped: 13 bytes")) << human.out;
  EXPECT_TRUE(contains(human.out, "#1 pass by flows")) << human.out;
  EXPECT_TRUE(contains(human.err, "3 packets, 3 skipped")) << human.err;
}

void expect_refused(const Outcome& outcome, const std::vector<std::string>& mentions) {
  EXPECT_NE(outcome.exit_code, 0) << outcome.describe();
  EXPECT_NE(outcome.exit_code, 128 + SIGSEGV) << outcome.describe();
  EXPECT_NE(outcome.exit_code, 128 + SIGABRT) << outcome.describe();
  for (const auto& part : mentions) EXPECT_TRUE(contains(outcome.err, part)) << "stderr lacks '" << part << "':\n" << outcome.err;
  EXPECT_TRUE(contains(outcome.err, "error")) << outcome.err;
}

TEST_F(ReplayTest, MissingPcapIsRefused) {
  auto file = write_file("recorder.toml", pipeline_header(kNoInterface, "") + kRecorderStages);
  const fs::path missing = dir_ / "no-such.pcap";
  auto outcome = replay(file, missing, {"--json"});
  expect_refused(outcome, {missing.string(), "No such file"});
  EXPECT_TRUE(outcome.out.empty()) << outcome.out;

  auto no_option = run({"replay", file.string(), "--json"}, dir_);
  expect_refused(no_option, {"--pcap"});
}

TEST_F(ReplayTest, UnreadablePcapIsRefused) {
  auto file = write_file("recorder.toml", pipeline_header(kNoInterface, "") + kRecorderStages);
  const fs::path directory = dir_ / "a-directory.pcap";
  fs::create_directory(directory);
  auto on_directory = replay(file, directory, {"--json"});
  expect_refused(on_directory, {directory.string()});
  EXPECT_TRUE(on_directory.out.empty()) << on_directory.out;

  const fs::path garbage = write_file("garbage.pcap", std::string("this is not a capture file, just text\n") + std::string(64, '\x5a'));
  auto on_garbage = replay(file, garbage, {"--json"});
  expect_refused(on_garbage, {garbage.string()});
  EXPECT_TRUE(on_garbage.out.empty()) << on_garbage.out;

  const fs::path empty = write_file("empty.pcap", "");
  auto on_empty = replay(file, empty, {"--json"});
  expect_refused(on_empty, {empty.string()});
  EXPECT_TRUE(on_empty.out.empty()) << on_empty.out;
}

TEST_F(ReplayTest, LinkTypeOtherThanEthernetIsRefused) {
  auto file = write_file("recorder.toml", pipeline_header(kNoInterface, "") + kRecorderStages);
  // DLT_RAW: bare IPv4 packets, no Ethernet header.
  Bytes frame = udp_v4("10.0.0.1", 1, "10.0.0.2", 2);
  auto input = pcap("raw.pcap", {Bytes(frame.begin() + 14, frame.end())}, DLT_RAW);
  ASSERT_EQ(read_pcap(input).linktype, DLT_RAW);
  auto outcome = replay(file, input, {"--json"});
  expect_refused(outcome, {input.string(), "link type", "RAW", "Ethernet"});
  EXPECT_TRUE(outcome.out.empty()) << outcome.out;
}

TEST_F(ReplayTest, TruncatedLastRecordIsRefused) {
  auto file = write_file("recorder.toml", pipeline_header(kNoInterface, "") + kRecorderStages);
  std::vector<Bytes> frames = {udp_v4("10.0.0.1", 1, "10.0.0.2", 2), udp_v4("10.0.0.1", 3, "10.0.0.2", 4),
                               udp_v4("10.0.0.1", 5, "10.0.0.2", 6)};
  // Cut into the last record's data, then (second file) into its 16-byte record header.
  for (std::size_t cut : {std::size_t{5}, frames.back().size() + 8}) {
    SCOPED_TRACE("cut " + std::to_string(cut) + " bytes");
    auto input = pcap("truncated.pcap", frames);
    fs::resize_file(input, fs::file_size(input) - cut);
    auto outcome = replay(file, input, {"--json"});
    expect_refused(outcome, {input.string(), "truncated", "record 2"});
    // The whole records before it were replayed and reported; no summary claims the file was done.
    ASSERT_EQ(outcome.lines.size(), 2u) << outcome.out;
    expect_packet(outcome.lines[0], 0, "pass", "flows", std::nullopt);
    expect_packet(outcome.lines[1], 1, "pass", "flows", std::nullopt);
    EXPECT_FALSE(outcome.lines[1].contains("summary"));
  }
}

}  // namespace
