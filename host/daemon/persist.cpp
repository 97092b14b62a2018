// Adoption of a persisted pipeline by the next run, and its removal (`detach`).
#include "persist.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "bpf_object.h"
#include "log.h"
#include "run_lock.h"
#include "stage_loader.h"
#include "state.h"

namespace xdpp {
namespace {

// The link pinned for `interface`, with its kernel view; an fd of -1 when nothing is pinned.
struct PinnedLink {
  UniqueFd fd;
  bpf_link_info info{};
};

Result<PinnedLink> open_link(const std::filesystem::path& pin) {
  PinnedLink link;
  std::error_code error;
  if (!std::filesystem::exists(pin, error)) return link;
  link.fd.reset(bpf_obj_get(pin.c_str()));
  if (!link.fd) return fail(pin.string(), ": ", std::strerror(errno));
  __u32 length = sizeof(link.info);
  if (bpf_obj_get_info_by_fd(link.fd.get(), &link.info, &length) != 0) return fail(pin.string(), ": ", std::strerror(errno));
  return link;
}

// Why the adopted pipeline must be replaced by a new chain to become `file_spec` ("" when it need not):
// objects are compared by the digests recorded at load.
std::string new_chain_reason(Pipeline& adopted, int contract, const PipelineSpec& file_spec) {
  if (contract != XDPP_CONTRACT_VERSION)
    return "it was built by contract version " + std::to_string(contract) + ", this xdp-pipeline speaks version " +
           std::to_string(XDPP_CONTRACT_VERSION) + " (an upgrade)";
  for (const auto& dir : SearchPaths::builtin().bpf_dirs) {
    const auto dispatcher = dir / "dispatcher.bpf.o";
    if (!std::filesystem::exists(dispatcher)) continue;
    if (file_sha256(dispatcher) != adopted.root_object().digest())
      return "the dispatcher object " + dispatcher.string() + " is not the one that runs";
    break;
  }
  for (const StageSpec& wanted : file_spec.stages)
    for (const LiveStage& live : adopted.stages())
      if (live.spec.name == wanted.name && live.spec.plugin_name == wanted.plugin_name &&
          file_sha256(wanted.object_path) != live.object->digest())
        return "stage '" + wanted.name + "': " + wanted.object_path.string() + " is not the object that runs (" +
               live.object->file().string() + " as loaded)";
  return "";
}

// How the error that leaves a persisted pipeline untouched ends: what the operator can do instead.
std::string detach_hint(const std::string& name) {
  return "; to start it afresh: xdp-pipeline detach " + name + ", then run again";
}

template <class Items, class NameOf>
std::string list(const Items& items, NameOf name_of) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : ", ") + std::string(name_of(item));
  return text;
}

std::string list(const std::vector<std::string>& names) {
  return list(names, [](const std::string& name) { return name; });
}

// The links `state` ran on, one pinned link per interface, attached to `interfaces` in the mode each got.
// None left (unpinned, or every interface gone): nothing runs, and no links are returned.
Result<std::vector<AttachedLink>> pinned_links(const RunState& state, const PipelineSpec& file_spec,
                                               const std::vector<InterfaceInfo>& interfaces,
                                               std::vector<PinnedLink>& links) {
  const std::string& name = state.name;
  const std::vector<std::string> ran_on = state.interface_names();
  const std::string ran_on_text = list(ran_on);
  const std::string wanted_text = list(interfaces, [](const InterfaceInfo& i) { return i.name; });
  std::vector<std::string> defunct;
  for (const std::string& interface : ran_on) {
    auto link = open_link(link_pin(name, interface));
    if (!link) return fail("pipeline '", name, "' was persisted, but ", link.error().message);
    // A link whose interface went away under it is defunct (Cilium treats such a link the same way).
    if (!link->fd || link->info.xdp.ifindex == 0) defunct.push_back(interface);
    links.push_back(std::move(*link));
  }
  if (defunct.size() == ran_on.size()) {
    log::warn("pipeline '" + name + "': persisted by pid " + std::to_string(state.pid) + ", but its link" +
              (ran_on.size() > 1 ? "s on " : " on ") + ran_on_text +
              (ran_on.size() > 1 ? " are" : " is") + " no longer pinned or defunct (the interface is gone): starting afresh");
    return std::vector<AttachedLink>{};
  }
  if (!defunct.empty())
    return fail("pipeline '", name, "' runs persisted on ", ran_on_text, ", but its link on ", list(defunct),
                " is gone (no longer pinned, or the interface went away)", detach_hint(name));
  if (ran_on_text != wanted_text)
    return fail("pipeline '", name, "' runs persisted on ", ran_on_text, ", this file attaches to ", wanted_text,
                detach_hint(name));
  // Each link in the mode it got, as recorded (older states record one mode for their one interface).
  std::vector<AttachedLink> attached;
  for (std::size_t i = 0; i < interfaces.size(); ++i) {
    const std::string& mode = i < state.interfaces.size() ? state.interfaces[i].mode : state.mode;
    if (file_spec.mode != AttachMode::automatic && mode != to_string(file_spec.mode))
      return fail("pipeline '", name, "' runs persisted on ", interfaces[i].name, " in ", mode, " mode, this file asks for ",
                  to_string(file_spec.mode), detach_hint(name));
    auto parsed = parse_attach_mode(mode);
    attached.push_back({.interface = interfaces[i],
                        .mode = parsed && *parsed != AttachMode::automatic ? *parsed : AttachMode::native,
                        .fd = links[i].fd.get()});
  }
  return attached;
}

// One stage that runs, as recorded, with this executable's plugin of its name (it decodes the stage's events).
Result<StageSpec> running_stage(const state::Stage& recorded, const PipelineSpec& file_spec) {
  StageSpec stage;
  stage.name = recorded.name;
  stage.plugin_name = recorded.plugin;
  stage.object_path = recorded.object;
  auto plugin = find_plugin(stage.plugin_name, file_spec.plugin_dirs);
  if (!plugin) return fail("stage '", stage.name, "' that runs: ", plugin.error().message);
  stage.plugin = *plugin;
  stage.plugin_file = stage.plugin->path();
  stage.plugin_signature = file_signature(stage.plugin_file);
  try {
    stage.settings = toml::parse(recorded.settings, std::string_view("the running pipeline"));
  } catch (const std::exception& error) {
    return fail("pipeline '", file_spec.name, "': its state file cannot be read: ", error.what(), detach_hint(file_spec.name));
  }
  auto created = create_instance(stage.plugin, stage.settings, "the running pipeline", stage.name);
  if (!created) return fail("stage '", stage.name, "' that runs: ", created.error().message);
  stage.instance = std::move(*created);
  return stage;
}

// The programs that run are the ones that were loaded: their tags are the kernel's hash of the code.
Status check_tags(Pipeline& adopted, const RunState& state) {
  auto check = [&](const LoadedObject& object, const std::string& expected) -> Status {
    const std::string tag = prog_tag(object.prog_fd());
    if (tag != expected)
      return fail("pipeline '", state.name, "': ", object.stage_name(), " runs program tag ", tag, ", the record says ",
                  expected, detach_hint(state.name));
    return {};
  };
  XDPP_TRY(check(adopted.root_object(), state.dispatcher.prog_tag));
  for (std::size_t i = 0; i < adopted.stages().size(); ++i)
    XDPP_TRY(check(*adopted.stages()[i].object, i < state.stages.size() ? state.stages[i].prog_tag : ""));
  return {};
}

}  // namespace

Result<Adoption> adopt_persisted(const PipelineSpec& file_spec, const std::vector<InterfaceInfo>& interfaces) {
  const std::string& name = file_spec.name;
  Adoption adoption;
  auto state = read_run_state(name);
  if (!state || !state->persist) return adoption;
  adoption.pid = state->pid;
  std::vector<PinnedLink> links;
  auto attached = pinned_links(*state, file_spec, interfaces, links);
  if (!attached) return attached.error();
  if (attached->empty()) return adoption;

  // What runs, as recorded.
  if (!state->problem.empty())
    return fail("pipeline '", name, "': its state file cannot be read: ", state->problem, detach_hint(name));
  PipelineSpec running = file_spec;
  running.stages.clear();
  running.default_verdict = state->default_verdict.value_or(file_spec.default_verdict);
  std::vector<RecordedObject> objects;
  for (const state::Stage& recorded : state->stages) {
    auto stage = running_stage(recorded, file_spec);
    if (!stage) return stage.error();
    objects.push_back({.file = recorded.object, .digest = recorded.object_sha256});
    running.stages.push_back(std::move(*stage));
  }
  const RecordedObject dispatcher{.file = state->dispatcher.object, .digest = state->dispatcher.object_sha256};
  auto adopted = Pipeline::adopt(std::move(running), SearchPaths::builtin(), interfaces.front(), kPinRoot / name,
                                 dispatcher, objects, *attached, state->contract_version, state->counter_bases);
  if (!adopted)
    return fail("pipeline '", name, "' runs persisted, but not as recorded: ", adopted.error().message, detach_hint(name));
  XDPP_TRY(check_tags(**adopted, *state));
  adoption.new_chain_reason = new_chain_reason(**adopted, state->contract_version, file_spec);
  adoption.pipeline = std::move(*adopted);
  return adoption;
}

Result<std::vector<std::string>> detach_persisted(const std::string& name) {
  auto lock = RunLock::acquire(name);
  if (!lock) {
    const int pid = RunLock::holder(name);
    return fail("pipeline '", name, "' has a daemon", pid ? " (pid " + std::to_string(pid) + ")" : "",
                ": stop it first (kill -TERM ", pid ? std::to_string(pid) : "PID",
                "; a persisted pipeline keeps running), then detach");
  }
  std::error_code error;
  const bool pinned = std::filesystem::exists(kPinRoot / name / "links", error);
  if (!pinned) {
    // Leftovers of a killed run that was not persisted: nothing runs; they go all the same.
    unpublish(name);
    std::filesystem::remove_all(kRunRoot / (name + ".plugins"), error);
    lock->remove();
    return fail("nothing to detach: no persisted pipeline named '", name, "' runs (see xdp-pipeline status)");
  }
  // Each pinned link is the only reference that keeps its program attached: unpinning it detaches.
  std::vector<std::string> detached;
  for (const auto& entry : std::filesystem::directory_iterator(kPinRoot / name / "links", error)) {
    auto link = open_link(entry.path());
    std::string where = entry.path().filename().string();
    if (link && link->fd) {
      where += link->info.xdp.ifindex ? " (ifindex " + std::to_string(link->info.xdp.ifindex) + ", link id " +
                                            std::to_string(link->info.id) + ")"
                                      : " (already defunct)";
      // Detach now rather than when the last reference goes (our fd, below): nothing else may hold it.
      if (link->info.xdp.ifindex && bpf_link_detach(link->fd.get()) != 0)
        return fail("pipeline '", name, "': detaching link ", where, ": ", std::strerror(errno));
    }
    detached.push_back(where);
  }
  unpublish(name);
  std::filesystem::remove_all(kRunRoot / (name + ".plugins"), error);
  lock->remove();
  return detached;
}

}  // namespace xdpp
