#include "pipeline.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <map>

#include "attach.h"
#include "bpf_object.h"
#include "log.h"

namespace xdpp {

const char* verdict_name(std::uint32_t action) {
  static const char* names[] = {"aborted", "drop", "pass", "tx", "redirect"};
  return action < XDPP_VERDICTS ? names[action] : "unknown";
}

namespace {

constexpr const char* kDispatcherObject = "dispatcher.bpf.o";
constexpr const char* kDispatcherProgram = "xdpp_dispatcher";

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

// Per-CPU map values are laid out at 8-byte strides.
std::size_t percpu_stride(std::size_t size) { return (size + 7) / 8 * 8; }

template <class T>
Result<std::vector<T>> read_percpu(int fd, const char* what, std::uint32_t key = 0) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return fail("cannot count CPUs");
  std::size_t stride = percpu_stride(sizeof(T));
  std::vector<std::uint8_t> raw(stride * cpus);
  if (bpf_map_lookup_elem(fd, &key, raw.data()) != 0) return fail(what, ": ", std::strerror(errno));
  std::vector<T> values(cpus);
  for (int cpu = 0; cpu < cpus; ++cpu) std::memcpy(&values[cpu], raw.data() + cpu * stride, sizeof(T));
  return values;
}

}  // namespace

// Ring buffers and the sink their records currently go to.
struct Pipeline::Impl {
  struct Ring {
    Pipeline* pipeline;
    int stage;
    std::string map;
  };
  std::vector<std::unique_ptr<Ring>> rings;
  ring_buffer* manager = nullptr;
  const EventHandler* handler = nullptr;  // set while reading
  EventHandler handler_for_swaps;  // where a swap sends the leaving plugin's last events
  bool events_need_json = true;

  ~Impl() {
    if (manager) ring_buffer__free(manager);
  }

  // Tags what a plugin emits with its stage's name on the way to the handler.
  struct TaggingSink final : EventSink {
    const std::string& stage;
    const EventHandler& handler;
    bool json;
    TaggingSink(const std::string& s, const EventHandler& h, bool j) : stage(s), handler(h), json(j) {}
    void emit(EventRecord record) override { handler(stage, std::move(record)); }
    bool wants_json() const override { return json; }
  };

  static int on_record(void* context, void* data, std::size_t size) {
    auto* ring = static_cast<Ring*>(context);
    Pipeline& pipeline = *ring->pipeline;
    const EventHandler* handler = pipeline.impl_->handler;
    if (!handler) return 0;
    auto& stage = pipeline.stages_[ring->stage];
    TaggingSink sink(stage.spec.name, *handler, pipeline.impl_->events_need_json);
    // A plugin that throws is contained: the event is reported as undecodable and the loop goes on.
    try {
      stage.spec.stage->on_event(ring->map, {static_cast<const std::byte*>(data), size}, sink);
    } catch (const std::exception& error) {
      sink.emit({.text = "stage '" + stage.spec.name + "': plugin failed on an event: " + error.what(), .json = {}});
    } catch (...) {
      sink.emit({.text = "stage '" + stage.spec.name + "': plugin failed on an event", .json = {}});
    }
    return 0;
  }
};

Pipeline::~Pipeline() { detach(); }

namespace {

// What every stage of a chain shares with its dispatcher.
struct SharedMaps {
  int chain;
  int scratch;
  bool multi_buffer;  // the dispatcher's SEC("xdp.frags"): the kernel wants every program of the chain to agree
  std::uint32_t counters_slot;  // the entry of the counters maps this chain writes
  int if_packets;               // packets per interface, counted by the entry stage
  std::uint32_t count_interfaces;  // 1 when attached to several interfaces
};

// The maps and constants every stage of a chain shares, from its root object.
Result<SharedMaps> shared_maps_of(const LoadedObject& root, std::uint32_t counters_slot, std::size_t interfaces) {
  auto chain = root.map(XDPP_CHAIN_MAP_NAME);
  auto scratch = root.map(XDPP_SCRATCH_MAP_NAME);
  auto if_packets = root.map(XDPP_IF_COUNTERS_MAP_NAME);
  if (!chain || !scratch || !if_packets) return fail("dispatcher: shared maps missing");
  return SharedMaps{.chain = chain->fd, .scratch = scratch->fd, .multi_buffer = root.multi_buffer(),
                    .counters_slot = counters_slot, .if_packets = if_packets->fd,
                    .count_interfaces = interfaces > 1 ? 1u : 0u};
}

// Points every map of `object` (before load) at the map of the same name in `previous`, so that the
// stage's state carries over. A map whose shape changed cannot carry over: refused, or with
// fresh_if_changed left to start empty; with reset_state nothing carries over.
// The stage's counters (the framework's, not the stage's state) carry over even with reset_state, so that
// they never go back; a counters map of another shape (another contract) starts empty, and what it counted
// is kept in the bases (Pipeline::rebuild).
Status carry_over_maps(LoadedObject& object, const LoadedObject& previous, bool reset_state,
                       bool fresh_if_changed = false) {
  bpf_map* map;
  bpf_object__for_each_map(map, object.raw()) {
    std::string name = bpf_map__name(map);
    if (is_internal_map(name) || name == XDPP_CHAIN_MAP_NAME || name == XDPP_SCRATCH_MAP_NAME ||
        name == XDPP_IF_COUNTERS_MAP_NAME)
      continue;
    const bool counters = name == XDPP_COUNTERS_MAP_NAME;
    if (reset_state && !counters) continue;
    auto old = previous.map(name);
    if (!old) continue;  // a map the old program did not have starts empty
    const bool same = old->type == static_cast<std::uint32_t>(bpf_map__type(map)) &&
                      old->key_size == bpf_map__key_size(map) && old->value_size == bpf_map__value_size(map) &&
                      old->max_entries == bpf_map__max_entries(map);
    if (!same && counters) continue;
    if (!same && fresh_if_changed) {
      log::warn("stage '" + object.stage_name() + "': map '" + name + "' changed shape: it starts empty");
      continue;
    }
    if (!same)
      return fail("map '", name, "' changed shape (type/key/value/entries ", std::to_string(old->type), "/",
                  std::to_string(old->key_size), "/", std::to_string(old->value_size), "/",
                  std::to_string(old->max_entries), " -> ", std::to_string(bpf_map__type(map)), "/",
                  std::to_string(bpf_map__key_size(map)), "/", std::to_string(bpf_map__value_size(map)), "/",
                  std::to_string(bpf_map__max_entries(map)), "), so its state cannot carry over");
    XDPP_TRY(object.reuse_map(name, old->fd));
  }
  return {};
}

// Sets entry `slot` of a loaded stage's counters map to zero on every CPU.
Status zero_counters_slot(const LoadedObject& object, std::uint32_t slot) {
  auto map = object.map(XDPP_COUNTERS_MAP_NAME);
  if (!map) return map.error();
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return fail("cannot count CPUs");
  std::vector<std::uint8_t> zeros(percpu_stride(sizeof(xdpp_counters)) * cpus, 0);
  if (bpf_map_update_elem(map->fd, &slot, zeros.data(), BPF_ANY) != 0)
    return fail("counters slot ", std::to_string(slot), ": ", std::strerror(errno));
  return {};
}

// Opens, prepares, loads and configures one stage's object for `slot`; nothing is in the chain yet.
Result<std::unique_ptr<LoadedObject>> load_stage_object(const StageSpec& spec, std::uint32_t slot, std::size_t count,
                                                        std::uint32_t default_verdict, SharedMaps shared,
                                                        const InterfaceInfo& interface, const LoadedObject* previous,
                                                        bool reset_state, bool fresh_if_changed = false) {
  const std::string where = "stage '" + spec.name + "'";
  XDPP_TRY(check_file_safe(spec.object_path, "BPF object").context(where));
  auto object = LoadedObject::open(spec.object_path, spec.name, interface, std::string(spec.plugin->factory().program_name()));
  if (!object) return fail(where, ": ", object.error().message);
  LoadedObject& loaded = **object;
  // The kernel would refuse the program at load with a bare EINVAL (a prog array's programs must agree on
  // BPF_F_XDP_HAS_FRAGS); say what is wrong and what to do instead.
  if (loaded.multi_buffer() != shared.multi_buffer) {
    auto section = [](bool frags) { return frags ? "SEC(\"xdp.frags\") (multi-buffer aware)" : "SEC(\"xdp\") (single buffer)"; };
    return fail(where, ": ", spec.object_path.string(), ": program '", std::string(spec.plugin->factory().program_name()),
                "' is ", section(loaded.multi_buffer()), " but the dispatcher is ", section(shared.multi_buffer),
                ", and the kernel requires every program of one chain to agree; rebuild the stage with XDPP_STAGE() "
                "from <xdp_pipeline/stage.h>, which declares SEC(\"xdp.frags\")");
  }
  std::uint32_t next = slot + 1 < count ? slot + 1 : XDPP_NO_NEXT;
  XDPP_TRY(loaded.set_constant("xdpp_next_slot", next));
  XDPP_TRY(loaded.set_constant("xdpp_default_verdict", default_verdict));
  XDPP_TRY(loaded.set_constant("xdpp_entry", static_cast<std::uint32_t>(slot == 0)));
  XDPP_TRY(loaded.set_constant("xdpp_counters_slot", shared.counters_slot));
  XDPP_TRY(loaded.set_constant("xdpp_count_interfaces", slot == 0 ? shared.count_interfaces : 0u));
  XDPP_TRY(loaded.reuse_map(XDPP_CHAIN_MAP_NAME, shared.chain));
  XDPP_TRY(loaded.reuse_map(XDPP_SCRATCH_MAP_NAME, shared.scratch));
  XDPP_TRY(loaded.reuse_map(XDPP_IF_COUNTERS_MAP_NAME, shared.if_packets));
  XDPP_TRY(call_plugin(where, [&] { return spec.stage->before_load(loaded); }).context(where));
  if (previous) XDPP_TRY(carry_over_maps(loaded, *previous, reset_state, fresh_if_changed).context(where));
  XDPP_TRY(loaded.load());
  return std::move(*object);
}

}  // namespace

Status check_stage_objects(const PipelineSpec& pipeline) {
  const InterfaceInfo nowhere{};
  for (const StageSpec& spec : pipeline.stages) {
    const std::string where =
        (spec.object_where.empty() ? pipeline.file : spec.object_where) + ": stage '" + spec.name + "'";
    XDPP_TRY(check_file_safe(spec.object_path, "BPF object").context(where));
    auto object = LoadedObject::open(spec.object_path, spec.name, nowhere, std::string(spec.plugin->factory().program_name()));
    if (!object) return fail(where, ": ", object.error().message);
    // What load_stage_object() sets and shares must be there: a stage built without xdp_pipeline/stage.h
    // would open and then fail at load.
    for (const char* constant : {"xdpp_next_slot", "xdpp_default_verdict", "xdpp_entry", "xdpp_counters_slot"})
      if (!(*object)->has_constant(constant))
        return fail(where, ": BPF object ", spec.object_path.string(), ": no constant '", constant, "'");
    for (const char* map : {XDPP_CHAIN_MAP_NAME, XDPP_SCRATCH_MAP_NAME})
      if (!bpf_object__find_map_by_name((*object)->raw(), map))
        return fail(where, ": BPF object ", spec.object_path.string(), ": no map '", map, "'");
  }
  return {};
}

namespace {

// The plugin writes the stage's maps. For a stage that took over live maps this is the moment its
// configuration reaches packets: callers do it only once everything else has loaded.
Status configure_stage(const StageSpec& spec, LoadedObject& object) {
  const std::string where = "stage '" + spec.name + "'";
  return call_plugin(where, [&] { return spec.stage->configure(object); }).context(where);
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

}  // namespace

Result<std::shared_ptr<Stage>> create_stage(const std::shared_ptr<LoadedPlugin>& plugin, const toml::table& settings,
                                            const std::string& file, const std::string& name) {
  try {
    Settings reader(settings, file, name);
    for (const char* key : {"name", "plugin", "object"}) reader.find(key);
    std::shared_ptr<Stage> stage = adopt_stage(plugin->factory().create(reader), plugin);
    reader.reject_unread_keys();
    return stage;
  } catch (const std::exception& failure) {
    return Error{failure.what()};
  } catch (...) {
    return fail("stage '", name, "': the plugin threw while validating its settings");
  }
}

Result<std::unique_ptr<Pipeline>> Pipeline::load(PipelineSpec spec, const SearchPaths& paths, InterfaceInfo interface) {
  return load_reusing(std::move(spec), paths, std::move(interface), nullptr);
}

Result<std::unique_ptr<Pipeline>> Pipeline::load_reusing(PipelineSpec spec, const SearchPaths& paths,
                                                         InterfaceInfo interface, Pipeline* previous,
                                                         bool fresh_if_changed) {
  std::unique_ptr<Pipeline> self(new Pipeline());
  self->impl_ = std::make_unique<Impl>();
  self->interface_ = std::move(interface);
  self->spec_ = std::move(spec);
  self->paths_ = paths;
  const auto& stages = self->spec_.stages;
  if (stages.empty() || stages.size() > XDPP_MAX_STAGES) return fail("a pipeline has 1..33 stages");

  std::filesystem::path dispatcher_file;
  for (const auto& dir : paths.bpf_dirs)
    if (std::filesystem::exists(dir / kDispatcherObject)) {
      dispatcher_file = dir / kDispatcherObject;
      break;
    }
  if (dispatcher_file.empty()) return fail("no ", kDispatcherObject, " in the BPF directories");
  XDPP_TRY(check_file_safe(dispatcher_file, "BPF object"));

  auto dispatcher = LoadedObject::open(dispatcher_file, "dispatcher", self->interface_, kDispatcherProgram);
  if (!dispatcher) return dispatcher.error();
  // The packets per interface are the pipeline's, not the chain's: a rebuilt chain keeps them.
  if (previous)
    if (auto by_interface = previous->dispatcher_->map(XDPP_IF_COUNTERS_MAP_NAME))
      XDPP_TRY((*dispatcher)->reuse_map(XDPP_IF_COUNTERS_MAP_NAME, by_interface->fd).context("dispatcher"));
  XDPP_TRY((*dispatcher)->load());
  // A new chain counts in the other slot: what the running chain counts, also by packets still in it while
  // the links switch, stays apart (rebuild() makes it the new chain's bases).
  self->bases_.slot = previous ? 1 - previous->bases_.slot : 0;
  self->dispatcher_ = std::move(*dispatcher);
  auto shared = shared_maps_of(*self->dispatcher_, self->bases_.slot, self->spec_.interfaces.size());
  if (!shared) return shared.error();

  for (std::size_t slot = 0; slot < stages.size(); ++slot) {
    const StageSpec& stage = stages[slot];
    const LoadedObject* old = nullptr;
    if (previous)
      if (LiveStage* match = previous->find_stage(stage.name); match && match->spec.plugin_name == stage.plugin_name)
        old = match->object.get();
    auto object = load_stage_object(stage, slot, stages.size(), self->spec_.default_verdict, *shared, self->interface_,
                                    old, false, fresh_if_changed);
    if (!object) return object.error();
    // The slot this chain counts in still holds what the chain before the running one counted (already in
    // the running one's bases): it starts from zero. Nothing writes it until the switch.
    XDPP_TRY(zero_counters_slot(**object, self->bases_.slot).context("stage '" + stage.name + "'"));
    self->stages_.push_back(LiveStage{.spec = stage, .object = std::move(*object), .slot = static_cast<int>(slot)});
    self->stages_.back().prog_id = self->stages_.back().object->prog_id();
  }

  // Every object loaded and verified: only now do the plugins write the maps, some of which the running
  // chain may share (a rebuild). A failure puts back what the previous pipeline's stages had written.
  for (std::size_t slot = 0; slot < self->stages_.size(); ++slot) {
    if (auto configured = configure_stage(self->stages_[slot].spec, *self->stages_[slot].object); !configured) {
      if (previous) self->restore_configuration(*previous, slot);
      return configured.error();
    }
  }

  // Fill the chain back to front: a stage becomes reachable only once its successor is in place.
  for (int slot = static_cast<int>(self->stages_.size()) - 1; slot >= 0; --slot) {
    std::uint32_t key = slot;
    int fd = self->stages_[slot].object->prog_fd();
    if (bpf_map_update_elem(shared->chain, &key, &fd, BPF_ANY) != 0)
      return fail("stage '", self->stages_[slot].spec.name, "': chain slot ", std::to_string(slot), ": ",
                  std::strerror(errno));
  }
  XDPP_TRY(self->rebuild_event_readers());
  return self;
}

Result<std::unique_ptr<Pipeline>> Pipeline::adopt(PipelineSpec running, const SearchPaths& paths, InterfaceInfo interface,
                                                  const std::filesystem::path& pins, const RecordedObject& dispatcher,
                                                  const std::vector<RecordedObject>& stages,
                                                  const std::vector<AttachedLink>& links, int contract,
                                                  CounterBases bases) {
  std::unique_ptr<Pipeline> self(new Pipeline());
  self->impl_ = std::make_unique<Impl>();
  self->contract_ = contract;
  self->bases_ = std::move(bases);
  self->interface_ = std::move(interface);
  self->spec_ = std::move(running);
  self->paths_ = paths;
  if (stages.size() != self->spec_.stages.size()) return fail("the record names ", std::to_string(stages.size()), " objects for ", std::to_string(self->spec_.stages.size()), " stages");
  auto root = LoadedObject::adopt(pins / "dispatcher", "dispatcher", self->interface_, dispatcher.file, dispatcher.digest);
  if (!root) return root.error();
  self->dispatcher_ = std::move(*root);
  for (std::size_t slot = 0; slot < stages.size(); ++slot) {
    const StageSpec& stage = self->spec_.stages[slot];
    auto object = LoadedObject::adopt(pins / stage.name, stage.name, self->interface_, stages[slot].file, stages[slot].digest);
    if (!object) return object.error();
    self->stages_.push_back(LiveStage{.spec = stage, .object = std::move(*object), .slot = static_cast<int>(slot)});
    self->stages_.back().prog_id = self->stages_.back().object->prog_id();
  }

  // What runs is what the pins say: every link runs the stage of slot 0 (contract 1: the dispatcher) on its
  // interface, each slot the stage pinned for it.
  if (links.empty()) return fail("no pinned link");
  if (self->stages_.empty()) return fail("the record names no stage");
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
    if (link.prog_id != self->entry_prog_id())
      return fail(which, " runs program id ", std::to_string(link.prog_id), ", not the pinned ",
                  contract == 1 ? "dispatcher" : "stage '" + self->stages_.front().spec.name + "'", " (id ",
                  std::to_string(self->entry_prog_id()), ")");
  }
  auto chain = self->dispatcher_->map(XDPP_CHAIN_MAP_NAME);
  if (!chain) return chain.error();
  for (std::uint32_t slot = 0; slot <= self->stages_.size() && slot < chain->max_entries; ++slot) {
    std::uint32_t id = 0;  // a prog array read from user space gives program ids
    const bool filled = bpf_map_lookup_elem(chain->fd, &slot, &id) == 0;
    const std::uint32_t expected = slot < self->stages_.size() ? self->stages_[slot].prog_id : 0;
    if ((filled ? id : 0) != expected)
      return fail("chain slot ", std::to_string(slot), " runs program id ", std::to_string(filled ? id : 0), ", the pins say ",
                  expected ? "id " + std::to_string(expected) + " (stage '" + self->stages_[slot].spec.name + "')" : "nothing");
  }
  for (const AttachedLink& pinned : links) {
    AttachedLink own = pinned;
    own.fd = ::fcntl(pinned.fd, F_DUPFD_CLOEXEC, 0);
    if (own.fd < 0) return fail("dup: ", std::strerror(errno));
    self->links_.push_back(own);  // the destructor closes it
  }
  XDPP_TRY(self->rebuild_event_readers());
  return self;
}

LiveStage* Pipeline::find_stage(const std::string& name) {
  for (auto& stage : stages_)
    if (stage.spec.name == name) return &stage;
  return nullptr;
}

// (Re)creates the ring-buffer reader over every stage's ring buffers. Records not yet read stay in the
// rings (the consumer position lives in the map), so nothing is lost across a rebuild.
Status Pipeline::rebuild_event_readers() {
  if (impl_->manager) {
    ring_buffer__free(impl_->manager);
    impl_->manager = nullptr;
  }
  impl_->rings.clear();
  for (std::size_t index = 0; index < stages_.size(); ++index) {
    for (const MapHandle& ring : stages_[index].object->maps_of_type(BPF_MAP_TYPE_RINGBUF)) {
      auto context = std::make_unique<Impl::Ring>(Impl::Ring{this, static_cast<int>(index), ring.name});
      if (!impl_->manager) {
        impl_->manager = ring_buffer__new(ring.fd, &Impl::on_record, context.get(), nullptr);
        if (!impl_->manager) return fail("ring buffer '", ring.name, "': ", std::strerror(errno));
      } else if (int err = ring_buffer__add(impl_->manager, ring.fd, &Impl::on_record, context.get())) {
        return fail("ring buffer '", ring.name, "': ", std::strerror(-err));
      }
      impl_->rings.push_back(std::move(context));
    }
  }
  return {};
}

void Pipeline::set_swap_event_handler(EventHandler handler) { impl_->handler_for_swaps = std::move(handler); }

void Pipeline::set_events_need_json(bool needed) { impl_->events_need_json = needed; }

int Pipeline::event_fd() const { return impl_->manager ? ring_buffer__epoll_fd(impl_->manager) : -1; }

Result<int> Pipeline::consume_events(const EventHandler& handler) {
  if (!impl_->manager) return 0;
  impl_->handler = &handler;
  int count = ring_buffer__consume(impl_->manager);
  impl_->handler = nullptr;
  if (count < 0) return fail("reading ring buffers: ", std::strerror(-count));
  return count;
}

Status Pipeline::swap_stage(const std::string& name, SwapRequest request) {
  LiveStage* live = find_stage(name);
  if (!live) return fail("no stage '", name, "' in pipeline '", spec_.name, "'");
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
  if (request.stage) {
    next.stage = request.stage;
  } else {
    auto stage = create_stage(next.plugin, next.settings, spec_.file, name);
    if (!stage) return fail("stage '", name, "': ", stage.error().message);
    next.stage = std::move(*stage);
  }
  auto shared = shared_maps_of(*dispatcher_, bases_.slot, spec_.interfaces.size());
  if (!shared) return shared.error();
  auto object = load_stage_object(next, live->slot, stages_.size(), spec_.default_verdict, *shared, interface_,
                                  live->object.get(), request.reset_state);
  if (!object) return object.error();

  // Loaded and verified; now the plugin writes the maps (with carried-over maps, the live ones). What
  // fails from here on puts the old stage's configuration back.
  const bool shared_maps = !request.reset_state;
  auto restore = [&] {
    if (shared_maps) (void)configure_stage(live->spec, *live->object);
  };
  if (auto configured = configure_stage(next, **object); !configured) {
    restore();
    return configured;
  }
  // Events already queued belong to the plugin that is leaving: hand them over before it goes.
  if (impl_->handler_for_swaps) (void)consume_events(impl_->handler_for_swaps);
  // The switch: one update, atomic for packets (each sees the old program or the new one). Slot 0 is what
  // the interface runs: its link switches; the chain slot follows (no packet enters through it, but the
  // chain stays a faithful record for adoption).
  std::uint32_t key = live->slot;
  int fd = (*object)->prog_fd();
  if (key == 0)
    if (auto switched = switch_links(entry_fd(), fd); !switched) {
      restore();
      return fail("stage '", name, "': ", switched.error().message);
    }
  if (bpf_map_update_elem(shared->chain, &key, &fd, BPF_ANY) != 0) {
    const int err = errno;
    if (key == 0)
      if (auto back = switch_links(fd, live->object->prog_fd()); !back) log::warn("stage '" + name + "': " + back.error().message);
    restore();
    return fail("stage '", name, "': chain slot ", std::to_string(key), ": ", std::strerror(err));
  }
  live->spec = std::move(next);
  live->object = std::move(*object);  // the old program is freed once no packet runs it
  live->prog_id = live->object->prog_id();
  spec_.stages[live->slot] = live->spec;
  if (auto readers = rebuild_event_readers(); !readers)
    return fail("stage '", name, "' was swapped, but its events cannot be read: ", readers.error().message);
  return {};
}

Status Pipeline::validate_settings(const std::string& name, const toml::table& settings,
                                   const std::string& source) const {
  auto live = std::find_if(stages_.begin(), stages_.end(), [&](const LiveStage& s) { return s.spec.name == name; });
  if (live == stages_.end()) return fail("no stage '", name, "' in pipeline '", spec_.name, "'");
  auto stage = create_stage(live->spec.plugin, settings, source, name);
  if (!stage) return stage.error();
  return {};
}

Status Pipeline::reconfigure_stages(const std::vector<std::pair<std::string, toml::table>>& changes,
                                    const std::string& source, bool reset_state) {
  // Validate every change before applying any.
  struct Change {
    LiveStage* live;
    std::shared_ptr<Stage> stage;
    const toml::table* settings;
    bool needs_swap;
  };
  std::vector<Change> prepared;
  for (const auto& [name, settings] : changes) {
    LiveStage* live = find_stage(name);
    if (!live) return fail("no stage '", name, "' in pipeline '", spec_.name, "'");
    auto created = create_stage(live->spec.plugin, settings, source, name);
    if (!created) return created.error();
    std::shared_ptr<Stage> stage = std::move(*created);
    // A load-time constant (.rodata, a map's size) changes only with a new program: swap the same files.
    RecordingObject before(name, interface_), after(name, interface_);
    XDPP_TRY(call_plugin("stage '" + name + "'", [&] { return live->spec.stage->before_load(before); }));
    XDPP_TRY(call_plugin("stage '" + name + "'", [&] { return stage->before_load(after); }));
    prepared.push_back({live, std::move(stage), &settings, before.recorded() != after.recorded()});
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
      Status restored = undo->swapped ? swap_stage(undo->spec.name, SwapRequest{.object = undo->spec.object_path,
                                                                                 .plugin = undo->spec.plugin,
                                                                                 .stage = undo->spec.stage,
                                                                                 .settings = undo->spec.settings,
                                                                                 .plugin_file = undo->spec.plugin_file,
                                                                                 .plugin_signature = undo->spec.plugin_signature})
                                      : configure_stage(undo->spec, *undo->live->object);
      if (restored) {
        undo->live->spec = undo->spec;
        spec_.stages[undo->live->slot] = undo->spec;
      } else {
        log::warn("restoring " + restored.error().message);
      }
    }
  };
  for (Change& change : prepared) {
    Undo undo{change.live, change.live->spec, change.needs_swap};
    Status done;
    if (change.needs_swap) {
      SwapRequest request;
      request.stage = change.stage;
      request.settings = *change.settings;
      request.reset_state = reset_state;
      done = swap_stage(change.live->spec.name, std::move(request));
    } else {
      StageSpec next = change.live->spec;
      next.stage = change.stage;
      next.settings = *change.settings;
      done = configure_stage(next, *change.live->object);
      if (done) {
        change.live->spec = std::move(next);
        spec_.stages[change.live->slot] = change.live->spec;
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

void Pipeline::restore_configuration(Pipeline& previous, std::size_t count) {
  for (std::size_t slot = count; slot-- > 0;) {
    const LiveStage& stage = stages_[slot];
    LiveStage* old = previous.find_stage(stage.spec.name);
    if (!old || old->spec.plugin_name != stage.spec.plugin_name) continue;  // fresh maps: nothing shared
    if (auto restored = configure_stage(old->spec, *old->object); !restored)
      log::warn("restoring " + restored.error().message);
  }
}

Result<std::unique_ptr<Pipeline>> Pipeline::rebuild(PipelineSpec spec, bool fresh_if_changed,
                                                    const std::function<Status(Pipeline&)>& before_switch) {
  auto next = load_reusing(std::move(spec), paths_, interface_, this, fresh_if_changed);
  if (!next) return next.error();
  if (before_switch)
    if (auto ready = before_switch(**next); !ready) {
      (*next)->restore_configuration(*this, (*next)->stages_.size());
      return ready.error();
    }
  const bool was_attached = attached();
  if (auto switched = switch_links(entry_fd(), (*next)->entry_fd()); !switched) {
    (*next)->restore_configuration(*this, (*next)->stages_.size());
    return switched.error();
  }
  // Packets that entered the old chain before the switch may still be in it on other CPUs, counting in the
  // old slot; once they are through, that slot is final.
  if (was_attached)
    if (auto waited = wait_for_running_programs(); !waited)
      log::warn("counters: " + waited.error().message + "; a few packets of the old chain may be missing from them");
  // What this chain counted (its bases and its slot) becomes the new chain's bases, by stage name.
  if (auto counted = chain_counters(); !counted) {
    log::warn("counters of the replaced chain: " + counted.error().message);
  } else {
    (*next)->bases_.pipeline = counted->pipeline;
    (*next)->bases_.stages.clear();
    for (std::size_t i = 0; i < stages_.size(); ++i)
      if ((*next)->find_stage(stages_[i].spec.name)) (*next)->bases_.stages[stages_[i].spec.name] = counted->stages[i];
  }
  (*next)->links_ = std::move(links_);
  links_.clear();
  return next;
}

// Every interface runs the same chain: one bpf_link update each (each atomic on its own); if one refuses,
// those already switched go back before the error is returned.
Status Pipeline::switch_links(int from, int to) {
  auto replace = [](int link_fd, int new_prog, int old_prog) {
    LIBBPF_OPTS(bpf_link_update_opts, options, .flags = BPF_F_REPLACE, .old_prog_fd = static_cast<__u32>(old_prog));
    return bpf_link_update(link_fd, new_prog, &options) == 0 ? 0 : errno;
  };
  for (std::size_t i = 0; i < links_.size(); ++i) {
    if (int err = replace(links_[i].fd, to, from)) {
      for (std::size_t j = i; j-- > 0;)
        if (int undo = replace(links_[j].fd, from, to))
          log::error("switching " + links_[j].interface.name + " back to the running chain: " + std::strerror(undo));
      return fail("switching ", links_[i].interface.name, " to the new chain: ", std::strerror(err));
    }
  }
  return {};
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
    auto fd = attach_xdp_link(entry_fd(), dispatcher_->multi_buffer(), interface, got, fallback_reason);
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

std::uint32_t Pipeline::dispatcher_prog_id() const { return dispatcher_->prog_id(); }
int Pipeline::dispatcher_fd() const { return dispatcher_->prog_fd(); }
int Pipeline::entry_fd() const { return contract_ == 1 ? dispatcher_->prog_fd() : stages_.front().object->prog_fd(); }
std::uint32_t Pipeline::entry_prog_id() const {
  return contract_ == 1 ? dispatcher_->prog_id() : stages_.front().object->prog_id();
}

Result<xdpp_counters> read_stage_counters(int map_fd, std::uint32_t slot) {
  auto values = read_percpu<xdpp_counters>(map_fd, "counters", slot);
  if (!values) return values.error();
  xdpp_counters sum{};
  for (const xdpp_counters& cpu : *values) {
    sum.bytes += cpu.bytes;
    for (int v = 0; v < XDPP_VERDICTS; ++v) sum.verdict[v] += cpu.verdict[v];
    sum.fell_off += cpu.fell_off;
    sum.events_lost += cpu.events_lost;
  }
  return sum;
}

ChainCounters derive_counters(const std::vector<std::string>& names, const std::vector<xdpp_counters>& ended,
                              const CounterBases& bases) {
  ChainCounters result;
  result.pipeline = bases.pipeline;
  result.stages.resize(ended.size());
  // From the last stage back: what entered stage i is what ended in i plus what entered i + 1.
  std::uint64_t packets_after = 0, bytes_after = 0;
  for (std::size_t i = ended.size(); i-- > 0;) {
    CounterTotals& totals = result.stages[i];
    if (auto base = bases.stages.find(names[i]); base != bases.stages.end()) totals = base->second;
    std::uint64_t ended_here = 0;
    for (int v = 0; v < XDPP_VERDICTS; ++v) {
      ended_here += ended[i].verdict[v];
      totals.verdict[v] += ended[i].verdict[v];
      result.pipeline.verdict[v] += ended[i].verdict[v];
    }
    packets_after += ended_here;
    bytes_after += ended[i].bytes;
    totals.packets += packets_after;
    totals.bytes += bytes_after;
    totals.fell_off += ended[i].fell_off;
    totals.events_lost += ended[i].events_lost;
    result.pipeline.fell_off += ended[i].fell_off;
    result.pipeline.events_lost += ended[i].events_lost;
  }
  result.pipeline.packets += packets_after;
  result.pipeline.bytes += bytes_after;
  return result;
}

namespace {
// A contract-1 counters entry (adopted pipelines built before contract 2): every stage counted what
// entered it, and the dispatcher what entered the pipeline.
struct CountersV1 {
  std::uint64_t packets, bytes, verdict[XDPP_VERDICTS], fell_off, events_lost;
};
Result<CounterTotals> read_counters_v1(int map_fd) {
  auto values = read_percpu<CountersV1>(map_fd, "counters");
  if (!values) return values.error();
  CounterTotals totals;
  for (const CountersV1& cpu : *values) {
    totals.packets += cpu.packets;
    totals.bytes += cpu.bytes;
    for (int v = 0; v < XDPP_VERDICTS; ++v) totals.verdict[v] += cpu.verdict[v];
    totals.fell_off += cpu.fell_off;
    totals.events_lost += cpu.events_lost;
  }
  return totals;
}
}  // namespace

Result<ChainCounters> Pipeline::chain_counters() const {
  if (contract_ == 1) {
    ChainCounters result;
    auto map = dispatcher_->map(XDPP_COUNTERS_MAP_NAME);
    if (!map) return map.error();
    auto pipeline = read_counters_v1(map->fd);
    if (!pipeline) return pipeline.error();
    result.pipeline = *pipeline;
    for (const LiveStage& stage : stages_) {
      auto stage_map = stage.object->map(XDPP_COUNTERS_MAP_NAME);
      if (!stage_map) return stage_map.error();
      auto totals = read_counters_v1(stage_map->fd);
      if (!totals) return totals.error();
      result.stages.push_back(*totals);
      for (int v = 0; v < XDPP_VERDICTS; ++v) result.pipeline.verdict[v] += totals->verdict[v];
      result.pipeline.fell_off += totals->fell_off;
      result.pipeline.events_lost += totals->events_lost;
    }
    return result;
  }
  std::vector<std::string> names;
  std::vector<xdpp_counters> ended;
  for (const LiveStage& stage : stages_) {
    auto map = stage.object->map(XDPP_COUNTERS_MAP_NAME);
    if (!map) return map.error();
    auto raw = read_stage_counters(map->fd, bases_.slot);
    if (!raw) return fail("stage '", stage.spec.name, "': ", raw.error().message);
    names.push_back(stage.spec.name);
    ended.push_back(*raw);
  }
  return derive_counters(names, ended, bases_);
}

Result<CounterTotals> Pipeline::counters(int index) const {
  auto all = chain_counters();
  if (!all) return all.error();
  if (index < 0) return all->pipeline;
  return all->stages.at(index);
}

Result<InterfaceTotals> read_interface_counters(int map_fd, int ifindex) {
  if (ifindex <= 0 || ifindex >= XDPP_MAX_IFINDEX)
    return fail("ifindex ", std::to_string(ifindex), " is beyond the per-interface counters (", std::to_string(XDPP_MAX_IFINDEX), ")");
  auto values = read_percpu<xdpp_if_counters>(map_fd, "interface counters", static_cast<std::uint32_t>(ifindex));
  if (!values) return values.error();
  InterfaceTotals totals;
  for (const auto& cpu : *values) totals.packets += cpu.packets;
  return totals;
}

Result<InterfaceTotals> Pipeline::interface_counters(int ifindex) const {
  auto map = dispatcher_->map(XDPP_IF_COUNTERS_MAP_NAME);
  if (!map) return map.error();
  return read_interface_counters(map->fd, ifindex);
}

Result<xdpp_packet> Pipeline::packet_context(int cpu) const {
  auto map = dispatcher_->map(XDPP_SCRATCH_MAP_NAME);
  if (!map) return map.error();
  auto values = read_percpu<xdpp_packet>(map->fd, "packet context");
  if (!values) return values.error();
  if (cpu < 0 || cpu >= static_cast<int>(values->size())) return fail("no CPU ", std::to_string(cpu));
  return (*values)[cpu];
}

Result<int> Pipeline::poll_events(int timeout_ms, const EventHandler& handler) {
  if (!impl_->manager) return 0;
  impl_->handler = &handler;
  int count = ring_buffer__poll(impl_->manager, timeout_ms);
  impl_->handler = nullptr;
  if (count == -EINTR) return 0;
  if (count < 0) return fail("polling ring buffers: ", std::strerror(-count));
  return count;
}

namespace {
std::uint64_t verdicts_total(const CounterTotals& totals) {
  std::uint64_t sum = 0;
  for (auto v : totals.verdict) sum += v;
  return sum;
}
}  // namespace

Result<TestRunResult> Pipeline::test_run(std::span<const std::uint8_t> frame, std::uint32_t first_buffer) {
  // The stage that decided is the one whose verdict counters moved.
  auto before = chain_counters();
  if (!before) return before.error();

  TestRunResult result;
  std::vector<std::uint8_t> out(frame.size() + 4096);
  LIBBPF_OPTS(bpf_test_run_opts, options, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<__u32>(frame.size()), .data_size_out = static_cast<__u32>(out.size()),
              .repeat = 1);
  // The kernel (6.18) builds the first buffer of ctx.data_end bytes and puts the rest in fragments.
  xdp_md context{};
  if (first_buffer != 0) {
    context.data_end = first_buffer;
    options.ctx_in = &context;
    options.ctx_size_in = sizeof(context);
  }
  if (int err = bpf_prog_test_run_opts(entry_fd(), &options))
    return fail("BPF_PROG_TEST_RUN: ", std::strerror(-err));
  result.verdict = options.retval;
  out.resize(options.data_size_out);
  result.modified = out.size() != frame.size() || !std::equal(out.begin(), out.end(), frame.begin());
  result.packet = std::move(out);

  auto after = chain_counters();
  if (!after) return after.error();
  for (std::size_t index = 0; index < stages_.size(); ++index)
    if (verdicts_total(after->stages[index]) != verdicts_total(before->stages[index])) {
      result.stage = stages_[index].spec.name;
      break;
    }

  // Drain the ring buffers: every record in them now is this packet's.
  if (impl_->manager) {
    EventHandler collect = [&](const std::string& stage, EventRecord record) {
      result.events.push_back({stage, std::move(record)});
    };
    impl_->handler = &collect;
    int count = ring_buffer__consume(impl_->manager);
    impl_->handler = nullptr;
    if (count < 0) return fail("draining ring buffers: ", std::strerror(-count));
  }
  return result;
}

}  // namespace xdpp
