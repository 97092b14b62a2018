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

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "bpf_object.h"
#include "json_text.h"
#include "log.h"
#include "run_lock.h"

namespace xdpp {
namespace {

std::filesystem::path state_file(const std::string& name) { return kRunRoot / (name + ".json"); }

std::optional<RunState> read_state(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  const auto json = nlohmann::json::parse(in, nullptr, false);
  if (json.is_discarded()) return std::nullopt;
  RunState state;
  if (Status read = state::from_json(json, state); !read) {
    if (state.name.empty() || state.pid == 0) return std::nullopt;  // not even whose it is: no run's state
    state.problem = read.error().message;
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

// bpffs refuses names with a '.', which interface names may have (eth0.100).
std::string pin_component(const std::string& name) {
  std::string out;
  for (char c : name) out += c == '.' ? std::string("%2e") : std::string(1, c);
  return out;
}

// Pins `fd` at `path`, replacing what is pinned there in one step (pinned beside it, renamed over it): a
// persisted pipeline's chain and link are never unpinned, even if this process dies halfway.
Status pin_replacing(int fd, const std::filesystem::path& path, std::set<std::filesystem::path>& pinned) {
  auto next = path;
  next += "-next";
  ::unlink(next.c_str());
  if (bpf_obj_pin(fd, next.c_str()) != 0) return fail("pinning ", path.string(), ": ", std::strerror(errno));
  if (::rename(next.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(next.c_str());
    return fail("pinning ", path.string(), ": rename: ", std::strerror(err));
  }
  pinned.insert(path);
  return {};
}

Status pin_object(const LoadedObject& object, const std::filesystem::path& dir, bool persist,
                  std::set<std::filesystem::path>& pinned) {
  XDPP_TRY(ensure_private_dir(dir, 0700));
  const bool dispatcher = object.stage_name() == "dispatcher";
  for (const MapHandle& map : object.maps()) {
    // A pinned PROG_ARRAY keeps its programs in the chain without a daemon: only what persists pins it.
    if (map.type == BPF_MAP_TYPE_PROG_ARRAY && !(dispatcher && persist)) continue;
    if (!dispatcher && (map.name == XDPP_CHAIN_MAP_NAME || map.name == XDPP_CONTEXT_SECTION)) continue;
    XDPP_TRY(pin_replacing(map.fd, dir / map_pin_name(map.name), pinned));
  }
  if (persist) XDPP_TRY(pin_replacing(object.prog_fd(), dir / kProgramPinName, pinned));
  return {};
}

// Removes whatever under `root` was not just pinned: stages gone, maps of a dead run.
void prune(const std::filesystem::path& root, const std::set<std::filesystem::path>& pinned) {
  std::error_code error;
  std::vector<std::filesystem::path> files, dirs;
  for (auto it = std::filesystem::recursive_directory_iterator(root, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error))
    (it->is_directory(error) ? dirs : files).push_back(it->path());
  for (const auto& file : files)
    if (!pinned.count(file)) std::filesystem::remove(file, error);
  for (auto dir = dirs.rbegin(); dir != dirs.rend(); ++dir)
    if (std::filesystem::is_empty(*dir, error)) std::filesystem::remove(*dir, error);
}

std::string toml_text(const toml::table& table) {
  std::ostringstream out;
  out << table;
  return out.str();
}

std::uint32_t counters_map_id(const LoadedObject& object, const char* map_name = XDPP_COUNTERS_MAP_NAME) {
  auto map = object.map(map_name);
  if (!map) return 0;
  bpf_map_info info{};
  __u32 length = sizeof(info);
  return bpf_obj_get_info_by_fd(map->fd, &info, &length) == 0 ? info.id : 0;
}

// Writes `text` to a temporary file beside `file` and renames it over `file`: readers see the old state
// or the new one, never a part. Every write, the close and the rename are checked (a full /run fails
// here, not later in `status`); on failure the temporary file is removed and `file` is left as it was.
Status write_state_file(const std::filesystem::path& file, const std::string& text) {
  auto temporary = file;
  temporary += ".tmp";
  auto failed = [&](const char* step) {
    Error error = fail(file.string(), ": ", step, ": ", std::strerror(errno));
    ::unlink(temporary.c_str());
    return error;
  };
  // 0600 from its creation: the state names programs and pids, for root only.
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return failed("creating the temporary file");
  for (std::size_t done = 0; done < text.size();) {
    ssize_t wrote = ::write(fd, text.data() + done, text.size() - done);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0) {
      int saved = errno;
      ::close(fd);
      errno = saved;
      return failed("writing");
    }
    done += wrote;
  }
  if (::close(fd) != 0) return failed("closing");
  if (::rename(temporary.c_str(), file.c_str()) != 0) return failed("renaming into place");
  return {};
}

// What a killed run of `name` (pid `pid`) may have left beside its state: the private plugin copies
// of older versions (NAME.plugins/, plugins.PID/). Plugins are loaded from memory now; these go.
void remove_leftovers(const std::string& name, int pid) {
  std::error_code error;
  std::filesystem::remove_all(kRunRoot / (name + ".plugins"), error);
  std::filesystem::remove(kRunRoot / (name + ".json.tmp"), error);
  if (pid > 0) std::filesystem::remove_all(kRunRoot / ("plugins." + std::to_string(pid)), error);
}

// Pins every map of the pipeline under kPinRoot/NAME (with persist also chain, programs and links) and
// removes whatever else is pinned there.
Status pin_pipeline(Pipeline& pipeline) {
  const std::string& name = pipeline.spec().name;
  const bool persist = pipeline.spec().persist;
  const auto root = kPinRoot / name;
  std::set<std::filesystem::path> pinned;
  XDPP_TRY(ensure_private_dir(kPinRoot, 0700));
  XDPP_TRY(pin_object(pipeline.root_object(), root / "dispatcher", persist, pinned));
  for (const LiveStage& stage : pipeline.stages())
    XDPP_TRY(pin_object(*stage.object, root / stage.spec.name, persist, pinned));
  if (persist && pipeline.attached()) {
    XDPP_TRY(ensure_private_dir(root / "links", 0700));
    for (const AttachedLink& link : pipeline.links())
      XDPP_TRY(pin_replacing(link.fd, link_pin(name, link.interface.name), pinned));
  }
  prune(root, pinned);
  return {};
}

// What the state file says of `pipeline`, attached in `mode`, its maps pinned or not.
state::File state_record(Pipeline& pipeline, const std::string& mode, bool pinning) {
  const auto root = kPinRoot / pipeline.spec().name;
  const auto pins = [&](const std::string& dir) { return pinning ? (root / dir).string() : ""; };
  // One entry per attached interface (a pipeline may serve several); "interface" lists their names.
  std::vector<state::Interface> interfaces;
  std::string names;
  for (const AttachedLink& link : pipeline.links()) {
    interfaces.push_back({.name = link.interface.name,
                          .ifindex = link.interface.ifindex,
                          .mode = to_string(link.mode),
                          .link_id = link_id_of(link.fd)});
    names += (names.empty() ? "" : ",") + link.interface.name;
  }
  if (names.empty()) names = pipeline.interface().name;
  std::vector<state::Stage> stages;
  for (const LiveStage& stage : pipeline.stages())
    stages.push_back({.name = stage.spec.name,
                      .plugin = stage.spec.plugin_name,
                      .object = stage.object->file().string(),
                      .object_sha256 = stage.object->digest(),
                      .prog_tag = prog_tag(stage.object->prog_fd()),
                      .settings = toml_text(stage.spec.settings),
                      .plugin_file = stage.spec.plugin_file.string(),
                      .pins = pins(stage.spec.name),
                      .slot = stage.slot,
                      .prog_id = stage.prog_id,
                      .counters_map_id = counters_map_id(*stage.object)});
  const LoadedObject& dispatcher = pipeline.root_object();
  return {.name = pipeline.spec().name,
          .pid = ::getpid(),
          .file = pipeline.spec().file,
          .interface = names,
          .interfaces = std::move(interfaces),
          .ifindex = pipeline.interface().ifindex,
          .mode = mode,
          .link_id = pipeline.link_id(),
          .persist = pipeline.spec().persist,
          .contract_version = XDPP_CONTRACT_VERSION,
          .default_verdict = pipeline.spec().default_verdict,
          .entry_prog_id = pipeline.entry_prog_id(),
          .counter_bases = pipeline.counter_bases(),
          .dispatcher = {.prog_id = pipeline.root_prog_id(),
                         .prog_tag = prog_tag(pipeline.root_fd()),
                         .object = dispatcher.file().string(),
                         .object_sha256 = dispatcher.digest(),
                         .interfaces_map_id = counters_map_id(dispatcher, XDPP_IF_COUNTERS_MAP_NAME),
                         .pins = pins("dispatcher")},
          .version = XDPP_VERSION,
          .started = static_cast<long long>(::time(nullptr)),
          .stages = std::move(stages)};
}

}  // namespace

bool RunState::alive() const { return RunLock::held(name); }

std::filesystem::path link_pin(const std::string& name, const std::string& interface) {
  return kPinRoot / name / "links" / pin_component(interface);
}

std::vector<std::string> RunState::interface_names() const {
  std::vector<std::string> names;
  for (const state::Interface& entry : interfaces)
    if (!entry.name.empty()) names.push_back(entry.name);
  if (names.empty() && !interface.empty()) names.push_back(interface);
  return names;
}

bool RunState::persisted() const {
  if (!persist) return false;
  std::error_code error;
  for (const std::string& interface : interface_names())
    if (std::filesystem::exists(link_pin(name, interface), error)) return true;
  return false;
}

std::optional<RunState> read_run_state(const std::string& name) { return read_state(state_file(name)); }

Status publish(Pipeline& pipeline, const std::string& mode, bool repin) {
  const std::string& name = pipeline.spec().name;
  const bool persist = pipeline.spec().persist;
  // A second daemon of the name never gets here (the run lock); an earlier one's files are leftovers.
  if (auto existing = read_state(state_file(name)); existing && existing->pid != ::getpid()) {
    if (!persist)
      log::warn("pipeline '" + name + "': removing the leftovers of a killed run (pid " + std::to_string(existing->pid) + ")");
    remove_leftovers(name, existing->pid);
  }
  XDPP_TRY(ensure_private_dir(kRunRoot, 0700));
  // `ip netns exec` remounts /sys, hiding the host's bpffs: then nothing is pinned (status reads the
  // counters by map id all the same), and the operator is told how to get the pins.
  struct statfs filesystem {};
  bool pinning = ::statfs("/sys/fs/bpf", &filesystem) == 0 && filesystem.f_type == BPF_FS_MAGIC;
  if (!pinning && persist)
    return fail("persist needs the pins, but /sys/fs/bpf is no bpffs in this mount namespace (ip netns exec remounts "
                "/sys); use `run --netns NS` instead of `ip netns exec NS`");
  // The state file stays until it is replaced (rename below), so a `status` during a reload never finds
  // the pipeline missing.
  if (pinning && (repin || persist)) {
    XDPP_TRY(pin_pipeline(pipeline));
  } else if (!pinning) {
    log::warn("pipeline '" + name + "': /sys/fs/bpf is no bpffs in this mount namespace (ip netns exec remounts "
              "/sys), so nothing is pinned; use `run --netns NS` instead of `ip netns exec NS` to get the pins");
  }
  return write_state_file(state_file(name), json_text(state::to_json(state_record(pipeline, mode, pinning)), 2) + "\n");
}

Status pin_pending_chain(const Pipeline& next) {
  auto chain = next.root_object().map(XDPP_CHAIN_MAP_NAME);
  if (!chain) return chain.error();
  const auto dir = kPinRoot / next.spec().name / "dispatcher";
  XDPP_TRY(ensure_private_dir(dir, 0700));
  std::set<std::filesystem::path> pinned;
  return pin_replacing(chain->fd, dir / (std::string(XDPP_CHAIN_MAP_NAME) + "-pending"), pinned);
}

void unpublish(const std::string& name) {
  std::error_code error;
  std::filesystem::remove_all(kPinRoot / name, error);  // unlinking a pin drops only that reference
  std::filesystem::remove(state_file(name), error);
  remove_leftovers(name, 0);
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
