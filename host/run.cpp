// `run`, `check`, and the live changes a running pipeline accepts on its control channel.
#include <poll.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <sstream>

#include "commands.h"
#include "control.h"
#include "file_watch.h"
#include "interface.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "state.h"

namespace xdpp {
namespace {

volatile sig_atomic_t stop_signal = 0;
volatile sig_atomic_t reload_signal = 0;

void on_stop(int signal) { stop_signal = signal; }
void on_reload(int) { reload_signal = 1; }

void install_signal_handlers() {
  struct sigaction action {};
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: a signal interrupts poll() at once
  action.sa_handler = on_stop;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  action.sa_handler = on_reload;
  sigaction(SIGHUP, &action, nullptr);
}

void print_stages(Pipeline& pipeline) {
  for (const LiveStage& stage : pipeline.stages()) {
    std::string line = "  [" + std::to_string(stage.slot) + "] " + stage.spec.name + " (plugin " +
                       stage.spec.plugin_name + ", prog id " + std::to_string(stage.prog_id) + ")";
    std::string described = stage.spec.stage->describe();
    if (!described.empty()) line += ": " + described;
    log::info(line);
  }
}

// Tells systemd (Type=notify) where the daemon is: READY=1, RELOADING=1, STOPPING=1. Without NOTIFY_SOCKET
// (not started by systemd) it does nothing.
void notify_service(const std::string& state) {
  if (int err = sd_notify(0, state.c_str()); err < 0) log::debug("sd_notify: " + std::string(std::strerror(-err)));
}

// stdout carries the events, one per line.
void print_event(const std::string&, EventRecord record) {
  std::fputs(record.text.c_str(), stdout);
  std::fputc('\n', stdout);
}

// TOML values compare by their TOML text (toml++ compares only nodes of a known type).
std::string toml_text(const toml::node& node) {
  std::ostringstream out;
  node.visit([&](auto&& value) { out << value; });
  return out.str();
}

// Applies "key=value", "key+=value" (append to an array) and "key-=value" (remove equal elements) to a
// stage's settings. Values are TOML: 8080, "9000-9100", [1, 2], { ip = "10.0.0.3", mac = "..." }.
Status apply_assignment(toml::table& settings, const std::string& assignment) {
  auto equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) return fail("'", assignment, "' is not KEY=VALUE");
  char op = '=';
  std::size_t key_end = equals;
  if (assignment[equals - 1] == '+' || assignment[equals - 1] == '-') {
    op = assignment[equals - 1];
    --key_end;
  }
  std::string key = assignment.substr(0, key_end);
  while (!key.empty() && key.back() == ' ') key.pop_back();
  if (key.empty() || key == "name" || key == "plugin" || key == "object")
    return fail("'", assignment, "': key '", key, "' cannot be set live");
  toml::table parsed;
  try {
    parsed = toml::parse("value = " + assignment.substr(equals + 1), std::string_view("set"));
  } catch (const toml::parse_error& error) {
    return fail("'", assignment, "': the value is not TOML: ", std::string(error.description()));
  }
  toml::node& value = *parsed.get("value");
  if (op == '=') {
    settings.insert_or_assign(key, std::move(value));
    return {};
  }
  toml::array* current = settings.get_as<toml::array>(key);
  if (!current && op == '-') return fail("'", assignment, "': stage has no list '", key, "'");
  if (!current) {
    settings.insert_or_assign(key, toml::array{});
    current = settings.get_as<toml::array>(key);
  }
  std::vector<const toml::node*> items;
  if (auto* list = value.as_array())
    for (auto& item : *list) items.push_back(&item);
  else
    items.push_back(&value);
  for (const toml::node* item : items) {
    if (op == '+') {
      item->visit([&](auto&& v) { current->push_back(v); });
      continue;
    }
    std::size_t before = current->size();
    for (std::size_t i = current->size(); i-- > 0;)
      if (toml_text((*current)[i]) == toml_text(*item)) current->erase(current->begin() + i);
    if (current->size() == before) return fail("'", assignment, "': no such element in '", key, "'");
  }
  return {};
}

bool same_shape(const PipelineSpec& running, const PipelineSpec& edited) {
  if (running.stages.size() != edited.stages.size() || running.default_verdict != edited.default_verdict) return false;
  for (std::size_t i = 0; i < running.stages.size(); ++i) {
    const auto& a = running.stages[i];
    const auto& b = edited.stages[i];
    if (a.name != b.name || a.plugin_name != b.plugin_name || a.object_path != b.object_path) return false;
  }
  return true;
}

// The running pipeline and what changes it: the event loop, the control channel and SIGHUP.
class Runner {
 public:
  Runner(CommandOptions options, std::string name, std::shared_ptr<DaemonHealth> health)
      : options_(std::move(options)), name_(std::move(name)), health_(std::move(health)) {}

  /// The pipeline, once loaded and attached (the metrics server runs before: it has none until then).
  void adopt(std::unique_ptr<Pipeline> pipeline) {
    pipeline->set_swap_event_handler(print_event);
    pipeline->set_events_need_json(false);  // run prints the text only
    std::lock_guard lock(mutex_);
    pipeline_ = std::move(pipeline);
  }
  bool has_pipeline() const { return pipeline_ != nullptr; }
  void set_mode(std::string mode) { mode_ = std::move(mode); }
  Pipeline& pipeline() { return *pipeline_; }
  std::mutex& mutex() { return mutex_; }

  nlohmann::json handle(const nlohmann::json& request) {
    // /readyz says 503 while a change is being applied.
    health_->changing = true;
    std::unique_ptr<DaemonHealth, void (*)(DaemonHealth*)> settled(health_.get(), [](DaemonHealth* h) { h->changing = false; });
    const auto started = std::chrono::steady_clock::now();
    live_at_ = {};
    const std::string op = request.value("op", "");
    Status done = fail("unknown request '", op, "'");
    std::string what;
    if (op == "swap") {
      what = "swapped stage '" + request.value("stage", "") + "'";
      done = swap(request);
    } else if (op == "set") {
      what = "reconfigured stage '" + request.value("stage", "") + "'";
      done = set(request);
    } else if (op == "reload") {
      done = reload(request.value("file", ""), what);
    }
    const auto finished = std::chrono::steady_clock::now();
    auto ms_since = [&](auto at) { return std::chrono::duration<double, std::milli>(at - started).count(); };
    // Request to live: until the switch (chain slot, bpf_link or maps) took effect; total: with the state
    // file rewritten and the reply built.
    const double ms = ms_since(live_at_ == std::chrono::steady_clock::time_point{} ? finished : live_at_);
    const double total_ms = ms_since(finished);
    if (!done) {
      log::warn("pipeline '" + name_ + "': " + op + " refused, nothing changed: " + done.error().message);
      return {{"ok", false}, {"error", done.error().message}};
    }
    log::info("pipeline '" + name_ + "': " + what + " in " + std::to_string(ms) + " ms");
    return {{"ok", true}, {"message", what}, {"latency_ms", ms}, {"total_ms", total_ms}};
  }

  /// Applies the pipeline file (its own, or `file`) transactionally: a refused one changes nothing. Counted
  /// in xdp_pipeline_config_reloads_total{result}.
  Status reload(const std::string& file, std::string& what) {
    health_->changing = true;
    notify_service("RELOADING=1");
    Status done = apply_file(file, what);
    ++(done ? health_->reloads_succeeded : health_->reloads_failed);
    health_->changing = false;
    notify_service("READY=1\nSTATUS=" + std::string(done ? "reloaded" : "reload refused: " + done.error().message));
    return done;
  }

 private:
  Status apply_file(const std::string& file, std::string& what) {
    auto edited = load_pipeline_file(file.empty() ? pipeline_->spec().file : file, options_.overrides, SearchPaths::builtin());
    if (!edited) return edited.error();
    const PipelineSpec& running = pipeline_->spec();
    if (edited->name != running.name) return fail("the file names pipeline '", edited->name, "', this is '", running.name, "'");
    if (edited->interfaces != running.interfaces) return fail("the interface changed; that takes a new run");
    if (edited->watch != running.watch) return fail("watch changed; that takes a new run");
    if (edited->mode != running.mode) return fail("the attach mode changed; that takes a new run");
    if (edited->metrics != running.metrics) return fail("the metrics address changed; that takes a new run");
    if (same_shape(running, *edited)) {
      // Same stages in the same order: untouched stages stay as they are, changed settings apply in place.
      std::vector<std::pair<std::string, toml::table>> changed;
      for (std::size_t i = 0; i < edited->stages.size(); ++i)
        if (!(edited->stages[i].settings == running.stages[i].settings))
          changed.emplace_back(edited->stages[i].name, edited->stages[i].settings);
      std::lock_guard lock(mutex_);
      XDPP_TRY(pipeline_->reconfigure_stages(changed, edited->file));
      live_at_ = std::chrono::steady_clock::now();
      what = "reloaded " + edited->file + ": " + std::to_string(changed.size()) + " stage(s) reconfigured in place";
      return {};
    }
    // Stages added, removed or reordered: a whole new chain, switched in by one bpf_link update.
    std::lock_guard lock(mutex_);
    auto next = pipeline_->rebuild(std::move(*edited));
    if (!next) return next.error();
    live_at_ = std::chrono::steady_clock::now();
    (void)pipeline_->consume_events(print_event);  // the leaving plugins' last events
    std::unique_ptr<Pipeline> old = std::move(pipeline_);
    pipeline_ = std::move(*next);
    pipeline_->set_swap_event_handler(print_event);
    pipeline_->set_events_need_json(false);
    old.reset();
    if (auto published = publish(*pipeline_, mode_); !published)
      log::warn("pipeline '" + name_ + "': " + published.error().message);
    what = "reloaded " + pipeline_->spec().file + ": new chain of " + std::to_string(pipeline_->stages().size()) +
           " stages switched in atomically";
    print_stages(*pipeline_);
    return {};
  }

  Status swap(const nlohmann::json& request) {
    const std::string stage = request.value("stage", "");
    std::lock_guard lock(mutex_);
    LiveStage* live = pipeline_->find_stage(stage);
    if (!live) return fail("no stage '", stage, "' in pipeline '", name_, "'");
    SwapRequest swap;
    swap.reset_state = request.value("reset_state", false);
    if (request.contains("object")) swap.object = request["object"].get<std::string>();
    // Always a fresh plugin instance: the one named, or the stage's own file as rebuilt on disk.
    std::filesystem::path plugin_file = request.contains("plugin") ? std::filesystem::path(request["plugin"].get<std::string>())
                                                                  : live->spec.plugin_file;
    const auto t0 = std::chrono::steady_clock::now();
    // The stage's own plugin file, unchanged on disk since it was loaded: keep the loaded code (a copy and a
    // dlopen cost about a millisecond). Anything else is loaded afresh.
    const bool unchanged = !request.contains("plugin") && file_signature(plugin_file) == live->spec.plugin_signature &&
                           !live->spec.plugin_signature.empty();
    auto plugin = unchanged ? Result<std::shared_ptr<LoadedPlugin>>(live->spec.plugin)
                            : load_plugin_fresh(plugin_file, pipeline_->spec().plugin_dirs, kRunRoot / (name_ + ".plugins"));
    if (!plugin) return plugin.error();
    swap.plugin = *plugin;
    swap.plugin_signature = file_signature(plugin_file);
    swap.plugin_file = plugin_file;
    const bool fresh_maps = swap.reset_state;
    const auto t1 = std::chrono::steady_clock::now();
    XDPP_TRY(pipeline_->swap_stage(stage, std::move(swap)));
    const auto t2 = live_at_ = std::chrono::steady_clock::now();
    publish_quietly(fresh_maps);
    auto ms = [](auto a, auto b) { return std::to_string(std::chrono::duration<double, std::milli>(b - a).count()); };
    log::debug("stage '" + stage + "': swap: plugin " + ms(t0, t1) + " ms, load+verify+switch " + ms(t1, t2) +
               " ms, state " + ms(t2, std::chrono::steady_clock::now()) + " ms");
    return {};
  }

  Status set(const nlohmann::json& request) {
    const std::string stage = request.value("stage", "");
    std::lock_guard lock(mutex_);
    LiveStage* live = pipeline_->find_stage(stage);
    if (!live) return fail("no stage '", stage, "' in pipeline '", name_, "'");
    toml::table settings = live->spec.settings;
    for (const auto& assignment : request.value("assignments", std::vector<std::string>{}))
      XDPP_TRY(apply_assignment(settings, assignment));
    XDPP_TRY(pipeline_->reconfigure_stages({{stage, settings}}, "set"));
    live_at_ = std::chrono::steady_clock::now();
    publish_quietly();
    return {};
  }

  // A swap changes program ids: the state file says which run now.
  void publish_quietly(bool repin = false) {
    if (auto published = publish(*pipeline_, mode_, repin); !published)
      log::warn("pipeline '" + name_ + "': " + published.error().message);
  }

  std::unique_ptr<Pipeline> pipeline_;
  CommandOptions options_;
  std::string name_;
  std::string mode_;
  std::shared_ptr<DaemonHealth> health_;
  std::mutex mutex_;  // the metrics thread reads counters while the main thread may swap
  std::chrono::steady_clock::time_point live_at_;  // when the change being handled took effect
};

}  // namespace

Result<PipelineSpec> read_pipeline(const CommandOptions& options) {
  auto spec = load_pipeline_file(options.file, options.overrides, SearchPaths::builtin());
  if (!spec) log::error(spec.error().message);
  return spec;
}

int command_check(const CommandOptions& options) {
  auto spec = read_pipeline(options);
  if (!spec) return kExitUsage;
  std::printf("%s: pipeline '%s', %zu stages, valid\n", options.file.c_str(), spec->name.c_str(), spec->stages.size());
  return 0;
}

int command_run(const CommandOptions& options) {
  if (options.overrides.mode == AttachMode::offload) {
    log::error(std::string("--mode ") + kOffloadReason);  // "--mode offload is impossible ..."
    return kExitUsage;
  }
  auto spec = read_pipeline(options);
  if (!spec) return kExitUsage;
  if (geteuid() != 0) {
    log::error("run needs root (CAP_BPF and CAP_NET_ADMIN) to load and attach XDP programs");
    return kExitFailure;
  }
  if (options.netns) {
    if (auto entered = enter_netns(*options.netns); !entered) {
      log::error(entered.error().message);
      return kExitFailure;
    }
  }
  // Names or rules ([pipeline] interface), resolved here on the node.
  auto interfaces = resolve_interfaces(spec->interfaces);
  if (!interfaces) {
    log::error("pipeline '" + spec->name + "': " + interfaces.error().message);
    return kExitFailure;
  }
  std::string interface_names;
  for (const InterfaceInfo& interface : *interfaces) interface_names += (interface_names.empty() ? "" : ", ") + interface.name;
  const AttachMode wanted = spec->mode;
  const std::string name = spec->name;
  const bool watch = options.watch || spec->watch;
  auto control = ControlServer::listen(name);
  if (!control) {
    log::error("pipeline '" + name + "': " + control.error().message);
    return kExitFailure;
  }

  // The metrics endpoint and its probes come up first: /readyz answers 503 until the pipeline is attached.
  auto health = std::make_shared<DaemonHealth>();
  health->beat();
  Runner runner(options, name, health);
  std::unique_ptr<MetricsServer> metrics;
  if (spec->metrics) {
    auto served = serve_metrics(*spec->metrics, name, [&runner] {
      std::lock_guard lock(runner.mutex());
      std::vector<StageCounters> all;
      if (!runner.has_pipeline()) return all;
      Pipeline& live = runner.pipeline();
      if (auto counters = live.counters(-1)) all.push_back({"dispatcher", "", *counters});
      for (std::size_t i = 0; i < live.stages().size(); ++i)
        if (auto counters = live.counters(static_cast<int>(i)))
          all.push_back({live.stages()[i].spec.name, live.stages()[i].spec.plugin_name, *counters});
      return all;
    }, health);
    if (!served) {
      log::error("pipeline '" + name + "': " + served.error().message);
      return kExitFailure;
    }
    metrics = std::move(*served);
    log::info("pipeline '" + name + "': metrics at http://" + metrics->address() + "/metrics (probes /healthz, /readyz)");
  }

  std::unique_ptr<FileWatch> watcher;
  if (watch) {
    auto opened = FileWatch::open(options.file);
    if (!opened) {
      log::error("pipeline '" + name + "': " + opened.error().message);
      return kExitFailure;
    }
    watcher = std::move(*opened);
  }

  // Plugins are told the first interface (icmp_lb's default source MAC); every interface gets a link.
  auto loaded = Pipeline::load(std::move(*spec), SearchPaths::builtin(), interfaces->front());
  if (!loaded) {
    log::error("pipeline '" + name + "': " + loaded.error().message);
    return kExitFailure;
  }
  install_signal_handlers();
  auto mode = (*loaded)->attach(wanted, *interfaces);
  if (!mode) {
    log::error("pipeline '" + name + "': " + mode.error().message);
    return kExitFailure;
  }
  runner.adopt(std::move(*loaded));
  runner.set_mode(to_string(*mode));
  for (const AttachedLink& link : runner.pipeline().links())
    log::info("pipeline '" + name + "' attached to " + link.interface.name + " in " + to_string(link.mode) + " mode" +
              (wanted == AttachMode::automatic ? " (auto)" : "") + " (link id " + std::to_string(link_id_of(link.fd)) +
              ", dispatcher prog id " + std::to_string(runner.pipeline().dispatcher_prog_id()) + ")");
  print_stages(runner.pipeline());

  if (auto published = publish(runner.pipeline(), to_string(*mode)); !published) {
    log::error("pipeline '" + name + "': " + published.error().message);
    return kExitFailure;  // the pipeline's destructor detaches it
  }
  // Removes the pins and the state file however this function returns.
  std::unique_ptr<const std::string, void (*)(const std::string*)> unpublish_on_exit(
      &name, [](const std::string* n) { unpublish(*n); });
  log::info("pipeline '" + name + "': control socket " + (kRunRoot / (name + ".sock")).string() + ", state " +
            (kRunRoot / (name + ".json")).string());
  if (watcher) log::info("pipeline '" + name + "': watching " + options.file + " (reloads when it changes)");

  // Attached, and the loop below reads the events: ready.
  health->attached = true;
  notify_service("READY=1\nSTATUS=attached to " + interface_names);

  int status = 0;
  while (!stop_signal) {
    health->beat();
    pollfd fds[3] = {{.fd = (*control)->fd(), .events = POLLIN, .revents = 0},
                     {.fd = watcher ? watcher->fd() : -1, .events = POLLIN, .revents = 0},
                     {.fd = runner.pipeline().event_fd(), .events = POLLIN, .revents = 0}};
    int timeout = 100;
    if (watcher && watcher->timeout_ms() >= 0) timeout = std::min(timeout, watcher->timeout_ms());
    int ready = ::poll(fds, 3, timeout);
    if (ready < 0 && errno != EINTR) {
      log::error(std::string("poll: ") + std::strerror(errno));
      status = kExitFailure;
      break;
    }
    if (reload_signal) {
      reload_signal = 0;
      std::string what;
      if (auto reloaded = runner.reload("", what); reloaded)
        log::info("pipeline '" + name + "': SIGHUP: " + what);
      else
        log::warn("pipeline '" + name + "': SIGHUP: reload refused, nothing changed: " + reloaded.error().message);
    }
    if (watcher) {
      if (ready > 0 && (fds[1].revents & POLLIN)) watcher->drain();
      if (watcher->changed()) {
        std::string what;
        if (auto reloaded = runner.reload("", what); reloaded)
          log::info("pipeline '" + name + "': " + options.file + " changed: " + what);
        else
          log::warn("pipeline '" + name + "': " + options.file + " changed: reload refused, the running pipeline is "
                    "unchanged: " + reloaded.error().message);
      }
    }
    if (ready > 0 && (fds[0].revents & POLLIN)) (*control)->serve_one([&](const nlohmann::json& r) { return runner.handle(r); });
    if (auto consumed = runner.pipeline().consume_events(print_event); !consumed) {
      log::error(consumed.error().message);
      status = kExitFailure;
      break;
    }
    std::fflush(stdout);
  }
  health->attached = false;
  notify_service("STOPPING=1");
  runner.pipeline().detach();
  log::info("pipeline '" + name + "' detached from " + interface_names +
            (stop_signal ? std::string(" (") + strsignal(stop_signal) + ")" : ""));
  return status;
}

}  // namespace xdpp
