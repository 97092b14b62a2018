#include "messages.h"

#include "json_fields.h"

namespace xdpp::control {
namespace {

using nlohmann::json;

// Keys of the wire format.
constexpr const char* kOp = "op";
constexpr const char* kStage = "stage";
constexpr const char* kObject = "object";
constexpr const char* kPlugin = "plugin";
constexpr const char* kResetState = "reset_state";
constexpr const char* kAssignments = "assignments";
constexpr const char* kFile = "file";
constexpr const char* kOk = "ok";
constexpr const char* kMessage = "message";
constexpr const char* kError = "error";
constexpr const char* kInvalid = "invalid";
constexpr const char* kLive = "live";
constexpr const char* kLatencyMs = "latency_ms";
constexpr const char* kTotalMs = "total_ms";
constexpr const char* kRoundTripMs = "round_trip_ms";

}  // namespace

const char* op_name(const Request& request) {
  return std::visit(
      [](const auto& r) -> const char* {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, Swap>) return "swap";
        else if constexpr (std::is_same_v<T, Set>) return "set";
        else return "reload";
      },
      request);
}

json to_json(const Request& request) {
  json out = {{kOp, op_name(request)}};
  if (const auto* swap = std::get_if<Swap>(&request)) {
    out[kStage] = swap->stage;
    out[kResetState] = swap->reset_state;
    if (swap->object) out[kObject] = *swap->object;
    if (swap->plugin) out[kPlugin] = *swap->plugin;
  } else if (const auto* set = std::get_if<Set>(&request)) {
    out[kStage] = set->stage;
    out[kAssignments] = set->assignments;
    out[kResetState] = set->reset_state;
  } else {
    out[kFile] = std::get<Reload>(request).file;
  }
  return out;
}

Result<Request> request_from_json(const json& object) {
  if (!object.is_object()) return fail("a request is a JSON object");
  std::string op;
  XDPP_TRY(read_key(object, kOp, op, true, "a string"));
  if (op == "swap") {
    Swap swap;
    XDPP_TRY(read_key(object, kStage, swap.stage, true, "a string"));
    XDPP_TRY(read_optional(object, kObject, swap.object, "a string"));
    XDPP_TRY(read_optional(object, kPlugin, swap.plugin, "a string"));
    XDPP_TRY(read_key(object, kResetState, swap.reset_state, false, "a boolean"));
    return Request{std::move(swap)};
  }
  if (op == "set") {
    Set set;
    XDPP_TRY(read_key(object, kStage, set.stage, true, "a string"));
    XDPP_TRY(read_key(object, kAssignments, set.assignments, true, "an array of strings"));
    XDPP_TRY(read_key(object, kResetState, set.reset_state, false, "a boolean"));
    return Request{std::move(set)};
  }
  if (op == "reload") {
    Reload reload;
    XDPP_TRY(read_key(object, kFile, reload.file, false, "a string"));
    return Request{std::move(reload)};
  }
  return fail("unknown request '", op, "'");
}

json to_json(const Reply& reply) {
  json out = {{kOk, reply.ok}};
  if (reply.ok) {
    out[kMessage] = reply.message;
    out[kLatencyMs] = reply.latency_ms;
    out[kTotalMs] = reply.total_ms;
  } else {
    out[kError] = reply.error;
    out[kInvalid] = reply.invalid;
    if (reply.live) out[kLive] = true;
  }
  if (reply.round_trip_ms) out[kRoundTripMs] = *reply.round_trip_ms;
  return out;
}

Result<Reply> reply_from_json(const json& object) {
  if (!object.is_object()) return fail("the daemon's reply is not a JSON object");
  Reply reply;
  XDPP_TRY(read_key(object, kOk, reply.ok, true, "a boolean"));
  XDPP_TRY(read_key(object, kMessage, reply.message, false, "a string"));
  XDPP_TRY(read_key(object, kError, reply.error, false, "a string"));
  XDPP_TRY(read_key(object, kInvalid, reply.invalid, false, "a boolean"));
  XDPP_TRY(read_key(object, kLive, reply.live, false, "a boolean"));
  XDPP_TRY(read_key(object, kLatencyMs, reply.latency_ms, false, "a number"));
  XDPP_TRY(read_key(object, kTotalMs, reply.total_ms, false, "a number"));
  XDPP_TRY(read_optional(object, kRoundTripMs, reply.round_trip_ms, "a number"));
  return reply;
}

}  // namespace xdpp::control
