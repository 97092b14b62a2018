// The messages of the control channel, typed: what a client (swap, set, reload) sends and what the daemon
// answers. The wire format is one JSON object per line; every key is spelt here and nowhere else, and the
// daemon, the CLI and the tests read and write messages through these structs.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>
#include <xdp_pipeline/result.h>

namespace xdpp::control {

/// `swap STAGE [--object PATH] [--plugin PATH] [--reset-state]`: paths absolute (the daemon's working
/// directory is not the client's).
struct Swap {
  std::string stage;
  std::optional<std::string> object;
  std::optional<std::string> plugin;
  bool reset_state = false;
};

/// `set STAGE KEY=VALUE... [--reset-state]`.
struct Set {
  std::string stage;
  std::vector<std::string> assignments;
  bool reset_state = false;
};

/// `reload [FILE]`: empty file = the running pipeline's own file.
struct Reload {
  std::string file;
};

using Request = std::variant<Swap, Set, Reload>;

/// The request's name on the wire ("swap", "set", "reload").
const char* op_name(const Request& request);

nlohmann::json to_json(const Request& request);
/// The request in `json`, checked: an unknown op, a missing key or a value of the wrong type is an
/// error that names it (the daemon answers it as an invalid request).
Result<Request> request_from_json(const nlohmann::json& json);

/// The daemon's answer. ok: the change is live. Otherwise `error` says why; `invalid` marks a request that
/// was wrong in itself (the client exits 2, as `check` does), `live` a change that took effect although
/// something after it (the state file) failed.
struct Reply {
  bool ok = false;
  std::string message;             // ok: what was done
  std::string error;               // !ok
  bool invalid = false;
  bool live = false;
  double latency_ms = 0;           // request to live: until the switch (chain slot, bpf_link or maps)
  double total_ms = 0;             // with the state file rewritten
  std::optional<double> round_trip_ms;  // added by the client, for --json

  static Reply success(std::string message, double latency_ms, double total_ms) {
    Reply reply;
    reply.ok = true;
    reply.message = std::move(message);
    reply.latency_ms = latency_ms;
    reply.total_ms = total_ms;
    return reply;
  }
  static Reply failure(std::string error, bool invalid = false) {
    Reply reply;
    reply.error = std::move(error);
    reply.invalid = invalid;
    return reply;
  }
};

nlohmann::json to_json(const Reply& reply);
/// A reply as it came from a daemon; missing keys take their defaults, `ok` must be there.
Result<Reply> reply_from_json(const nlohmann::json& json);

}  // namespace xdpp::control
