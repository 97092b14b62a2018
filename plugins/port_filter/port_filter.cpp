// port_filter: host plugin. Drops packets by TCP/UDP port; the stage reads one byte of a table per port it
// checks, so the host expands every list and range into a 65536-entry bitmask per rule set, written in place
// into the stage's global data (port_filter.h).
//
// Settings:
//   drop_tcp_dst, drop_udp_dst,    arrays of ports (integers 0..65535) and ranges ("9000-9100"; a
//   drop_tcp_src, drop_udp_src     single port as a string, "8080", works too); default: empty
//   fragments = "pass" | "drop"    verdict for non-first fragments, which carry no ports (default "pass")
#include <xdp_pipeline/plugin.h>

extern "C" {
#include "port_filter.h"
}

#include <linux/bpf.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <utility>

namespace {

using namespace xdpp;

struct PortRange {
  std::uint32_t first;
  std::uint32_t last;  // inclusive
};

struct PortList {
  std::string_view key;         // the setting's name
  std::string_view label;       // "tcp dst", for describe()
  std::uint8_t bit;             // PORT_FILTER_* bit in the rules table
  std::vector<PortRange> ranges;  // sorted, overlapping and adjacent ranges merged
};

struct PortFilterConfig {
  std::vector<PortList> lists;  // all four, in the order of the settings above
  std::uint32_t nonfirst_frag_verdict = XDP_PASS;
};

// Sorts and merges ranges so that describe() shows each port once ("80, 8000-9100").
std::vector<PortRange> normalize(std::vector<PortRange> ranges) {
  std::sort(ranges.begin(), ranges.end(), [](const PortRange& a, const PortRange& b) { return a.first < b.first; });
  std::vector<PortRange> merged;
  for (const PortRange& range : ranges) {
    if (!merged.empty() && range.first <= merged.back().last + 1)
      merged.back().last = std::max(merged.back().last, range.last);
    else
      merged.push_back(range);
  }
  return merged;
}

// A decimal port number of the whole of `text`, or nullopt (no sign, no spaces, no hex).
std::optional<std::int64_t> parse_number(std::string_view text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  std::int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.front() == '+' || text.front() == '-')
    return std::nullopt;
  return value;
}

class PortFilterStage final : public Stage {
 public:
  explicit PortFilterStage(PortFilterConfig config) : config_(std::move(config)) {}

  Status configure(StageObject& object) override {
    auto map = object.map(XDPP_STAGE_DATA_SECTION);
    if (!map) return map.error();
    auto mapped = map->mmap<port_filter_data>();
    if (!mapped) return mapped.error();
    port_filter_data& data = mapped->as<port_filter_data>();

    const std::uint32_t active = std::atomic_ref(data.active).load() % PORT_FILTER_SETS;
    // Packets keep using the active set while the inactive one is rewritten completely; the flip at the
    // end is one aligned 4-byte store, so no packet ever sees half a rule set.
    const std::uint32_t inactive = active == 0 ? 1 : 0;

    const std::vector<std::uint8_t> values = rule_values();
    struct port_filter_config set_config = {};
    for (const PortList& list : config_.lists)
      if (!list.ranges.empty()) set_config.lists |= list.bit;
    set_config.nonfirst_frag_verdict = config_.nonfirst_frag_verdict;

    // The active set already holds exactly this (a swap of the program kept the data, or a reload left this
    // stage's rules alone): nothing to write.
    if (std::memcmp(&data.config[active], &set_config, sizeof set_config) == 0 &&
        std::memcmp(data.rules[active], values.data(), values.size()) == 0)
      return {};

    std::memcpy(data.rules[inactive], values.data(), values.size());
    data.config[inactive] = set_config;
    std::atomic_ref(data.active).store(inactive, std::memory_order_release);
    return {};
  }

  std::string describe() const override {
    std::string text;
    for (const PortList& list : config_.lists) {
      if (list.ranges.empty()) continue;
      text += "drop " + std::string(list.label) + " ";
      for (std::size_t i = 0; i < list.ranges.size(); ++i) {
        const PortRange& range = list.ranges[i];
        if (i > 0) text += ", ";
        text += std::to_string(range.first);
        if (range.last != range.first) text += "-" + std::to_string(range.last);
      }
      text += "; ";
    }
    if (text.empty()) text = "no ports dropped; ";
    text += "non-first fragments: ";
    text += config_.nonfirst_frag_verdict == XDP_DROP ? "drop" : "pass";
    return text;
  }

 private:
  // The bitmask of every port: which lists it is on.
  std::vector<std::uint8_t> rule_values() const {
    std::vector<std::uint8_t> values(PORT_FILTER_PORTS, 0);
    for (const PortList& list : config_.lists)
      for (const PortRange& range : list.ranges)
        for (std::uint32_t port = range.first; port <= range.last; ++port) values[port] |= list.bit;
    return values;
  }

  const PortFilterConfig config_;
};

class PortFilterFactory final : public StageFactory {
 public:
  std::string_view plugin_name() const override { return "port_filter"; }
  std::string_view object_file() const override { return "port_filter.bpf.o"; }
  std::string_view program_name() const override { return "port_filter"; }

  std::unique_ptr<Stage> create(const Settings& settings) const override {
    PortFilterConfig config;
    config.lists = {
        PortList{"drop_tcp_dst", "tcp dst", PORT_FILTER_TCP_DST, {}},
        PortList{"drop_udp_dst", "udp dst", PORT_FILTER_UDP_DST, {}},
        PortList{"drop_tcp_src", "tcp src", PORT_FILTER_TCP_SRC, {}},
        PortList{"drop_udp_src", "udp src", PORT_FILTER_UDP_SRC, {}},
    };
    for (PortList& list : config.lists) {
      const toml::array* array = settings.array(list.key);
      if (!array) continue;
      std::vector<PortRange> ranges;
      for (const toml::node& element : *array) ranges.push_back(read_range(settings, list.key, element));
      list.ranges = normalize(std::move(ranges));
    }

    if (auto fragments = settings.verdict("fragments")) config.nonfirst_frag_verdict = *fragments;
    return std::make_unique<PortFilterStage>(std::move(config));
  }

 private:
  // One element of a port list: 8080, "8080" or "9000-9100". Errors point at the element.
  static PortRange read_range(const Settings& settings, std::string_view key, const toml::node& element) {
    auto check_port = [&](std::int64_t port) {
      if (port < 0 || port > 65535)
        settings.fail(element, key, "port " + std::to_string(port) + " is out of range 0..65535");
      return static_cast<std::uint32_t>(port);
    };
    if (auto port = element.value_exact<std::int64_t>()) {
      std::uint32_t value = check_port(*port);
      return {value, value};
    }
    if (auto text = element.value_exact<std::string>()) {
      std::string_view view = *text;
      std::size_t dash = view.find('-', 1);  // from 1: a leading '-' is a (rejected) sign, not a range
      auto first = parse_number(view.substr(0, dash));
      auto last = dash == std::string_view::npos ? first : parse_number(view.substr(dash + 1));
      if (!first || !last)
        settings.fail(element, key,
                      "'" + *text + "' is not a port or a port range (expected e.g. 8080 or \"9000-9100\")");
      PortRange range{check_port(*first), check_port(*last)};
      if (range.first > range.last) settings.fail(element, key, "range " + *text + " is reversed");
      return range;
    }
    settings.fail(element, key,
                  std::string("expected a port (integer) or a range (string \"lo-hi\"), found ") +
                      Settings::node_type_name(element));
  }
};

}  // namespace

XDPP_PLUGIN(PortFilterFactory)
