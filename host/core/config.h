// The pipeline file: parsed and validated completely before anything is loaded.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "plugin_loader.h"
#include <xdp_pipeline/plugin.h>
#include <xdp_pipeline/result.h>

namespace xdpp {

enum class AttachMode { native, generic, offload, automatic };
const char* to_string(AttachMode mode);
/// "native", "generic", "offload", "auto"; nullopt for anything else.
std::optional<AttachMode> parse_attach_mode(std::string_view text);
/// Why a pipeline cannot be offloaded (said for `mode = "offload"` and `--mode offload`).
extern const char* const kOffloadReason;

/// Command-line values that override the file's.
struct Overrides {
  std::optional<std::string> interface;
  std::optional<AttachMode> mode;
  std::vector<std::filesystem::path> plugin_dirs;  // searched before the file's plugin_dir and the built-ins
  std::optional<std::string> metrics;
  bool persist = false;                            // run --persist
};

/// One entry of [pipeline] interface: a name, or a rule that `run` resolves on the node, so that one file
/// (one ConfigMap) serves nodes whose interfaces are named differently.
struct InterfaceSelector {
  enum class Kind { name, first_of, default_route };
  Kind kind = Kind::name;
  std::vector<std::string> names;  // name: the one name; first_of: the candidates, in order
  /// As written, for messages: "eth0", "first_of [eth0, ens5]", "default_route".
  std::string text() const;
  bool operator==(const InterfaceSelector&) const = default;
};

/// One [[stage]] table, validated: its plugin is loaded and has accepted its settings.
struct StageSpec {
  std::string name;
  std::string plugin_name;
  std::filesystem::path object_path;   // the BPF object, resolved
  std::string object_where;            // "file:line:column" of the key that named it ("object" or "plugin")
  std::shared_ptr<LoadedPlugin> plugin;
  std::filesystem::path plugin_file;   // the plugin as found in the plugin path (swaps reload it)
  std::string plugin_signature;        // file_signature(plugin_file) when it was loaded
  std::shared_ptr<Stage> instance;     // the plugin instance: its factory's validated, immutable Stage
  toml::table settings;                // the stage's table as written (for reload comparisons)
};

/// A whole pipeline file, validated.
struct PipelineSpec {
  std::string file;
  std::string name;                    // [pipeline] name, default: the file's stem
  std::string interface;                // the interface's name when exactly one name is given (replay's)
  std::vector<InterfaceSelector> interfaces;  // every interface to attach to, as written (names or rules)
  AttachMode mode = AttachMode::automatic;
  std::uint32_t default_verdict = 2;   // XDP_PASS
  std::optional<std::array<std::uint8_t, 6>> interface_mac;  // [pipeline] mac, for replay
  bool watch = false;                  // [pipeline] watch: reload when the file changes (run --watch)
  std::optional<std::string> metrics;  // [pipeline] metrics = "PORT" or "ADDR:PORT": Prometheus endpoint
  bool persist = false;                // [pipeline] persist, or run --persist: the pipeline outlives its daemon
  std::vector<StageSpec> stages;
  std::vector<std::filesystem::path> plugin_dirs;  // the resolved plugin path, in search order
};

/// Where plugins and BPF objects are looked for: the built-ins (relative to the executable) last.
struct SearchPaths {
  std::vector<std::filesystem::path> plugin_dirs;
  std::vector<std::filesystem::path> bpf_dirs;

  /// The built-in directories next to the running executable (build tree or install tree).
  static SearchPaths builtin();
};

/// Parses TOML text; every error is "file:line:column: ... key 'k': message".
Result<PipelineSpec> parse_pipeline(std::string_view text, const std::string& file_name,
                                    const Overrides& overrides, const SearchPaths& paths);

/// "PORT" or "IPV4:PORT", port 1..65535: what [pipeline] metrics and --metrics accept.
bool valid_metrics_address(const std::string& text);
/// A name an interface can have (shorter than IF_NAMESIZE, no '/', blank, ':' or ','): what [pipeline]
/// interface and --interface accept.
bool valid_interface_name(const std::string& name);

/// The largest pipeline file read (a TOML file of a few stages is kilobytes).
inline constexpr std::uint64_t kMaxPipelineFileBytes = 16u << 20;

/// The text of a pipeline file: a regular file of at most kMaxPipelineFileBytes, opened without blocking
/// (a FIFO or a device is refused, never waited on or read without end).
Result<std::string> read_pipeline_text(const std::filesystem::path& file);

/// Reads (read_pipeline_text) and parses a pipeline file.
Result<PipelineSpec> load_pipeline_file(const std::filesystem::path& file, const Overrides& overrides,
                                        const SearchPaths& paths);

}  // namespace xdpp
