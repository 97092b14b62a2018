// Prometheus text format at http://ADDR:PORT/metrics (prometheus-cpp), one series per stage and verdict.
#pragma once

#include <chrono>
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

class MetricsServer {
 public:
  virtual ~MetricsServer() = default;
  /// The address actually bound ("127.0.0.1:9100").
  virtual std::string address() const = 0;
};

/// Scrapes served at once, and how long one connection may take to send its request or take the reply.
inline constexpr int kMetricsThreads = 8;
inline constexpr std::chrono::milliseconds kMetricsRequestTimeout{2000};

/// Serves the counters that `read` returns at each scrape. `address` is "PORT" (loopback) or "ADDR:PORT".
Result<std::unique_ptr<MetricsServer>> serve_metrics(const std::string& address, const std::string& pipeline,
                                                     std::function<std::vector<StageCounters>()> read);

}  // namespace xdpp
