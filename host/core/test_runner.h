// Drives a loaded pipeline packet by packet with BPF_PROG_TEST_RUN, for `replay` and the tests: the
// verdict, the packet as it leaves, the stage that decided and the events the packet caused.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <xdp_pipeline/result.h>

#include "event_reader.h"

namespace xdpp {

class Pipeline;  // pipeline.h

/// What one packet did.
struct TestRunResult {
  std::uint32_t verdict = 0;            // XDP action
  std::string stage;                    // the stage that decided it (or where it fell off the chain)
  bool modified = false;
  std::vector<std::uint8_t> packet;     // the packet as it leaves
  std::vector<StageEvent> events;       // events emitted for this packet, drained after the run
};

class TestRunner {
 public:
  /// The pipeline must not be attached to traffic: the deciding stage and the events are told apart by
  /// what changed during the run.
  explicit TestRunner(Pipeline& pipeline) : pipeline_(pipeline) {}

  /// Runs one packet through the chain (its first stage) and drains the ring buffers. A frame longer than
  /// the kernel's first buffer (about 3.5 KB) continues in fragments, as a jumbo frame from a driver does;
  /// `first_buffer` (1..frame size) sets the first buffer's length instead, so that headers can be split
  /// across buffers. 0: the kernel's choice.
  Result<TestRunResult> run(std::span<const std::uint8_t> frame, std::uint32_t first_buffer = 0);

 private:
  Pipeline& pipeline_;
};

}  // namespace xdpp
