// syn_guard: host plugin. Validates the thresholds, writes them into the stage's double-buffered config,
// and turns the stage's events into lines like "syn_guard: 10.0.0.1 over 100 SYN/s, dropping".
//
// Settings:
//   syn_per_second = 100        SYNs per second a source may send in the long run, 1..1000000000 (required)
//   burst = 100                 SYNs a source may send at once after a quiet spell (default: syn_per_second)
//   ipv6_prefix = 64            IPv6 sources are limited per prefix of this length, 1..128 (default 64)
//   max_sources = 65536         sources remembered (LRU); the least recently seen are forgotten first
//   report_interval_ms = 1000   while a source stays over its limit, one event per interval at most
#include <xdp_pipeline/net.h>
#include <xdp_pipeline/plugin.h>

extern "C" {
#include "syn_guard.h"
}

#include <arpa/inet.h>

#include <algorithm>

namespace {

using namespace xdpp;

struct SynGuardConfig {
  std::string stage_name;   // the prefix of every event line
  std::uint32_t syn_per_second = 0;
  std::uint32_t burst = 0;
  std::uint32_t ipv6_prefix = 64;
  std::uint32_t max_sources = SYN_GUARD_DEFAULT_SOURCES;
  std::uint64_t report_interval_ms = 1000;
};

class SynGuardStage final : public Stage {
 public:
  explicit SynGuardStage(SynGuardConfig config) : config_(std::move(config)) {}

  // The LRU's size is fixed at load time.
  Status before_load(StageObject& object) override {
    return object.set_map_size(SYN_GUARD_SOURCES_MAP, config_.max_sources)
        .context("map '" SYN_GUARD_SOURCES_MAP "': max_sources");
  }

  // Writes the inactive config completely, then flips the active index: one 4-byte write, so a live
  // change never shows a packet half of the old thresholds and half of the new.
  Status configure(StageObject& object) override {
    auto configs = object.map(SYN_GUARD_CONFIG_MAP);
    if (!configs) return configs.error();
    auto active_map = object.map(SYN_GUARD_ACTIVE_MAP);
    if (!active_map) return active_map.error();

    const std::uint32_t zero = 0;
    std::uint32_t active = 0;
    XDPP_TRY(active_map->lookup(zero, active));
    const std::uint32_t inactive = active == 0 ? 1 : 0;

    struct syn_guard_config value = {};
    value.interval_ns = 1'000'000'000ull / config_.syn_per_second;
    value.tolerance_ns = value.interval_ns * config_.burst;
    value.report_ns = config_.report_interval_ms * 1'000'000ull;
    for (std::uint32_t word = 0; word < 4; ++word) {
      const std::uint32_t bits = std::min<std::uint32_t>(32, config_.ipv6_prefix - std::min(config_.ipv6_prefix, 32 * word));
      value.ipv6_mask[word] = htonl(bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits));
    }
    value.syn_per_second = config_.syn_per_second;
    value.burst = config_.burst;
    XDPP_TRY(configs->update(inactive, value));
    return active_map->update(zero, inactive);
  }

  void on_event(std::string_view map, std::span<const std::byte> data, EventSink& sink) override {
    if (map != SYN_GUARD_EVENTS_MAP || data.size() < sizeof(struct syn_guard_event)) return;
    struct syn_guard_event event;
    std::memcpy(&event, data.data(), sizeof event);
    try {
      sink.emit(decode(event));
    } catch (...) {
      // on_event must not throw; an event that cannot be decoded is dropped.
    }
  }

  std::string describe() const override {
    return std::to_string(config_.syn_per_second) + " SYN/s per source, burst " + std::to_string(config_.burst) +
           ", IPv6 per /" + std::to_string(config_.ipv6_prefix) + ", " + std::to_string(config_.max_sources) +
           " sources";
  }

 private:
  EventRecord decode(const struct syn_guard_event& event) const {
    std::uint8_t bytes[16];
    std::memcpy(bytes, event.addr, sizeof bytes);
    std::string source;
    if (event.family == 4) {
      source = net::format_ipv4(std::span<const std::uint8_t, 4>(bytes, 4));
    } else {
      source = net::format_ipv6(std::span<const std::uint8_t, 16>(bytes, 16));
      if (config_.ipv6_prefix < 128) source += "/" + std::to_string(config_.ipv6_prefix);
    }
    const std::string limit = std::to_string(event.syn_per_second) + " SYN/s";
    EventRecord record;
    if (event.first)
      record.text = config_.stage_name + ": " + source + " over " + limit + ", dropping";
    else
      record.text = config_.stage_name + ": " + source + " still over " + limit + ", " +
                    std::to_string(event.dropped) + " SYNs dropped since the last report";
    record.json = {
        {"ts_ns", event.timestamp_ns},
        {"source", source},
        {"family", event.family},
        {"syn_per_second", event.syn_per_second},
        {"burst", event.burst},
        {"dropped", event.dropped},
        {"first", event.first != 0},
    };
    return record;
  }

  const SynGuardConfig config_;
};

class SynGuardFactory final : public StageFactory {
 public:
  std::string_view plugin_name() const override { return "syn_guard"; }
  std::string_view object_file() const override { return "syn_guard.bpf.o"; }
  std::string_view program_name() const override { return "syn_guard"; }

  std::unique_ptr<Stage> create(const Settings& settings) const override {
    SynGuardConfig config;
    config.stage_name = settings.stage_name();
    config.syn_per_second = read(settings, "syn_per_second", 1, 1'000'000'000).value_or(0);
    if (config.syn_per_second == 0) settings.fail("syn_per_second", "missing (required)");
    config.burst = read(settings, "burst", 1, 1'000'000'000).value_or(config.syn_per_second);
    config.ipv6_prefix = read(settings, "ipv6_prefix", 1, 128).value_or(config.ipv6_prefix);
    config.max_sources = read(settings, "max_sources", 1, 1 << 24).value_or(config.max_sources);
    config.report_interval_ms = read(settings, "report_interval_ms", 1, 3'600'000).value_or(config.report_interval_ms);
    return std::make_unique<SynGuardStage>(std::move(config));
  }

 private:
  // An optional integer setting in [min, max]; errors point at the value.
  static std::optional<std::uint32_t> read(const Settings& settings, std::string_view key, std::int64_t min,
                                           std::int64_t max) {
    auto value = settings.optional<std::int64_t>(key);
    if (!value) return std::nullopt;
    if (*value < min || *value > max)
      settings.fail(*settings.find(key), key,
                    std::to_string(*value) + " is out of range " + std::to_string(min) + ".." + std::to_string(max));
    return static_cast<std::uint32_t>(*value);
  }
};

}  // namespace

XDPP_PLUGIN(SynGuardFactory)
