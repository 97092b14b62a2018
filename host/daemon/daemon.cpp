// The daemon of `run`: the pipeline attached, its events drained, the live changes it accepts on its control
// channel, SIGHUP and --watch, the metrics it serves, and what it leaves (or not) when it ends.
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <thread>

#include "daemon.h"

#include "control.h"
#include "file_watch.h"
#include "interface.h"
#include "log.h"
#include "metrics.h"
#include "persist.h"
#include "live_changes.h"
#include "pipeline.h"
#include "run_lock.h"
#include "state.h"
#include "toml_errors.h"

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
    std::string described = stage.spec.instance->describe();
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
  const std::string text = assignment.substr(equals + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("value = " + text, std::string_view("set"));
  } catch (const toml::parse_error& error) {
    // A bare word (`set parse malformed=drop`, `drop_tcp_dst+=9000-9100`) is the string it obviously is;
    // a plugin that expects another type says so.
    const std::string bare_chars = std::string(kWordChars) + ".:/-";
    if (consists_of(text, bare_chars, bare_chars)) {
      parsed.insert_or_assign("value", text);
    } else {
      const auto& begin = error.source().begin;
      std::string why = explain_syntax_error("value = " + text, begin.line, begin.column, error.description()).message;
      if (auto at = why.find("of 'value'"); at != std::string::npos) why.replace(at, 10, "of '" + key + "'");
      return fail("'", assignment, "': the value is not TOML (", why, "); values are TOML: 8080, \"text\", [1, 2], "
                  "{ ip = \"...\" }. A string with spaces or quotes is written in double quotes, the whole "
                  "assignment in single quotes for the shell: '", key, "=\"...\"'");
    }
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

// The running pipeline and what changes it: the event loop, the control channel and SIGHUP.
class Runner {
 public:
  Runner(std::unique_ptr<Pipeline> pipeline, Overrides overrides, std::shared_ptr<DaemonHealth> health)
      : pipeline_(std::move(pipeline)), overrides_(std::move(overrides)), name_(pipeline_->spec().name),
        health_(std::move(health)) {
    watch_events();
  }

  Pipeline& pipeline() { return *pipeline_; }
  std::mutex& mutex() { return mutex_; }

  /// Held for a whole change (a request, a SIGHUP or --watch reload): the control thread and the main
  /// thread change the pipeline one at a time, and a change reads the running spec before it locks
  /// mutex(). Meanwhile /readyz answers 503.
  class Change {
   public:
    explicit Change(Runner& runner) : lock_(runner.change_mutex_), health_(*runner.health_) { health_.changing = true; }
    ~Change() { health_.changing = false; }
    Change(const Change&) = delete;
    Change& operator=(const Change&) = delete;

   private:
    std::lock_guard<std::mutex> lock_;
    DaemonHealth& health_;
  };

  control::Reply handle(const control::Request& request) {
    Change changing(*this);
    const auto started = std::chrono::steady_clock::now();
    live_at_ = {};
    invalid_ = false;
    unpublished_.clear();
    const std::string op = control::op_name(request);
    Status done;
    std::string what;
    if (const auto* swap_request = std::get_if<control::Swap>(&request)) {
      what = "swapped stage '" + swap_request->stage + "'";
      done = swap(*swap_request);
    } else if (const auto* set_request = std::get_if<control::Set>(&request)) {
      what = "reconfigured stage '" + set_request->stage + "'";
      done = set(*set_request);
    } else {
      done = reload(std::get<control::Reload>(request).file, what);
    }
    const auto finished = std::chrono::steady_clock::now();
    auto ms_since = [&](auto at) { return std::chrono::duration<double, std::milli>(at - started).count(); };
    // Request to live: until the switch (chain slot, bpf_link or maps) took effect; total: with the state
    // file rewritten and the reply built.
    const double ms = ms_since(live_at_ == std::chrono::steady_clock::time_point{} ? finished : live_at_);
    const double total_ms = ms_since(finished);
    if (!done) {
      log::warn("pipeline '" + name_ + "': " + op + " refused, nothing changed: " + done.error().message);
      // "invalid": the request itself is wrong (the client exits 2, as `check` does for a bad file);
      // otherwise a valid change failed while being applied (exit 1).
      return control::Reply::failure(done.error().message, invalid_);
    }
    if (!unpublished_.empty()) {
      // The change is live, but `status` would still describe the old programs: not a success.
      std::string error = what + ", but the state file was not rewritten: " + unpublished_ +
                          "; `status` shows the previous state until a later change is published";
      unpublished_.clear();
      log::error("pipeline '" + name_ + "': " + error);
      auto reply = control::Reply::failure(error);
      reply.live = true;
      return reply;
    }
    log::info("pipeline '" + name_ + "': " + what + " in " + std::to_string(ms) + " ms");
    return control::Reply::success(what, ms, total_ms);
  }

  /// Applies the pipeline file (its own, or `file`) transactionally: a refused one changes nothing. The
  /// caller holds a Change. Counted in xdp_pipeline_config_reloads_total{result}; systemd is told.
  Status reload(const std::string& file, std::string& what) {
    notify_service("RELOADING=1");
    Status done = reload_file(file, what);
    ++(done ? health_->reloads_succeeded : health_->reloads_failed);
    notify_service("READY=1\nSTATUS=" + std::string(done ? "reloaded" : "reload refused: " + done.error().message));
    return done;
  }

  // Makes the running pipeline `edited`. Same stages in the same order (and no `new_chain` reason): untouched
  // stages stay as they are, changed settings apply in place. Otherwise a whole new chain, switched in by one
  // bpf_link update; with fresh_if_changed its maps that changed shape start empty instead of refusing.
  // `reset_hint` tells, in the terms of the refused command, how to start a map that changed shape afresh.
  Status apply(PipelineSpec edited, const std::string& new_chain, bool fresh_if_changed, std::string& what,
               const std::string& reset_hint) {
    const auto in_place = new_chain.empty() ? in_place_changes(pipeline_->spec(), edited) : std::nullopt;
    if (in_place) {
      const SettingsChanges& changed = *in_place;
      std::lock_guard lock(mutex_);
      XDPP_TRY(with_reset_hint(LiveChanges(*pipeline_).reconfigure_stages(changed, edited.file), reset_hint));
      live_at_ = std::chrono::steady_clock::now();
      // A changed load-time constant replaces a program: the state file (and a persisted run's pins) follow.
      if (!changed.empty()) publish_or_remember(false);
      what = "reloaded " + edited.file + ": " + std::to_string(changed.size()) + " stage(s) reconfigured in place";
      return {};
    }
    // Stages added, removed or reordered, other objects or another contract: a whole new chain.
    std::lock_guard lock(mutex_);
    const bool persist = edited.persist;
    auto next = LiveChanges(*pipeline_).rebuild(std::move(edited), fresh_if_changed,
                                                persist ? std::function<Status(Pipeline&)>(pin_pending_chain) : nullptr);
    if (!next) return with_reset_hint(next.error(), reset_hint);
    live_at_ = std::chrono::steady_clock::now();
    (void)pipeline_->events().consume(print_event);  // the leaving plugins' last events
    std::unique_ptr<Pipeline> old = std::move(pipeline_);
    pipeline_ = std::move(*next);
    watch_events();
    old.reset();
    publish_or_remember(true);
    what = "reloaded " + pipeline_->spec().file + ": new chain of " + std::to_string(pipeline_->stages().size()) +
           " stages switched in atomically";
    print_stages(*pipeline_);
    return {};
  }

  void set_mode(std::string mode) { mode_ = std::move(mode); }

 private:
  Status reload_file(const std::string& file, std::string& what) {
    auto edited = load_pipeline_file(file.empty() ? pipeline_->spec().file : file, overrides_, SearchPaths::builtin());
    if (!edited) return invalid(edited.error());
    const PipelineSpec& running = pipeline_->spec();
    if (edited->name != running.name)
      return invalid(fail("the file names pipeline '", edited->name, "', this is '", running.name, "'"));
    if (edited->interfaces != running.interfaces) return invalid(fail("the interface changed; that takes a new run"));
    if (edited->watch != running.watch) return invalid(fail("watch changed; that takes a new run"));
    if (edited->mode != running.mode) return invalid(fail("the attach mode changed; that takes a new run"));
    if (edited->metrics != running.metrics) return invalid(fail("the metrics address changed; that takes a new run"));
    if (edited->persist != running.persist) return invalid(fail("persist changed; that takes a new run"));
    return apply(std::move(*edited), "", false, what, kReloadResetHint);
  }

  Status invalid(Error error) {
    invalid_ = true;
    return error;
  }

  static constexpr const char* kReloadResetHint =
      "reload keeps every stage's state; to start that stage with fresh maps, apply a changed setting with "
      "`xdp-pipeline set STAGE KEY=VALUE --reset-state`, or a changed object with `xdp-pipeline swap STAGE "
      "--object PATH --reset-state`, then reload the file";

  // A map whose shape changed cannot keep its state: say how to start it afresh, in the terms of the
  // command that was refused.
  static Status with_reset_hint(Status status, const std::string& hint) {
    if (status || status.error().message.find("changed shape") == std::string::npos) return status;
    return fail(status.error().message, "; ", hint);
  }

  Status swap(const control::Swap& request) {
    const std::string& stage = request.stage;
    std::lock_guard lock(mutex_);
    const auto t0 = std::chrono::steady_clock::now();
    LiveChanges changes(*pipeline_);
    auto swap = changes.prepare_swap(stage, request.object, request.plugin, request.reset_state);
    if (!swap) return invalid(swap.error());
    const bool fresh_maps = swap->reset_state;
    const auto t1 = std::chrono::steady_clock::now();
    XDPP_TRY(with_reset_hint(changes.swap_stage(stage, std::move(*swap)),
                             "`xdp-pipeline swap " + stage + " --reset-state` starts the stage with fresh maps"));
    const auto t2 = live_at_ = std::chrono::steady_clock::now();
    publish_or_remember(fresh_maps);
    auto ms = [](auto a, auto b) { return std::to_string(std::chrono::duration<double, std::milli>(b - a).count()); };
    log::debug("stage '" + stage + "': swap: plugin " + ms(t0, t1) + " ms, load+verify+switch " + ms(t1, t2) +
               " ms, state " + ms(t2, std::chrono::steady_clock::now()) + " ms");
    return {};
  }

  Status set(const control::Set& request) {
    const std::string& stage = request.stage;
    std::lock_guard lock(mutex_);
    LiveStage* live = pipeline_->find_stage(stage);
    if (!live) return invalid(no_such_stage(stage, pipeline_->spec()));
    toml::table settings = live->spec.settings;
    for (const auto& assignment : request.assignments)
      if (auto applied = apply_assignment(settings, assignment); !applied) return invalid(applied.error());
    // Settings that came from a command line have no file position: "" keeps positions out of messages.
    LiveChanges changes(*pipeline_);
    if (auto valid = changes.validate_settings(stage, settings, ""); !valid) return invalid(valid.error());
    const bool reset_state = request.reset_state;
    XDPP_TRY(with_reset_hint(changes.reconfigure_stages({{stage, settings}}, "", reset_state),
                             "add --reset-state to this `xdp-pipeline set` to start the stage with fresh maps "
                             "(its state and counters start from zero)"));
    live_at_ = std::chrono::steady_clock::now();
    publish_or_remember(reset_state);
    return {};
  }

  // Events print as text lines (run prints no JSON); a swapped-out plugin's last events print too.
  void watch_events() {
    pipeline_->events().set_swap_handler(print_event);
    pipeline_->events().set_need_json(false);
  }

  // A swap changes program ids: the state file says which run now. A failure to say so (a full /run) is
  // kept for the reply: the change itself is live and cannot be taken back.
  void publish_or_remember(bool repin = true) {
    if (auto published = publish(*pipeline_, mode_, repin); !published) {
      unpublished_ = published.error().message;
      log::error("pipeline '" + name_ + "': " + unpublished_);
    }
  }

  std::unique_ptr<Pipeline> pipeline_;
  Overrides overrides_;  // the command line's, applied to every reload of the file
  std::string name_;
  std::shared_ptr<DaemonHealth> health_;
  std::string mode_;
  std::mutex mutex_;  // the metrics thread reads counters while the main thread may swap
  std::mutex change_mutex_;
  std::chrono::steady_clock::time_point live_at_;  // when the change being handled took effect
  bool invalid_ = false;  // the request being handled was refused as invalid, not failed while applied
  std::string unpublished_;  // why the state file could not be rewritten after the change being handled
};

// What the metrics endpoint reads: the running pipeline's counters, none before it runs or after it stops.
class MetricsFeed {
 public:
  // Connects the feed to a runner for the connection's lifetime.
  class Connection {
   public:
    Connection(MetricsFeed& feed, Runner& runner) : feed_(feed) {
      std::lock_guard lock(feed_.mutex_);
      feed_.runner_ = &runner;
    }
    ~Connection() {
      std::lock_guard lock(feed_.mutex_);
      feed_.runner_ = nullptr;
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

   private:
    MetricsFeed& feed_;
  };

  std::vector<StageCounters> read() {
    std::lock_guard feed_lock(mutex_);
    std::vector<StageCounters> all;
    if (!runner_) return all;
    std::lock_guard lock(runner_->mutex());
    Pipeline& live = runner_->pipeline();
    auto counters = chain_counters(live);
    if (!counters) return all;
    // The whole pipeline under "(pipeline)", which no stage can be called (config.cpp).
    all.push_back({"(pipeline)", "", counters->pipeline});
    for (std::size_t i = 0; i < live.stages().size(); ++i)
      all.push_back({live.stages()[i].spec.name, live.stages()[i].spec.plugin_name, counters->stages[i]});
    return all;
  }

 private:
  std::mutex mutex_;
  Runner* runner_ = nullptr;
};

// Serves the control socket on a thread of its own until destroyed, so that neither a slow client nor
// a long change delays the draining of events on the main thread (and the reverse).
class ControlThread {
 public:
  ControlThread(ControlServer& server, Runner& runner) {
    // Signals belong to the main thread's loop: block them here before the thread inherits the mask.
    sigset_t signals, previous;
    sigemptyset(&signals);
    for (int signal : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&signals, signal);
    pthread_sigmask(SIG_BLOCK, &signals, &previous);
    thread_ = std::thread([&server, &runner, this] {
      try {
        server.serve([&runner](const control::Request& request) { return runner.handle(request); }, stop_);
      } catch (const std::exception& error) {  // out of memory: the pipeline keeps running, uncontrolled
        log::error(std::string("control socket: stopped serving: ") + error.what());
      }
    });
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }
  ~ControlThread() {
    stop_ = true;
    thread_.join();
  }
  ControlThread(const ControlThread&) = delete;
  ControlThread& operator=(const ControlThread&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// One run of the daemon, step by step: each step returns 0 to go on or the exit status to end with.
class Daemon {
 public:
  Daemon(PipelineSpec spec, const std::string& text, const DaemonOptions& options)
      : spec_(std::move(spec)), text_(text), options_(options), name_(spec_.name), persist_(spec_.persist) {}

  int run() {
    // One daemon per name, decided before anything is loaded, attached, bound or removed.
    auto lock = RunLock::acquire(name_);
    if (!lock) {
      log::error(lock.error().message);
      return kExitFailure;
    }
    lock_.emplace(std::move(*lock));
    health_->beat();
    if (int status = prepare()) return status;
    if (int status = start_pipeline()) return status;
    // Without persist, removes the pins and the state file however this returns, a failed publish
    // included (it may have pinned maps before the state file failed to write); with persist they are what
    // keeps the pipeline running.
    std::unique_ptr<const std::string, void (*)(const std::string*)> unpublish_on_exit(
        persist_ ? nullptr : &name_, [](const std::string* n) { if (n) unpublish(*n); });
    if (auto published = publish(runner_->pipeline(), mode_name_); !published) {
      log::error("pipeline '" + name_ + "': " + published.error().message);
      // A pipeline this run loaded is not left pinned without its state (nothing could adopt it); one it
      // adopted keeps running from its pins, as it did before this run.
      if (persist_ && !adopting_) unpublish(name_);
      return kExitFailure;  // without persist, the pipeline's destructor detaches it
    }
    log::info("pipeline '" + name_ + "': control socket " + (kRunRoot / (name_ + ".sock")).string() + ", state " +
              (kRunRoot / (name_ + ".json")).string() + (persist_ ? ", persisted: it outlives this daemon" : ""));
    MetricsFeed::Connection feeding(feed_, *runner_);
    if (watcher_) log::info("pipeline '" + name_ + "': watching " + options_.file + " (reloads when it changes)");
    const int status = serve();
    return finish(status);
  }

 private:
  // Metrics, namespace, interfaces, file watch and control socket: everything before the pipeline.
  int prepare() {
    // The metrics port is bound before anything is loaded: a port in use or not ours to bind is a bad
    // setting, refused like one, with nothing attached meanwhile. It listens in the namespace `run` started
    // in unless --metrics-netns pipeline (a Prometheus on the host reaches it there): a listening socket stays
    // in the namespace it was made in, so it is made before --netns is entered. Until the pipeline runs, a
    // scrape finds no stage counters.
    const bool metrics_in_netns = options_.netns && options_.metrics_in_pipeline_netns;
    if (spec_.metrics && !metrics_in_netns && !start_metrics()) return kExitUsage;
    if (options_.netns) {
      if (auto entered = enter_netns(*options_.netns); !entered) {
        log::error(entered.error().message);
        // No such namespace: the command line names what is not there. Anything else failed while doing it.
        std::error_code error;
        return std::filesystem::exists("/run/netns/" + *options_.netns, error) ? kExitFailure : kExitUsage;
      }
    }
    if (spec_.metrics && metrics_in_netns && !start_metrics()) return kExitUsage;
    if (spec_.interfaces.empty()) {
      log::error("no interface to attach to: pass --interface IF, or set [pipeline] interface in " + options_.file);
      return kExitUsage;
    }
    // Names or rules ([pipeline] interface), resolved here on the node. The shipped files name eth0; a host
    // without it gets the names it does have.
    auto interfaces = resolve_interfaces(spec_.interfaces);
    if (!interfaces) {
      log::error(interfaces.error().message + "; name one with --interface IF (it overrides [pipeline] interface in " +
                 options_.file + ")" + (options_.netns ? "" : ", or run in another namespace with --netns NS"));
      return kExitUsage;
    }
    interfaces_ = std::move(*interfaces);
    for (const InterfaceInfo& interface : interfaces_)
      interface_list_ += (interface_list_.empty() ? "" : ", ") + interface.name;
    // Compared with the text the spec came from: an update written meanwhile is applied once the loop runs.
    if (options_.watch || spec_.watch) {
      auto opened = FileWatch::open(options_.file, text_);
      if (!opened) {
        log::error("pipeline '" + name_ + "': " + opened.error().message);
        return kExitFailure;
      }
      watcher_ = std::move(*opened);
    }
    auto control = ControlServer::listen(name_);
    if (!control) {
      log::error("pipeline '" + name_ + "': " + control.error().message);
      return kExitFailure;
    }
    control_ = std::move(*control);
    return 0;
  }

  bool start_metrics() {
    auto served = serve_metrics(*spec_.metrics, name_, [this] { return feed_.read(); }, health_);
    if (!served) {
      log::error("pipeline '" + name_ + "': " + served.error().message);
      return false;
    }
    metrics_ = std::move(*served);
    log::info("pipeline '" + name_ + "': metrics at http://" + metrics_->address() + "/metrics in " + describe_netns() +
              " (probes /healthz, /readyz)");
    return true;
  }

  // Adopts a persisted pipeline of this name, or loads and attaches a new one; makes the Runner.
  int start_pipeline() {
    auto adoption = adopt_persisted(spec_, interfaces_);
    if (!adoption) {
      log::error(adoption.error().message);
      return kExitFailure;
    }
    install_signal_handlers();
    adopting_ = adoption->pipeline != nullptr;
    if (int status = adopting_ ? adopt(std::move(*adoption)) : load_and_attach()) return status;
    print_stages(runner_->pipeline());
    return 0;
  }

  int adopt(Adoption adoption) {
    // Events queued while no daemon ran go to the plugins first, in order, before anything changes.
    Pipeline& adopted = *adoption.pipeline;
    adopted.events().set_need_json(false);
    auto queued = adopted.events().consume(print_event);
    std::fflush(stdout);
    auto published = read_run_state(name_);
    mode_name_ = published && !published->mode.empty() ? published->mode : to_string(spec_.mode);
    log::info("pipeline '" + name_ + "': adopted from pid " + std::to_string(adoption.pid) + " on " + interface_list_ +
              " (link id " + std::to_string(adopted.link_id()) + ", entry prog id " +
              std::to_string(adopted.entry_prog_id()) + "), " + std::to_string(queued ? *queued : 0) +
              " event(s) queued meanwhile delivered");
    runner_ = std::make_unique<Runner>(std::move(adoption.pipeline), options_.overrides, health_);
    runner_->set_mode(mode_name_);
    // What runs becomes what the file says: the reload's own path (in place, or a new chain by one link update).
    if (!adoption.new_chain_reason.empty())
      log::info("pipeline '" + name_ + "': a new chain replaces it: " + adoption.new_chain_reason);
    std::string what;
    if (auto applied = runner_->apply(std::move(spec_), adoption.new_chain_reason, options_.reset_state, what,
                                      "`xdp-pipeline run " + options_.file + " --reset-state` starts those maps empty");
        !applied) {
      log::error("pipeline '" + name_ + "': adoption refused, the running pipeline is left as it was: " +
                 applied.error().message);
      return kExitFailure;  // the pins keep it running; nothing of it is removed
    }
    log::info("pipeline '" + name_ + "': " + what);
    return 0;
  }

  int load_and_attach() {
    const AttachMode wanted = spec_.mode;
    // Plugins are told the first interface (icmp_lb's default source MAC); every interface gets a link.
    auto loaded = Pipeline::load(std::move(spec_), SearchPaths::builtin(), interfaces_.front());
    if (!loaded) {
      log::error("pipeline '" + name_ + "': " + loaded.error().message);
      return kExitFailure;
    }
    auto mode = (*loaded)->attach(wanted, interfaces_);
    if (!mode) {
      log::error("pipeline '" + name_ + "': " + mode.error().message);
      return kExitFailure;
    }
    if (!(*loaded)->fallback_reason().empty())
      log::warn("pipeline '" + name_ + "': mode auto fell back to generic mode (the slow path): " +
                (*loaded)->fallback_reason());
    mode_name_ = to_string(*mode);
    runner_ = std::make_unique<Runner>(std::move(*loaded), options_.overrides, health_);
    runner_->set_mode(mode_name_);
    for (const AttachedLink& link : runner_->pipeline().links())
      log::info("pipeline '" + name_ + "' attached to " + link.interface.name + " in " + to_string(link.mode) +
                " mode" + (wanted == AttachMode::automatic ? " (auto)" : "") + " (link id " +
                std::to_string(link_id_of(link.fd)) + ", entry prog id " +
                std::to_string(runner_->pipeline().entry_prog_id()) + ", stage '" +
                runner_->pipeline().stages().front().spec.name + "')");
    return 0;
  }

  // A reload of the pipeline's own file on this thread (SIGHUP, --watch), as a request would be: whatever
  // the file holds, the daemon carries on.
  void reload_own_file(const std::string& why) {
    std::string what;
    Status reloaded;
    try {
      Runner::Change changing(*runner_);
      reloaded = runner_->reload("", what);
    } catch (const std::exception& error) {
      reloaded = fail(error.what());
    }
    if (reloaded)
      log::info("pipeline '" + name_ + "': " + why + ": " + what);
    else
      log::warn("pipeline '" + name_ + "': " + why + ": reload refused, nothing changed: " + reloaded.error().message);
  }

  // The control thread and the event loop, until SIGINT/SIGTERM; returns 0 or kExitFailure.
  int serve() {
    Runner& running = *runner_;
    int status = 0;
    ControlThread control_thread(*control_, running);
    // Attached, the control socket served, and the loop below reads the events: ready.
    health_->beat();
    health_->attached = true;
    notify_service("READY=1\nSTATUS=attached to " + interface_list_);
    while (!stop_signal) {
      health_->beat();
      int event_fd;
      {
        std::lock_guard lock(running.mutex());  // a reload replaces the pipeline, and its event fd with it
        event_fd = running.pipeline().events().fd();
      }
      pollfd fds[2] = {{.fd = event_fd, .events = POLLIN, .revents = 0},
                       {.fd = watcher_ ? watcher_->fd() : -1, .events = POLLIN, .revents = 0}};
      int timeout = 100;
      if (watcher_ && watcher_->timeout_ms() >= 0) timeout = std::min(timeout, watcher_->timeout_ms());
      int ready = ::poll(fds, 2, timeout);  // a negative fd is ignored
      if (ready < 0 && errno != EINTR) {
        log::error(std::string("poll: ") + std::strerror(errno));
        status = kExitFailure;
        break;
      }
      if (reload_signal) {
        reload_signal = 0;
        reload_own_file("SIGHUP");
      }
      if (watcher_) {
        if (ready > 0 && (fds[1].revents & POLLIN)) watcher_->drain();
        if (watcher_->changed()) reload_own_file(options_.file + " changed");
      }
      Result<int> consumed = 0;
      {
        std::lock_guard lock(running.mutex());
        consumed = running.pipeline().events().consume(print_event);
      }
      if (!consumed) {
        log::error(consumed.error().message);
        status = kExitFailure;
        break;
      }
      std::fflush(stdout);
    }
    health_->attached = false;
    notify_service("STOPPING=1");
    return status;  // the control thread ends here: no change can start after this point
  }

  // Leaves the pipeline running (persisted) or detaches it.
  int finish(int status) {
    const std::string why = stop_signal ? std::string(" (") + strsignal(stop_signal) + ")" : "";
    if (persist_) {
      // The pinned links, chain, programs and maps keep it running; the next run adopts it.
      log::info("pipeline '" + name_ + "' keeps running on " + interface_list_ + " without a daemon (persisted)" +
                why + "; `xdp-pipeline run` of the same file adopts it, `xdp-pipeline detach " + name_ +
                "` removes it");
      return status;
    }
    runner_->pipeline().detach();
    log::info("pipeline '" + name_ + "' detached from " + interface_list_ + why);
    return status;
  }

  // Held for the whole run, released last (after the pipeline below is gone); its file is removed on every
  // exit (the lock itself dies with the process anyway).
  struct HeldLock {
    RunLock lock;
    explicit HeldLock(RunLock held) : lock(std::move(held)) {}
    ~HeldLock() { lock.remove(); }
    HeldLock(const HeldLock&) = delete;
    HeldLock& operator=(const HeldLock&) = delete;
  };
  std::optional<HeldLock> lock_;
  PipelineSpec spec_;  // until the pipeline is loaded or adopted (then the Runner's pipeline holds it)
  const std::string& text_;
  const DaemonOptions& options_;
  const std::string name_;
  const bool persist_;
  MetricsFeed feed_;
  // What the probes and xdp_pipeline_up say: not ready until the pipeline runs with its event readers.
  std::shared_ptr<DaemonHealth> health_ = std::make_shared<DaemonHealth>();
  std::unique_ptr<MetricsServer> metrics_;
  std::vector<InterfaceInfo> interfaces_;
  std::string interface_list_;
  std::unique_ptr<FileWatch> watcher_;
  std::unique_ptr<ControlServer> control_;
  bool adopting_ = false;
  std::string mode_name_;
  std::unique_ptr<Runner> runner_;  // declared last: destroyed first, before the feed and the servers
};

}  // namespace

int run_daemon(PipelineSpec spec, const std::string& text, const DaemonOptions& options) {
  return Daemon(std::move(spec), text, options).run();
}

}  // namespace xdpp
