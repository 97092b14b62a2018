#include "test_runner.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstring>

#include "counters.h"
#include "pipeline.h"

namespace xdpp {

namespace {

std::uint64_t verdicts_total(const CounterTotals& totals) {
  std::uint64_t sum = 0;
  for (auto v : totals.verdict) sum += v;
  return sum;
}

}  // namespace

Result<TestRunResult> TestRunner::run(std::span<const std::uint8_t> frame, std::uint32_t first_buffer) {
  // The stage that decided is the one whose verdict counters moved.
  auto before = chain_counters(pipeline_);
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
  if (int err = bpf_prog_test_run_opts(pipeline_.entry_fd(), &options))
    return fail("BPF_PROG_TEST_RUN: ", std::strerror(-err));
  result.verdict = options.retval;
  out.resize(options.data_size_out);
  result.modified = out.size() != frame.size() || !std::equal(out.begin(), out.end(), frame.begin());
  result.packet = std::move(out);

  auto after = chain_counters(pipeline_);
  if (!after) return after.error();
  const auto& stages = pipeline_.stages();
  for (std::size_t index = 0; index < stages.size(); ++index)
    if (verdicts_total(after->stages[index]) != verdicts_total(before->stages[index])) {
      result.stage = stages[index].spec.name;
      break;
    }

  // Drain the ring buffers: every record in them now is this packet's.
  EventHandler collect = [&](const std::string& stage, EventRecord record) {
    result.events.push_back({stage, std::move(record)});
  };
  if (auto drained = pipeline_.events().consume(collect); !drained) return drained.error();
  return result;
}

}  // namespace xdpp
