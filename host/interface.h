// The network interface a pipeline attaches to.
#pragma once

#include <string>

#include <xdp_pipeline/plugin.h>
#include <xdp_pipeline/result.h>

namespace xdpp {

/// Moves this process into network namespace `name` (/run/netns/NAME, as `ip netns` makes them),
/// keeping its mount namespace, so that /sys/fs/bpf stays the host's.
Status enter_netns(const std::string& name);

/// ifindex and MAC address of interface `name` in the current network namespace.
Result<InterfaceInfo> lookup_interface(const std::string& name);

}  // namespace xdpp
