#include "counters.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

#include "bpf_object.h"
#include "pipeline.h"

namespace xdpp {

namespace {

// Per-CPU map values are laid out at 8-byte strides.
std::size_t percpu_stride(std::size_t size) { return (size + 7) / 8 * 8; }

template <class T>
Result<std::vector<T>> read_percpu(int fd, const char* what, std::uint32_t key = 0) {
  auto cpus = possible_cpus();
  if (!cpus) return cpus.error();
  std::size_t stride = percpu_stride(sizeof(T));
  std::vector<std::uint8_t> raw(stride * *cpus);
  if (bpf_map_lookup_elem(fd, &key, raw.data()) != 0) return fail(what, ": ", std::strerror(errno));
  std::vector<T> values(*cpus);
  for (int cpu = 0; cpu < *cpus; ++cpu) std::memcpy(&values[cpu], raw.data() + cpu * stride, sizeof(T));
  return values;
}

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

// An adopted contract-1 pipeline: every stage and the dispatcher counted what entered them.
Result<ChainCounters> chain_counters_v1(const Pipeline& pipeline) {
  ChainCounters result;
  auto map = pipeline.root_object().map(XDPP_COUNTERS_MAP_NAME);
  if (!map) return map.error();
  auto total = read_counters_v1(map->fd);
  if (!total) return total.error();
  result.pipeline = *total;
  for (const LiveStage& stage : pipeline.stages()) {
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

}  // namespace

const char* verdict_name(std::uint32_t action) {
  static const char* names[] = {"aborted", "drop", "pass", "tx", "redirect"};
  return action < XDPP_VERDICTS ? names[action] : "unknown";
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

Status zero_counters_slot(int map_fd, std::uint32_t slot) {
  auto cpus = possible_cpus();
  if (!cpus) return cpus.error();
  std::vector<std::uint8_t> zeros(percpu_stride(sizeof(xdpp_counters)) * *cpus, 0);
  if (bpf_map_update_elem(map_fd, &slot, zeros.data(), BPF_ANY) != 0)
    return fail("counters slot ", std::to_string(slot), ": ", std::strerror(errno));
  return {};
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

Result<ChainCounters> chain_counters(const Pipeline& pipeline) {
  if (pipeline.contract() == 1) return chain_counters_v1(pipeline);
  std::vector<std::string> names;
  std::vector<xdpp_counters> ended;
  for (const LiveStage& stage : pipeline.stages()) {
    auto map = stage.object->map(XDPP_COUNTERS_MAP_NAME);
    if (!map) return map.error();
    auto raw = read_stage_counters(map->fd, pipeline.counter_bases().slot);
    if (!raw) return fail("stage '", stage.spec.name, "': ", raw.error().message);
    names.push_back(stage.spec.name);
    ended.push_back(*raw);
  }
  return derive_counters(names, ended, pipeline.counter_bases());
}

Result<CounterTotals> stage_counters(const Pipeline& pipeline, int index) {
  auto all = chain_counters(pipeline);
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

Result<InterfaceTotals> interface_counters(const Pipeline& pipeline, int ifindex) {
  auto map = pipeline.root_object().map(XDPP_IF_COUNTERS_MAP_NAME);
  if (!map) return map.error();
  return read_interface_counters(map->fd, ifindex);
}

Result<PacketContexts> PacketContexts::map(const Pipeline& pipeline) {
  auto map = pipeline.root_object().map(XDPP_CONTEXT_SECTION);
  if (!map) return map.error();
  auto cpus = possible_cpus();
  if (!cpus) return cpus.error();
  if (map->value_size < static_cast<std::size_t>(*cpus) * XDPP_CONTEXT_LINE)
    return fail("packet context: ", std::to_string(map->value_size), " bytes hold fewer than ", std::to_string(*cpus),
                " CPUs' lines");
  auto data = map->mmap<xdpp_packet>();
  if (!data) return data.error();
  return PacketContexts(std::move(*data), *cpus);
}

Result<xdpp_packet> PacketContexts::of(int cpu) const {
  if (cpu < 0 || cpu >= cpus_) return fail("no CPU ", std::to_string(cpu));
  xdpp_packet packet;
  std::memcpy(&packet, &data_.as<const std::uint8_t>() + static_cast<std::size_t>(cpu) * XDPP_CONTEXT_LINE, sizeof packet);
  return packet;
}

Result<xdpp_packet> packet_context(const Pipeline& pipeline, int cpu) {
  auto contexts = PacketContexts::map(pipeline);
  if (!contexts) return contexts.error();
  return contexts->of(cpu);
}

}  // namespace xdpp
