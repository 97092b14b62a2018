// icmp_lb: host plugin. Round-robin balancing of ICMP echo requests sent to a VIP; the host writes one
// complete configuration (VIP, backends, source MAC) into the inactive set of the stage's global data
// (icmp_lb.h) and then flips the active index, so no packet sees a VIP from one configuration and backends
// from another.
//
// Settings:
//   vip = "192.168.1.2"                            the virtual IPv4 address (required)
//   backends = [{ ip = "192.168.1.3", mac = "52:54:00:00:00:03" }, ...]
//                                                  1..ICMP_LB_MAX_BACKENDS, distinct IPs (required)
//   lb_mac = "52:54:00:00:00:01"                   source MAC of rewritten frames
//                                                  (default: the interface's own MAC)
#include <xdp_pipeline/net.h>
#include <xdp_pipeline/plugin.h>

extern "C" {
#include "icmp_lb.h"
}

#include <atomic>
#include <map>

namespace {

using namespace xdpp;

struct Backend {
  net::Ipv4Address ip;
  net::MacAddress mac;
};

struct IcmpLbConfig {
  net::Ipv4Address vip;
  std::vector<Backend> backends;
  std::optional<net::MacAddress> lb_mac;  // nullopt: the interface's MAC, known only in configure()
};

class IcmpLbStage final : public Stage {
 public:
  explicit IcmpLbStage(IcmpLbConfig config) : config_(std::move(config)) {}

  Status configure(StageObject& object) override {
    std::optional<net::MacAddress> lb_mac = config_.lb_mac ? config_.lb_mac : object.interface().mac;
    if (!lb_mac)
      return fail("the MAC address of interface '", object.interface().name,
                  "' is unknown; set lb_mac to the source MAC for rewritten frames");

    auto map = object.map(XDPP_STAGE_DATA_SECTION);
    if (!map) return map.error();
    auto mapped = map->mmap<icmp_lb_data>();
    if (!mapped) return mapped.error();
    icmp_lb_data& data = mapped->as<icmp_lb_data>();

    const std::uint32_t active = std::atomic_ref(data.active).load();
    const std::uint32_t inactive = (active + 1) % ICMP_LB_SETS;

    struct icmp_lb_set set = {};
    std::memcpy(&set.vip, config_.vip.data(), sizeof set.vip);  // both in network order
    set.backend_count = static_cast<std::uint32_t>(config_.backends.size());
    std::memcpy(set.lb_mac, lb_mac->data(), sizeof set.lb_mac);
    for (std::size_t i = 0; i < config_.backends.size(); ++i) {
      std::memcpy(&set.backends[i].ip, config_.backends[i].ip.data(), sizeof set.backends[i].ip);
      std::memcpy(set.backends[i].mac, config_.backends[i].mac.data(), sizeof set.backends[i].mac);
    }
    data.sets[inactive] = set;
    // icmp_lb_rr is left alone on purpose: it is the round-robin position, state that outlives both a
    // reconfiguration and a swap of the program. The flip is one aligned 4-byte store, after the set.
    std::atomic_ref(data.active).store(inactive, std::memory_order_release);
    return {};
  }

  std::string describe() const override {
    std::string text = "vip " + net::format_ipv4(config_.vip) + " -> ";
    for (std::size_t i = 0; i < config_.backends.size(); ++i) {
      if (i > 0) text += ", ";
      text += net::format_ipv4(config_.backends[i].ip);
    }
    text += config_.lb_mac ? " (src mac " + net::format_mac(*config_.lb_mac) + ")" : " (src mac of the interface)";
    return text;
  }

 private:
  const IcmpLbConfig config_;
};

class IcmpLbFactory final : public StageFactory {
 public:
  std::string_view plugin_name() const override { return "icmp_lb"; }
  std::string_view object_file() const override { return "icmp_lb.bpf.o"; }
  std::string_view program_name() const override { return "icmp_lb"; }

  std::unique_ptr<Stage> create(const Settings& settings) const override {
    IcmpLbConfig config;

    const std::string vip = settings.required<std::string>("vip");
    if (auto address = net::parse_ipv4(vip)) config.vip = *address;
    else settings.fail(*settings.find("vip"), "vip", "'" + vip + "' is not an IPv4 address");

    const toml::array* backends = settings.array("backends");
    if (!backends) settings.fail("backends", "missing (required)");
    if (backends->empty()) settings.fail(*backends, "backends", "at least one backend is required");
    std::map<net::Ipv4Address, std::size_t> seen;  // backend IP -> its number, for duplicates
    for (std::size_t i = 0; i < backends->size(); ++i) {
      const toml::node& element = *backends->get(i);
      if (i == ICMP_LB_MAX_BACKENDS)
        settings.fail(element, "backends",
                      "at most " + std::to_string(ICMP_LB_MAX_BACKENDS) + " backends (ICMP_LB_MAX_BACKENDS), found " +
                          std::to_string(backends->size()));
      Backend backend = read_backend(settings, element, i + 1);
      if (backend.ip == config.vip)
        settings.fail(*element.as_table()->get("ip"), "backends",
                      "backend " + std::to_string(i + 1) + ": ip " + net::format_ipv4(backend.ip) +
                          " is the vip itself");
      if (auto [it, inserted] = seen.emplace(backend.ip, i + 1); !inserted)
        settings.fail(*element.as_table()->get("ip"), "backends",
                      "backend " + std::to_string(i + 1) + ": ip " + net::format_ipv4(backend.ip) +
                          " is already backend " + std::to_string(it->second));
      config.backends.push_back(backend);
    }

    if (auto text = settings.optional<std::string>("lb_mac")) {
      const toml::node& node = *settings.find("lb_mac");
      auto mac = net::parse_mac(*text);
      if (!mac) settings.fail(node, "lb_mac", "'" + *text + "' is not a MAC address (expected e.g. 52:54:00:12:34:56)");
      if (net::is_multicast_mac(*mac))
        settings.fail(node, "lb_mac", "'" + *text + "' is a multicast address; a source MAC must be unicast");
      config.lb_mac = mac;
    }
    return std::make_unique<IcmpLbStage>(std::move(config));
  }

 private:
  // One backend table { ip = "...", mac = "..." }; errors point at the offending value or key.
  static Backend read_backend(const Settings& settings, const toml::node& element, std::size_t number) {
    const std::string prefix = "backend " + std::to_string(number) + ": ";
    const toml::table* table = element.as_table();
    if (!table)
      settings.fail(element, "backends",
                    prefix + "expected a table { ip = \"...\", mac = \"...\" }, found " +
                        Settings::node_type_name(element));
    for (const auto& [key, value] : *table)
      if (key != "ip" && key != "mac")
        settings.fail(key.source(), "backends",
                      prefix + "unknown key '" + std::string(key.str()) + "' (a backend has ip and mac)");

    auto string_of = [&](std::string_view name) -> std::pair<const toml::node*, std::string> {
      const toml::node* node = table->get(name);
      if (!node) settings.fail(element, "backends", prefix + std::string(name) + " missing (required)");
      auto text = node->value_exact<std::string>();
      if (!text)
        settings.fail(*node, "backends",
                      prefix + std::string(name) + ": expected a string, found " + Settings::node_type_name(*node));
      return {node, *text};
    };

    Backend backend;
    auto [ip_node, ip] = string_of("ip");
    if (auto address = net::parse_ipv4(ip)) backend.ip = *address;
    else settings.fail(*ip_node, "backends", prefix + "ip '" + ip + "' is not an IPv4 address");
    auto [mac_node, mac] = string_of("mac");
    if (auto address = net::parse_mac(mac)) backend.mac = *address;
    else
      settings.fail(*mac_node, "backends",
                    prefix + "mac '" + mac + "' is not a MAC address (expected e.g. 52:54:00:12:34:56)");
    return backend;
  }
};

}  // namespace

XDPP_PLUGIN(IcmpLbFactory)
