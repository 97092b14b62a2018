// `check` and `run`: the pipeline file read and checked; `run` hands it to the daemon (daemon/daemon.h).
#include <unistd.h>

#include <cstdio>

#include "commands.h"
#include "daemon.h"
#include "log.h"
#include "pipeline.h"
#include "stage_loader.h"

namespace xdpp {

Result<PipelineSpec> read_pipeline(const CommandOptions& options, std::string* text) {
  auto read = read_pipeline_text(options.file);
  auto spec = read ? parse_pipeline(*read, options.file, options.overrides, SearchPaths::builtin())
                   : Result<PipelineSpec>(read.error());
  if (!spec) log::error(spec.error().message);
  if (spec && text) *text = std::move(*read);
  return spec;
}

int command_check(const CommandOptions& options) {
  auto spec = read_pipeline(options);
  if (!spec) return kExitUsage;
  // What `run` and `replay` would refuse later (not an ELF, another architecture, no stage contract) is
  // refused here: every object is opened, none is loaded.
  if (auto objects = check_stage_objects(*spec); !objects) {
    log::error(objects.error().message);
    return kExitUsage;
  }
  std::printf("%s: pipeline '%s', %zu stages, valid\n", options.file.c_str(), spec->name.c_str(), spec->stages.size());
  return 0;
}

int command_run(const CommandOptions& options) {
  if (options.overrides.mode == AttachMode::offload) {
    log::error(std::string("--mode ") + kOffloadReason);  // "--mode offload is impossible ..."
    return kExitUsage;
  }
  std::string text;  // as read: what --watch compares the file with
  auto spec = read_pipeline(options, &text);
  if (!spec) return kExitUsage;
  if (geteuid() != 0) {
    log::error("run needs root (CAP_BPF and CAP_NET_ADMIN) to load and attach XDP programs: run it from a root "
               "shell, or with sudo");
    return kExitFailure;
  }
  DaemonOptions daemon{.file = options.file,
                       .overrides = options.overrides,
                       .netns = options.netns,
                       .metrics_in_pipeline_netns = options.metrics_in_pipeline_netns,
                       .reset_state = options.reset_state,
                       .watch = options.watch};
  return run_daemon(std::move(*spec), text, daemon);
}

}  // namespace xdpp
