#include "pipeline.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "attach.h"
#include "bpf_object.h"
#include "log.h"
#include "stage_loader.h"

namespace xdpp {

namespace {

constexpr const char* kDispatcherObject = "dispatcher.bpf.o";
constexpr const char* kDispatcherProgram = "xdpp_dispatcher";

// The chain's root object: the first dispatcher.bpf.o on the BPF path, opened (not loaded).
Result<std::unique_ptr<LoadedObject>> open_root(const SearchPaths& paths, const InterfaceInfo& interface) {
  std::filesystem::path file;
  for (const auto& dir : paths.bpf_dirs)
    if (std::filesystem::exists(dir / kDispatcherObject)) {
      file = dir / kDispatcherObject;
      break;
    }
  if (file.empty()) return fail("no ", kDispatcherObject, " in the BPF directories");
  XDPP_TRY(check_file_safe(file, "BPF object"));
  return LoadedObject::open(file, "dispatcher", interface, kDispatcherProgram);
}

}  // namespace

Pipeline::~Pipeline() { detach(); }

Result<std::unique_ptr<Pipeline>> Pipeline::load(PipelineSpec spec, const SearchPaths& paths, InterfaceInfo interface) {
  return load_reusing(std::move(spec), paths, std::move(interface), nullptr);
}

Result<std::unique_ptr<Pipeline>> Pipeline::load_reusing(PipelineSpec spec, const SearchPaths& paths,
                                                         InterfaceInfo interface, Pipeline* previous,
                                                         bool fresh_if_changed) {
  std::unique_ptr<Pipeline> self(new Pipeline());
  self->interface_ = std::move(interface);
  self->spec_ = std::move(spec);
  self->paths_ = paths;
  if (self->spec_.stages.empty() || self->spec_.stages.size() > XDPP_MAX_STAGES) return fail("a pipeline has 1..33 stages");

  auto root = open_root(paths, self->interface_);
  if (!root) return root.error();
  // The packets per interface are the pipeline's, not the chain's: a rebuilt chain keeps them.
  if (previous)
    if (auto by_interface = previous->root_->map(XDPP_IF_COUNTERS_MAP_NAME))
      XDPP_TRY((*root)->reuse_map(XDPP_IF_COUNTERS_MAP_NAME, by_interface->fd).context("dispatcher"));
  XDPP_TRY((*root)->load());
  self->root_ = std::move(*root);
  // A new chain counts in the other slot: what the running chain counts, also by packets still in it while
  // the links switch, stays apart (LiveChanges::rebuild() makes it the new chain's bases).
  self->bases_.slot = previous ? 1 - previous->bases_.slot : 0;
  XDPP_TRY(self->load_stages(previous, fresh_if_changed));

  // Every object loaded and verified: only now do the plugins write the maps, some of which the running
  // chain may share (a rebuild). A failure puts back what the previous pipeline's stages had written.
  for (std::size_t slot = 0; slot < self->stages_.size(); ++slot) {
    if (auto configured = configure_stage(self->stages_[slot].spec, *self->stages_[slot].object); !configured) {
      if (previous) self->restore_configuration(*previous, slot);
      return configured.error();
    }
  }

  // What fails from here on also puts back the previous pipeline's configuration of the maps they share.
  Status ready = self->fill_chain();
  if (ready) ready = self->events_.watch(self->stages_);
  if (!ready) {
    if (previous) self->restore_configuration(*previous, self->stages_.size());
    return ready.error();
  }
  return self;
}

// Fills the chain back to front: a stage becomes reachable only once its successor is in place.
Status Pipeline::fill_chain() {
  auto chain = root_->map(XDPP_CHAIN_MAP_NAME);
  if (!chain) return chain.error();
  for (int slot = static_cast<int>(stages_.size()) - 1; slot >= 0; --slot) {
    std::uint32_t key = slot;
    int fd = stages_[slot].object->prog_fd();
    if (bpf_map_update_elem(chain->fd, &key, &fd, BPF_ANY) != 0)
      return fail("stage '", stages_[slot].spec.name, "': chain slot ", std::to_string(slot), ": ",
                  std::strerror(errno));
  }
  return {};
}

Status Pipeline::load_stages(Pipeline* previous, bool fresh_if_changed) {
  auto shared = shared_maps_of(*root_, bases_.slot, spec_.interfaces.size());
  if (!shared) return shared.error();
  const auto& stages = spec_.stages;
  for (std::size_t slot = 0; slot < stages.size(); ++slot) {
    const StageSpec& stage = stages[slot];
    MapOrigin origin{.fresh_if_changed = fresh_if_changed};
    if (const LiveStage* match = previous ? previous->counterpart(stage) : nullptr) origin.previous = match->object.get();
    const StagePlace place{.slot = static_cast<std::uint32_t>(slot), .count = stages.size(),
                           .default_verdict = spec_.default_verdict};
    auto object = load_stage_object(stage, place, *shared, interface_, origin);
    if (!object) return object.error();
    // The slot this chain counts in still holds what the chain before the running one counted (already in
    // the running one's bases): it starts from zero. Nothing writes it until the switch.
    auto counters = (*object)->map(XDPP_COUNTERS_MAP_NAME);
    if (!counters) return counters.error();
    XDPP_TRY(zero_counters_slot(counters->fd, bases_.slot).context("stage '" + stage.name + "'"));
    stages_.push_back(LiveStage{.spec = stage, .object = std::move(*object), .slot = static_cast<int>(slot)});
    stages_.back().prog_id = stages_.back().object->prog_id();
  }
  return {};
}

Result<std::unique_ptr<Pipeline>> Pipeline::adopt(PipelineSpec running, const SearchPaths& paths, InterfaceInfo interface,
                                                  const std::filesystem::path& pins, const RecordedObject& root_record,
                                                  const std::vector<RecordedObject>& stages,
                                                  const std::vector<AttachedLink>& links, int contract,
                                                  CounterBases bases) {
  std::unique_ptr<Pipeline> self(new Pipeline());
  self->contract_ = contract;
  self->bases_ = std::move(bases);
  self->interface_ = std::move(interface);
  self->spec_ = std::move(running);
  self->paths_ = paths;
  if (stages.size() != self->spec_.stages.size()) return fail("the record names ", std::to_string(stages.size()), " objects for ", std::to_string(self->spec_.stages.size()), " stages");
  auto root = LoadedObject::adopt(pins / "dispatcher", "dispatcher", self->interface_, root_record.file, root_record.digest);
  if (!root) return root.error();
  self->root_ = std::move(*root);
  for (std::size_t slot = 0; slot < stages.size(); ++slot) {
    const StageSpec& stage = self->spec_.stages[slot];
    auto object = LoadedObject::adopt(pins / stage.name, stage.name, self->interface_, stages[slot].file, stages[slot].digest);
    if (!object) return object.error();
    self->stages_.push_back(LiveStage{.spec = stage, .object = std::move(*object), .slot = static_cast<int>(slot)});
    self->stages_.back().prog_id = self->stages_.back().object->prog_id();
  }
  XDPP_TRY(self->check_adopted(links));
  for (const AttachedLink& pinned : links) {
    AttachedLink own = pinned;
    own.fd = ::fcntl(pinned.fd, F_DUPFD_CLOEXEC, 0);
    if (own.fd < 0) return fail("dup: ", std::strerror(errno));
    self->links_.push_back(own);  // the destructor closes it
  }
  XDPP_TRY(self->events_.watch(self->stages_));
  return self;
}

// What runs is what the pins say: every link runs the stage of slot 0 (contract 1: the dispatcher) on its
// interface, each slot the stage pinned for it, and nothing follows the last.
Status Pipeline::check_adopted(const std::vector<AttachedLink>& links) const {
  if (links.empty()) return fail("no pinned link");
  if (stages_.empty()) return fail("the record names no stage");
  for (const AttachedLink& pinned : links) {
    bpf_link_info link{};
    __u32 length = sizeof(link);
    const std::string which = "the pinned link on " + pinned.interface.name;
    if (bpf_obj_get_info_by_fd(pinned.fd, &link, &length) != 0) return fail(which, ": ", std::strerror(errno));
    if (link.type != BPF_LINK_TYPE_XDP || link.xdp.ifindex == 0)
      return fail(which, " (id ", std::to_string(link.id), ") is no longer attached to an interface");
    if (static_cast<int>(link.xdp.ifindex) != pinned.interface.ifindex)
      return fail(which, " runs on ifindex ", std::to_string(link.xdp.ifindex), ", not on ", pinned.interface.name,
                  " (ifindex ", std::to_string(pinned.interface.ifindex), ")");
    if (link.prog_id != entry_prog_id())
      return fail(which, " runs program id ", std::to_string(link.prog_id), ", not the pinned ",
                  contract_ == 1 ? "dispatcher" : "stage '" + stages_.front().spec.name + "'", " (id ",
                  std::to_string(entry_prog_id()), ")");
  }
  auto chain = root_->map(XDPP_CHAIN_MAP_NAME);
  if (!chain) return chain.error();
  for (std::uint32_t slot = 0; slot <= stages_.size() && slot < chain->max_entries; ++slot) {
    std::uint32_t id = 0;  // a prog array read from user space gives program ids
    const bool filled = bpf_map_lookup_elem(chain->fd, &slot, &id) == 0;
    const std::uint32_t expected = slot < stages_.size() ? stages_[slot].prog_id : 0;
    if ((filled ? id : 0) != expected)
      return fail("chain slot ", std::to_string(slot), " runs program id ", std::to_string(filled ? id : 0), ", the pins say ",
                  expected ? "id " + std::to_string(expected) + " (stage '" + stages_[slot].spec.name + "')" : "nothing");
  }
  return {};
}

LiveStage* Pipeline::find_stage(const std::string& name) {
  for (auto& stage : stages_)
    if (stage.spec.name == name) return &stage;
  return nullptr;
}

const LiveStage* Pipeline::find_stage(const std::string& name) const {
  for (const auto& stage : stages_)
    if (stage.spec.name == name) return &stage;
  return nullptr;
}

const LiveStage* Pipeline::counterpart(const StageSpec& spec) const {
  const LiveStage* match = find_stage(spec.name);
  return match && match->spec.plugin_name == spec.plugin_name ? match : nullptr;
}

void Pipeline::restore_configuration(Pipeline& previous, std::size_t count) {
  for (std::size_t slot = count; slot-- > 0;) {
    const LiveStage* old = previous.counterpart(stages_[slot].spec);
    if (!old) continue;  // fresh maps: nothing shared
    if (auto restored = configure_stage(old->spec, *old->object); !restored)
      log::warn("restoring " + restored.error().message);
  }
}

Result<AttachMode> Pipeline::attach(AttachMode mode, std::vector<InterfaceInfo> interfaces) {
  if (attached()) return fail("already attached");
  if (interfaces.empty()) interfaces.push_back(interface_);
  std::vector<AttachedLink> made;
  std::string fallback_reasons;
  // Closing the links made so far detaches them: all or nothing.
  auto undo = [&] {
    for (auto& link : made) ::close(link.fd);
  };
  for (const InterfaceInfo& interface : interfaces) {
    if (interface.ifindex <= 0) {
      undo();
      return fail("interface '", interface.name, "' has no ifindex");
    }
    AttachMode got = mode;
    std::string fallback_reason;
    auto fd = attach_xdp_link(entry_fd(), root_->multi_buffer(), interface, got, fallback_reason);
    if (!fd) {
      undo();
      return fd.error();
    }
    made.push_back(AttachedLink{.interface = interface, .mode = got, .fd = *fd});
    if (!fallback_reason.empty())
      fallback_reasons += (fallback_reasons.empty() ? "" : "; ") +
                          (interfaces.size() > 1 ? interface.name + ": " : std::string()) + fallback_reason;
  }
  links_ = std::move(made);
  fallback_reason_ = std::move(fallback_reasons);
  return links_.front().mode;
}

void Pipeline::detach() {
  // Closing a link's last fd detaches the program (a persisted run's pins are other references).
  for (auto& link : links_) ::close(link.fd);
  links_.clear();
}

std::uint32_t link_id_of(int link_fd) {
  bpf_link_info info{};
  __u32 length = sizeof(info);
  if (link_fd < 0 || bpf_obj_get_info_by_fd(link_fd, &info, &length) != 0) return 0;
  return info.id;
}

std::uint32_t Pipeline::link_id() const { return links_.empty() ? 0 : link_id_of(links_.front().fd); }

std::uint32_t Pipeline::root_prog_id() const { return root_->prog_id(); }
int Pipeline::root_fd() const { return root_->prog_fd(); }
int Pipeline::entry_fd() const { return contract_ == 1 ? root_->prog_fd() : stages_.front().object->prog_fd(); }
std::uint32_t Pipeline::entry_prog_id() const {
  return contract_ == 1 ? root_->prog_id() : stages_.front().object->prog_id();
}

}  // namespace xdpp
