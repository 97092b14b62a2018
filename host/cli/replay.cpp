// `replay`: a pipeline over a pcap file, packet by packet through BPF_PROG_TEST_RUN, without a NIC.
#define PCAP_DONT_INCLUDE_PCAP_BPF_H  // libbpf and libpcap both define struct bpf_insn
#include <pcap/dlt.h>
#include <pcap/pcap.h>

#include <linux/bpf.h>
#include <sched.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "interface.h"
#include "json_text.h"
#include "log.h"
#include "pipeline.h"
#include "test_runner.h"
#include <xdp_pipeline/net.h>

namespace xdpp {
namespace {

constexpr std::size_t kEthernetHeader = 14;

struct PcapCloser {
  void operator()(pcap_t* handle) const { pcap_close(handle); }
};
struct DumperCloser {
  void operator()(pcap_dumper_t* dumper) const { pcap_dump_close(dumper); }
};

// libpcap's dumper writes through stdio and reports nothing: a full filesystem shows only as the
// stream's error flag, and data still buffered can fail at the flush or in the kernel at fsync.
bool dump_failed(pcap_dumper_t* dumper) { return std::ferror(pcap_dump_file(dumper)) != 0; }

Status finish_dump(pcap_dumper_t* dumper) {
  if (dump_failed(dumper)) return fail("writing: ", std::strerror(errno));
  if (pcap_dump_flush(dumper) != 0) return fail("writing: ", std::strerror(errno));
  if (::fsync(fileno(pcap_dump_file(dumper))) != 0 && errno != EINVAL) return fail("syncing: ", std::strerror(errno));
  return {};
}

std::string hex(std::span<const std::uint8_t> bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string text;
  text.reserve(bytes.size() * 2);
  for (auto byte : bytes) {
    text.push_back(digits[byte >> 4]);
    text.push_back(digits[byte & 15]);
  }
  return text;
}

// The interface the plugins are told about: ifindex 0 always (nothing is attached), and the MAC from
// --mac, else [pipeline] mac, else the local interface of that name if there is one.
InterfaceInfo replay_interface(const PipelineSpec& spec, const CommandOptions& options, std::string& source) {
  InterfaceInfo info;
  info.name = spec.interface.empty() ? "replay" : spec.interface;
  if (options.mac) {
    info.mac = *options.mac;
    source = "--mac";
  } else if (spec.interface_mac) {
    info.mac = spec.interface_mac;
    source = "[pipeline] mac";
  } else if (auto local = lookup_interface(spec.interface); local && local->mac) {
    info.mac = local->mac;
    source = "interface " + spec.interface + " of this machine, in " + describe_netns();
  }
  return info;
}

// Per-CPU state (metadata's sample counter, for one) must not depend on where the scheduler runs each
// BPF_PROG_TEST_RUN: every packet of a replay runs on the same CPU, the first one this process may use.
void pin_to_one_cpu() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &allowed)) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      if (sched_setaffinity(0, sizeof one, &one) != 0)
        log::warn("replay: cannot pin to CPU " + std::to_string(cpu) + "; sampled per-CPU state may vary between runs");
      return;
    }
}

// Kernel time differs per run; the capture time keeps replay deterministic. A record whose text is its
// JSON object (metadata's format = "json") gets its text remade from the corrected object.
void use_capture_time(EventRecord& record, std::uint64_t capture_ns) {
  if (!record.json.is_object() || !record.json.contains("ts_ns")) return;
  auto dump = [](const nlohmann::json& json) { return json_text(json); };
  const bool text_is_json = record.text == dump(record.json);
  record.json["ts_ns"] = capture_ns;
  if (text_is_json) record.text = dump(record.json);
}

// One line per packet for people: "#3 tx by ping-lb, rewritten, 98 bytes" plus its events; a packet parse
// could not read whole says so: "#5 pass by parse (malformed), 30 bytes".
void print_human(std::size_t index, const TestRunResult& result, bool malformed) {
  std::printf("#%zu %s by %s%s%s, %zu bytes\n", index, verdict_name(result.verdict), result.stage.c_str(),
              malformed ? " (malformed)" : "", result.modified ? ", rewritten" : "", result.packet.size());
  if (result.modified) std::printf("    out: %s\n", hex(result.packet).c_str());
  for (const auto& event : result.events) std::printf("    %s: %s\n", event.stage.c_str(), event.record.text.c_str());
}

// What the summary counts.
struct Tally {
  std::map<std::string, std::map<std::string, std::uint64_t>> per_stage;
  std::map<std::string, std::uint64_t> verdicts;
  std::uint64_t packets = 0, skipped = 0, written = 0, malformed = 0;
};

// The input capture, checked to be Ethernet; logs and returns nullptr when it cannot be replayed.
std::unique_ptr<pcap_t, PcapCloser> open_input(const std::string& file) {
  char error_text[PCAP_ERRBUF_SIZE] = {};
  std::unique_ptr<pcap_t, PcapCloser> input(pcap_open_offline(file.c_str(), error_text));
  if (!input) {
    log::error("pcap " + file + ": " + error_text);
    return nullptr;
  }
  if (int link = pcap_datalink(input.get()); link != DLT_EN10MB) {
    const char* name = pcap_datalink_val_to_name(link);
    log::error("pcap " + file + ": link type " + (name ? name : std::to_string(link)) + ", replay needs Ethernet (EN10MB)");
    return nullptr;
  }
  return input;
}

// A MAC taken from this machine's interface of the same name is a guess: the machine the pipeline is
// written for has its own. Say so, and how to give the right one.
void report_mac(const InterfaceInfo& interface, const std::string& source, bool given) {
  if (!interface.mac)
    log::warn("replay: no MAC for interface " + interface.name + ": it does not exist here and neither --mac nor " +
              "[pipeline] mac gives one; stages that use the interface's MAC (icmp_lb's source MAC) see none");
  else if (!given)
    log::warn("replay: the MAC of interface " + interface.name + " is taken from the " + source + ": " +
              net::format_mac(*interface.mac) + "; the pipeline's own machine may differ: give --mac MAC or " +
              "[pipeline] mac");
  else
    log::info("replay: interface " + interface.name + " has MAC " + net::format_mac(*interface.mac) + " (from " +
              source + ")");
}

// --out: a pcap of the packets that leave the chain (tx, pass, redirect), as they leave it.
class Output {
 public:
  Status open(const std::string& file) {
    file_ = file;
    dead_.reset(pcap_open_dead(DLT_EN10MB, 262144));
    dumper_.reset(pcap_dump_open(dead_.get(), file.c_str()));
    if (!dumper_) return fail("pcap ", file, ": ", pcap_geterr(dead_.get()));
    return {};
  }
  bool wanted(std::uint32_t verdict) const {
    return dumper_ && (verdict == XDP_TX || verdict == XDP_PASS || verdict == XDP_REDIRECT);
  }
  Status write(const pcap_pkthdr& input_header, std::span<const std::uint8_t> packet, std::size_t index) {
    pcap_pkthdr header = input_header;
    header.caplen = header.len = static_cast<bpf_u_int32>(packet.size());
    pcap_dump(reinterpret_cast<u_char*>(dumper_.get()), &header, packet.data());
    if (dump_failed(dumper_.get()))
      return fail("pcap ", file_, ": writing packet ", std::to_string(index), ": ", std::strerror(errno));
    return {};
  }
  Status close() {
    if (!dumper_) return {};
    Status finished = finish_dump(dumper_.get());
    // fclose() inside pcap_dump_close() reports nothing; after a successful flush and fsync there is
    // nothing left for it to fail on.
    dumper_.reset();
    if (!finished) return fail("pcap ", file_, ": ", finished.error().message);
    return {};
  }

 private:
  std::string file_;
  std::unique_ptr<pcap_t, PcapCloser> dead_;
  std::unique_ptr<pcap_dumper_t, DumperCloser> dumper_;
};

void print_skipped(std::size_t index, std::size_t length, bool json) {
  if (json)
    std::printf("%s\n", json_text({{"packet", index}, {"skipped", "shorter than an Ethernet header"},
                                       {"length", length}}).c_str());
  else
    std::printf("#%zu skipped: %zu bytes, shorter than an Ethernet header\n", index, length);
}

void print_json(std::size_t index, const TestRunResult& result, bool malformed) {
  nlohmann::json line = {{"packet", index}, {"verdict", verdict_name(result.verdict)}, {"stage", result.stage},
                         {"malformed", malformed}, {"modified", result.modified}, {"length", result.packet.size()}};
  if (result.modified) line["data"] = hex(result.packet);
  nlohmann::json events = nlohmann::json::array();
  for (const auto& event : result.events) {
    nlohmann::json item = event.record.json.is_object() ? event.record.json : nlohmann::json::object();
    item["stage"] = event.stage;
    events.push_back(std::move(item));
  }
  line["events"] = std::move(events);
  std::printf("%s\n", json_text(line).c_str());
}

void print_summary(const Tally& tally, const CommandOptions& options) {
  nlohmann::json summary = {{"packets", tally.packets}, {"skipped", tally.skipped}, {"malformed", tally.malformed},
                            {"verdicts", tally.verdicts}, {"stages", tally.per_stage}};
  if (options.out) summary["written"] = tally.written;
  if (options.json) {
    std::printf("%s\n", json_text({{"summary", summary}}).c_str());
    return;
  }
  auto count = [](std::uint64_t n) { return static_cast<unsigned long long>(n); };
  std::fprintf(stderr, "replay: %llu packets, %llu skipped, %llu malformed", count(tally.packets), count(tally.skipped),
               count(tally.malformed));
  for (const auto& [name, n] : tally.verdicts) std::fprintf(stderr, ", %s %llu", name.c_str(), count(n));
  std::fprintf(stderr, "\n");
  for (const auto& [stage, counts] : tally.per_stage) {
    std::fprintf(stderr, "  %s:", stage.c_str());
    for (const auto& [name, n] : counts) std::fprintf(stderr, " %s %llu", name.c_str(), count(n));
    std::fprintf(stderr, "\n");
  }
  if (options.out) std::fprintf(stderr, "  wrote %llu packets to %s\n", count(tally.written), options.out->c_str());
}

// One packet of the capture through the chain: printed, counted and (--out) written.
Status replay_packet(Pipeline& pipeline, const PacketContexts& contexts, const pcap_pkthdr& header,
                     std::span<const std::uint8_t> frame, std::size_t index, const CommandOptions& options,
                     Output& output, Tally& tally) {
  auto result = TestRunner(pipeline).run(frame);
  if (!result) return fail("packet ", std::to_string(index), ": ", result.error().message);
  ++tally.packets;
  // The entry stage clears this CPU's context and parse flags what it could not read; every packet of a
  // replay runs on this one CPU (pin_to_one_cpu), so its context is this packet's.
  bool malformed = false;
  if (int cpu = sched_getcpu(); cpu >= 0)
    if (auto context = contexts.of(cpu)) malformed = context->flags & XDPP_F_MALFORMED;
  if (malformed) ++tally.malformed;
  const std::uint64_t capture_ns =
      std::uint64_t(header.ts.tv_sec) * 1000000000ull + std::uint64_t(header.ts.tv_usec) * 1000ull;
  for (auto& event : result->events) use_capture_time(event.record, capture_ns);
  const std::string verdict = verdict_name(result->verdict);
  ++tally.verdicts[verdict];
  ++tally.per_stage[result->stage][verdict];
  if (options.json) print_json(index, *result, malformed);
  else print_human(index, *result, malformed);
  if (!output.wanted(result->verdict)) return {};
  XDPP_TRY(output.write(header, result->packet, index));
  ++tally.written;
  return {};
}

}  // namespace

int command_replay(const CommandOptions& options) {
  if (!options.pcap) {
    log::error("replay needs --pcap FILE");
    return kExitUsage;
  }
  auto spec = read_pipeline(options);
  if (!spec) return kExitUsage;
  auto input = open_input(*options.pcap);
  if (!input) return kExitUsage;

  std::string mac_source;
  InterfaceInfo interface = replay_interface(*spec, options, mac_source);
  report_mac(interface, mac_source, options.mac || spec->interface_mac);
  auto pipeline = Pipeline::load(std::move(*spec), SearchPaths::builtin(), interface);
  if (!pipeline) {
    log::error(pipeline.error().message);
    return kExitFailure;
  }
  Output output;
  if (options.out)
    if (auto opened = output.open(*options.out); !opened) {
      log::error(opened.error().message);
      return kExitFailure;
    }

  pin_to_one_cpu();
  auto contexts = PacketContexts::map(**pipeline);
  if (!contexts) {
    log::error(contexts.error().message);
    return kExitFailure;
  }
  Tally tally;
  for (std::size_t index = 0;; ++index) {
    pcap_pkthdr* header = nullptr;
    const u_char* data = nullptr;
    int got = pcap_next_ex(input.get(), &header, &data);
    if (got == PCAP_ERROR_BREAK) break;  // end of file
    if (got != 1) {
      log::error("pcap " + *options.pcap + ": record " + std::to_string(index) + ": " + pcap_geterr(input.get()));
      return kExitFailure;
    }
    std::span<const std::uint8_t> frame(data, header->caplen);
    if (frame.size() < kEthernetHeader) {
      ++tally.skipped;
      print_skipped(index, frame.size(), options.json);
      continue;
    }
    if (auto done = replay_packet(**pipeline, *contexts, *header, frame, index, options, output, tally); !done) {
      log::error(done.error().message);
      return kExitFailure;
    }
  }
  if (auto closed = output.close(); !closed) {
    log::error(closed.error().message);
    return kExitFailure;
  }
  print_summary(tally, options);
  return 0;
}

}  // namespace xdpp
