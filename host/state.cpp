#include "state.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <signal.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "bpf_object.h"
#include "log.h"

namespace xdpp {
namespace {

std::filesystem::path state_file(const std::string& name) { return kRunRoot / (name + ".json"); }

std::optional<RunState> read_state(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  RunState state;
  try {
    in >> state.json;
    state.name = state.json.at("name").get<std::string>();
    state.pid = state.json.at("pid").get<int>();
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return state;
}

Status ensure_private_dir(const std::filesystem::path& dir, mode_t mode) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return fail(dir.string(), ": ", error.message());
  if (::chmod(dir.c_str(), mode) != 0) return fail(dir.string(), ": ", std::strerror(errno));
  return {};
}

Status pin_object_maps(const LoadedObject& object, const std::filesystem::path& dir) {
  XDPP_TRY(ensure_private_dir(dir, 0700));
  bpf_map* map;
  bpf_object__for_each_map(map, object.raw()) {
    std::string name = bpf_map__name(map);
    // Internal maps (.rodata, .bss) are not state, and a pinned PROG_ARRAY would keep programs alive.
    if (is_internal_map(name) || bpf_map__type(map) == BPF_MAP_TYPE_PROG_ARRAY) continue;
    if (object.stage_name() != "dispatcher" && (name == XDPP_CHAIN_MAP_NAME || name == XDPP_SCRATCH_MAP_NAME)) continue;
    auto path = dir / name;
    if (bpf_obj_pin(bpf_map__fd(map), path.c_str()) != 0)
      return fail("pinning ", path.string(), ": ", std::strerror(errno));
  }
  return {};
}

std::uint32_t counters_map_id(const LoadedObject& object, const char* map_name = XDPP_COUNTERS_MAP_NAME) {
  auto map = object.map(map_name);
  if (!map) return 0;
  bpf_map_info info{};
  __u32 length = sizeof(info);
  return bpf_obj_get_info_by_fd(map->fd, &info, &length) == 0 ? info.id : 0;
}

}  // namespace

bool RunState::alive() const { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

Status publish(Pipeline& pipeline, const std::string& mode, bool repin) {
  const std::string& name = pipeline.spec().name;
  if (auto existing = read_state(state_file(name))) {
    if (existing->alive() && existing->pid != ::getpid())
      return fail("pipeline '", name, "' is already running (pid ", std::to_string(existing->pid),
                  "); give this one another [pipeline] name");
    if (existing->pid != ::getpid()) log::warn("pipeline '" + name + "': removing the leftovers of a killed run (pid " + std::to_string(existing->pid) + ")");
  }
  // Re-pinning replaces the pins; the state file stays until it is replaced (rename below), so a `status`
  // during a reload never finds the pipeline missing.
  if (repin) {
    std::error_code error;
    std::filesystem::remove_all(kPinRoot / name, error);
  }
  XDPP_TRY(ensure_private_dir(kRunRoot, 0700));
  const auto root = kPinRoot / name;
  // `ip netns exec` remounts /sys, hiding the host's bpffs: then nothing is pinned (status reads the
  // counters by map id all the same), and the operator is told how to get the pins.
  struct statfs filesystem {};
  bool pinning = ::statfs("/sys/fs/bpf", &filesystem) == 0 && filesystem.f_type == BPF_FS_MAGIC;
  if (pinning && repin) {
    XDPP_TRY(ensure_private_dir(kPinRoot, 0700));
    XDPP_TRY(pin_object_maps(pipeline.dispatcher_object(), root / "dispatcher"));
  } else if (!pinning) {
    log::warn("pipeline '" + name + "': /sys/fs/bpf is no bpffs in this mount namespace (ip netns exec remounts "
              "/sys), so nothing is pinned; use `run --netns NS` instead of `ip netns exec NS` to get the pins");
  }

  nlohmann::json stages = nlohmann::json::array();
  for (const LiveStage& stage : pipeline.stages()) {
    if (pinning && repin) XDPP_TRY(pin_object_maps(*stage.object, root / stage.spec.name));
    stages.push_back({{"name", stage.spec.name},
                      {"counters_map_id", counters_map_id(*stage.object)},
                      {"plugin", stage.spec.plugin_name},
                      {"slot", stage.slot},
                      {"prog_id", stage.prog_id},
                      {"object", stage.object->file().string()},
                      {"plugin_file", stage.spec.plugin_file.string()},
                      {"pins", pinning ? (root / stage.spec.name).string() : ""}});
  }
  // One entry per attached interface (a pipeline may serve several); "interface" lists their names.
  nlohmann::json interfaces = nlohmann::json::array();
  std::string names;
  for (const AttachedLink& link : pipeline.links()) {
    interfaces.push_back({{"name", link.interface.name},
                          {"ifindex", link.interface.ifindex},
                          {"mode", to_string(link.mode)},
                          {"link_id", link_id_of(link.fd)}});
    names += (names.empty() ? "" : ",") + link.interface.name;
  }
  if (names.empty()) names = pipeline.interface().name;
  nlohmann::json state = {{"name", name},
                          {"file", pipeline.spec().file},
                          {"interface", names},
                          {"interfaces", interfaces},
                          {"ifindex", pipeline.interface().ifindex},
                          {"mode", mode},
                          {"link_id", pipeline.link_id()},
                          {"dispatcher",
                           {{"prog_id", pipeline.dispatcher_prog_id()},
                            {"counters_map_id", counters_map_id(pipeline.dispatcher_object())},
                            {"interfaces_map_id", counters_map_id(pipeline.dispatcher_object(), XDPP_IF_COUNTERS_MAP_NAME)},
                            {"pins", pinning ? (root / "dispatcher").string() : ""}}},
                          {"pid", ::getpid()},
                          {"started", static_cast<long long>(::time(nullptr))},
                          {"stages", stages}};
  auto file = state_file(name);
  auto temporary = file;
  temporary += ".tmp";
  {
    std::ofstream out(temporary);
    out << state.dump(2) << "\n";
    if (!out) return fail(temporary.string(), ": cannot write");
  }
  ::chmod(temporary.c_str(), 0600);
  std::filesystem::rename(temporary, file);
  return {};
}

void unpublish(const std::string& name) {
  std::error_code error;
  std::filesystem::remove_all(kPinRoot / name, error);  // unlinking a pin drops only that reference
  std::filesystem::remove(state_file(name), error);
  if (std::filesystem::is_empty(kPinRoot, error)) std::filesystem::remove(kPinRoot, error);
}

std::vector<RunState> published_runs(const std::optional<std::string>& name) {
  std::vector<RunState> runs;
  std::error_code error;
  if (name) {
    if (auto state = read_state(state_file(*name))) runs.push_back(*state);
    return runs;
  }
  for (const auto& entry : std::filesystem::directory_iterator(kRunRoot, error))
    if (entry.path().extension() == ".json")
      if (auto state = read_state(entry.path())) runs.push_back(*state);
  std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return runs;
}

}  // namespace xdpp
