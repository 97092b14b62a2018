#include "attach.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "bpf_object.h"
#include "state.h"

namespace xdpp {
namespace {

std::string read_line(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

int interface_mtu(const std::string& name) {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq request{};
  std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (!sock || ::ioctl(sock.get(), SIOCGIFMTU, &request) != 0) return 0;
  return request.ifr_mtu;
}

// The driver's name, as `ethtool -i` gives it ("veth", "bridge", "mlx5_core"). Asked through a socket of
// this network namespace: /sys may be another namespace's (run --netns keeps the host's mounts).
std::string driver_name(const std::string& name) {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  ifreq request{};
  std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
  request.ifr_data = reinterpret_cast<char*>(&info);
  if (!sock || ::ioctl(sock.get(), SIOCETHTOOL, &request) != 0) return "";
  return std::string(info.driver, strnlen(info.driver, sizeof(info.driver)));
}

std::string program_name_by_id(std::uint32_t id) {
  UniqueFd fd(bpf_prog_get_fd_by_id(id));
  bpf_prog_info info{};
  __u32 length = sizeof(info);
  if (!fd || bpf_obj_get_info_by_fd(fd.get(), &info, &length) != 0) return "";
  return info.name;
}

// The id of the bpf_link that holds the XDP program on `ifindex`, or 0 when it was attached through
// netlink (ip link, xdp-loader) and no link exists.
std::uint32_t xdp_link_on(int ifindex) {
  for (__u32 id = 0; bpf_link_get_next_id(id, &id) == 0;) {
    UniqueFd fd(bpf_link_get_fd_by_id(id));
    if (!fd) continue;
    bpf_link_info info{};
    __u32 length = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &length) != 0) continue;
    if (info.type == BPF_LINK_TYPE_XDP && static_cast<int>(info.xdp.ifindex) == ifindex) return id;
  }
  return 0;
}

// The processes that hold an fd of link `link_id` (their /proc/PID/fdinfo shows "link_id:").
std::string link_holders(std::uint32_t link_id) {
  std::string holders;
  std::error_code error;
  for (const auto& process : std::filesystem::directory_iterator("/proc", error)) {
    const std::string pid = process.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code inner;
    for (const auto& fdinfo : std::filesystem::directory_iterator(process.path() / "fdinfo", inner)) {
      std::ifstream in(fdinfo.path());
      bool found = false;
      for (std::string line; std::getline(in, line);)
        if (line == "link_id:\t" + std::to_string(link_id)) found = true;
      if (!found) continue;
      if (!holders.empty()) holders += ", ";
      holders += "pid " + pid + " (" + read_line(process.path() / "comm") + ")";
      break;
    }
  }
  return holders;
}

// Who attached program `prog_id` to the interface, and how to remove it.
std::string who_attached(std::uint32_t prog_id, int ifindex, const std::string& ifname, bool native) {
  for (const RunState& run : published_runs(std::nullopt)) {
    // What the link runs: the first stage (contract 2), or the dispatcher of a contract-1 run.
    if (run.entry_prog_id == prog_id || run.dispatcher.prog_id == prog_id)
      return "pipeline '" + run.name + "' (xdp-pipeline run, pid " + std::to_string(run.pid) +
             ") attached it; stop that run (Ctrl-C or kill " + std::to_string(run.pid) +
             "), or swap/reload it instead of starting another";
  }
  if (std::uint32_t link = xdp_link_on(ifindex)) {
    std::string holders = link_holders(link);
    return "a program holds it through bpf_link id " + std::to_string(link) +
           (holders.empty() ? " (pinned, or held by a process this one cannot see)" : " held by " + holders) +
           "; stop that program" + (holders.empty() ? ", or remove the link's pin under /sys/fs/bpf" : "");
  }
  const std::string name = program_name_by_id(prog_id);
  const std::string off = std::string("ip link set dev ") + ifname + (native ? " xdpdrv" : " xdpgeneric") + " off";
  if (name == "xdp_dispatcher")
    return "xdp-loader (libxdp's dispatcher) attached it; remove it with `xdp-loader unload " + ifname + " --all`";
  return "it was attached through netlink (`ip link set ... xdp`, or a loader that does the same), not by "
         "xdp-pipeline; remove it with `" + off + "` if it is not needed";
}

}  // namespace

std::string explain_attach_failure(bool multi_buffer, const InterfaceInfo& interface, bool native, int err) {
  const std::string& ifname = interface.name;
  std::string text = "attaching to " + ifname + " in " + (native ? "native" : "generic") + " mode: " + std::strerror(err);

  // Another XDP program: the kernel says EBUSY (a link exists) or EEXIST (netlink attachment).
  LIBBPF_OPTS(bpf_xdp_query_opts, query);
  if (bpf_xdp_query(interface.ifindex, 0, &query) == 0 && query.prog_id != 0 && err != EPERM) {
    std::uint32_t id = query.drv_prog_id ? query.drv_prog_id : query.skb_prog_id ? query.skb_prog_id : query.prog_id;
    const char* how = query.drv_prog_id ? "native" : query.skb_prog_id ? "generic" : "offload";
    const std::string name = program_name_by_id(id);
    return text + ": " + ifname + " already has an XDP program (id " + std::to_string(id) +
           (name.empty() ? "" : ", '" + name + "'") + ", " + how + " mode): " +
           who_attached(id, interface.ifindex, ifname, query.drv_prog_id != 0) +
           ". xdp-pipeline never replaces a program it did not attach";
  }
  if (err == EPERM || err == EACCES)
    return text + ": missing privileges: loading and attaching XDP programs needs CAP_BPF and CAP_NET_ADMIN (or "
                  "CAP_SYS_ADMIN); run as root, or grant those capabilities (e.g. systemd's AmbientCapabilities)";
  if (native && (err == EOPNOTSUPP || err == ENOTSUP)) {
    const std::string driver = driver_name(ifname);
    return text + ": the driver" + (driver.empty() ? "" : " '" + driver + "'") + " of " + ifname +
           " has no native XDP; use mode = \"generic\" (or \"auto\", which falls back to it)";
  }
  const int mtu = interface_mtu(ifname);
  if (native && (err == ERANGE || err == EINVAL || err == E2BIG) && mtu > 1500) {
    const std::string head = text + ": MTU " + std::to_string(mtu) + " of " + ifname +
                             " (for a veth: its peer's MTU counts) needs more than one buffer per frame";
    if (!multi_buffer)
      return head + ", and native XDP then needs a multi-buffer aware program (SEC(\"xdp.frags\")); this one is "
                    "SEC(\"xdp\"). Rebuild it with this xdp-pipeline's <xdp_pipeline/stage.h> (XDPP_STAGE declares "
                    "xdp.frags), lower the MTU (`ip link set dev " + ifname + " mtu 1500`), or use mode = \"generic\"";
    return head + "; the program is multi-buffer aware, so the driver" +
           (driver_name(ifname).empty() ? "" : " '" + driver_name(ifname) + "'") +
           " cannot do multi-buffer XDP at this MTU: lower the MTU (`ip link set dev " + ifname +
           " mtu 1500`), or use mode = \"generic\"";
  }
  if (native && err == EINVAL)
    return text + ": the driver of " + ifname + " refused the program in native mode (no kernel message reaches "
                  "a bpf_link attach; `ip link set dev " + ifname + " xdpdrv obj FILE` shows the driver's reason); "
                  "use mode = \"generic\"";
  return text;
}

Result<int> attach_xdp_link(int prog_fd, bool multi_buffer, const InterfaceInfo& interface, AttachMode& mode,
                            std::string& fallback_reason) {
  auto try_mode = [&](std::uint32_t flags) {
    LIBBPF_OPTS(bpf_link_create_opts, options, .flags = flags);
    return bpf_link_create(prog_fd, interface.ifindex, BPF_XDP, &options);
  };
  switch (mode) {
    case AttachMode::native:
    case AttachMode::generic: {
      const bool native = mode == AttachMode::native;
      int fd = try_mode(native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE);
      if (fd < 0) return Error{explain_attach_failure(multi_buffer, interface, native, -fd)};
      return fd;
    }
    case AttachMode::offload:
      return Error{kOffloadReason};
    case AttachMode::automatic: {
      int fd = try_mode(XDP_FLAGS_DRV_MODE);
      if (fd >= 0) {
        mode = AttachMode::native;
        return fd;
      }
      const int err = -fd;
      // Another program or missing privileges: generic mode would fail the same way.
      if (err == EBUSY || err == EEXIST || err == EPERM || err == EACCES)
        return Error{explain_attach_failure(multi_buffer, interface, true, err)};
      fallback_reason = explain_attach_failure(multi_buffer, interface, true, err);
      fd = try_mode(XDP_FLAGS_SKB_MODE);
      if (fd < 0)
        return Error{explain_attach_failure(multi_buffer, interface, false, -fd) + " (after native mode failed: " +
                     fallback_reason + ")"};
      mode = AttachMode::generic;
      return fd;
    }
  }
  return fail("unknown attach mode");
}

}  // namespace xdpp
