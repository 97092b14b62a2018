// Fuzz target: the control protocol, one request line through control_reply() with a handler that reads
// the request the way the daemon's does (op, stage, assignments, object, plugin, reset_state) and puts
// what it read into its reply, as the daemon's error messages do. Every reply must be one line of valid
// JSON with a boolean "ok", whatever bytes came in.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "control.h"

namespace {

nlohmann::json handle_like_the_daemon(const nlohmann::json& request) {
  const std::string op = request.value("op", "");
  const std::string stage = request.value("stage", "");
  std::string detail = "op '" + op + "', stage '" + stage + "'";
  if (op == "set")
    for (const auto& assignment : request.value("assignments", std::vector<std::string>{})) detail += ", " + assignment;
  if (op == "swap") {
    if (request.contains("object")) detail += ", object " + request["object"].get<std::string>();
    if (request.contains("plugin")) detail += ", plugin " + request["plugin"].get<std::string>();
    if (request.value("reset_state", false)) detail += ", fresh maps";
  }
  if (op == "reload") detail += ", file " + request.value("file", "");
  return {{"ok", false}, {"error", "refused: " + detail}};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  const std::string reply = xdpp::control_reply(line, handle_like_the_daemon);
  if (reply.empty() || reply.back() != '\n' || reply.find('\n') != reply.size() - 1) std::abort();
  auto json = nlohmann::json::parse(reply, nullptr, false);  // the client's side: must parse
  if (json.is_discarded() || !json.contains("ok") || !json["ok"].is_boolean()) std::abort();
  return 0;
}
