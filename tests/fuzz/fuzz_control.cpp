// Fuzz target: the control protocol, one request line through control_reply(), which reads it into a
// typed control::Request as the daemon does, with a handler that puts what it read into its reply, as the
// daemon's error messages do. Every reply must be one line of valid
// JSON with a boolean "ok", whatever bytes came in.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "control.h"

namespace {

// Puts what the request carries into the reply, as the daemon's error messages do.
xdpp::control::Reply handle_like_the_daemon(const xdpp::control::Request& request) {
  using namespace xdpp::control;
  std::string detail = std::string("op '") + op_name(request) + "'";
  if (const auto* set = std::get_if<Set>(&request)) {
    detail += ", stage '" + set->stage + "'";
    for (const auto& assignment : set->assignments) detail += ", " + assignment;
  } else if (const auto* swap = std::get_if<Swap>(&request)) {
    detail += ", stage '" + swap->stage + "'";
    if (swap->object) detail += ", object " + *swap->object;
    if (swap->plugin) detail += ", plugin " + *swap->plugin;
    if (swap->reset_state) detail += ", fresh maps";
  } else {
    detail += ", file " + std::get<Reload>(request).file;
  }
  return Reply::failure("refused: " + detail);
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
