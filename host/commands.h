// The executable's commands, one function each.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config.h"

namespace xdpp {

inline constexpr int kExitFailure = 1;  // loading, attaching or running failed
inline constexpr int kExitUsage = 2;    // bad command line or pipeline file; nothing was loaded

struct CommandOptions {
  std::string file;
  Overrides overrides;
  // replay
  std::optional<std::string> pcap;
  std::optional<std::string> out;
  std::optional<std::array<std::uint8_t, 6>> mac;
  bool json = false;
  std::optional<std::string> netns;  // run: enter /run/netns/NAME first
  bool metrics_in_pipeline_netns = false;  // run --metrics-netns pipeline: metrics listen inside --netns
  // swap, set, reload
  std::optional<std::string> pipeline;  // which running pipeline; default: the only one
  std::optional<std::string> object;
  std::optional<std::string> plugin;
  bool reset_state = false;            // swap; run: maps that changed shape start empty (adoption, upgrade)
  std::vector<std::string> args;       // set: KEY=VALUE...
  // status (refresh), run (reload the file when it changes)
  bool watch = false;
  // new-stage NAME DIR (NAME is in `file`)
  std::optional<std::string> dir;
};

int command_run(const CommandOptions& options);
int command_check(const CommandOptions& options);
int command_replay(const CommandOptions& options);
int command_status(const CommandOptions& options);
int command_swap(const CommandOptions& options);
int command_set(const CommandOptions& options);
int command_reload(const CommandOptions& options);
int command_new_stage(const CommandOptions& options);
int command_detach(const CommandOptions& options);

/// Parses the pipeline file with the built-in search paths; logs the error on failure. `text`, when given,
/// receives the file's text as parsed.
Result<PipelineSpec> read_pipeline(const CommandOptions& options, std::string* text = nullptr);

}  // namespace xdpp
