// The daemon of `xdp-pipeline run`: what the CLI hands it, and the one call that runs it.
#pragma once

#include <optional>
#include <string>

#include "config.h"
#include "exit_codes.h"

namespace xdpp {

struct DaemonOptions {
  std::string file;                        // the pipeline file (reloads read it again)
  Overrides overrides;                     // the command line's, kept for every reload
  std::optional<std::string> netns;        // enter /run/netns/NAME first
  bool metrics_in_pipeline_netns = false;  // metrics listen inside --netns instead of where run started
  bool reset_state = false;                // adoption/upgrade: maps that changed shape start empty
  bool watch = false;                      // reload the file when it changes (also [pipeline] watch)
};

/// Runs `spec` (parsed from `text`, the file as read: --watch compares with it) until SIGINT/SIGTERM: takes
/// the run lock, binds the metrics port, enters the namespace, resolves the interfaces, adopts a persisted
/// pipeline of the name or loads and attaches a new one, publishes it, serves the control socket and
/// drains events. Returns the exit status (0, kExitFailure, kExitUsage). Needs root.
int run_daemon(PipelineSpec spec, const std::string& text, const DaemonOptions& options);

}  // namespace xdpp
