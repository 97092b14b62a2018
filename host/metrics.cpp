#include "metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

namespace xdpp {
namespace {

class CounterCollector final : public prometheus::Collectable {
 public:
  CounterCollector(std::string pipeline, std::function<std::vector<StageCounters>()> read)
      : pipeline_(std::move(pipeline)), read_(std::move(read)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    auto family = [](const char* name, const char* help) {
      return prometheus::MetricFamily{.name = name, .help = help, .type = prometheus::MetricType::Counter, .metric = {}};
    };
    prometheus::MetricFamily packets = family("xdp_pipeline_stage_packets_total", "Packets that entered the stage");
    prometheus::MetricFamily bytes = family("xdp_pipeline_stage_bytes_total", "Bytes of the packets that entered the stage");
    prometheus::MetricFamily verdicts = family("xdp_pipeline_stage_verdicts_total", "Packets whose verdict this stage decided, by verdict");
    prometheus::MetricFamily fell_off = family("xdp_pipeline_stage_fell_off_total", "Packets whose tail call to the next slot failed (empty slot)");
    prometheus::MetricFamily lost = family("xdp_pipeline_stage_events_lost_total", "Events dropped because a ring buffer was full");

    for (const StageCounters& stage : read_()) {
      std::vector<prometheus::ClientMetric::Label> labels = {
          {"pipeline", pipeline_}, {"stage", stage.stage}, {"plugin", stage.plugin}};
      auto add = [&](prometheus::MetricFamily& to, std::uint64_t value, const char* verdict = nullptr) {
        prometheus::ClientMetric metric;
        metric.label = labels;
        if (verdict) metric.label.push_back({"verdict", verdict});
        metric.counter.value = static_cast<double>(value);
        to.metric.push_back(std::move(metric));
      };
      add(packets, stage.counters.packets);
      add(bytes, stage.counters.bytes);
      for (std::uint32_t v = 0; v < XDPP_VERDICTS; ++v) add(verdicts, stage.counters.verdict[v], verdict_name(v));
      add(fell_off, stage.counters.fell_off);
      add(lost, stage.counters.events_lost);
    }
    // The build serving these metrics, as a gauge of 1 whose labels carry the information (the
    // Prometheus convention for build info).
    prometheus::MetricFamily build{.name = "xdp_pipeline_build_info",
                                   .help = "The xdp-pipeline build serving these metrics (always 1)",
                                   .type = prometheus::MetricType::Gauge,
                                   .metric = {}};
    prometheus::ClientMetric info;
    info.label = {{"pipeline", pipeline_}, {"version", XDPP_VERSION}};
    info.gauge.value = 1;
    build.metric.push_back(std::move(info));
    return {packets, bytes, verdicts, fell_off, lost, build};
  }

 private:
  std::string pipeline_;
  std::function<std::vector<StageCounters>()> read_;
};

class PrometheusServer final : public MetricsServer {
 public:
  PrometheusServer(std::unique_ptr<prometheus::Exposer> exposer, std::shared_ptr<CounterCollector> collector,
                   std::string address)
      : exposer_(std::move(exposer)), collector_(std::move(collector)), address_(std::move(address)) {
    exposer_->RegisterCollectable(collector_);
  }
  std::string address() const override { return address_; }

 private:
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<CounterCollector> collector_;
  std::string address_;
};

}  // namespace

Result<std::unique_ptr<MetricsServer>> serve_metrics(const std::string& address, const std::string& pipeline,
                                                     std::function<std::vector<StageCounters>()> read) {
  // A bare port means loopback: metrics are not published to the network unless asked for.
  std::string bind = address.find(':') == std::string::npos ? "127.0.0.1:" + address : address;
  try {
    // civetweb serves each connection on one of its threads until the connection ends: several threads,
    // a short read/write timeout and no keep-alive, so that idle or slow connections hold a thread for
    // at most request_timeout_ms and never stall the scrapes beside them.
    auto exposer = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", bind, "num_threads", std::to_string(kMetricsThreads), "request_timeout_ms",
        std::to_string(kMetricsRequestTimeout.count()), "enable_keep_alive", "no"});
    auto ports = exposer->GetListeningPorts();
    std::string bound = bind.substr(0, bind.rfind(':') + 1) + (ports.empty() ? "?" : std::to_string(ports.front()));
    return std::unique_ptr<MetricsServer>(
        std::make_unique<PrometheusServer>(std::move(exposer), std::make_shared<CounterCollector>(pipeline, std::move(read)), bound));
  } catch (const std::exception& error) {
    return fail("metrics on ", bind, ": ", error.what());
  }
}

}  // namespace xdpp
