// Helpers for the BPF tiers: load a pipeline from a TOML string, run crafted frames through it with
// BPF_PROG_TEST_RUN, and read counters and the packet context back.
//
// The fixture skips the test when it is not root, and pins the process to CPU 0: BPF_PROG_TEST_RUN
// runs the program on the calling CPU, so packet_context(0) is then the context the last run left.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "config.h"
#include "packet.h"
#include "live_changes.h"
#include "pipeline.h"
#include "test_runner.h"

extern "C" {
#include <xdp_pipeline/contract.h>
}

namespace xdpp::test {

// XDP actions, by name, for tables.
inline constexpr std::uint32_t kAborted = 0, kDrop = 1, kPass = 2, kTx = 3, kRedirect = 4;
/// "XDP_DROP" etc., for messages.
std::string action_name(std::uint32_t action);

/// The interface the plugins are told about: test0, ifindex 0, this MAC.
inline const Mac kInterfaceMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
InterfaceInfo test_interface();

/// SearchPaths{ {XDPP_TEST_PLUGIN_DIR}, {XDPP_TEST_BPF_DIR} }: the plugins and objects of this build.
SearchPaths test_search_paths();

/// The start of every stage test's pipeline: [pipeline] (test0, generic) and the parse stage, whose table a
/// test may continue (`malformed = "drop"`) before adding its own [[stage]] tables.
inline constexpr std::string_view kParseFirst = R"(
[pipeline]
interface = "test0"
mode = "generic"

[[stage]]
name = "parse"
plugin = "parse"
)";

/// Loads `toml` as "<test name>.toml". On any error, records a test failure carrying the message and
/// returns nullptr: `auto pipeline = load_pipeline(...); ASSERT_NE(pipeline, nullptr);`
std::unique_ptr<Pipeline> load_pipeline(std::string_view toml);

/// Runs `frame` through the pipeline (the first `first_buffer` bytes in the first buffer, the rest in
/// fragments; 0: the kernel's split). An error records a failure and returns nullopt.
std::optional<TestRunResult> run(Pipeline& pipeline, std::span<const std::uint8_t> frame, std::uint32_t first_buffer = 0);
inline std::optional<TestRunResult> run(Pipeline& pipeline, const Frame& frame) {
  return run(pipeline, frame.bytes);
}

/// Index of the stage called `name` in the pipeline, or -1 (recording a failure).
int stage_index(Pipeline& pipeline, std::string_view name);
/// What counters() calls the whole pipeline's total (stage_counters(pipeline, -1)).
inline constexpr std::string_view kPipelineTotal = "(pipeline)";

/// Counters of the stage called `name` (kPipelineTotal for the whole pipeline's); a failure on error.
CounterTotals counters(Pipeline& pipeline, std::string_view name);
/// The packet context as the last run on CPU 0 left it; a failure on error.
xdpp_packet packet_context(Pipeline& pipeline);

/// Empties `slot` of the pipeline's chain map (found through the dispatcher's maps), so that a tail
/// call into it fails: how the tests make a packet fall off the chain.
Status clear_chain_slot(Pipeline& pipeline, std::uint32_t slot);

/// Base fixture: skips unless root, pins to CPU 0.
class BpfTest : public ::testing::Test {
 protected:
  void SetUp() override;
};

template <class Param>
class BpfTestWithParam : public BpfTest, public ::testing::WithParamInterface<Param> {};

/// A readable name for one case of a table ("vlan_tcp_8080"): gtest wants [A-Za-z0-9_].
std::string case_name(std::string_view description);

}  // namespace xdpp::test
