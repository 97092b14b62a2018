// The network interface a pipeline attaches to.
#pragma once

#include <string>

#include <xdp_pipeline/plugin.h>
#include <xdp_pipeline/result.h>

namespace xdpp {

/// ifindex and MAC address of interface `name` in the current network namespace.
Result<InterfaceInfo> lookup_interface(const std::string& name);

}  // namespace xdpp
