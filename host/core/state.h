// What a running pipeline leaves for other shells: its maps pinned under /sys/fs/bpf/xdp-pipeline/NAME/
// (bpftool can read them) and a state file /run/xdp-pipeline/NAME.json (root-only directory) naming its
// stages, programs and pid. Both are removed on a clean exit; a killed run's leftovers are removed by the
// next run of the same name (which holds the name's run lock, run_lock.h, so nothing else uses them).
//
// A persisted pipeline (persist = true, run --persist) pins what keeps it running without a daemon too:
//   NAME/links/IFNAME            the XDP bpf_link, one per interface (the only reference that keeps it attached)
//   NAME/dispatcher/xdpp_chain   the chain (the kernel empties a prog array when its last fd or pin goes)
//   NAME/dispatcher/xdp-program, NAME/STAGE/xdp-program   the programs
// and its state file stays, recording what runs (objects and their SHA-256, program tags, settings,
// contract version) for the next run, which adopts it, and for `status` and `detach`.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "pipeline.h"
#include "state_file.h"

namespace xdpp {

inline const std::filesystem::path kPinRoot = "/sys/fs/bpf/xdp-pipeline";
inline const std::filesystem::path kRunRoot = "/run/xdp-pipeline";

/// A run's published state, as read from NAME.json (state_file.h has its fields).
struct RunState : state::File {
  /// Why the file is malformed beyond its name and pid ("" when it is not; see state::from_json): the
  /// fields it names keep their defaults, and adoption refuses such a record rather than guess.
  std::string problem;
  /// A daemon runs it (holds its run lock).
  bool alive() const;
  /// The names of the interfaces it is attached to, in order (of `interfaces`, or the one `interface` of
  /// older states).
  std::vector<std::string> interface_names() const;
  /// It was persisted and its link is still pinned: it runs, with or without a daemon.
  bool persisted() const;
};

/// Where a persisted pipeline's link on `interface` is pinned.
std::filesystem::path link_pin(const std::string& name, const std::string& interface);

/// The state file of `name`, if there is one that is JSON and names its run and pid.
std::optional<RunState> read_run_state(const std::string& name);

/// Pins every map of the pipeline under kPinRoot/NAME/STAGE/MAP (with persist also the chain, the
/// programs and the link, see above) and writes the state file. The caller holds the run lock of NAME:
/// whatever else is pinned there is a dead run's and is removed. Pins are replaced in place (pinned beside,
/// renamed over), never removed first. With `repin` false and no persist only the state file is
/// rewritten (a swap that kept the stage's maps changes program ids, not maps).
Status publish(Pipeline& pipeline, const std::string& mode, bool repin = true);

/// Pins the chain of `next`, a persisted pipeline's new chain about to be switched in by a rebuild, beside
/// the running one's (dispatcher/xdpp_chain-pending): should this process die right after the switch, the
/// chain that then runs stays filled (the kernel empties a prog array with no fd or pin left). The next
/// publish() replaces it by the regular pin.
Status pin_pending_chain(const Pipeline& next);

/// Removes the pins and the state file of `name` (the caller's own run).
void unpublish(const std::string& name);

/// Every published run, or just `name`.
std::vector<RunState> published_runs(const std::optional<std::string>& name);

}  // namespace xdpp
