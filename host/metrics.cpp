#include "metrics.h"

#include <CivetServer.h>
#include <civetweb.h>

#include <cstring>
#include <map>
#include <mutex>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

namespace xdpp {
namespace {

class CounterCollector final : public prometheus::Collectable {
 public:
  CounterCollector(std::string pipeline, std::function<std::vector<StageCounters>()> read,
                   std::shared_ptr<const DaemonHealth> health)
      : pipeline_(std::move(pipeline)), read_(std::move(read)), health_(std::move(health)) {}

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
    // Prometheus convention for build info): the version `xdp-pipeline --version` prints.
    prometheus::MetricFamily build = gauge("xdp_pipeline_build_info", "The xdp-pipeline build serving these metrics (always 1)",
                                           {{"version", XDPP_VERSION}}, 1);
    prometheus::MetricFamily up = gauge("xdp_pipeline_up", "1 while the pipeline is attached and its event readers run, else 0",
                                        {}, health_->attached ? 1 : 0);
    prometheus::MetricFamily reloads = family("xdp_pipeline_config_reloads_total",
                                              "Reloads of the pipeline file (watch, SIGHUP, reload), by result; a failed one "
                                              "changed nothing");
    for (auto [result, count] : {std::pair{"success", health_->reloads_succeeded.load()},
                                 std::pair{"failure", health_->reloads_failed.load()}}) {
      prometheus::ClientMetric metric;
      metric.label = {{"pipeline", pipeline_}, {"result", result}};
      metric.counter.value = static_cast<double>(count);
      reloads.metric.push_back(std::move(metric));
    }
    return {packets, bytes, verdicts, fell_off, lost, build, up, reloads};
  }

 private:
  // A family of one gauge labelled with the pipeline and `labels`.
  prometheus::MetricFamily gauge(const char* name, const char* help, std::vector<prometheus::ClientMetric::Label> labels,
                                 double value) const {
    prometheus::ClientMetric metric;
    metric.label = {{"pipeline", pipeline_}};
    metric.label.insert(metric.label.end(), labels.begin(), labels.end());
    metric.gauge.value = value;
    return {.name = name, .help = help, .type = prometheus::MetricType::Gauge, .metric = {std::move(metric)}};
  }

  std::string pipeline_;
  std::function<std::vector<StageCounters>()> read_;
  std::shared_ptr<const DaemonHealth> health_;
};

// The probes. prometheus::Exposer serves only collectables, so the probes are answered in civetweb's
// begin_request hook, which runs before Exposer's handlers. The hook gets no user data of ours, so the
// health it reports is looked up by the port the request came in on.
std::mutex probe_mutex;
std::map<int, std::shared_ptr<const DaemonHealth>> probe_health;  // by listening port

int answer_probe(mg_connection* connection) {
  const mg_request_info* request = mg_get_request_info(connection);
  const std::string uri = request->local_uri ? request->local_uri : "";
  if (uri != "/healthz" && uri != "/readyz") return 0;  // civetweb goes on to /metrics
  std::shared_ptr<const DaemonHealth> health;
  {
    std::lock_guard lock(probe_mutex);
    if (auto found = probe_health.find(request->server_port); found != probe_health.end()) health = found->second;
  }
  bool good = false;
  const char* why = "starting";
  if (health && uri == "/healthz") {
    good = health->alive();
    why = good ? "alive" : "the daemon's event loop has not turned for 10 s";
  } else if (health) {
    good = health->ready();
    why = good ? "attached" : !health->attached ? "not attached" : health->changing ? "a change is being applied"
                                                                                   : "the daemon's event loop is stuck";
  }
  const int code = good ? 200 : 503;
  mg_printf(connection,
            "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
            code, good ? "OK" : "Service Unavailable", std::strlen(why) + 1, why);
  return code;  // non-zero: answered here
}

class PrometheusServer final : public MetricsServer {
 public:
  PrometheusServer(std::unique_ptr<prometheus::Exposer> exposer, std::shared_ptr<CounterCollector> collector,
                   std::string address, std::shared_ptr<const DaemonHealth> health)
      : exposer_(std::move(exposer)), collector_(std::move(collector)), address_(std::move(address)) {
    exposer_->RegisterCollectable(collector_);
    std::lock_guard lock(probe_mutex);
    for (int port : exposer_->GetListeningPorts()) {
      probe_health[port] = health;
      ports_.push_back(port);
    }
  }
  ~PrometheusServer() override {
    std::lock_guard lock(probe_mutex);
    for (int port : ports_) probe_health.erase(port);
  }
  std::string address() const override { return address_; }

 private:
  std::vector<int> ports_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<CounterCollector> collector_;
  std::string address_;
};

}  // namespace

Result<std::unique_ptr<MetricsServer>> serve_metrics(const std::string& address, const std::string& pipeline,
                                                     std::function<std::vector<StageCounters>()> read,
                                                     std::shared_ptr<const DaemonHealth> health) {
  // A bare port means loopback: metrics are not published to the network unless asked for.
  std::string bind = address.find(':') == std::string::npos ? "127.0.0.1:" + address : address;
  try {
    // civetweb serves each connection on one of its threads until the connection ends: several threads,
    // a short read/write timeout and no keep-alive, so that idle or slow connections hold a thread for
    // at most request_timeout_ms and never stall the scrapes beside them.
    static const CivetCallbacks callbacks = [] {
      CivetCallbacks hooks;
      hooks.begin_request = answer_probe;
      return hooks;
    }();
    auto exposer = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", bind, "num_threads", std::to_string(kMetricsThreads),
                                 "request_timeout_ms", std::to_string(kMetricsRequestTimeout.count()),
                                 "enable_keep_alive", "no"},
        &callbacks);
    auto ports = exposer->GetListeningPorts();
    std::string bound = bind.substr(0, bind.rfind(':') + 1) + (ports.empty() ? "?" : std::to_string(ports.front()));
    auto collector = std::make_shared<CounterCollector>(pipeline, std::move(read), health);
    return std::unique_ptr<MetricsServer>(
        std::make_unique<PrometheusServer>(std::move(exposer), std::move(collector), bound, std::move(health)));
  } catch (const std::exception& error) {
    return fail("metrics on ", bind, ": ", error.what());
  }
}

}  // namespace xdpp
