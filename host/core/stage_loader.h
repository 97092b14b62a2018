// Loading one stage into a chain: its plugin instance from the settings, its BPF object opened, given the
// chain's shared maps and load-time constants, verified, and its maps written by the plugin. Used by
// Pipeline (a whole chain) and LiveChanges (one stage swapped in); `check` uses check_stage_objects().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <xdp_pipeline/plugin.h>
#include <xdp_pipeline/result.h>

#include "config.h"

namespace xdpp {

class LoadedObject;  // bpf_object.h

/// A plugin instance from `settings` (a [[stage]] table), validated; the plugin's ConfigError when refused.
/// `file` and `name` place errors.
Result<std::shared_ptr<Stage>> create_instance(const std::shared_ptr<LoadedPlugin>& plugin, const toml::table& settings,
                                            const std::string& file, const std::string& name);

/// Opens (never loads) every stage's BPF object as `run` would, and checks what loading needs of it:
/// the program, the contract version, the constants and shared maps. For `check`.
Status check_stage_objects(const PipelineSpec& pipeline);

/// What every stage of a chain shares with the chain's root object, and the chain-wide constants.
struct SharedMaps {
  int chain;
  int context;  // the packet context (XDPP_CONTEXT_SECTION), one line per CPU
  bool multi_buffer;  // the root's SEC("xdp.frags"): the kernel wants every program of the chain to agree
  std::uint32_t counters_slot;  // the entry of the counters maps this chain writes
  int if_packets;               // packets per interface, counted by the entry stage
  std::uint32_t count_interfaces;  // 1 when attached to several interfaces
};

/// The maps and constants every stage of a chain shares, from its root object.
Result<SharedMaps> shared_maps_of(const LoadedObject& root, std::uint32_t counters_slot, std::size_t interfaces);

/// Where a stage goes in its chain.
struct StagePlace {
  std::uint32_t slot = 0;
  std::size_t count = 0;  // stages in the chain
  std::uint32_t default_verdict = 0;
};

/// What a stage's maps start from: with `previous`, its maps of the same name carry over (the state
/// survives), except with reset_state; a map whose shape changed is refused, or with fresh_if_changed
/// starts empty. The counters always carry over.
struct MapOrigin {
  const LoadedObject* previous = nullptr;
  bool reset_state = false;
  bool fresh_if_changed = false;
};

/// Opens, prepares, loads and verifies one stage's object for its place; its maps are not written yet
/// (configure_stage) and nothing is in the chain.
Result<std::unique_ptr<LoadedObject>> load_stage_object(const StageSpec& spec, const StagePlace& place,
                                                        const SharedMaps& shared, const InterfaceInfo& interface,
                                                        const MapOrigin& origin = {});

/// The plugin writes the stage's maps. For a stage that took over live maps this is the moment its
/// configuration reaches packets: callers do it only once everything else has loaded.
Status configure_stage(const StageSpec& spec, LoadedObject& object);

}  // namespace xdpp
