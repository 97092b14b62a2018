#include "pipeline.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include "bpf_object.h"

namespace xdpp {

const char* verdict_name(std::uint32_t action) {
  static const char* names[] = {"aborted", "drop", "pass", "tx", "redirect"};
  return action < XDPP_VERDICTS ? names[action] : "unknown";
}

namespace {

constexpr const char* kDispatcherObject = "dispatcher.bpf.o";
constexpr const char* kDispatcherProgram = "xdpp_dispatcher";

// Per-CPU map values are laid out at 8-byte strides.
std::size_t percpu_stride(std::size_t size) { return (size + 7) / 8 * 8; }

template <class T>
Result<std::vector<T>> read_percpu(int fd, const char* what) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return fail("cannot count CPUs");
  std::size_t stride = percpu_stride(sizeof(T));
  std::vector<std::uint8_t> raw(stride * cpus);
  std::uint32_t zero = 0;
  if (bpf_map_lookup_elem(fd, &zero, raw.data()) != 0) return fail(what, ": ", std::strerror(errno));
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
  const EventHandler* handler = nullptr;  // set while polling

  ~Impl() {
    if (manager) ring_buffer__free(manager);
  }

  // Tags what a plugin emits with its stage's name on the way to the handler.
  struct TaggingSink final : EventSink {
    const std::string& stage;
    const EventHandler& handler;
    TaggingSink(const std::string& s, const EventHandler& h) : stage(s), handler(h) {}
    void emit(EventRecord record) override { handler(stage, std::move(record)); }
  };

  static int on_record(void* context, void* data, std::size_t size) {
    auto* ring = static_cast<Ring*>(context);
    Pipeline& pipeline = *ring->pipeline;
    const EventHandler* handler = pipeline.impl_->handler;
    if (!handler) return 0;
    auto& stage = pipeline.stages_[ring->stage];
    TaggingSink sink(stage.spec.name, *handler);
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

Result<std::unique_ptr<Pipeline>> Pipeline::load(PipelineSpec spec, const SearchPaths& paths,
                                                 InterfaceInfo interface) {
  std::unique_ptr<Pipeline> self(new Pipeline());
  self->impl_ = std::make_unique<Impl>();
  self->interface_ = std::move(interface);
  self->spec_ = std::move(spec);
  const auto& stages = self->spec_.stages;
  if (stages.empty() || stages.size() > XDPP_MAX_STAGES) return fail("a pipeline has 1..33 stages");

  std::filesystem::path dispatcher_file;
  for (const auto& dir : paths.bpf_dirs)
    if (std::filesystem::exists(dir / kDispatcherObject)) {
      dispatcher_file = dir / kDispatcherObject;
      break;
    }
  if (dispatcher_file.empty()) return fail("no ", kDispatcherObject, " in the BPF directories");

  auto dispatcher = LoadedObject::open(dispatcher_file, "dispatcher", self->interface_, kDispatcherProgram);
  if (!dispatcher) return dispatcher.error();
  std::uint32_t first_slot = 0;
  XDPP_TRY((*dispatcher)->set_constant("xdpp_next_slot", first_slot));
  XDPP_TRY((*dispatcher)->set_constant("xdpp_default_verdict", self->spec_.default_verdict));
  XDPP_TRY((*dispatcher)->load());
  self->dispatcher_ = std::move(*dispatcher);
  auto chain = self->dispatcher_->map(XDPP_CHAIN_MAP_NAME);
  auto scratch = self->dispatcher_->map(XDPP_SCRATCH_MAP_NAME);
  if (!chain || !scratch) return fail("dispatcher: shared maps missing");

  for (std::size_t slot = 0; slot < stages.size(); ++slot) {
    const StageSpec& stage = stages[slot];
    std::string where = "stage '" + stage.name + "'";
    auto object = LoadedObject::open(stage.object_path, stage.name, self->interface_,
                                     std::string(stage.plugin->factory().program_name()));
    if (!object) return fail(where, ": ", object.error().message);
    LoadedObject& loaded = **object;
    std::uint32_t next = slot + 1 < stages.size() ? slot + 1 : XDPP_NO_NEXT;
    XDPP_TRY(loaded.set_constant("xdpp_next_slot", next));
    XDPP_TRY(loaded.set_constant("xdpp_default_verdict", self->spec_.default_verdict));
    XDPP_TRY(loaded.reuse_map(XDPP_CHAIN_MAP_NAME, chain->fd));
    XDPP_TRY(loaded.reuse_map(XDPP_SCRATCH_MAP_NAME, scratch->fd));
    XDPP_TRY(stage.stage->before_load(loaded).context(where));
    XDPP_TRY(loaded.load());
    XDPP_TRY(stage.stage->configure(loaded).context(where));
    self->stages_.push_back(LiveStage{.spec = stage, .object = std::move(*object), .slot = static_cast<int>(slot)});
    self->stages_.back().prog_id = self->stages_.back().object->prog_id();
  }

  // Fill the chain back to front: nothing is attached yet, but a stage is only reachable once its
  // successor is in place anyway.
  for (int slot = static_cast<int>(self->stages_.size()) - 1; slot >= 0; --slot) {
    std::uint32_t key = slot;
    int fd = self->stages_[slot].object->prog_fd();
    if (bpf_map_update_elem(chain->fd, &key, &fd, BPF_ANY) != 0)
      return fail("stage '", self->stages_[slot].spec.name, "': chain slot ", std::to_string(slot), ": ",
                  std::strerror(errno));
  }

  for (std::size_t index = 0; index < self->stages_.size(); ++index) {
    for (const MapHandle& ring : self->stages_[index].object->maps_of_type(BPF_MAP_TYPE_RINGBUF)) {
      auto context = std::make_unique<Impl::Ring>(Impl::Ring{self.get(), static_cast<int>(index), ring.name});
      if (!self->impl_->manager) {
        self->impl_->manager = ring_buffer__new(ring.fd, &Impl::on_record, context.get(), nullptr);
        if (!self->impl_->manager) return fail("ring buffer '", ring.name, "': ", std::strerror(errno));
      } else if (int err = ring_buffer__add(self->impl_->manager, ring.fd, &Impl::on_record, context.get())) {
        return fail("ring buffer '", ring.name, "': ", std::strerror(-err));
      }
      self->impl_->rings.push_back(std::move(context));
    }
  }
  return self;
}

Result<AttachMode> Pipeline::attach(AttachMode mode) {
  if (attached()) return fail("already attached");
  if (interface_.ifindex <= 0) return fail("interface '", interface_.name, "' has no ifindex");
  auto try_mode = [&](std::uint32_t flags) {
    LIBBPF_OPTS(bpf_link_create_opts, options, .flags = flags);
    return bpf_link_create(dispatcher_->prog_fd(), interface_.ifindex, BPF_XDP, &options);
  };
  auto explain = [&](int err, const char* mode_name) {
    std::string text = "attaching to " + interface_.name + " in " + mode_name + " mode: " + std::strerror(err);
    if (err == EBUSY || err == EEXIST)
      text += " (the interface already has an XDP program; xdp-pipeline does not replace it: detach it first)";
    return Error{text};
  };
  int fd = -1;
  switch (mode) {
    case AttachMode::native:
      fd = try_mode(XDP_FLAGS_DRV_MODE);
      if (fd < 0) return explain(-fd, "native");
      break;
    case AttachMode::generic:
      fd = try_mode(XDP_FLAGS_SKB_MODE);
      if (fd < 0) return explain(-fd, "generic");
      break;
    case AttachMode::offload:
      return fail("offload is impossible for a pipeline: it is built on bpf_tail_call through a "
                  "BPF_MAP_TYPE_PROG_ARRAY, which no offloading driver supports");
    case AttachMode::automatic:
      fd = try_mode(XDP_FLAGS_DRV_MODE);
      if (fd >= 0) {
        mode = AttachMode::native;
        break;
      }
      if (-fd == EBUSY || -fd == EEXIST) return explain(-fd, "native");
      fd = try_mode(XDP_FLAGS_SKB_MODE);
      if (fd < 0) return explain(-fd, "generic (after native failed)");
      mode = AttachMode::generic;
      break;
  }
  link_fd_ = fd;
  return mode;
}

void Pipeline::detach() {
  if (link_fd_ >= 0) {
    ::close(link_fd_);  // the link was never pinned: closing its last fd detaches the program
    link_fd_ = -1;
  }
}

std::uint32_t Pipeline::link_id() const {
  if (link_fd_ < 0) return 0;
  bpf_link_info info{};
  __u32 length = sizeof(info);
  if (bpf_obj_get_info_by_fd(link_fd_, &info, &length) != 0) return 0;
  return info.id;
}

std::uint32_t Pipeline::dispatcher_prog_id() const { return dispatcher_->prog_id(); }
int Pipeline::dispatcher_fd() const { return dispatcher_->prog_fd(); }

Result<CounterTotals> read_counters(int map_fd) {
  auto values = read_percpu<xdpp_counters>(map_fd, "counters");
  if (!values) return values.error();
  CounterTotals totals;
  for (const xdpp_counters& cpu : *values) {
    totals.packets += cpu.packets;
    totals.bytes += cpu.bytes;
    for (int v = 0; v < XDPP_VERDICTS; ++v) totals.verdict[v] += cpu.verdict[v];
    totals.fell_off += cpu.fell_off;
    totals.events_lost += cpu.events_lost;
  }
  return totals;
}

Result<CounterTotals> Pipeline::counters(int index) const {
  const LoadedObject* object = index < 0 ? dispatcher_.get() : stages_.at(index).object.get();
  auto map = object->map(XDPP_COUNTERS_MAP_NAME);
  if (!map) return map.error();
  return read_counters(map->fd);
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

Result<TestRunResult> Pipeline::test_run(std::span<const std::uint8_t> frame) {
  // The stage that decided is the one whose verdict counters moved.
  std::vector<std::uint64_t> before;
  for (int index = -1; index < static_cast<int>(stages_.size()); ++index) {
    auto totals = counters(index);
    if (!totals) return totals.error();
    before.push_back(verdicts_total(*totals));
  }

  TestRunResult result;
  std::vector<std::uint8_t> out(frame.size() + 4096);
  LIBBPF_OPTS(bpf_test_run_opts, options, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<__u32>(frame.size()), .data_size_out = static_cast<__u32>(out.size()),
              .repeat = 1);
  if (int err = bpf_prog_test_run_opts(dispatcher_->prog_fd(), &options))
    return fail("BPF_PROG_TEST_RUN: ", std::strerror(-err));
  result.verdict = options.retval;
  out.resize(options.data_size_out);
  result.modified = out.size() != frame.size() || !std::equal(out.begin(), out.end(), frame.begin());
  result.packet = std::move(out);

  for (int index = -1; index < static_cast<int>(stages_.size()); ++index) {
    auto totals = counters(index);
    if (!totals) return totals.error();
    if (verdicts_total(*totals) != before[index + 1]) {
      result.stage = index < 0 ? "dispatcher" : stages_[index].spec.name;
      break;
    }
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
