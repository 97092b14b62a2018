// metadata: host plugin. The stage writes one event per (sampled) packet into a ring buffer; the plugin
// turns each into a line of text or JSON.
//
// Settings:
//   format = "text" | "json"   what EventRecord::text holds (default "text"; the JSON object is always made)
//   sample = 1                 one event every N packets per CPU; 1 = every packet, 0 = off
//   wakeup_batch = 0           wake the reader every N events; 0 or 1 = on every event
//   ring_size = 1048576        ring buffer bytes: a power of two, at least 4096 and the page size
//
// Text format, one line per event:
//   Packet: 192.168.1.3:35668 -> 192.168.1.2:22, protocol: TCP
// protocol is TCP, UDP, ICMP (ICMP and ICMPv6) or UNKNOWN. IPv6 addresses are written in brackets,
// "[2001:db8::1]:443", as in URLs (RFC 3986) and ss/netstat, so that the port stays readable after the
// address's own colons. A packet parse did not understand has empty addresses: "Packet: :0 -> :0, ...".
#include <xdp_pipeline/net.h>
#include <xdp_pipeline/plugin.h>

extern "C" {
#include "metadata.h"
}

#include <unistd.h>

#include <limits>

namespace {

using namespace xdpp;

enum class Format { text, json };

struct MetadataConfig {
  Format format = Format::text;
  std::uint32_t sample = 1;
  std::uint32_t wakeup_batch = 0;
  std::uint32_t ring_size = METADATA_DEFAULT_RING_SIZE;
};

const char* protocol_name(std::uint8_t l4_proto) {
  switch (l4_proto) {
    case 6: return "TCP";
    case 17: return "UDP";
    case 1:
    case 58: return "ICMP";  // ICMPv6
    default: return "UNKNOWN";
  }
}

class MetadataStage final : public Stage {
 public:
  explicit MetadataStage(MetadataConfig config) : config_(config) {}

  Status before_load(StageObject& object) override {
    return object.set_map_size(METADATA_EVENTS_MAP, config_.ring_size)
        .context("map '" METADATA_EVENTS_MAP "': ring_size");
  }

  Status configure(StageObject& object) override {
    auto config_map = object.map(METADATA_CONFIG_MAP);
    if (!config_map) return config_map.error();
    const struct metadata_config value = {.sample = config_.sample, .wakeup_batch = config_.wakeup_batch};
    return config_map->update(std::uint32_t{0}, value);
  }

  void on_event(std::string_view map, std::span<const std::byte> data, EventSink& sink) override {
    if (map != METADATA_EVENTS_MAP || data.size() < sizeof(struct metadata_event)) return;
    // Ring-buffer records are 8-byte aligned, but copying costs nothing here and assumes nothing.
    struct metadata_event event;
    std::memcpy(&event, data.data(), sizeof event);
    try {
      sink.emit(decode(event, sink.wants_json() || config_.format == Format::json));
    } catch (...) {
      // on_event must not throw (bad_alloc, a sink's own failure); an undecodable event is dropped.
    }
  }

  std::string describe() const override {
    std::string text = config_.format == Format::json ? "json" : "text";
    if (config_.sample == 0) text += ", sampling off";
    else if (config_.sample == 1) text += ", every packet";
    else text += ", 1 in " + std::to_string(config_.sample) + " packets per CPU";
    text += ", ring " + std::to_string(config_.ring_size) + " bytes";
    if (config_.wakeup_batch > 1) text += ", wakeup every " + std::to_string(config_.wakeup_batch) + " events";
    return text;
  }

 private:
  // The text line always; the JSON object only when someone reads it (it costs most of the time).
  EventRecord decode(const struct metadata_event& event, bool with_json) const {
    const bool parsed = event.packet_flags & XDPP_F_PARSED;
    std::string src, dst;
    if (parsed && (event.packet_flags & XDPP_F_IPV4)) {
      src = net::format_ipv4(std::span<const std::uint8_t, 4>(event.saddr, 4));
      dst = net::format_ipv4(std::span<const std::uint8_t, 4>(event.daddr, 4));
    } else if (parsed && (event.packet_flags & XDPP_F_IPV6)) {
      src = net::format_ipv6(event.saddr);
      dst = net::format_ipv6(event.daddr);
    }
    const bool ipv6 = parsed && (event.packet_flags & XDPP_F_IPV6) && !(event.packet_flags & XDPP_F_IPV4);
    const char* protocol = parsed ? protocol_name(event.l4_proto) : "UNKNOWN";
    const std::uint16_t sport = parsed ? event.sport : 0;
    const std::uint16_t dport = parsed ? event.dport : 0;

    EventRecord record;
    if (!with_json) {
      record.text = text_line(src, sport, dst, dport, protocol, ipv6);
      return record;
    }
    nlohmann::json json = {
        {"ts_ns", event.timestamp_ns},
        {"ifindex", event.ifindex},
        {"rx_queue", event.rx_queue},
        {"len", event.pkt_len},
        {"flags", event.packet_flags},
        {"eth_proto", event.eth_proto},
        {"l4_proto", event.l4_proto},
        {"protocol", protocol},
        {"src", src},
        {"dst", dst},
        {"sport", sport},
        {"dport", dport},
    };
    if (parsed && event.l4_proto == 6) json["tcp_flags"] = event.tcp_flags;
    if (parsed && (event.l4_proto == 1 || event.l4_proto == 58)) {
      json["icmp_type"] = event.icmp_type;
      json["icmp_code"] = event.icmp_code;
    }

    if (config_.format == Format::json)
      record.text = json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    else
      record.text = text_line(src, sport, dst, dport, protocol, ipv6);
    record.json = std::move(json);
    return record;
  }

  static std::string text_line(const std::string& src, std::uint16_t sport, const std::string& dst,
                               std::uint16_t dport, const char* protocol, bool ipv6) {
    auto endpoint = [ipv6](const std::string& address, std::uint16_t port) {
      return (ipv6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
    };
    return "Packet: " + endpoint(src, sport) + " -> " + endpoint(dst, dport) + ", protocol: " + protocol;
  }

  const MetadataConfig config_;
};

class MetadataFactory final : public StageFactory {
 public:
  std::string_view plugin_name() const override { return "metadata"; }
  std::string_view object_file() const override { return "metadata.bpf.o"; }
  std::string_view program_name() const override { return "metadata"; }

  std::unique_ptr<Stage> create(const Settings& settings) const override {
    MetadataConfig config;
    if (auto format = settings.optional<std::string>("format")) {
      if (*format == "json") config.format = Format::json;
      else if (*format != "text")
        settings.fail(*settings.find("format"), "format",
                      "'" + *format + "' is not a format (expected \"text\" or \"json\")");
    }
    config.sample = read_count(settings, "sample").value_or(config.sample);
    config.wakeup_batch = read_count(settings, "wakeup_batch").value_or(config.wakeup_batch);

    if (auto size = settings.optional<std::int64_t>("ring_size")) {
      const toml::node& node = *settings.find("ring_size");
      // The kernel wants a power of two and a multiple of the page size (larger than 4096 on some arm64).
      const std::int64_t minimum = std::max<std::int64_t>(4096, sysconf(_SC_PAGESIZE));
      const std::int64_t maximum = std::int64_t{1} << 31;  // the largest power of two in a __u32
      const std::string value = "ring_size " + std::to_string(*size);
      if (*size <= 0 || (*size & (*size - 1)) != 0) settings.fail(node, "ring_size", value + " is not a power of two");
      if (*size < minimum) settings.fail(node, "ring_size", value + " is below the minimum " + std::to_string(minimum));
      if (*size > maximum) settings.fail(node, "ring_size", value + " is above the maximum " + std::to_string(maximum));
      config.ring_size = static_cast<std::uint32_t>(*size);
    }
    return std::make_unique<MetadataStage>(config);
  }

 private:
  // A non-negative integer that fits the __u32 of struct metadata_config.
  static std::optional<std::uint32_t> read_count(const Settings& settings, std::string_view key) {
    auto value = settings.optional<std::int64_t>(key);
    if (!value) return std::nullopt;
    constexpr std::int64_t max = std::numeric_limits<std::uint32_t>::max();
    if (*value < 0 || *value > max)
      settings.fail(*settings.find(key), key,
                    std::string(key) + " " + std::to_string(*value) + " is out of range 0.." + std::to_string(max));
    return static_cast<std::uint32_t>(*value);
  }
};

}  // namespace

XDPP_PLUGIN(MetadataFactory)
