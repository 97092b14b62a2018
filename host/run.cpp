// `run` and `check`.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "commands.h"
#include "interface.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "state.h"

namespace xdpp {
namespace {

volatile sig_atomic_t stop_signal = 0;

void on_stop(int signal) { stop_signal = signal; }

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: a signal interrupts the ring-buffer poll at once
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

void print_stages(Pipeline& pipeline) {
  for (const LiveStage& stage : pipeline.stages()) {
    std::string line = "  [" + std::to_string(stage.slot) + "] " + stage.spec.name + " (plugin " +
                       stage.spec.plugin_name + ", prog id " + std::to_string(stage.prog_id) + ")";
    std::string described = stage.spec.stage->describe();
    if (!described.empty()) line += ": " + described;
    log::info(line);
  }
}

}  // namespace

Result<PipelineSpec> read_pipeline(const CommandOptions& options) {
  auto spec = load_pipeline_file(options.file, options.overrides, SearchPaths::builtin());
  if (!spec) log::error(spec.error().message);
  return spec;
}

int command_check(const CommandOptions& options) {
  auto spec = read_pipeline(options);
  if (!spec) return kExitUsage;
  std::printf("%s: pipeline '%s', %zu stages, valid\n", options.file.c_str(), spec->name.c_str(), spec->stages.size());
  return 0;
}

int command_run(const CommandOptions& options) {
  if (options.overrides.mode == AttachMode::offload) {
    log::error("--mode offload is impossible for a pipeline: it is built on bpf_tail_call through a "
               "BPF_MAP_TYPE_PROG_ARRAY, which no offloading driver supports; use native, generic or auto");
    return kExitUsage;
  }
  auto spec = read_pipeline(options);
  if (!spec) return kExitUsage;
  if (geteuid() != 0) {
    log::error("run needs root (CAP_BPF and CAP_NET_ADMIN) to load and attach XDP programs");
    return kExitFailure;
  }
  if (options.netns) {
    if (auto entered = enter_netns(*options.netns); !entered) {
      log::error(entered.error().message);
      return kExitFailure;
    }
  }
  auto interface = lookup_interface(spec->interface);
  if (!interface) {
    log::error(interface.error().message);
    return kExitFailure;
  }
  const AttachMode wanted = spec->mode;
  const std::string name = spec->name;
  auto pipeline = Pipeline::load(std::move(*spec), SearchPaths::builtin(), *interface);
  if (!pipeline) {
    log::error("pipeline '" + name + "': " + pipeline.error().message);
    return kExitFailure;
  }
  install_stop_handlers();
  auto mode = (*pipeline)->attach(wanted);
  if (!mode) {
    log::error("pipeline '" + name + "': " + mode.error().message);
    return kExitFailure;
  }
  log::info("pipeline '" + name + "' attached to " + interface->name + " in " + to_string(*mode) + " mode" +
            (wanted == AttachMode::automatic ? " (auto)" : "") + " (link id " + std::to_string((*pipeline)->link_id()) +
            ", dispatcher prog id " + std::to_string((*pipeline)->dispatcher_prog_id()) + ")");
  print_stages(**pipeline);

  if (auto published = publish(**pipeline, to_string(*mode)); !published) {
    log::error("pipeline '" + name + "': " + published.error().message);
    return kExitFailure;  // the pipeline's destructor detaches it
  }
  // Removes the pins and the state file however this function returns.
  std::unique_ptr<const std::string, void (*)(const std::string*)> unpublish_on_exit(&name, [](const std::string* n) { unpublish(*n); });
  log::info("pipeline '" + name + "': maps pinned under " + (kPinRoot / name).string() + ", state in " +
            (kRunRoot / (name + ".json")).string());

  std::unique_ptr<MetricsServer> metrics;
  if ((*pipeline)->spec().metrics) {
    Pipeline* live = pipeline->get();
    auto served = serve_metrics(*(*pipeline)->spec().metrics, name, [live] {
      std::vector<StageCounters> all;
      if (auto counters = live->counters(-1)) all.push_back({"dispatcher", "", *counters});
      for (std::size_t i = 0; i < live->stages().size(); ++i)
        if (auto counters = live->counters(static_cast<int>(i)))
          all.push_back({live->stages()[i].spec.name, live->stages()[i].spec.plugin_name, *counters});
      return all;
    });
    if (!served) {
      log::error("pipeline '" + name + "': " + served.error().message);
      return kExitFailure;
    }
    metrics = std::move(*served);
    log::info("pipeline '" + name + "': metrics at http://" + metrics->address() + "/metrics");
  }

  // stdout carries the events, one per line, flushed as they come so that a pipe sees them at once.
  EventHandler print = [](const std::string&, EventRecord record) {
    std::fputs(record.text.c_str(), stdout);
    std::fputc('\n', stdout);
  };
  int status = 0;
  while (!stop_signal) {
    auto polled = (*pipeline)->poll_events(100, print);
    std::fflush(stdout);
    if (!polled) {
      log::error(polled.error().message);
      status = kExitFailure;
      break;
    }
  }
  (*pipeline)->detach();
  log::info("pipeline '" + name + "' detached from " + interface->name +
            (stop_signal ? std::string(" (") + strsignal(stop_signal) + ")" : ""));
  return status;
}

}  // namespace xdpp
