// The control channel of a running pipeline: a unix socket /run/xdp-pipeline/NAME.sock, mode 0600 in a
// 0700 root-owned directory, and peers checked to be uid 0. One JSON request line, one JSON reply line.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "bpf_object.h"
#include "messages.h"
#include <xdp_pipeline/result.h>

namespace xdpp {

/// Turns one request into its reply. May throw: the server answers what it throws as an error.
using ControlHandler = std::function<control::Reply(const control::Request&)>;

/// How long one client may take to send its whole request line, and to take the reply.
inline constexpr std::chrono::milliseconds kControlRequestDeadline{5000};
/// Clients served at once; more are answered "busy" and closed.
inline constexpr std::size_t kControlMaxClients = 32;
/// The longest request line accepted.
inline constexpr std::size_t kControlMaxRequest = 1u << 20;

class ControlServer {
 public:
  /// Listens on the socket of pipeline `name`; refuses when a live pipeline of that name answers there.
  static Result<std::unique_ptr<ControlServer>> listen(const std::string& name);
  ~ControlServer();

  /// Serves clients until `stop` is set (checked at least every 100 ms). Reading and writing are
  /// non-blocking and many clients are served at once, so an idle or trickling client costs the others
  /// nothing; each has kControlRequestDeadline for its whole request. Requests are handled one at a time,
  /// in the order they complete; one whose client has hung up meanwhile is dropped, not applied.
  void serve(const ControlHandler& handler, const std::atomic<bool>& stop);

 private:
  ControlServer() = default;
  UniqueFd listener_;
  std::string path_;
};

/// The reply line (with its newline) to one request line: invalid JSON, a request that is not one of
/// control::Request (answered as invalid), a handler that throws and any byte that is not UTF-8 all give
/// a well-formed {"ok": false, "error": ...}. Never throws.
std::string control_reply(std::string_view line, const ControlHandler& handler) noexcept;

/// Sends `request` to the pipeline `name` (or the only one running) and returns its reply.
Result<control::Reply> control_request(const std::optional<std::string>& name, const control::Request& request);

}  // namespace xdpp
