#include "event_reader.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include "bpf_object.h"
#include "pipeline.h"

namespace xdpp {

namespace {

// Tags what a plugin emits with its stage's name on the way to the handler.
struct TaggingSink final : EventSink {
  const std::string& stage;
  const EventHandler& handler;
  bool json;
  TaggingSink(const std::string& s, const EventHandler& h, bool j) : stage(s), handler(h), json(j) {}
  void emit(EventRecord record) override { handler(stage, std::move(record)); }
  bool wants_json() const override { return json; }
};

}  // namespace

EventReader::~EventReader() {
  if (manager_) ring_buffer__free(manager_);
}

int EventReader::on_record(void* context, void* data, std::size_t size) {
  auto* ring = static_cast<Ring*>(context);
  EventReader& reader = *ring->reader;
  if (!reader.handler_) return 0;
  const LiveStage& stage = (*reader.stages_)[ring->stage];
  TaggingSink sink(stage.spec.name, *reader.handler_, reader.need_json_);
  // A plugin that throws is contained: the event is reported as undecodable and the loop goes on.
  try {
    stage.spec.instance->on_event(ring->map, {static_cast<const std::byte*>(data), size}, sink);
  } catch (const std::exception& error) {
    sink.emit({.text = "stage '" + stage.spec.name + "': plugin failed on an event: " + error.what(), .json = {}});
  } catch (...) {
    sink.emit({.text = "stage '" + stage.spec.name + "': plugin failed on an event", .json = {}});
  }
  return 0;
}

Status EventReader::watch(const std::vector<LiveStage>& stages) {
  if (manager_) {
    ring_buffer__free(manager_);
    manager_ = nullptr;
  }
  rings_.clear();
  stages_ = &stages;
  for (std::size_t index = 0; index < stages.size(); ++index) {
    for (const MapHandle& ring : stages[index].object->maps_of_type(BPF_MAP_TYPE_RINGBUF)) {
      auto context = std::make_unique<Ring>(Ring{this, index, ring.name});
      if (!manager_) {
        manager_ = ring_buffer__new(ring.fd, &on_record, context.get(), nullptr);
        if (!manager_) return fail("ring buffer '", ring.name, "': ", std::strerror(errno));
      } else if (int err = ring_buffer__add(manager_, ring.fd, &on_record, context.get())) {
        return fail("ring buffer '", ring.name, "': ", std::strerror(-err));
      }
      rings_.push_back(std::move(context));
    }
  }
  return {};
}

int EventReader::fd() const { return manager_ ? ring_buffer__epoll_fd(manager_) : -1; }

Result<int> EventReader::consume(const EventHandler& handler) {
  if (!manager_) return 0;
  handler_ = &handler;
  int count = ring_buffer__consume(manager_);
  handler_ = nullptr;
  if (count < 0) return fail("reading ring buffers: ", std::strerror(-count));
  return count;
}

Result<int> EventReader::poll(int timeout_ms, const EventHandler& handler) {
  if (!manager_) return 0;
  handler_ = &handler;
  int count = ring_buffer__poll(manager_, timeout_ms);
  handler_ = nullptr;
  if (count == -EINTR) return 0;
  if (count < 0) return fail("polling ring buffers: ", std::strerror(-count));
  return count;
}

}  // namespace xdpp
