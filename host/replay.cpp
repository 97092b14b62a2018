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

}  // namespace

int command_replay(const CommandOptions& options) {
  if (!options.pcap) {
    log::error("replay needs --pcap FILE");
    return kExitUsage;
  }
  auto spec = read_pipeline(options);
  if (!spec) return kExitUsage;

  char error_text[PCAP_ERRBUF_SIZE] = {};
  std::unique_ptr<pcap_t, PcapCloser> input(pcap_open_offline(options.pcap->c_str(), error_text));
  if (!input) {
    log::error("pcap " + *options.pcap + ": " + error_text);
    return kExitUsage;
  }
  if (int link = pcap_datalink(input.get()); link != DLT_EN10MB) {
    const char* name = pcap_datalink_val_to_name(link);
    log::error("pcap " + *options.pcap + ": link type " + (name ? name : std::to_string(link)) +
               ", replay needs Ethernet (EN10MB)");
    return kExitUsage;
  }

  std::string mac_source;
  InterfaceInfo interface = replay_interface(*spec, options, mac_source);
  // A MAC taken from this machine's interface of the same name is a guess: the machine the pipeline is
  // written for has its own. Say so, and how to give the right one.
  if (!interface.mac)
    log::warn("replay: no MAC for interface " + interface.name + ": it does not exist here and neither --mac nor " +
              "[pipeline] mac gives one; stages that use the interface's MAC (icmp_lb's source MAC) see none");
  else if (!options.mac && !spec->interface_mac)
    log::warn("replay: the MAC of interface " + interface.name + " is taken from the " + mac_source + ": " +
              net::format_mac(*interface.mac) + "; the pipeline's own machine may differ: give --mac MAC or " +
              "[pipeline] mac");
  else
    log::info("replay: interface " + interface.name + " has MAC " + net::format_mac(*interface.mac) + " (from " +
              mac_source + ")");

  auto pipeline = Pipeline::load(std::move(*spec), SearchPaths::builtin(), interface);
  if (!pipeline) {
    log::error(pipeline.error().message);
    return kExitFailure;
  }

  std::unique_ptr<pcap_t, PcapCloser> dead;
  std::unique_ptr<pcap_dumper_t, DumperCloser> output;
  if (options.out) {
    dead.reset(pcap_open_dead(DLT_EN10MB, 262144));
    output.reset(pcap_dump_open(dead.get(), options.out->c_str()));
    if (!output) {
      log::error("pcap " + *options.out + ": " + pcap_geterr(dead.get()));
      return kExitFailure;
    }
  }

  pin_to_one_cpu();
  std::map<std::string, std::map<std::string, std::uint64_t>> per_stage;
  std::map<std::string, std::uint64_t> verdicts;
  std::uint64_t packets = 0, skipped = 0, written = 0, malformed_count = 0;
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
      ++skipped;
      if (options.json)
        std::printf("%s\n", json_text({{"packet", index}, {"skipped", "shorter than an Ethernet header"},
                                           {"length", frame.size()}}).c_str());
      else
        std::printf("#%zu skipped: %zu bytes, shorter than an Ethernet header\n", index, frame.size());
      continue;
    }
    auto result = (*pipeline)->test_run(frame);
    if (!result) {
      log::error("packet " + std::to_string(index) + ": " + result.error().message);
      return kExitFailure;
    }
    ++packets;
    // The dispatcher clears the per-CPU context on entry and parse flags what it could not read; every
    // packet of a replay runs on this one CPU (pin_to_one_cpu), so its context is this packet's.
    bool malformed = false;
    if (int cpu = sched_getcpu(); cpu >= 0)
      if (auto context = (*pipeline)->packet_context(cpu)) malformed = context->flags & XDPP_F_MALFORMED;
    if (malformed) ++malformed_count;
    const std::uint64_t capture_ns =
        std::uint64_t(header->ts.tv_sec) * 1000000000ull + std::uint64_t(header->ts.tv_usec) * 1000ull;
    for (auto& event : result->events) use_capture_time(event.record, capture_ns);
    const std::string verdict = verdict_name(result->verdict);
    ++verdicts[verdict];
    ++per_stage[result->stage][verdict];

    if (options.json) {
      nlohmann::json line = {{"packet", index}, {"verdict", verdict}, {"stage", result->stage},
                             {"malformed", malformed}, {"modified", result->modified}, {"length", result->packet.size()}};
      if (result->modified) line["data"] = hex(result->packet);
      nlohmann::json events = nlohmann::json::array();
      for (auto& event : result->events) {
        nlohmann::json item = event.record.json.is_object() ? event.record.json : nlohmann::json::object();
        item["stage"] = event.stage;
        events.push_back(std::move(item));
      }
      line["events"] = std::move(events);
      std::printf("%s\n", json_text(line).c_str());
    } else {
      print_human(index, *result, malformed);
    }
    if (output && (result->verdict == XDP_TX || result->verdict == XDP_PASS || result->verdict == XDP_REDIRECT)) {
      pcap_pkthdr out_header = *header;
      out_header.caplen = out_header.len = static_cast<bpf_u_int32>(result->packet.size());
      pcap_dump(reinterpret_cast<u_char*>(output.get()), &out_header, result->packet.data());
      if (dump_failed(output.get())) {
        log::error("pcap " + *options.out + ": writing packet " + std::to_string(index) + ": " + std::strerror(errno));
        return kExitFailure;
      }
      ++written;
    }
  }

  if (output) {
    Status finished = finish_dump(output.get());
    // fclose() inside pcap_dump_close() reports nothing; after a successful flush and fsync there is
    // nothing left for it to fail on.
    output.reset();
    if (!finished) {
      log::error("pcap " + *options.out + ": " + finished.error().message);
      return kExitFailure;
    }
  }

  nlohmann::json summary = {{"packets", packets}, {"skipped", skipped}, {"malformed", malformed_count},
                            {"verdicts", verdicts}, {"stages", per_stage}};
  if (options.out) summary["written"] = written;
  if (options.json) {
    std::printf("%s\n", json_text({{"summary", summary}}).c_str());
  } else {
    std::fprintf(stderr, "replay: %llu packets, %llu skipped, %llu malformed", static_cast<unsigned long long>(packets),
                 static_cast<unsigned long long>(skipped), static_cast<unsigned long long>(malformed_count));
    for (const auto& [name, count] : verdicts) std::fprintf(stderr, ", %s %llu", name.c_str(), static_cast<unsigned long long>(count));
    std::fprintf(stderr, "\n");
    for (const auto& [stage, counts] : per_stage) {
      std::fprintf(stderr, "  %s:", stage.c_str());
      for (const auto& [name, count] : counts) std::fprintf(stderr, " %s %llu", name.c_str(), static_cast<unsigned long long>(count));
      std::fprintf(stderr, "\n");
    }
    if (options.out) std::fprintf(stderr, "  wrote %llu packets to %s\n", static_cast<unsigned long long>(written), options.out->c_str());
  }
  return 0;
}

}  // namespace xdpp
