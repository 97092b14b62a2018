// The state file /run/xdp-pipeline/NAME.json, typed: what a run publishes about itself (state.h says when and
// where) and what adoption (daemon/persist), `status`, the daemon and the tests read back. Every key is spelt
// in state_file.cpp and nowhere else; readers and the writer go through these structs (as the control
// channel's messages do through daemon/messages.h).
//
// Reading is tolerant as it always was: a key that is missing keeps the default below (older state files lack
// some), and only `name` and `pid`, and each stage's name, plugin, object and settings, are required.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <xdp_pipeline/result.h>

#include "pipeline.h"

namespace xdpp::state {

/// One stage of the chain, in chain order.
struct Stage {
  std::string name;
  std::string plugin;           // the plugin's name
  std::string object;           // the BPF object loaded, as a path
  std::string object_sha256;    // its digest when loaded (adoption compares it with the object file)
  std::string prog_tag;         // the kernel's hash of the program (adoption checks what runs against it)
  std::string settings;         // the stage's settings, as TOML text
  std::string plugin_file;      // where the plugin was found
  std::string pins;             // the directory its maps are pinned in ("" when nothing is pinned)
  int slot = 0;
  std::uint32_t prog_id = 0;
  std::uint32_t counters_map_id = 0;  // `status` reads the counters by this id, from any mount namespace
};

/// One interface the pipeline is attached to.
struct Interface {
  std::string name;
  int ifindex = 0;
  std::string mode;             // the attach mode it got: native, generic, offload
  std::uint32_t link_id = 0;
};

/// The dispatcher object (contract 1 runs it as the entry; it always holds the chain).
struct Dispatcher {
  std::uint32_t prog_id = 0;
  std::string prog_tag;
  std::string object;
  std::string object_sha256;
  std::uint32_t interfaces_map_id = 0;  // per-interface counters, read by `status` for several interfaces
  std::string pins;
};

/// The whole file.
struct File {
  std::string name;
  int pid = 0;                  // the daemon that wrote it
  std::string file;             // the pipeline file
  std::string interface;        // the interfaces' names joined by ',' (the one "interface" of older states)
  std::vector<Interface> interfaces;
  int ifindex = 0;              // of the first interface
  std::string mode;             // as asked (run's --mode or the file's)
  std::uint32_t link_id = 0;    // of the first interface
  bool persist = false;
  int contract_version = 0;     // 0: not recorded
  std::optional<std::uint32_t> default_verdict;
  std::uint32_t entry_prog_id = 0;  // what the links run
  CounterBases counter_bases;
  Dispatcher dispatcher;
  std::optional<std::string> version;  // of the xdp-pipeline that wrote it
  long long started = 0;        // seconds since the epoch
  std::vector<Stage> stages;
};

nlohmann::json to_json(const File& file);

/// Fills `out` from `json`, key by key (`name` and `pid` first, the nested objects last). A missing key keeps
/// `out`'s value; a value of the wrong type, or a required key missing, is skipped the same way and the first
/// one is returned as the error ("stages[1]: key 'settings' is missing"), `out` holding everything else read.
Status from_json(const nlohmann::json& json, File& out);

/// A stage's or the pipeline's counter totals as the state file records them (and `status --json` prints
/// them): packets, bytes, fell_off, events_lost and one key per verdict.
nlohmann::json counter_totals_json(const CounterTotals& totals);

}  // namespace xdpp::state
