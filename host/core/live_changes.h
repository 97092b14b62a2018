// The transactions that change a running pipeline: a stage's program or plugin swapped, its settings
// applied in place, a whole new chain switched in; and the policy that picks between them. Each one either
// takes effect whole or changes nothing (what was applied is put back).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <xdp_pipeline/plugin.h>
#include <xdp_pipeline/result.h>

#include "config.h"

namespace xdpp {

class Pipeline;  // pipeline.h

/// What to change in a stage by LiveChanges::swap_stage().
struct SwapRequest {
  std::optional<std::filesystem::path> object;   // new BPF object; default: the stage's current one
  std::shared_ptr<LoadedPlugin> plugin;          // new plugin; default: the current one
  std::shared_ptr<Stage> instance;               // already validated plugin instance; default: made from the settings
  std::optional<toml::table> settings;           // the settings `stage` was made from; default: unchanged
  std::optional<std::filesystem::path> plugin_file;  // where `plugin` came from, for later reloads
  std::optional<std::string> plugin_signature;       // file_signature() of plugin_file when loaded
  bool reset_state = false;                      // start with fresh maps instead of the old ones
};

/// New settings by stage name, in chain order.
using SettingsChanges = std::vector<std::pair<std::string, toml::table>>;

/// The policy of a reload: when `edited` has the same stages (names, plugins, objects) in the same order
/// and the same default verdict as `running`, the settings that changed (possibly none), which apply in
/// place; otherwise nullopt: it takes a new chain (rebuild).
std::optional<SettingsChanges> in_place_changes(const PipelineSpec& running, const PipelineSpec& edited);

/// "no stage NAME in pipeline P (its stages: ...)": names the pipeline's stages, so that a typo is seen at once.
Error no_such_stage(const std::string& name, const PipelineSpec& spec);

class LiveChanges {
 public:
  explicit LiveChanges(Pipeline& pipeline) : pipeline_(pipeline) {}

  /// The request for `swap STAGE [--object PATH] [--plugin PATH] [--reset-state]`: always a fresh plugin
  /// instance, of the plugin named or of the stage's own file as it is on disk now (the loaded code is kept
  /// when that file did not change since it was loaded). Errors are the request's: nothing was tried.
  Result<SwapRequest> prepare_swap(const std::string& name, const std::optional<std::string>& object,
                                   const std::optional<std::string>& plugin, bool reset_state) const;

  /// Replaces stage `name`'s program and/or plugin. The new object is loaded and verified using the old
  /// object's maps by name (state survives; a map whose shape changed is refused unless reset_state),
  /// then one atomic update switches it in: of the chain slot, or for slot 0 (what the interface runs) of the
  /// bpf_link. The stage's counters always carry over. Any failure changes nothing.
  Status swap_stage(const std::string& name, SwapRequest request);

  /// Whether stage `name`'s plugin accepts `settings` (nothing is applied). `source` names where the
  /// settings came from in messages (the file, or "" for settings from a command line, which have no position).
  Status validate_settings(const std::string& name, const toml::table& settings, const std::string& source) const;

  /// Applies new settings to stages: each plugin rewrites its maps in place, or, when a load-time constant
  /// changes, the same files are swapped in with the new settings. Every change is validated before any is
  /// applied; a failure puts back what was applied. `source` as above ("set" for the command).
  /// `reset_state`: a stage that must be swapped starts with fresh maps (needed when a map's size changes).
  Status reconfigure_stages(const SettingsChanges& changes, const std::string& source, bool reset_state = false);

  /// A new pipeline for `spec` (other stages, order, or pipeline settings) with its own chain; stages whose
  /// name and plugin it shares with this one take over their maps (state). When the pipeline is attached,
  /// the new chain's first stage replaces what every link runs (one atomic bpf_link update per interface)
  /// and the returned pipeline owns the links; on failure the running pipeline is unchanged (links already
  /// switched are switched back). The new chain counts in the other counters slot; what the running one
  /// counted becomes its bases. With `fresh_if_changed`, a map whose shape changed starts empty instead of
  /// refusing the rebuild (the others still carry over). `before_switch` runs on the loaded new pipeline
  /// just before the switch; its failure cancels it.
  Result<std::unique_ptr<Pipeline>> rebuild(PipelineSpec spec, bool fresh_if_changed = false,
                                            const std::function<Status(Pipeline&)>& before_switch = {});

 private:
  /// Points every link at `to` (replacing `from`); on a failure, the links already switched go back.
  Status switch_links(int from, int to);
  /// Hands the next stage of a swap its place: the chain slot, or the links too for slot 0.
  Status switch_stage(const std::string& name, std::uint32_t slot, int from, int to);
  /// Takes over what the running chain counted as the bases of `next` (by stage name).
  void hand_over_counters(Pipeline& next);

  Pipeline& pipeline_;
};

}  // namespace xdpp
