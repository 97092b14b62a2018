// The network interface a pipeline attaches to.
#pragma once

#include <string>
#include <vector>

#include "config.h"

#include <xdp_pipeline/plugin.h>
#include <xdp_pipeline/result.h>

namespace xdpp {

/// Moves this process into network namespace `name` (/run/netns/NAME, as `ip netns` makes them),
/// keeping its mount namespace, so that /sys/fs/bpf stays the host's.
Status enter_netns(const std::string& name);

/// ifindex and MAC address of interface `name` in the current network namespace.
Result<InterfaceInfo> lookup_interface(const std::string& name);

/// The calling thread's network namespace in words: "the host's network namespace" (init's),
/// "network namespace 'NAME'" (one of `ip netns`), else "network namespace net:[INODE]".
std::string describe_netns();

/// The names of the interfaces in the current network namespace, in ifindex order.
std::vector<std::string> interface_names();

/// The interfaces `selectors` name on this node, in the current network namespace: a name as is (it must
/// exist), first_of the first candidate that exists, default_route the interface of the IPv4 default route
/// (else the IPv6 one). Refuses an interface named twice. An interface not found is named with the
/// namespace looked in and the interfaces there are.
Result<std::vector<InterfaceInfo>> resolve_interfaces(const std::vector<InterfaceSelector>& selectors);

}  // namespace xdpp
