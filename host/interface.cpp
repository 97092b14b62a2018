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

}  // namespace xdpp
