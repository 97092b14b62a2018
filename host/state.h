// What a running pipeline leaves for other shells: its maps pinned under /sys/fs/bpf/xdp-pipeline/NAME/
// (bpftool can read them) and a state file /run/xdp-pipeline/NAME.json (root-only directory) naming its
// stages, programs and pid. Both are removed on a clean exit; a killed run's leftovers are recognised
// as stale (dead pid) and removed by the next run of the same name.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline.h"

namespace xdpp {

inline const std::filesystem::path kPinRoot = "/sys/fs/bpf/xdp-pipeline";
inline const std::filesystem::path kRunRoot = "/run/xdp-pipeline";

/// A run's published state, as written to NAME.json.
struct RunState {
  nlohmann::json json;
  std::string name;
  int pid = 0;
  bool alive() const;
};

/// Pins every map of the pipeline (not the chain: it holds programs) under kPinRoot/NAME/STAGE/MAP and
/// writes the state file. Refuses when a live run of that name exists; removes a dead one's leftovers.
/// With `repin` false only the state file is rewritten (a swap that kept the stage's maps changes
/// program ids, not maps).
Status publish(Pipeline& pipeline, const std::string& mode, bool repin = true);

/// Removes the pins and the state file of `name` (the caller's own run).
void unpublish(const std::string& name);

/// Every published run, or just `name`.
std::vector<RunState> published_runs(const std::optional<std::string>& name);

}  // namespace xdpp
