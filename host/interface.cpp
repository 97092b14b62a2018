#include "interface.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bpf_object.h"

namespace xdpp {

Status enter_netns(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) return fail("'", name, "' is not a network namespace name");
  const std::string path = "/run/netns/" + name;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd)
    return fail("network namespace '", name, "': ", path, ": ", std::strerror(errno),
                errno == ENOENT ? "; `ip netns list` shows the ones there are" : "");
  if (::setns(fd.get(), CLONE_NEWNET) != 0) return fail("network namespace '", name, "': setns: ", std::strerror(errno));
  return {};
}

Result<InterfaceInfo> lookup_interface(const std::string& name) {
  if (name.empty()) return fail("no interface: set [pipeline] interface or pass --interface");
  InterfaceInfo info;
  info.name = name;
  info.ifindex = static_cast<int>(if_nametoindex(name.c_str()));
  if (info.ifindex == 0) return fail("interface '", name, "': ", std::strerror(errno));
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq request{};
  std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (sock && ::ioctl(sock.get(), SIOCGIFHWADDR, &request) == 0 && request.ifr_hwaddr.sa_family == ARPHRD_ETHER) {
    std::array<std::uint8_t, 6> mac;
    std::memcpy(mac.data(), request.ifr_hwaddr.sa_data, 6);
    info.mac = mac;
  }
  return info;
}

std::string describe_netns() {
  // The host's namespace is the kernel's initial one, whose inode number is fixed (PROC_NET_INIT_INO in
  // include/linux/proc_ns.h): /proc/1/ns/net may be unreadable, e.g. when pid 1 is in another namespace.
  // Kernels before 6.18 number it like any other, so init's own namespace is asked first where readable.
  constexpr ino_t kInitialNetnsInode = 0xEFFFFFF9U;
  struct stat self {};
  if (::stat("/proc/thread-self/ns/net", &self) != 0) return "this network namespace";
  struct stat init {};
  const bool init_known = ::stat("/proc/1/ns/net", &init) == 0;
  if (init_known ? (self.st_ino == init.st_ino && self.st_dev == init.st_dev) : self.st_ino == kInitialNetnsInode)
    return "the host's network namespace";
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/run/netns", error)) {
    struct stat named {};
    if (::stat(entry.path().c_str(), &named) == 0 && named.st_ino == self.st_ino && named.st_dev == self.st_dev)
      return "network namespace '" + entry.path().filename().string() + "'";
  }
  return "network namespace net:[" + std::to_string(self.st_ino) + "]";
}

std::vector<std::string> interface_names() {
  std::vector<std::string> names;
  if (struct if_nameindex* list = if_nameindex()) {
    for (struct if_nameindex* item = list; item->if_index != 0; ++item) names.emplace_back(item->if_name);
    if_freenameindex(list);
  }
  return names;
}

namespace {

// The interface of the default route with the lowest metric, from /proc/net/route (IPv4) or
// /proc/net/ipv6_route: both follow the reading thread's network namespace, unlike /sys/class/net.
Result<std::string> default_route_interface() {
  std::string best;
  unsigned long best_metric = ~0ul;
  std::ifstream v4("/proc/net/route");
  std::string line;
  std::getline(v4, line);  // header
  while (std::getline(v4, line)) {
    std::istringstream fields(line);
    std::string name, destination, gateway, flags, refcnt, use, metric, mask;
    if (!(fields >> name >> destination >> gateway >> flags >> refcnt >> use >> metric >> mask)) continue;
    if (destination != "00000000" || mask != "00000000") continue;
    if (unsigned long m = std::stoul(metric); m < best_metric) best = name, best_metric = m;
  }
  if (!best.empty()) return best;
  std::ifstream v6("/proc/net/ipv6_route");
  while (std::getline(v6, line)) {
    std::istringstream fields(line);
    std::string destination, prefix, source, source_prefix, next_hop, metric, refcnt, use, flags, name;
    if (!(fields >> destination >> prefix >> source >> source_prefix >> next_hop >> metric >> refcnt >> use >> flags >> name))
      continue;
    if (destination != std::string(32, '0') || prefix != "00" || name == "lo") continue;
    if (unsigned long m = std::stoul(metric, nullptr, 16); m < best_metric) best = name, best_metric = m;
  }
  if (best.empty()) return fail("interface rule default_route: there is no default route");
  return best;
}

}  // namespace

Result<std::vector<InterfaceInfo>> resolve_interfaces(const std::vector<InterfaceSelector>& selectors) {
  // What is not there is named with where it was looked for and what is there instead.
  auto not_here = [](const std::string& what) {
    std::string names;
    for (const auto& each : interface_names()) names += (names.empty() ? "" : ", ") + each;
    return fail(what, " in ", describe_netns(), " (interfaces there: ", names.empty() ? "none" : names, ")");
  };
  std::vector<InterfaceInfo> resolved;
  for (const InterfaceSelector& selector : selectors) {
    std::string name;
    switch (selector.kind) {
      case InterfaceSelector::Kind::name:
        name = selector.names.at(0);
        if (if_nametoindex(name.c_str()) == 0) return not_here("interface '" + name + "' does not exist");
        break;
      case InterfaceSelector::Kind::first_of:
        for (const std::string& candidate : selector.names)
          if (if_nametoindex(candidate.c_str()) != 0) {
            name = candidate;
            break;
          }
        if (name.empty()) return not_here("interface rule " + selector.text() + ": none of them exists");
        break;
      case InterfaceSelector::Kind::default_route: {
        auto found = default_route_interface();
        if (!found) return not_here(found.error().message);
        name = *found;
        break;
      }
    }
    auto info = lookup_interface(name);
    if (!info) return info.error();
    for (const InterfaceInfo& earlier : resolved)
      if (earlier.ifindex == info->ifindex)
        return fail("interface '", name, "' (", selector.text(), ") is named twice: one link per interface");
    resolved.push_back(*info);
  }
  return resolved;
}

}  // namespace xdpp
