// Attaching an XDP program to an interface through a bpf_link, with errors that name the cause and the
// remedy. Kept apart from Pipeline so that other ways of attaching (more interfaces, adoption) share it.
#pragma once

#include <cstdint>
#include <string>

#include "config.h"
#include <xdp_pipeline/plugin.h>
#include <xdp_pipeline/result.h>

namespace xdpp {

/// A bpf_link fd for `prog_fd` (SEC("xdp.frags") when `multi_buffer`) on `interface` in `mode` (native or
/// generic; automatic tries native, then generic, and says in `fallback_reason` why native failed). `mode`
/// becomes the mode attached.
Result<int> attach_xdp_link(int prog_fd, bool multi_buffer, const InterfaceInfo& interface, AttachMode& mode,
                            std::string& fallback_reason);

/// Why attaching a program (multi-buffer aware or not) to `interface` failed with `err` (positive errno) in native or generic mode, and
/// what to do. bpf_link attach returns no kernel message (extack), so the cause is looked up here: the
/// interface's MTU and driver, the program already attached and who attached it, the privileges.
std::string explain_attach_failure(bool multi_buffer, const InterfaceInfo& interface, bool native, int err);

}  // namespace xdpp
