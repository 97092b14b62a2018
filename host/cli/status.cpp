// `status`: the counters of running pipelines, read from their pinned maps, from any root shell.
#include <bpf/bpf.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include "bpf_object.h"
#include "commands.h"
#include "json_text.h"
#include "log.h"
#include "state.h"

namespace xdpp {
namespace {

volatile sig_atomic_t stop_watch = 0;
void on_stop(int) { stop_watch = 1; }

struct Sample {
  std::map<std::string, CounterTotals> counters;  // by stage name, and the whole pipeline's under kPipelineRow
  std::map<std::string, InterfaceTotals> interfaces;  // by interface name
  std::chrono::steady_clock::time_point at;
};

// The key of the pipeline's total: no stage can be called that (config.cpp reserves "dispatcher", and a
// stage name has no parentheses).
const std::string kPipelineRow = "(pipeline)";

// The counters are derived as the daemon derives them (derive_counters): what each stage counted, read by
// map id (that works from any mount namespace, pinned or not), in the chain order and with the counter
// bases the state file records.
Result<Sample> sample(const RunState& run) {
  Sample result;
  result.at = std::chrono::steady_clock::now();
  if (!run.problem.empty()) return fail("its state file cannot be read: ", run.problem);
  const CounterBases& bases = run.counter_bases;
  std::vector<std::string> names;
  std::vector<xdpp_counters> ended;
  for (const state::Stage& stage : run.stages) {
    UniqueFd fd(bpf_map_get_fd_by_id(stage.counters_map_id));
    if (!fd) return fail("counters map id ", std::to_string(stage.counters_map_id), ": ", std::strerror(errno));
    auto counted = read_stage_counters(fd.get(), bases.slot);
    if (!counted) return counted.error();
    names.push_back(stage.name);
    ended.push_back(*counted);
  }
  ChainCounters chain = derive_counters(names, ended, bases);
  result.counters[kPipelineRow] = chain.pipeline;
  for (std::size_t i = 0; i < names.size(); ++i) result.counters[names[i]] = chain.stages[i];
  // What the pipeline received on each interface it is attached to: with one interface, everything it
  // received (the entry stage counts per interface only for several).
  const auto& interfaces = run.interfaces;
  if (interfaces.size() == 1) {
    result.interfaces[interfaces[0].name] = {.packets = chain.pipeline.packets};
  } else if (std::uint32_t id = run.dispatcher.interfaces_map_id; id && interfaces.size() > 1) {
    UniqueFd fd(bpf_map_get_fd_by_id(id));
    if (!fd) return fail("interface counters map id ", std::to_string(id), ": ", std::strerror(errno));
    for (const state::Interface& interface : interfaces)
      if (auto totals = read_interface_counters(fd.get(), interface.ifindex)) result.interfaces[interface.name] = *totals;
  }
  return result;
}

// A sample taken under the state file that is current while the maps are read, and `run` made that state.
// The counters are only meaningful with the slot and bases of the state they were read under, and a state
// goes stale fast: a reload publishes another slot and bases, and the reload after it zeroes the slot the
// first one left (its counts are in the bases by then). Hence, as a seqlock: the state, the maps, the state
// again; a sample whose state changed meanwhile (or whose maps went away with it) is taken again. A zeroed
// slot is only ever seen after the publish that made it unused, so the second read catches it.
Result<Sample> consistent_sample(RunState& run) {
  for (int attempt = 0;; ++attempt) {
    auto taken = sample(run);
    auto current = read_run_state(run.name);
    if (!current) return fail("the state file is gone: the pipeline stopped");
    const bool unchanged = state::to_json(*current) == state::to_json(run) && current->problem == run.problem;
    run = std::move(*current);
    if (unchanged) return taken;
    if (attempt == 20) return fail("the pipeline changed during each of 20 reads of its counters; try again");
  }
}

double rate(const Sample& before, const Sample& after, const std::string& key) {
  double seconds = std::chrono::duration<double>(after.at - before.at).count();
  if (seconds <= 0) return 0;
  const auto then = before.counters.at(key).packets, now = after.counters.at(key).packets;
  return now < then ? 0 : (now - then) / seconds;
}

nlohmann::json status_json(const RunState& run, bool daemon, const Sample& before, const Sample& after) {
  nlohmann::json json = {{"name", run.name},
                         {"state", daemon ? "running" : "running, no daemon (persisted)"},
                         {"daemon", daemon},
                         {"persist", run.persist},
                         {"interface", run.interface},
                         {"mode", run.mode},
                         {"link_id", run.link_id},
                         {"pid", run.pid},
                         {"version", run.version ? nlohmann::json(*run.version) : nlohmann::json()},
                         {"file", run.file},
                         {"pipeline",
                          {{"prog_id", run.entry_prog_id},
                           {"counters", state::counter_totals_json(after.counters.at(kPipelineRow))},
                           {"packets_per_second", rate(before, after, kPipelineRow)}}}};
  nlohmann::json stages = nlohmann::json::array();
  for (const state::Stage& stage : run.stages) {
    stages.push_back({{"name", stage.name},
                      {"plugin", stage.plugin},
                      {"slot", stage.slot},
                      {"prog_id", stage.prog_id},
                      {"counters", state::counter_totals_json(after.counters.at(stage.name))},
                      {"packets_per_second", rate(before, after, stage.name)}});
  }
  json["stages"] = std::move(stages);
  nlohmann::json interfaces = nlohmann::json::array();
  for (const state::Interface& interface : run.interfaces) {
    const std::string& name = interface.name;
    nlohmann::json entry = {{"name", name}, {"ifindex", interface.ifindex}, {"mode", interface.mode},
                            {"link_id", interface.link_id}};
    if (after.interfaces.count(name)) {
      const InterfaceTotals& now = after.interfaces.at(name);
      double seconds = std::chrono::duration<double>(after.at - before.at).count();
      std::uint64_t then = before.interfaces.count(name) ? before.interfaces.at(name).packets : now.packets;
      entry["packets"] = now.packets;
      entry["packets_per_second"] = seconds > 0 && now.packets >= then ? (now.packets - then) / seconds : 0.0;
    }
    interfaces.push_back(std::move(entry));
  }
  json["interfaces"] = std::move(interfaces);
  return json;
}

void print_table(const nlohmann::json& status) {
  const std::string who = status["daemon"].get<bool>() ? "pid " + std::to_string(status["pid"].get<int>()) +
                                                             (status["persist"].get<bool>() ? ", persisted" : "")
                                                       : status["state"].get<std::string>();
  std::printf("pipeline %s: %s, %s mode, link id %llu, %s\n", status["name"].get<std::string>().c_str(),
              status["interface"].get<std::string>().c_str(), status["mode"].get<std::string>().c_str(),
              status["link_id"].get<unsigned long long>(), who.c_str());
  std::printf("  %-4s %-16s %-12s %7s %12s %10s %10s %10s %10s %8s %8s %8s %8s\n", "slot", "stage", "plugin", "prog",
              "packets", "pps", "drop", "pass", "tx", "redirect", "aborted", "fell_off", "ev_lost");
  auto row = [](const std::string& slot, const std::string& name, const std::string& plugin, const nlohmann::json& entry) {
    const auto& c = entry["counters"];
    std::printf("  %-4s %-16s %-12s %7llu %12llu %10.0f %10llu %10llu %10llu %8llu %8llu %8llu %8llu\n", slot.c_str(),
                name.c_str(), plugin.c_str(), entry["prog_id"].get<unsigned long long>(),
                c["packets"].get<unsigned long long>(), entry["packets_per_second"].get<double>(),
                c["drop"].get<unsigned long long>(), c["pass"].get<unsigned long long>(),
                c["tx"].get<unsigned long long>(), c["redirect"].get<unsigned long long>(),
                c["aborted"].get<unsigned long long>(), c["fell_off"].get<unsigned long long>(),
                c["events_lost"].get<unsigned long long>());
  };
  row("-", kPipelineRow, "-", status["pipeline"]);
  for (const auto& interface : status.value("interfaces", nlohmann::json::array()))
    if (interface.contains("packets"))
      std::printf("  %-4s %-16s %-12s %7llu %12llu %10.0f\n", "if", interface["name"].get<std::string>().c_str(),
                  interface["mode"].get<std::string>().c_str(), interface["link_id"].get<unsigned long long>(),
                  interface["packets"].get<unsigned long long>(), interface["packets_per_second"].get<double>());
  for (const auto& stage : status["stages"])
    row(std::to_string(stage["slot"].get<int>()), stage["name"], stage["plugin"], stage);
}

}  // namespace

int command_status(const CommandOptions& options) {
  if (geteuid() != 0) {
    log::error("status needs root: the pipeline's pinned maps and state are root-only");
    return kExitFailure;
  }
  std::optional<std::string> name;
  if (!options.file.empty()) name = options.file;
  auto runs = published_runs(name);
  if (runs.empty()) {
    log::error(name ? "no pipeline named '" + *name + "' is running" : "no pipeline is running");
    return kExitFailure;
  }
  signal(SIGINT, on_stop);
  signal(SIGTERM, on_stop);
  std::map<std::string, Sample> previous;
  do {
    // A swap with fresh maps or a reload changes map ids: read the state anew each refresh.
    runs = published_runs(name);
    nlohmann::json all = nlohmann::json::array();
    std::string screen;
    for (RunState run : runs) {
      const bool daemon = run.alive();
      if (!daemon && !run.persisted()) {
        const std::string gone = "pipeline '" + run.name + "': its run (pid " + std::to_string(run.pid) +
                                 ") is gone; the next run of that name removes its leftovers";
        // The one asked for is not running: that is the answer, and not a success.
        if (name) {
          log::error(gone);
          return kExitFailure;
        }
        log::warn(gone);
        continue;
      }
      // Rates need two samples: the previous refresh's, or one taken a moment ago.
      if (!previous.count(run.name)) {
        auto first = consistent_sample(run);
        if (!first) {
          log::error("pipeline '" + run.name + "': " + first.error().message);
          return kExitFailure;
        }
        previous[run.name] = *first;
        std::this_thread::sleep_for(std::chrono::milliseconds(options.watch ? 1000 : 250));
      }
      auto now = consistent_sample(run);  // under the state now current, not the one read before the pause
      if (!now) {
        log::error("pipeline '" + run.name + "': " + now.error().message);
        return kExitFailure;
      }
      all.push_back(status_json(run, daemon, previous[run.name], *now));
      previous[run.name] = *now;
    }
    if (all.empty() && !options.watch) {
      log::error("no pipeline is running");
      return kExitFailure;
    }
    if (options.watch && !options.json) std::printf("\033[H\033[2J");
    if (options.json) {
      std::printf("%s\n", json_text(name && all.size() == 1 ? all[0] : nlohmann::json{{"pipelines", all}}).c_str());
    } else {
      for (const auto& status : all) print_table(status);
    }
    std::fflush(stdout);
    if (options.watch)
      for (int i = 0; i < 10 && !stop_watch; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (options.watch && !stop_watch);
  return 0;
}

}  // namespace xdpp
