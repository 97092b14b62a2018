// The clients of a running pipeline's control channel: swap, set, reload.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "control.h"
#include "json_text.h"
#include "log.h"

namespace xdpp {
namespace {

// Paths travel as absolute ones: the daemon's working directory is not the client's.
std::string absolute(const std::string& path) { return std::filesystem::absolute(path).lexically_normal().string(); }

// A path must reach the daemon byte for byte, and JSON carries only UTF-8: other bytes would arrive as
// U+FFFD and name another file. Refused here, with the way around.
bool path_travels(const std::string& path, const char* what) {
  if (is_utf8(path)) return true;
  log::error(std::string(what) + " '" + path + "': the path is not UTF-8, which the control channel (JSON) cannot carry; "
             "rename it (or, for the running pipeline's own file, send SIGHUP to `run`)");
  return false;
}

int send(const CommandOptions& options, const control::Request& request) {
  if (geteuid() != 0) {
    log::error("the control channel of a running pipeline is for root only");
    return kExitFailure;
  }
  const auto started = std::chrono::steady_clock::now();
  auto reply = control_request(options.pipeline, request);
  if (!reply) {
    log::error(reply.error().message);
    return kExitFailure;
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  if (options.json) {
    reply->round_trip_ms = ms;
    std::printf("%s\n", json_text(control::to_json(*reply)).c_str());
  }
  if (!reply->ok) {
    if (!options.json) log::error(reply->error.empty() ? "refused" : reply->error);
    // A request the daemon found invalid exits 2, as `check` does for a bad file; a valid change that
    // failed while being applied exits 1. Either way the running pipeline is unchanged.
    return reply->invalid ? kExitUsage : kExitFailure;
  }
  if (!options.json)
    std::printf("%s (live in %.2f ms, round trip %.2f ms)\n", reply->message.c_str(), reply->latency_ms, ms);
  return 0;
}

}  // namespace

int command_swap(const CommandOptions& options) {
  control::Swap request;
  request.stage = options.file;
  request.reset_state = options.reset_state;
  if (options.object && !path_travels(*options.object, "--object")) return kExitUsage;
  if (options.plugin && !path_travels(*options.plugin, "--plugin")) return kExitUsage;
  if (options.object) request.object = absolute(*options.object);
  if (options.plugin) request.plugin = absolute(*options.plugin);
  return send(options, request);
}

int command_set(const CommandOptions& options) {
  if (options.args.empty()) {
    log::error("set needs KEY=VALUE after the stage name");
    return kExitUsage;
  }
  return send(options, control::Set{.stage = options.file, .assignments = options.args,
                                    .reset_state = options.reset_state});
}

int command_reload(const CommandOptions& options) {
  if (!path_travels(absolute(options.file), "reload")) return kExitUsage;
  return send(options, control::Reload{.file = absolute(options.file)});
}

}  // namespace xdpp
