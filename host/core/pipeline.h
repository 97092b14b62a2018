// A loaded pipeline: the chain's root object (its shared maps), the chain and the stages' objects, and the
// links that attach it (the interface runs the stage of slot 0). What else a pipeline does lives beside it,
// each in a file of its own:
//   stage_loader.h   one stage loaded into a chain (what load() does for each stage, and a swap for one);
//   live_changes.h   the transactions that change it while it runs (swap, set, reload) and their policy;
//   event_reader.h   its ring buffers, read into the stages' plugins (events());
//   counters.h       its counters, derived as the operator sees them;
//   test_runner.h    one packet at a time through BPF_PROG_TEST_RUN, for `replay` and the tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "counters.h"
#include "event_reader.h"
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

/// One interface the pipeline is attached to, through a bpf_link.
struct AttachedLink {
  InterfaceInfo interface;
  AttachMode mode = AttachMode::native;  // the mode it got (never automatic)
  int fd = -1;
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

  /// Loads the root object (dispatcher.bpf.o) and every stage, fills the chain and configures every stage's maps.
  /// Attaches nothing. `interface` is what plugins are told (ifindex 0 when there is none).
  static Result<std::unique_ptr<Pipeline>> load(PipelineSpec spec, const SearchPaths& paths,
                                                InterfaceInfo interface);

  /// Takes over a pipeline that a persisted run left in the kernel: the programs and maps pinned under
  /// `pins` (dispatcher/ for the root object, one directory per stage, see state.h) and its pinned XDP links, one per interface
  /// (`links`: their fds are duplicated, the caller keeps its own). Loads nothing and writes no map;
  /// `running` is the spec that run recorded (its stages, in order, with their settings), with plugins of
  /// this executable, `contract` the contract version it was built with and `bases` its counter bases.
  /// Checks that every link runs the pinned program of slot 0 (contract 1: the pinned dispatcher) on its
  /// interface, that every chain slot holds the pinned stage program, and that nothing follows the last
  /// stage. A pipeline of another contract can only be replaced (rebuild), not changed in place.
  static Result<std::unique_ptr<Pipeline>> adopt(PipelineSpec running, const SearchPaths& paths,
                                                 InterfaceInfo interface, const std::filesystem::path& pins,
                                                 const RecordedObject& root_record,
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

  /// The ring buffers of every stage, read into the stages' plugins.
  EventReader& events() { return events_; }

  const PipelineSpec& spec() const { return spec_; }
  LiveStage* find_stage(const std::string& name);
  const LiveStage* find_stage(const std::string& name) const;
  const InterfaceInfo& interface() const { return interface_; }
  std::vector<LiveStage>& stages() { return stages_; }
  const std::vector<LiveStage>& stages() const { return stages_; }
  /// The chain's root object (dispatcher.bpf.o, never attached since contract 2): it holds the maps every
  /// stage shares (chain, packet context, packets per interface).
  const LoadedObject& root_object() const { return *root_; }
  std::uint32_t root_prog_id() const;
  int root_fd() const;
  /// The program the interface runs: the stage of slot 0 (contract 1, adopted: the dispatcher).
  int entry_fd() const;
  std::uint32_t entry_prog_id() const;

  const CounterBases& counter_bases() const { return bases_; }
  /// The contract version the chain was built with (an adopted pipeline's may be older than ours).
  int contract() const { return contract_; }

 private:
  friend class LiveChanges;  // live_changes.h: the transactions change the chain, its links and its bases
  Pipeline() = default;
  static Result<std::unique_ptr<Pipeline>> load_reusing(PipelineSpec spec, const SearchPaths& paths,
                                                        InterfaceInfo interface, Pipeline* previous,
                                                        bool fresh_if_changed = false);
  /// Loads every stage's object into the chain (nothing is configured or reachable yet).
  Status load_stages(Pipeline* previous, bool fresh_if_changed);
  /// Puts every stage's program in its chain slot.
  Status fill_chain();
  /// Checks that what runs is what the pins say (adopt()).
  Status check_adopted(const std::vector<AttachedLink>& links) const;
  /// This pipeline's stage whose maps a stage of a new chain takes over (the same name and plugin), or null.
  const LiveStage* counterpart(const StageSpec& spec) const;
  /// Has `previous`'s stages rewrite the maps they share with the first `count` of this one's stages.
  void restore_configuration(Pipeline& previous, std::size_t count);
  PipelineSpec spec_;
  SearchPaths paths_;
  InterfaceInfo interface_;
  std::unique_ptr<LoadedObject> root_;
  std::vector<LiveStage> stages_;
  CounterBases bases_;
  int contract_ = XDPP_CONTRACT_VERSION;  // of an adopted pipeline: what built it
  std::vector<AttachedLink> links_;
  std::string fallback_reason_;
  EventReader events_;  // reads stages_: declared after it, so destroyed first
};

/// The id of a bpf_link, or 0.
std::uint32_t link_id_of(int link_fd);

}  // namespace xdpp
