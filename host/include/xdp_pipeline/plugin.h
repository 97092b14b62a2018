// The plugin interface: what a stage's host plugin implements and what the host gives it.
//
// A plugin is a shared library exporting two C symbols, both written by XDPP_PLUGIN(FactoryType):
//   xdpp_plugin_abi_version   const std::uint32_t, checked by the host before anything else is touched;
//   xdpp_plugin_factory       StageFactory* (), the plugin's one factory.
// The host loads it only from its plugin path, only if root owns it and nobody else can write it.
//
// Life of a stage: factory.create(settings) validates the stage's TOML table into an immutable Stage
// (throwing ConfigError at the offending key; no side effects) -> the host opens the BPF object ->
// stage.before_load() sets load-time constants -> load -> stage.configure() writes the stage's maps ->
// the stage joins the chain -> stage.on_event() for every ring-buffer record, on the host's event thread.
#pragma once

#include <bpf/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <toml++/toml.h>
#include <utility>
#include <vector>

#include <xdp_pipeline/result.h>

extern "C" {
#include <xdp_pipeline/contract.h>
}

namespace xdpp {

/// Revision of this header's interfaces; bumped with any change of their shape (a virtual added, ...).
inline constexpr std::uint32_t kPluginInterfaceRevision = 3;
/// What a plugin was built against: this header's revision and the BPF contract's version.
inline constexpr std::uint32_t kPluginAbiVersion = kPluginInterfaceRevision * 1000u + XDPP_CONTRACT_VERSION;

/// A setting that failed validation. Thrown only while reading configuration, never afterwards.
/// what() is a C string: control bytes of the message (a NUL in a quoted name would cut it short) are
/// kept visible as \xNN.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(const std::string& message) : std::runtime_error(visible(message)) {}
  explicit ConfigError(const char* message) : ConfigError(std::string(message)) {}

 private:
  static std::string visible(const std::string& message) {
    static const char digits[] = "0123456789abcdef";
    std::string text;
    for (unsigned char c : message) {
      if (c >= 0x20 || c == '\n' || c == '\t') {
        text.push_back(static_cast<char>(c));
      } else {
        text += "\\x";
        text.push_back(digits[c >> 4]);
        text.push_back(digits[c & 15]);
      }
    }
    return text;
  }
};

/// One stage's table from the pipeline file. Records which keys were read, so that the host can reject
/// the ones nobody read (misspellings) with their position.
class Settings {
 public:
  /// `scope` names the table in messages; by default "stage '<stage_name>'".
  Settings(const toml::table& table, std::string file, std::string stage_name, std::string scope = {})
      : table_(table),
        file_(std::move(file)),
        stage_(std::move(stage_name)),
        scope_(scope.empty() ? "stage '" + stage_ + "'" : std::move(scope)) {}

  const std::string& stage_name() const { return stage_; }
  const toml::table& table() const { return table_; }

  /// The node under `key`, or nullptr; marks the key as read.
  const toml::node* find(std::string_view key) const {
    used_.insert(std::string(key));
    return table_.get(key);
  }

  /// An optional setting of TOML type T (std::int64_t, double, bool, std::string). Wrong type throws.
  template <class T>
  std::optional<T> optional(std::string_view key) const {
    const toml::node* node = find(key);
    if (!node) return std::nullopt;
    if (auto value = node->value_exact<T>()) return *value;
    fail(*node, key, std::string("expected ") + type_name<T>() + ", found " + node_type_name(*node));
  }

  /// A required setting of TOML type T.
  template <class T>
  T required(std::string_view key) const {
    if (auto value = optional<T>(key)) return *value;
    fail(key, "missing (required)");
  }

  /// An optional verdict setting: "pass" or "drop", as the XDP action (XDP_PASS, XDP_DROP). The one parser
  /// of every verdict key in pipeline files (default_verdict, parse's malformed, port_filter's fragments).
  std::optional<std::uint32_t> verdict(std::string_view key) const {
    auto word = optional<std::string>(key);
    if (!word) return std::nullopt;
    if (*word == "pass") return XDP_PASS;
    if (*word == "drop") return XDP_DROP;
    fail(*find(key), key, "'" + *word + "' is not a verdict (expected \"pass\" or \"drop\")");
  }

  /// An array under `key` (empty when absent); wrong type throws.
  const toml::array* array(std::string_view key) const {
    const toml::node* node = find(key);
    if (!node) return nullptr;
    if (auto* arr = node->as_array()) return arr;
    fail(*node, key, std::string("expected an array, found ") + node_type_name(*node));
  }

  /// Throws a ConfigError positioned at `node` ("file:line:col: stage 'x': key 'k': message").
  [[noreturn]] void fail(const toml::node& node, std::string_view key, const std::string& message) const {
    fail(node.source(), key, message);
  }

  /// The same, positioned at a source region: a key's own (toml::key::source()) inside a nested table.
  [[noreturn]] void fail(const toml::source_region& where, std::string_view key, const std::string& message) const {
    throw ConfigError(prefix(where) + scope_ + ": key '" + std::string(key) + "': " + message);
  }

  /// Throws a ConfigError positioned at the stage's table (for a missing key). When a key nobody read is a
  /// likely misspelling of `key`, that is what the user wrote: the error names it, where it stands.
  [[noreturn]] void fail(std::string_view key, const std::string& message) const {
    for (const auto& [written, node] : table_)
      if (!used_.count(std::string(written.str())) && edit_distance(written.str(), key) < close_enough(written.str()))
        throw ConfigError(prefix(written.source()) + scope_ + ": key '" + std::string(written.str()) +
                          "': unknown key; did you mean '" + std::string(key) + "'?");
    fail(table_, key, message);
  }

  /// Throws a ConfigError at the first key of the table that nobody read (a misspelling, usually).
  /// The message names the nearest key that was read, when one is close enough to be a misspelling of it.
  void reject_unread_keys() const {
    for (const auto& [key, node] : table_) {
      if (used_.count(std::string(key.str()))) continue;
      std::string message = "unknown key";
      if (auto nearest = nearest_key(key.str()); !nearest.empty()) message += "; did you mean '" + nearest + "'?";
      throw ConfigError(prefix(key.source()) + scope_ + ": key '" + std::string(key.str()) + "': " + message);
    }
  }

  /// The key read from this table that is nearest to `key` in edit distance, if at most about a third of
  /// its letters (1 to 3) differ; "" otherwise.
  std::string nearest_key(std::string_view key) const {
    std::string best;
    std::size_t best_distance = close_enough(key);
    for (const auto& known : used_)
      if (std::size_t distance = edit_distance(key, known); distance < best_distance) {
        best = known;
        best_distance = distance;
      }
    return best;
  }

  /// Distances below this make `key` a likely misspelling: about a third of its letters (1 to 3).
  static std::size_t close_enough(std::string_view key) { return std::clamp<std::size_t>((key.size() + 2) / 3, 1, 3) + 1; }

  /// Levenshtein distance, with a transposition of two neighbours counting as one edit (dts -> dst).
  static std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i)
      for (std::size_t j = 1; j <= b.size(); ++j) {
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    return d[a.size()][b.size()];
  }

  static const char* node_type_name(const toml::node& node) {
    switch (node.type()) {
      case toml::node_type::string: return "a string";
      case toml::node_type::integer: return "an integer";
      case toml::node_type::floating_point: return "a float";
      case toml::node_type::boolean: return "a boolean";
      case toml::node_type::array: return "an array";
      case toml::node_type::table: return "a table";
      default: return "a date/time";
    }
  }

 private:
  template <class T>
  static const char* type_name() {
    if constexpr (std::is_same_v<T, std::string>) return "a string";
    else if constexpr (std::is_same_v<T, bool>) return "a boolean";
    else if constexpr (std::is_same_v<T, double>) return "a float";
    else return "an integer";
  }

  // "FILE:LINE:COLUMN: ", or "FILE: " where the value has no position; "" without a file: the settings of
  // `set STAGE KEY=VALUE` came from a command line, where a position would mean nothing.
  std::string prefix(const toml::source_region& where) const {
    if (file_.empty()) return {};
    const auto& begin = where.begin;
    if (begin.line == 0) return file_ + ": ";
    return file_ + ":" + std::to_string(begin.line) + ":" + std::to_string(begin.column) + ": ";
  }

  const toml::table& table_;
  std::string file_;
  std::string stage_;
  std::string scope_;
  mutable std::set<std::string> used_;
};

/// A one-entry BPF array map mapped into this process (MapHandle::mmap): the stage's global data
/// (XDPP_STAGE_DATA). Writes reach the running program at once; unmapped when destroyed.
class MappedData {
 public:
  MappedData(void* address, std::size_t size) : address_(address), size_(size) {}
  MappedData(MappedData&& other) noexcept : address_(std::exchange(other.address_, nullptr)), size_(other.size_) {}
  MappedData& operator=(MappedData&&) = delete;
  ~MappedData() {
    if (address_) ::munmap(address_, size_);
  }

  /// The data as the program's struct T (its size checked by MapHandle::mmap).
  template <class T>
  T& as() const { return *static_cast<T*>(address_); }

 private:
  void* address_;
  std::size_t size_;
};

/// A loaded BPF map of the stage, by fd (not owned: the host owns the object).
struct MapHandle {
  int fd = -1;
  std::string name;
  std::uint32_t type = 0;
  std::uint32_t key_size = 0;
  std::uint32_t value_size = 0;
  std::uint32_t max_entries = 0;

  /// bpf_map_update_elem with a size check of both key and value against the map's.
  template <class Key, class Value>
  Status update(const Key& key, const Value& value, std::uint64_t flags = BPF_ANY) const {
    if (sizeof(Key) != key_size || sizeof(Value) != value_size)
      return fail("map '", name, "': key/value size ", std::to_string(sizeof(Key)), "/",
                  std::to_string(sizeof(Value)), " does not match the map's ", std::to_string(key_size), "/",
                  std::to_string(value_size));
    if (bpf_map_update_elem(fd, &key, &value, flags) != 0)
      return fail("map '", name, "': update: ", std::strerror(errno));
    return {};
  }

  /// Maps the value of a one-entry mmapable array map (a stage's global data, XDPP_STAGE_DATA_SECTION) into
  /// this process, checked to hold at least a T (a program may have grown its data at the end). The plugin
  /// writes the program's configuration there in place: a setting of several fields goes into a set the
  /// program does not use, then one aligned 4-byte store (std::atomic_ref) flips the index the program reads.
  template <class T>
  Result<MappedData> mmap() const {
    if (type != BPF_MAP_TYPE_ARRAY || max_entries != 1 || value_size < sizeof(T))
      return fail("map '", name, "': not global data holding ", std::to_string(sizeof(T)), " bytes (type ",
                  std::to_string(type), ", ", std::to_string(max_entries), " entries of ", std::to_string(value_size),
                  " bytes); was the stage built against another layout?");
    const long page = ::sysconf(_SC_PAGESIZE);
    const std::size_t size = (value_size + page - 1) / page * page;
    void* address = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (address == MAP_FAILED) return fail("map '", name, "': mmap: ", std::strerror(errno));
    return MappedData(address, size);
  }

  /// bpf_map_lookup_elem with the same size check; for per-CPU maps use lookup_percpu.
  template <class Key, class Value>
  Status lookup(const Key& key, Value& value) const {
    if (sizeof(Key) != key_size || sizeof(Value) != value_size)
      return fail("map '", name, "': key/value size mismatch");
    if (bpf_map_lookup_elem(fd, &key, &value) != 0)
      return fail("map '", name, "': lookup: ", std::strerror(errno));
    return {};
  }
};

/// The network interface a pipeline runs on (replay: the one the file names, which may not exist).
struct InterfaceInfo {
  std::string name;
  int ifindex = 0;                                   // 0 in replay
  std::optional<std::array<std::uint8_t, 6>> mac;    // the interface's own MAC, when known
};

/// What a plugin sees of its stage's BPF object; implemented by the host.
class StageObject {
 public:
  virtual ~StageObject() = default;
  virtual const std::string& stage_name() const = 0;
  virtual const InterfaceInfo& interface() const = 0;
  /// A map of this stage's object, by its name in the BPF source.
  virtual Result<MapHandle> map(std::string_view name) const = 0;
  /// Sets a `const volatile` global of the object's .rodata; only in before_load().
  virtual Status set_constant(std::string_view name, const void* value, std::size_t size) = 0;
  /// Sets a map's max_entries (a ring buffer's size in bytes); only in before_load().
  virtual Status set_map_size(std::string_view name, std::uint32_t max_entries) = 0;

  template <class T>
  Status set_constant(std::string_view name, const T& value) {
    return set_constant(name, &value, sizeof(T));
  }
};

/// One decoded event: the line printed by `run` and the JSON object `replay` reports.
struct EventRecord {
  std::string text;
  nlohmann::json json;
};

/// Where a stage's decoded events go (printed by `run`, collected per packet by `replay`).
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void emit(EventRecord record) = 0;
  /// Whether anyone reads EventRecord::json (replay does; `run` in text mode does not). A plugin may skip
  /// building it when false: at millions of events per second that is most of the cost.
  virtual bool wants_json() const { return true; }
};

/// A live stage: its validated settings plus what it does with its maps and events.
class Stage {
 public:
  virtual ~Stage() = default;
  /// Between open and load: set load-time constants with object.set_constant().
  virtual Status before_load(StageObject&) { return {}; }
  /// After load, and again on a live reconfiguration: write the stage's maps and global data from the settings.
  virtual Status configure(StageObject& object) = 0;
  /// One record from ring buffer `map`. Runs on the event thread; must not throw (it is contained).
  virtual void on_event(std::string_view /*map*/, std::span<const std::byte> /*data*/, EventSink& /*sink*/) {}
  /// One short line for the start-up summary ("vip 192.168.1.2, 2 backends").
  virtual std::string describe() const { return {}; }
};

/// A plugin's factory: its name, its BPF object, and validation of settings into a Stage.
class StageFactory {
 public:
  virtual ~StageFactory() = default;
  /// The name used as `plugin = "..."` in the pipeline file.
  virtual std::string_view plugin_name() const = 0;
  /// File name of the stage's BPF object, looked up in the BPF object path.
  virtual std::string_view object_file() const = 0;
  /// Name of the SEC("xdp.frags") program in that object.
  virtual std::string_view program_name() const = 0;
  /// Validates `settings` (throwing ConfigError at the offending key) into an immutable Stage.
  virtual std::unique_ptr<Stage> create(const Settings& settings) const = 0;
};

}  // namespace xdpp

/// Exports a plugin's factory and the ABI version it was built against. Use once per plugin.
#define XDPP_PLUGIN(FactoryType)                                                                       \
  extern "C" __attribute__((visibility("default"))) const std::uint32_t xdpp_plugin_abi_version =      \
      ::xdpp::kPluginAbiVersion;                                                                       \
  extern "C" __attribute__((visibility("default"))) ::xdpp::StageFactory* xdpp_plugin_factory() {     \
    static FactoryType factory;                                                                        \
    return &factory;                                                                                   \
  }
