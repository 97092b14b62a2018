// A pipeline's counters as the operator sees them (status, --json, metrics), derived from what the BPF side
// counts: struct xdpp_counters, written once per packet by the stage where its way ends (contract.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <xdp_pipeline/plugin.h>
#include <xdp_pipeline/result.h>

extern "C" {
#include <xdp_pipeline/contract.h>
}

namespace xdpp {

class Pipeline;  // pipeline.h

/// A stage's counters summed over CPUs: `packets` and `bytes` entered the stage, the rest was decided (or
/// lost) in it. Derived by derive_counters().
struct CounterTotals {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint64_t verdict[XDPP_VERDICTS] = {};
  std::uint64_t fell_off = 0;
  std::uint64_t events_lost = 0;
};

/// What earlier chains counted, kept when a new chain (other stages or order) replaces them, so that the
/// derived counters stay exact and never go back: the chain's own counts start from zero in `slot` (the
/// entry of every counters map this chain writes, XDPP_COUNTER_SLOTS), and totals = base + own counts.
struct CounterBases {
  std::uint32_t slot = 0;
  CounterTotals pipeline;                        // the whole pipeline's packets, bytes, verdicts
  std::map<std::string, CounterTotals> stages;   // by stage name
};

/// Every stage's counters (chain order) and the pipeline's total.
struct ChainCounters {
  CounterTotals pipeline;
  std::vector<CounterTotals> stages;
};

/// Packets the pipeline received on one interface, summed over CPUs.
struct InterfaceTotals {
  std::uint64_t packets = 0;
};

/// "aborted", "drop", "pass", "tx", "redirect" (the names of the verdicts in status, JSON and metrics).
const char* verdict_name(std::uint32_t action);

/// Derives the counters of a chain from what each stage counted (`ended`, in chain order, the chain's
/// slot): a packet entered stage i if its way ended in stage i or a later one.
ChainCounters derive_counters(const std::vector<std::string>& names, const std::vector<xdpp_counters>& ended,
                              const CounterBases& bases);

/// Entry `slot` of a stage's counters map (per-CPU) by fd, summed over CPUs.
Result<xdpp_counters> read_stage_counters(int map_fd, std::uint32_t slot);
/// Reads entry `ifindex` of a per-interface counters map (the root object's) by fd, summed over CPUs.
Result<InterfaceTotals> read_interface_counters(int map_fd, int ifindex);
/// Sets entry `slot` of a per-CPU counters map to zero on every CPU.
Status zero_counters_slot(int map_fd, std::uint32_t slot);

/// Every stage's counters of a loaded pipeline and the pipeline's total.
Result<ChainCounters> chain_counters(const Pipeline& pipeline);
/// Counters of stage `index`, or of the whole pipeline with index -1.
Result<CounterTotals> stage_counters(const Pipeline& pipeline, int index);
/// What the pipeline received on interface `ifindex` (counted by the entry stage when attached to several).
Result<InterfaceTotals> interface_counters(const Pipeline& pipeline, int ifindex);
/// The packet context of every CPU (XDPP_CONTEXT_SECTION, one line per CPU), mapped into this process once:
/// for reading it packet after packet (replay).
class PacketContexts {
 public:
  static Result<PacketContexts> map(const Pipeline& pipeline);
  /// The context CPU `cpu` last left (what parse filled for its last packet).
  Result<xdpp_packet> of(int cpu) const;

 private:
  PacketContexts(MappedData data, int cpus) : data_(std::move(data)), cpus_(cpus) {}
  MappedData data_;
  int cpus_;  // possible CPUs, each with its line
};

/// The packet context that CPU `cpu` last left (maps the contexts for this one read).
Result<xdpp_packet> packet_context(const Pipeline& pipeline, int cpu);

}  // namespace xdpp
