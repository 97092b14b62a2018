// A loaded pipeline: the chain's root object (its shared maps), the chain and the stages' objects; attached
// to an interface by `run` (the interface runs the stage of slot 0), or driven packet by packet with
// BPF_PROG_TEST_RUN by `replay` and the tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config.h"
#include <xdp_pipeline/plugin.h>
#include <xdp_pipeline/result.h>

extern "C" {
#include <xdp_pipeline/contract.h>
}

namespace xdpp {

class LoadedObject;  // bpf_object.h

/// One stage, loaded.
struct LiveStage {
  StageSpec spec;
  std::unique_ptr<LoadedObject> object;
  int slot = 0;
  std::uint32_t prog_id = 0;
};

/// A stage's counters as the operator sees them, summed over CPUs: `packets` and `bytes` entered the stage,
/// the rest was decided (or lost) in it. Derived from what the BPF side counts (struct xdpp_counters:
/// only where a packet's way ends) by derive_counters().
struct CounterTotals {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint64_t verdict[XDPP_VERDICTS] = {};
  std::uint64_t fell_off = 0;
  std::uint64_t events_lost = 0;
};

/// What earlier chains counted, kept when a new chain (other stages or order) replaces them, so that the
/// derived counters stay exact and never go back: the chain's own counts start from zero in `slot` (the
/// entry of every counters map this chain writes, XDPP_COUNTER_SLOTS), and totals = base + own counts.
struct CounterBases {
  std::uint32_t slot = 0;
  CounterTotals pipeline;                        // the whole pipeline's packets, bytes, verdicts
  std::map<std::string, CounterTotals> stages;   // by stage name
};

/// Every stage's counters (chain order) and the pipeline's total.
struct ChainCounters {
  CounterTotals pipeline;
  std::vector<CounterTotals> stages;
};

/// Derives the counters of a chain from what each stage counted (`ended`, in chain order, the chain's
/// slot): a packet entered stage i if its way ended in stage i or a later one.
ChainCounters derive_counters(const std::vector<std::string>& names, const std::vector<xdpp_counters>& ended,
                              const CounterBases& bases);

/// Entry `slot` of a stage's counters map (per-CPU) by fd, summed over CPUs.
Result<xdpp_counters> read_stage_counters(int map_fd, std::uint32_t slot);

/// An event with the stage that emitted it.
struct StageEvent {
  std::string stage;
  EventRecord record;
};

/// Receives each decoded event with the name of the stage that emitted it.
using EventHandler = std::function<void(const std::string& stage, EventRecord record)>;

/// What to change in a stage by swap_stage().
struct SwapRequest {
  std::optional<std::filesystem::path> object;   // new BPF object; default: the stage's current one
  std::shared_ptr<LoadedPlugin> plugin;          // new plugin; default: the current one
  std::shared_ptr<Stage> stage;                  // already validated stage; default: created from the settings
  std::optional<toml::table> settings;           // the settings `stage` was made from; default: unchanged
  std::optional<std::filesystem::path> plugin_file;  // where `plugin` came from, for later reloads
  std::optional<std::string> plugin_signature;       // file_signature() of plugin_file when loaded
  bool reset_state = false;                      // start with fresh maps instead of the old ones
};

/// One interface the dispatcher is attached to, through a bpf_link.
struct AttachedLink {
  InterfaceInfo interface;
  AttachMode mode = AttachMode::native;  // the mode it got (never automatic)
  int fd = -1;
};

/// Packets the dispatcher received on one interface, summed over CPUs.
struct InterfaceTotals {
  std::uint64_t packets = 0;
};

/// What one packet did in BPF_PROG_TEST_RUN.
struct TestRunResult {
  std::uint32_t verdict = 0;            // XDP action
  std::string stage;                    // the stage that decided it (or where it fell off the chain)
  bool modified = false;
  std::vector<std::uint8_t> packet;     // the packet as it leaves
  std::vector<StageEvent> events;       // events emitted for this packet, drained after the run
};

/// An object a persisted run loaded, as its state file recorded it (for Pipeline::adopt).
struct RecordedObject {
  std::filesystem::path file;
  std::string digest;  // LoadedObject::digest() at load
};

class Pipeline {
 public:
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  /// Loads the dispatcher and every stage, fills the chain and configures every stage's maps.
  /// Attaches nothing. `interface` is what plugins are told (ifindex 0 when there is none).
  static Result<std::unique_ptr<Pipeline>> load(PipelineSpec spec, const SearchPaths& paths,
                                                InterfaceInfo interface);

  /// Takes over a pipeline that a persisted run left in the kernel: the programs and maps pinned under
  /// `pins` (dispatcher/, one directory per stage, see state.h) and its pinned XDP links, one per interface
  /// (`links`: their fds are duplicated, the caller keeps its own). Loads nothing and writes no map;
  /// `running` is the spec that run recorded (its stages, in order, with their settings), with plugins of
  /// this executable, `contract` the contract version it was built with and `bases` its counter bases.
  /// Checks that every link runs the pinned program of slot 0 (contract 1: the pinned dispatcher) on its
  /// interface, that every chain slot holds the pinned stage program, and that nothing follows the last
  /// stage. A pipeline of another contract can only be replaced (rebuild), not changed in place.
  static Result<std::unique_ptr<Pipeline>> adopt(PipelineSpec running, const SearchPaths& paths,
                                                 InterfaceInfo interface, const std::filesystem::path& pins,
                                                 const RecordedObject& dispatcher,
                                                 const std::vector<RecordedObject>& stages,
                                                 const std::vector<AttachedLink>& links, int contract,
                                                 CounterBases bases);

  /// Attaches the chain (the program of slot 0) through one bpf_link per interface (default: interface());
  /// the chain, its state and counters are shared. Says which mode the first got (`auto` is decided per
  /// interface; see links()). All or nothing: a failure detaches the links already made. Errors name the
  /// cause and the remedy (host/core/attach.h).
  Result<AttachMode> attach(AttachMode mode, std::vector<InterfaceInfo> interfaces = {});
  /// Why `auto` fell back to generic mode in attach() ("IF: reason", one per interface that fell back), or
  /// "" when it did not.
  const std::string& fallback_reason() const { return fallback_reason_; }
  /// Detaches (destroys the links). Also done by the destructor.
  void detach();
  bool attached() const { return !links_.empty(); }
  /// The bpf_links, one per interface, in the order attached (for pinning and status).
  const std::vector<AttachedLink>& links() const { return links_; }
  /// The first link's id (0 when detached).
  std::uint32_t link_id() const;

  /// Replaces stage `name`'s program and/or plugin. The new object is loaded and verified using the old
  /// object's maps by name (state survives; a map whose shape changed is refused unless reset_state),
  /// then one atomic update switches it in: of the chain slot, or for slot 0 (what the interface runs) of the
  /// bpf_link. The stage's counters always carry over. Any failure changes nothing.
  Status swap_stage(const std::string& name, SwapRequest request);

  /// Applies new settings to stages (name, settings): each plugin rewrites its maps in place, or, when a
  /// load-time constant changes, the same files are swapped in with the new settings. Every change is
  /// validated before any is applied; a failure puts back what was applied. `source` names where the
  /// settings came from in messages (the file, or "set").
  /// `reset_state`: a stage that must be swapped starts with fresh maps (needed when a map's size changes).
  Status reconfigure_stages(const std::vector<std::pair<std::string, toml::table>>& changes, const std::string& source,
                            bool reset_state = false);

  /// Whether stage `name`'s plugin accepts `settings` (nothing is applied). `source` as above; "" for
  /// settings from a command line, which have no position.
  Status validate_settings(const std::string& name, const toml::table& settings, const std::string& source) const;

  /// A new pipeline for `spec` (other stages, order, or pipeline settings) with its own chain; stages whose
  /// name and plugin it shares with this one take over their maps (state). When this pipeline is attached,
  /// the new chain's first stage replaces what every link runs (one atomic bpf_link update per interface)
  /// and the returned pipeline owns the links; on failure this pipeline is unchanged (links already
  /// switched are switched back). The new chain counts in the other counters slot; what this one counted
  /// becomes its bases. With `fresh_if_changed`, a
  /// map whose shape changed starts empty instead of refusing the rebuild (the others still carry over).
  /// `before_switch` runs on the loaded new pipeline just before the switch; its failure cancels it.
  Result<std::unique_ptr<Pipeline>> rebuild(PipelineSpec spec, bool fresh_if_changed = false,
                                            const std::function<Status(Pipeline&)>& before_switch = {});

  /// An fd that is readable when events wait (epoll of the ring buffers), or -1 without ring buffers.
  int event_fd() const;
  /// Whether the handlers read EventRecord::json (default true); false lets plugins skip building it.
  void set_events_need_json(bool needed);
  /// Where swap_stage() delivers the events still queued for a plugin that is being replaced.
  void set_swap_event_handler(EventHandler handler);
  /// Hands every waiting ring-buffer record to its plugin, without blocking.
  Result<int> consume_events(const EventHandler& handler);

  /// Runs one packet through the chain (its first stage) with BPF_PROG_TEST_RUN and drains the ring buffers. A frame
  /// longer than the kernel's first buffer (about 3.5 KB) continues in fragments, as a jumbo frame from a
  /// driver does; `first_buffer` (1..frame size) sets the first buffer's length instead, so that headers
  /// can be split across buffers. 0: the kernel's choice.
  Result<TestRunResult> test_run(std::span<const std::uint8_t> frame, std::uint32_t first_buffer = 0);

  /// Polls every ring buffer up to timeout_ms; each record goes to its stage's plugin, whose decoded
  /// events go to `handler`. Returns the number of records, or an error.
  Result<int> poll_events(int timeout_ms, const EventHandler& handler);

  const PipelineSpec& spec() const { return spec_; }
  LiveStage* find_stage(const std::string& name);
  const InterfaceInfo& interface() const { return interface_; }
  std::vector<LiveStage>& stages() { return stages_; }
  /// The chain's root object: it holds the maps every stage shares (chain, packet context).
  const LoadedObject& dispatcher_object() const { return *dispatcher_; }
  std::uint32_t dispatcher_prog_id() const;
  int dispatcher_fd() const;
  /// The program the interface runs: the stage of slot 0 (contract 1, adopted: the dispatcher).
  int entry_fd() const;
  std::uint32_t entry_prog_id() const;

  /// Counters of stage `index`, or of the whole pipeline with index -1 (see CounterTotals).
  Result<CounterTotals> counters(int index) const;
  /// Every stage's counters and the pipeline's.
  Result<ChainCounters> chain_counters() const;
  const CounterBases& counter_bases() const { return bases_; }
  /// What the pipeline received on interface `ifindex` (counted by the entry stage when attached to several).
  Result<InterfaceTotals> interface_counters(int ifindex) const;
  /// The per-CPU packet context that parse filled, as CPU `cpu` last left it.
  Result<xdpp_packet> packet_context(int cpu) const;

 private:
  Pipeline() = default;
  static Result<std::unique_ptr<Pipeline>> load_reusing(PipelineSpec spec, const SearchPaths& paths,
                                                        InterfaceInfo interface, Pipeline* previous,
                                                        bool fresh_if_changed = false);
  Status rebuild_event_readers();
  /// Points every link at `to` (replacing `from`); on a failure, the links already switched go back.
  Status switch_links(int from, int to);
  /// Has `previous`'s stages rewrite the maps they share with the first `count` of this one's stages.
  void restore_configuration(Pipeline& previous, std::size_t count);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  PipelineSpec spec_;
  SearchPaths paths_;
  InterfaceInfo interface_;
  std::unique_ptr<LoadedObject> dispatcher_;
  std::vector<LiveStage> stages_;
  CounterBases bases_;
  int contract_ = XDPP_CONTRACT_VERSION;  // of an adopted pipeline: what built it
  std::vector<AttachedLink> links_;
  std::string fallback_reason_;
};

const char* verdict_name(std::uint32_t action);

/// A plugin's stage from `settings` (a [[stage]] table), validated; the plugin's ConfigError when refused.
/// `file` and `name` place errors.
Result<std::shared_ptr<Stage>> create_stage(const std::shared_ptr<LoadedPlugin>& plugin, const toml::table& settings,
                                            const std::string& file, const std::string& name);
/// Opens (never loads) every stage's BPF object as `run` would, and checks what loading needs of it:
/// the program, the contract version, the constants and shared maps. For `check`.
Status check_stage_objects(const PipelineSpec& pipeline);

/// Reads entry `ifindex` of a per-interface counters map (the root object's) by fd, summed over CPUs.
Result<InterfaceTotals> read_interface_counters(int map_fd, int ifindex);

/// The id of a bpf_link, or 0.
std::uint32_t link_id_of(int link_fd);

}  // namespace xdpp
