// Reads a pipeline's ring buffers: each record goes to the plugin of the stage that emitted it, and the
// events the plugin decodes go to a handler, tagged with the stage's name.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <xdp_pipeline/plugin.h>
#include <xdp_pipeline/result.h>

struct ring_buffer;  // libbpf

namespace xdpp {

struct LiveStage;  // pipeline.h

/// Receives each decoded event with the name of the stage that emitted it.
using EventHandler = std::function<void(const std::string& stage, EventRecord record)>;

/// An event with the stage that emitted it.
struct StageEvent {
  std::string stage;
  EventRecord record;
};

class EventReader {
 public:
  EventReader() = default;
  ~EventReader();
  EventReader(const EventReader&) = delete;
  EventReader& operator=(const EventReader&) = delete;

  /// (Re)reads every ring buffer of `stages` (kept by reference: the owner calls this again whenever a
  /// stage's object changes). Records not yet read stay in the rings (the consumer position lives in the
  /// map), so nothing is lost across a change.
  Status watch(const std::vector<LiveStage>& stages);

  /// An fd that is readable when events wait (epoll of the ring buffers), or -1 without ring buffers.
  int fd() const;
  /// Whether the handlers read EventRecord::json (default true); false lets plugins skip building it.
  void set_need_json(bool needed) { need_json_ = needed; }
  /// Where a stage swap delivers the events still queued for a plugin that is being replaced.
  void set_swap_handler(EventHandler handler) { swap_handler_ = std::move(handler); }
  const EventHandler& swap_handler() const { return swap_handler_; }

  /// Hands every waiting record to its plugin, without blocking. Returns the number of records.
  Result<int> consume(const EventHandler& handler);
  /// Waits up to timeout_ms for records, then hands them over as consume() does.
  Result<int> poll(int timeout_ms, const EventHandler& handler);

 private:
  struct Ring {
    EventReader* reader;
    std::size_t stage;
    std::string map;
  };
  static int on_record(void* context, void* data, std::size_t size);

  const std::vector<LiveStage>* stages_ = nullptr;
  std::vector<std::unique_ptr<Ring>> rings_;
  ring_buffer* manager_ = nullptr;
  const EventHandler* handler_ = nullptr;  // set while reading
  EventHandler swap_handler_;
  bool need_json_ = true;
};

}  // namespace xdpp
