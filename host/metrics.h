// Prometheus text format at http://ADDR:PORT/metrics (prometheus-cpp), one series per stage and verdict, and
// the /healthz and /readyz probes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pipeline.h"

namespace xdpp {

/// Counters of one stage ("dispatcher" included) at the moment of a scrape.
struct StageCounters {
  std::string stage;
  std::string plugin;
  CounterTotals counters;
};

/// What the running daemon tells its probes and the metrics beside the counters. The daemon's threads
/// write it, the HTTP threads read it.
struct DaemonHealth {
  std::atomic<bool> attached{false};  // the pipeline is attached and its event readers run
  std::atomic<bool> changing{false};  // a change (swap, set, reload) is being applied
  std::atomic<std::int64_t> heartbeat_ms{0};  // the event loop's last turn, steady clock
  std::atomic<std::uint64_t> reloads_succeeded{0};
  std::atomic<std::uint64_t> reloads_failed{0};

  /// The event loop calls this on every turn (at least every 100 ms).
  void beat() { heartbeat_ms = now_ms(); }
  /// /healthz: the loop turned within the last 10 s (a reload that loads and verifies a chain takes well
  /// under that).
  bool alive() const { return now_ms() - heartbeat_ms.load() < 10'000; }
  /// /readyz: attached, readers running, no change half-applied, loop alive.
  bool ready() const { return attached && !changing && alive(); }

  static std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
};

class MetricsServer {
 public:
  virtual ~MetricsServer() = default;
  /// The address actually bound ("127.0.0.1:9100").
  virtual std::string address() const = 0;
};

/// Scrapes served at once, and how long one connection may take to send its request or take the reply.
inline constexpr int kMetricsThreads = 8;
inline constexpr std::chrono::milliseconds kMetricsRequestTimeout{2000};

/// Serves the counters that `read` returns at each scrape at /metrics, with xdp_pipeline_up,
/// xdp_pipeline_config_reloads_total{result} and xdp_pipeline_build_info from `health`; and the probes
/// /healthz (200 while the event loop turns) and /readyz (200 once attached, 503 before and while a change
/// is applied). `address` is "PORT" (loopback) or "ADDR:PORT".
Result<std::unique_ptr<MetricsServer>> serve_metrics(const std::string& address, const std::string& pipeline,
                                                     std::function<std::vector<StageCounters>()> read,
                                                     std::shared_ptr<const DaemonHealth> health);

}  // namespace xdpp
