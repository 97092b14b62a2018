#include "live_changes.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "bpf_object.h"
#include "counters.h"
#include "log.h"
#include "pipeline.h"
#include "plugin_loader.h"
#include "stage_loader.h"

namespace xdpp {

namespace {

// Returns once every BPF program that was running has finished: the kernel waits for an RCU grace period
// when user space replaces an inner map of a map-in-map (maybe_wait_bpf_programs() in kernel/bpf/syscall.c),
// and XDP programs run inside RCU read-side sections. Two small throwaway maps.
Status wait_for_running_programs() {
  UniqueFd inner(bpf_map_create(BPF_MAP_TYPE_ARRAY, "xdpp_rcu_inner", 4, 4, 1, nullptr));
  if (!inner) return fail("waiting for running programs: ", std::strerror(errno));
  LIBBPF_OPTS(bpf_map_create_opts, options, .inner_map_fd = static_cast<__u32>(inner.get()));
  UniqueFd outer(bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "xdpp_rcu_outer", 4, 4, 1, &options));
  if (!outer) return fail("waiting for running programs: ", std::strerror(errno));
  std::uint32_t key = 0, value = static_cast<std::uint32_t>(inner.get());
  if (bpf_map_update_elem(outer.get(), &key, &value, BPF_ANY) != 0)
    return fail("waiting for running programs: ", std::strerror(errno));
  return {};
}

// Records what a stage's before_load() sets, to tell whether new settings change a load-time constant.
class RecordingObject final : public StageObject {
 public:
  RecordingObject(std::string name, const InterfaceInfo& interface) : name_(std::move(name)), interface_(interface) {}
  const std::string& stage_name() const override { return name_; }
  const InterfaceInfo& interface() const override { return interface_; }
  Result<MapHandle> map(std::string_view) const override { return fail("no maps before load"); }
  Status set_constant(std::string_view name, const void* value, std::size_t size) override {
    auto bytes = static_cast<const char*>(value);
    recorded_["const " + std::string(name)] = std::string(bytes, bytes + size);
    return {};
  }
  Status set_map_size(std::string_view name, std::uint32_t entries) override {
    recorded_["size " + std::string(name)] = std::to_string(entries);
    return {};
  }
  const std::map<std::string, std::string>& recorded() const { return recorded_; }

 private:
  std::string name_;
  const InterfaceInfo& interface_;
  std::map<std::string, std::string> recorded_;
};

// Whether new settings for a stage change a load-time constant (.rodata, a map's size): then they take a
// new program, swapped in with the same files.
Result<bool> needs_new_program(const LiveStage& live, Stage& next, const InterfaceInfo& interface) {
  const std::string& name = live.spec.name;
  RecordingObject before(name, interface), after(name, interface);
  XDPP_TRY(call_plugin("stage '" + name + "'", [&] { return live.spec.instance->before_load(before); }));
  XDPP_TRY(call_plugin("stage '" + name + "'", [&] { return next.before_load(after); }));
  return before.recorded() != after.recorded();
}

}  // namespace

Error no_such_stage(const std::string& name, const PipelineSpec& spec) {
  std::string names;
  for (const StageSpec& stage : spec.stages) names += (names.empty() ? "" : ", ") + stage.name;
  return fail("no stage '", name, "' in pipeline '", spec.name, "' (its stages: ", names, ")");
}

std::optional<SettingsChanges> in_place_changes(const PipelineSpec& running, const PipelineSpec& edited) {
  if (running.stages.size() != edited.stages.size() || running.default_verdict != edited.default_verdict)
    return std::nullopt;
  SettingsChanges changed;
  for (std::size_t i = 0; i < running.stages.size(); ++i) {
    const auto& a = running.stages[i];
    const auto& b = edited.stages[i];
    if (a.name != b.name || a.plugin_name != b.plugin_name || a.object_path != b.object_path) return std::nullopt;
    if (!(a.settings == b.settings)) changed.emplace_back(b.name, b.settings);
  }
  return changed;
}

Result<SwapRequest> LiveChanges::prepare_swap(const std::string& name, const std::optional<std::string>& object,
                                              const std::optional<std::string>& plugin, bool reset_state) const {
  const LiveStage* live = pipeline_.find_stage(name);
  if (!live) return no_such_stage(name, pipeline_.spec());
  SwapRequest swap;
  swap.reset_state = reset_state;
  if (object) {
    swap.object = *object;
    std::error_code error;
    if (!std::filesystem::is_regular_file(*swap.object, error))
      return fail("--object ", swap.object->string(), ": not found (no such regular file)");
  }
  std::filesystem::path plugin_file = plugin ? std::filesystem::path(*plugin) : live->spec.plugin_file;
  // The stage's own plugin file, unchanged on disk since it was loaded: keep the loaded code (a copy and a
  // dlopen cost about a millisecond). Anything else is loaded afresh.
  const bool unchanged = !plugin && !live->spec.plugin_signature.empty() &&
                         file_signature(plugin_file) == live->spec.plugin_signature;
  auto loaded = unchanged ? Result<std::shared_ptr<LoadedPlugin>>(live->spec.plugin)
                          : load_plugin_fresh(plugin_file, pipeline_.spec().plugin_dirs);
  if (!loaded) return loaded.error();
  swap.plugin = *loaded;
  swap.plugin_signature = file_signature(plugin_file);
  swap.plugin_file = plugin_file;
  return swap;
}

Status LiveChanges::swap_stage(const std::string& name, SwapRequest request) {
  Pipeline& p = pipeline_;
  LiveStage* live = p.find_stage(name);
  if (!live) return no_such_stage(name, p.spec_);
  StageSpec next = live->spec;
  if (request.object) next.object_path = *request.object;
  if (request.plugin) {
    if (request.plugin->factory().plugin_name() != live->spec.plugin_name)
      return fail("plugin ", request.plugin->path().string(), " is '", std::string(request.plugin->factory().plugin_name()),
                  "', stage '", name, "' runs '", live->spec.plugin_name, "'");
    next.plugin = request.plugin;
  }
  if (request.plugin_file) next.plugin_file = *request.plugin_file;
  if (request.plugin_signature) next.plugin_signature = *request.plugin_signature;
  if (request.settings) next.settings = *request.settings;
  if (request.instance) {
    next.instance = request.instance;
  } else {
    auto instance = create_instance(next.plugin, next.settings, p.spec_.file, name);
    if (!instance) return fail("stage '", name, "': ", instance.error().message);
    next.instance = std::move(*instance);
  }
  auto shared = shared_maps_of(*p.root_, p.bases_.slot, p.spec_.interfaces.size());
  if (!shared) return shared.error();
  const StagePlace place{.slot = static_cast<std::uint32_t>(live->slot), .count = p.stages_.size(),
                         .default_verdict = p.spec_.default_verdict};
  auto object = load_stage_object(next, place, *shared, p.interface_,
                                  {.previous = live->object.get(), .reset_state = request.reset_state});
  if (!object) return object.error();

  // Loaded and verified; now the plugin writes the maps (with carried-over maps, the live ones). What
  // fails from here on puts the old stage's configuration back.
  auto restore = [&, shared_maps = !request.reset_state] {
    if (shared_maps) (void)configure_stage(live->spec, *live->object);
  };
  if (auto configured = configure_stage(next, **object); !configured) {
    restore();
    return configured;
  }
  // Events already queued belong to the plugin that is leaving: hand them over before it goes.
  if (p.events_.swap_handler()) (void)p.events_.consume(p.events_.swap_handler());
  if (auto switched = switch_stage(name, live->slot, live->object->prog_fd(), (*object)->prog_fd()); !switched) {
    restore();
    return switched;
  }
  live->spec = std::move(next);
  live->object = std::move(*object);  // the old program is freed once no packet runs it
  live->prog_id = live->object->prog_id();
  p.spec_.stages[live->slot] = live->spec;
  if (auto readers = p.events_.watch(p.stages_); !readers)
    return fail("stage '", name, "' was swapped, but its events cannot be read: ", readers.error().message);
  return {};
}

// The switch: one update, atomic for packets (each sees the old program or the new one). Slot 0 is what
// the interface runs: its links switch; the chain slot follows (no packet enters through it, but the chain
// stays a faithful record for adoption).
Status LiveChanges::switch_stage(const std::string& name, std::uint32_t slot, int from, int to) {
  auto chain = pipeline_.root_->map(XDPP_CHAIN_MAP_NAME);
  if (!chain) return chain.error();
  if (slot == 0)
    if (auto switched = switch_links(from, to); !switched)
      return fail("stage '", name, "': ", switched.error().message);
  if (bpf_map_update_elem(chain->fd, &slot, &to, BPF_ANY) != 0) {
    const int err = errno;
    if (slot == 0)
      if (auto back = switch_links(to, from); !back) log::warn("stage '" + name + "': " + back.error().message);
    return fail("stage '", name, "': chain slot ", std::to_string(slot), ": ", std::strerror(err));
  }
  return {};
}

Status LiveChanges::validate_settings(const std::string& name, const toml::table& settings,
                                      const std::string& source) const {
  const LiveStage* live = pipeline_.find_stage(name);
  if (!live) return no_such_stage(name, pipeline_.spec());
  auto stage = create_instance(live->spec.plugin, settings, source, name);
  if (!stage) return stage.error();
  return {};
}

Status LiveChanges::reconfigure_stages(const SettingsChanges& changes, const std::string& source, bool reset_state) {
  Pipeline& p = pipeline_;
  // Validate every change before applying any.
  struct Change {
    LiveStage* live;
    std::shared_ptr<Stage> instance;
    const toml::table* settings;
    bool needs_swap;
  };
  std::vector<Change> prepared;
  for (const auto& [name, settings] : changes) {
    LiveStage* live = p.find_stage(name);
    if (!live) return no_such_stage(name, p.spec_);
    auto created = create_instance(live->spec.plugin, settings, source, name);
    if (!created) return created.error();
    auto needs_swap = needs_new_program(*live, **created, p.interface_);
    if (!needs_swap) return needs_swap.error();
    prepared.push_back({live, std::move(*created), &settings, *needs_swap});
  }

  // Apply in order; on a failure, put back what was already applied, newest first.
  struct Undo {
    LiveStage* live;
    StageSpec spec;
    bool swapped;
  };
  std::vector<Undo> applied;
  auto roll_back = [&] {
    for (auto undo = applied.rbegin(); undo != applied.rend(); ++undo) {
      const StageSpec& old = undo->spec;
      Status restored = undo->swapped ? swap_stage(old.name, SwapRequest{.object = old.object_path,
                                                                         .plugin = old.plugin,
                                                                         .instance = old.instance,
                                                                         .settings = old.settings,
                                                                         .plugin_file = old.plugin_file,
                                                                         .plugin_signature = old.plugin_signature})
                                      : configure_stage(old, *undo->live->object);
      if (restored) {
        undo->live->spec = old;
        p.spec_.stages[undo->live->slot] = old;
      } else {
        log::warn("restoring " + restored.error().message);
      }
    }
  };
  for (Change& change : prepared) {
    Undo undo{change.live, change.live->spec, change.needs_swap};
    Status done;
    if (change.needs_swap) {
      done = swap_stage(change.live->spec.name,
                        SwapRequest{.object = {}, .plugin = {}, .instance = change.instance, .settings = *change.settings,
                                    .plugin_file = {}, .plugin_signature = {}, .reset_state = reset_state});
    } else {
      StageSpec next = change.live->spec;
      next.instance = change.instance;
      next.settings = *change.settings;
      done = configure_stage(next, *change.live->object);
      if (done) {
        change.live->spec = std::move(next);
        p.spec_.stages[change.live->slot] = change.live->spec;
      }
    }
    if (!done) {
      if (!change.needs_swap) (void)configure_stage(undo.spec, *change.live->object);  // a half-written set
      roll_back();
      return done;
    }
    applied.push_back(std::move(undo));
  }
  return {};
}

Result<std::unique_ptr<Pipeline>> LiveChanges::rebuild(PipelineSpec spec, bool fresh_if_changed,
                                                       const std::function<Status(Pipeline&)>& before_switch) {
  Pipeline& p = pipeline_;
  auto next = Pipeline::load_reusing(std::move(spec), p.paths_, p.interface_, &p, fresh_if_changed);
  if (!next) return next.error();
  if (before_switch)
    if (auto ready = before_switch(**next); !ready) {
      (*next)->restore_configuration(p, (*next)->stages_.size());
      return ready.error();
    }
  const bool was_attached = p.attached();
  if (auto switched = switch_links(p.entry_fd(), (*next)->entry_fd()); !switched) {
    (*next)->restore_configuration(p, (*next)->stages_.size());
    return switched.error();
  }
  // Packets that entered the old chain before the switch may still be in it on other CPUs, counting in the
  // old slot; once they are through, that slot is final.
  if (was_attached)
    if (auto waited = wait_for_running_programs(); !waited)
      log::warn("counters: " + waited.error().message + "; a few packets of the old chain may be missing from them");
  hand_over_counters(**next);
  (*next)->links_ = std::move(p.links_);
  p.links_.clear();
  return next;
}

void LiveChanges::hand_over_counters(Pipeline& next) {
  auto counted = chain_counters(pipeline_);
  if (!counted) {
    log::warn("counters of the replaced chain: " + counted.error().message);
    return;
  }
  next.bases_.pipeline = counted->pipeline;
  next.bases_.stages.clear();
  const auto& stages = pipeline_.stages();
  for (std::size_t i = 0; i < stages.size(); ++i)
    if (next.find_stage(stages[i].spec.name)) next.bases_.stages[stages[i].spec.name] = counted->stages[i];
}

// Every interface runs the same chain: one bpf_link update each (each atomic on its own); if one refuses,
// those already switched go back before the error is returned.
Status LiveChanges::switch_links(int from, int to) {
  auto replace = [](int link_fd, int new_prog, int old_prog) {
    LIBBPF_OPTS(bpf_link_update_opts, options, .flags = BPF_F_REPLACE, .old_prog_fd = static_cast<__u32>(old_prog));
    return bpf_link_update(link_fd, new_prog, &options) == 0 ? 0 : errno;
  };
  const auto& links = pipeline_.links_;
  for (std::size_t i = 0; i < links.size(); ++i) {
    if (int err = replace(links[i].fd, to, from)) {
      for (std::size_t j = i; j-- > 0;)
        if (int undo = replace(links[j].fd, from, to))
          log::error("switching " + links[j].interface.name + " back to the running chain: " + std::strerror(undo));
      return fail("switching ", links[i].interface.name, " to the new chain: ", std::strerror(err));
    }
  }
  return {};
}

}  // namespace xdpp
