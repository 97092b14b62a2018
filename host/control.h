// The control channel of a running pipeline: a unix socket /run/xdp-pipeline/NAME.sock, mode 0600 in a
// 0700 root-owned directory, and peers checked to be uid 0. One JSON request line, one JSON reply line.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "bpf_object.h"
#include <xdp_pipeline/result.h>

namespace xdpp {

class ControlServer {
 public:
  /// Listens on the socket of pipeline `name`; refuses when a live pipeline of that name answers there.
  static Result<std::unique_ptr<ControlServer>> listen(const std::string& name);
  ~ControlServer();

  int fd() const { return listener_.get(); }
  /// Accepts one client, reads its request, answers with handler(request). Never throws.
  void serve_one(const std::function<nlohmann::json(const nlohmann::json&)>& handler);

 private:
  ControlServer() = default;
  UniqueFd listener_;
  std::string path_;
};

/// Sends `request` to the pipeline `name` (or the only one running) and returns its reply.
Result<nlohmann::json> control_request(const std::optional<std::string>& name, const nlohmann::json& request);

}  // namespace xdpp
