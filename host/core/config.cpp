#include "config.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "bpf_object.h"
#include "toml_errors.h"
#include <xdp_pipeline/net.h>

namespace xdpp {

const char* to_string(AttachMode mode) {
  switch (mode) {
    case AttachMode::native: return "native";
    case AttachMode::generic: return "generic";
    case AttachMode::offload: return "offload";
    case AttachMode::automatic: return "auto";
  }
  return "?";
}

std::string InterfaceSelector::text() const {
  switch (kind) {
    case Kind::name: return names.empty() ? "" : names[0];
    case Kind::default_route: return "default_route";
    case Kind::first_of: {
      std::string text = "first_of [";
      for (std::size_t i = 0; i < names.size(); ++i) text += (i ? ", " : "") + names[i];
      return text + "]";
    }
  }
  return "?";
}

SearchPaths SearchPaths::builtin() {
  std::error_code error;
  auto exe_dir = std::filesystem::read_symlink("/proc/self/exe", error).parent_path();
  auto pkglib = (exe_dir / XDPP_REL_PKGLIBDIR).lexically_normal();
  return SearchPaths{.plugin_dirs = {pkglib / "plugins"}, .bpf_dirs = {pkglib / "bpf"}};
}

const char* const kOffloadReason =
    "offload is impossible for a pipeline: it is built on bpf_tail_call through a BPF_MAP_TYPE_PROG_ARRAY, "
    "which no offloading driver supports (nfp, the only one in mainline, offers neither); use native, "
    "generic or auto";

std::optional<AttachMode> parse_attach_mode(std::string_view text) {
  if (text == "native") return AttachMode::native;
  if (text == "generic") return AttachMode::generic;
  if (text == "offload") return AttachMode::offload;
  if (text == "auto") return AttachMode::automatic;
  return std::nullopt;
}

// "PORT" or "IPV4:PORT", port 1..65535.
bool valid_metrics_address(const std::string& text) {
  auto colon = text.rfind(':');
  std::string port = colon == std::string::npos ? text : text.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return false;
  if (int number = std::stoi(port); number < 1 || number > 65535) return false;
  return colon == std::string::npos || net::parse_ipv4(text.substr(0, colon)).has_value();
}

bool valid_interface_name(const std::string& name) {
  return !name.empty() && name.size() < IF_NAMESIZE && name.find('/') == std::string::npos && name != "." &&
         name != ".." && name.find_first_of(" \t\n:,") == std::string::npos;
}

namespace {

bool valid_name(const std::string& name) {
  static const std::regex pattern("[A-Za-z0-9][A-Za-z0-9_.-]{0,31}");
  return std::regex_match(name, pattern);
}

// Without [pipeline] name, the file's stem names the pipeline (pins, state, socket): characters a name
// cannot hold become '-', and it is cut to 32.
std::string name_from_file(const std::string& file_name) {
  std::string name = std::filesystem::path(file_name).stem().string();
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') c = '-';
  if (name.empty() || !std::isalnum(static_cast<unsigned char>(name.front()))) name.insert(0, "p");
  return name.substr(0, 32);
}

// [pipeline] interface: "eth0", ["eth0", "eth1"] (each attached), { first_of = ["eth0", "ens5"] } (the
// first that exists on the node), { default_route = true } (the interface of the default route); a
// list may hold rules too.
std::vector<InterfaceSelector> read_interfaces(const Settings& pipeline, const toml::node& node) {
  using Kind = InterfaceSelector::Kind;
  auto name_at = [&](const toml::node& item) {
    auto name = item.value_exact<std::string>();
    if (!name) pipeline.fail(item, "interface", std::string("expected an interface name, found ") + Settings::node_type_name(item));
    if (!valid_interface_name(*name)) pipeline.fail(item, "interface", "'" + *name + "' is not an interface name");
    return *name;
  };
  auto one = [&](const toml::node& item) -> InterfaceSelector {
    const toml::table* rule = item.as_table();
    if (!rule) return {.kind = Kind::name, .names = {name_at(item)}};
    if (rule->size() != 1)
      pipeline.fail(item, "interface", "a rule is one of { first_of = [NAMES] } or { default_route = true }");
    auto [key, value] = *rule->begin();  // a proxy holding references into the table
    if (key == "first_of") {
      const toml::array* names = value.as_array();
      if (!names || names->empty()) pipeline.fail(value, "interface", "first_of: expected a non-empty list of names");
      InterfaceSelector selector{.kind = Kind::first_of, .names = {}};
      for (const auto& candidate : *names) selector.names.push_back(name_at(candidate));
      return selector;
    }
    if (key == "default_route") {
      if (value.value_exact<bool>() != true) pipeline.fail(value, "interface", "default_route: expected true");
      return {.kind = Kind::default_route, .names = {}};
    }
    pipeline.fail(key.source(), "interface",
                  "unknown rule '" + std::string(key.str()) + "' (first_of = [NAMES] or default_route = true)");
  };
  std::vector<InterfaceSelector> selectors;
  if (const toml::array* list = node.as_array()) {
    if (list->empty()) pipeline.fail(node, "interface", "expected at least one interface");
    for (const auto& item : *list) selectors.push_back(one(item));
    for (std::size_t i = 0; i < selectors.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (selectors[i] == selectors[j]) pipeline.fail((*list)[i], "interface", "'" + selectors[i].text() + "' is listed twice");
  } else {
    selectors.push_back(one(node));
  }
  return selectors;
}

// A string or array of strings, as paths relative to the pipeline file's directory.
std::vector<std::filesystem::path> read_dirs(const Settings& settings, std::string_view key,
                                             const std::filesystem::path& base) {
  std::vector<std::filesystem::path> dirs;
  const toml::node* node = settings.find(key);
  if (!node) return dirs;
  auto add = [&](const toml::node& item) {
    auto text = item.value_exact<std::string>();
    if (!text || text->empty()) settings.fail(item, key, "expected a directory (string)");
    dirs.push_back(base / *text);
  };
  if (auto* array = node->as_array())
    for (const auto& item : *array) add(item);
  else
    add(*node);
  return dirs;
}

std::filesystem::path find_object(const std::string& file, const std::vector<std::filesystem::path>& dirs) {
  std::error_code error;  // the non-throwing exists(): a name too long is just not there
  for (const auto& dir : dirs)
    if (std::filesystem::exists(dir / file, error)) return dir / file;
  return {};
}

// [pipeline]'s own settings (not the search paths), with the command line's overrides.
void read_pipeline_settings(const Settings& pipeline, const std::string& file_name, const Overrides& overrides,
                            PipelineSpec& spec) {
  if (auto name = pipeline.optional<std::string>("name")) {
    spec.name = *name;
    if (!valid_name(spec.name))
      pipeline.fail(*pipeline.find("name"), "name", "'" + spec.name + "' is not a name (letters, digits, _ . -, at most 32)");
  } else {
    spec.name = name_from_file(file_name);
  }

  // The file's value is checked even when --interface (NAME or NAME,NAME...: names only) overrides it.
  if (const toml::node* interface = pipeline.find("interface")) spec.interfaces = read_interfaces(pipeline, *interface);
  if (overrides.interface) {
    spec.interfaces.clear();
    std::stringstream names(*overrides.interface);
    for (std::string name; std::getline(names, name, ',');)
      spec.interfaces.push_back({.kind = InterfaceSelector::Kind::name, .names = {name}});
  }
  if (spec.interfaces.size() == 1 && spec.interfaces[0].kind == InterfaceSelector::Kind::name)
    spec.interface = spec.interfaces[0].names[0];

  spec.watch = pipeline.optional<bool>("watch").value_or(false);

  if (auto mode = pipeline.optional<std::string>("mode")) {
    auto parsed = parse_attach_mode(*mode);
    if (!parsed) pipeline.fail(*pipeline.find("mode"), "mode", "'" + *mode + "' is not one of native, generic, offload, auto");
    if (*parsed == AttachMode::offload && !overrides.mode) pipeline.fail(*pipeline.find("mode"), "mode", kOffloadReason);
    spec.mode = *parsed;
  }
  if (overrides.mode) spec.mode = *overrides.mode;

  if (auto verdict = pipeline.verdict("default_verdict")) spec.default_verdict = *verdict;

  if (auto mac = pipeline.optional<std::string>("mac")) {
    spec.interface_mac = net::parse_mac(*mac);
    if (!spec.interface_mac) pipeline.fail(*pipeline.find("mac"), "mac", "'" + *mac + "' is not a MAC address");
  }

  if (auto metrics = pipeline.optional<std::string>("metrics")) {
    if (!valid_metrics_address(*metrics))
      pipeline.fail(*pipeline.find("metrics"), "metrics",
                    "'" + *metrics + "' is not PORT or IPV4:PORT (port 1..65535)");
    spec.metrics = *metrics;
  }
  if (overrides.metrics) spec.metrics = overrides.metrics;
  spec.persist = pipeline.optional<bool>("persist").value_or(false) || overrides.persist;

}

// Search order: the command line's, the file's, then the built-ins next to the executable.
SearchPaths read_search_paths(const Settings& pipeline, const std::filesystem::path& base, const Overrides& overrides,
                              const SearchPaths& builtin) {
  SearchPaths paths;
  paths.plugin_dirs = overrides.plugin_dirs;
  for (auto& dir : read_dirs(pipeline, "plugin_dir", base)) paths.plugin_dirs.push_back(dir);
  paths.bpf_dirs = paths.plugin_dirs;
  paths.plugin_dirs.insert(paths.plugin_dirs.end(), builtin.plugin_dirs.begin(), builtin.plugin_dirs.end());
  paths.bpf_dirs.insert(paths.bpf_dirs.end(), builtin.bpf_dirs.begin(), builtin.bpf_dirs.end());
  return paths;
}

// One [[stage]] table: its name (unique among `earlier`), plugin, BPF object, and the plugin's validation.
StageSpec read_stage(const toml::table& table, const std::string& file_name, const std::filesystem::path& base,
                     const SearchPaths& paths, const std::vector<StageSpec>& earlier) {
  Settings frame(table, file_name, "", "[[stage]] #" + std::to_string(earlier.size() + 1));
  StageSpec stage;
  stage.name = frame.required<std::string>("name");
  if (!valid_name(stage.name))
    frame.fail(*frame.find("name"), "name", "'" + stage.name + "' is not a name (letters, digits, _ . -, at most 32)");
  if (stage.name == "dispatcher")
    frame.fail(*frame.find("name"), "name", "'dispatcher' is reserved for the root program (its pins and counters)");
  if (stage.name == "links")
    frame.fail(*frame.find("name"), "name", "'links' is reserved for the pinned XDP links of a persisted pipeline");
  for (const auto& other : earlier)
    if (other.name == stage.name) frame.fail(*frame.find("name"), "name", "duplicate stage name '" + stage.name + "'");

  Settings settings(table, file_name, stage.name);
  stage.plugin_name = settings.required<std::string>("plugin");
  auto plugin = find_plugin(stage.plugin_name, paths.plugin_dirs);
  if (!plugin) settings.fail(*settings.find("plugin"), "plugin", plugin.error().message);
  stage.plugin = *plugin;
  stage.plugin_file = stage.plugin->path();
  stage.plugin_signature = file_signature(stage.plugin_file);
  const StageFactory& factory = stage.plugin->factory();

  std::string object_file(factory.object_file());
  if (auto object = settings.optional<std::string>("object")) {
    stage.object_path = base / *object;
    std::error_code error;
    if (!std::filesystem::exists(stage.object_path, error))
      settings.fail(*settings.find("object"), "object", "no file " + stage.object_path.string());
  } else {
    stage.object_path = find_object(object_file, paths.bpf_dirs);
    if (stage.object_path.empty())
      settings.fail(*settings.find("plugin"), "plugin",
                    "plugin '" + stage.plugin_name + "' needs BPF object " + object_file + ", found in no BPF directory");
  }
  const toml::node& object_key = *settings.find(settings.find("object") ? "object" : "plugin");
  if (auto safe = check_file_safe(stage.object_path, "BPF object"); !safe)
    settings.fail(object_key, "object", safe.error().message);
  if (const auto& at = object_key.source().begin; at.line > 0)
    stage.object_where = file_name + ":" + std::to_string(at.line) + ":" + std::to_string(at.column);
  settings.find("name");
  // What the plugin throws is the plugin's own code (vtable, type info). Unwinding past `stage`, its
  // last owner, unloads the plugin, and destroying that exception afterwards would jump into unmapped
  // memory: turn it into one of the host's while the plugin is still loaded.
  try {
    stage.instance = adopt_stage(factory.create(settings), stage.plugin);
  } catch (const ConfigError& error) {
    throw ConfigError(error.what());
  } catch (const std::exception& error) {
    throw std::runtime_error(error.what());
  } catch (...) {
    throw std::runtime_error("stage '" + stage.name + "': the plugin threw while validating its settings");
  }
  settings.reject_unread_keys();
  stage.settings = table;
  return stage;
}

// Reads [pipeline] and every [[stage]]; throws ConfigError at the first error.
PipelineSpec read_document(const toml::table& document, const std::string& file_name, const Overrides& overrides,
                           const SearchPaths& builtin) {
  PipelineSpec spec;
  spec.file = file_name;
  const std::filesystem::path base = std::filesystem::path(file_name).parent_path();
  Settings root(document, file_name, "", "file");
  static const toml::table empty;

  const toml::node* pipeline_node = root.find("pipeline");
  if (pipeline_node && !pipeline_node->is_table()) root.fail(*pipeline_node, "pipeline", "expected a table [pipeline]");
  const toml::table& pipeline_table = pipeline_node ? *pipeline_node->as_table() : empty;
  Settings pipeline(pipeline_table, file_name, "", "[pipeline]");
  read_pipeline_settings(pipeline, file_name, overrides, spec);
  const SearchPaths paths = read_search_paths(pipeline, base, overrides, builtin);
  pipeline.reject_unread_keys();
  spec.plugin_dirs = paths.plugin_dirs;

  const toml::node* stages_node = root.find("stage");
  if (!stages_node) root.fail("stage", "no stages: add at least one [[stage]] table");
  const toml::array* stages = stages_node->as_array();
  if (stages_node->is_table())
    root.fail(*stages_node, "stage",
              "[stage] is written [[stage]]: every stage is one table of the list of stages, in double brackets");
  if (!stages || !stages->is_array_of_tables())
    root.fail(*stages_node, "stage", "expected [[stage]] tables");
  if (stages->empty()) root.fail(*stages_node, "stage", "no stages: add at least one [[stage]] table");
  root.reject_unread_keys();

  if (stages->size() > XDPP_MAX_STAGES)
    root.fail((*stages)[XDPP_MAX_STAGES], "stage",
              "too many stages: " + std::to_string(stages->size()) + ", the kernel's tail-call limit allows " +
                  std::to_string(XDPP_MAX_STAGES));

  for (const auto& stage_node : *stages)
    spec.stages.push_back(read_stage(*stage_node.as_table(), file_name, base, paths, spec.stages));
  return spec;
}

}  // namespace

Result<PipelineSpec> parse_pipeline(std::string_view text, const std::string& file_name, const Overrides& overrides,
                                    const SearchPaths& paths) {
  toml::table document;
  try {
    document = toml::parse(text, file_name);
  } catch (const toml::parse_error& error) {
    const auto& begin = error.source().begin;
    SyntaxError explained = explain_syntax_error(text, begin.line, begin.column, error.description());
    return fail(file_name, ":", std::to_string(explained.line), ":", std::to_string(explained.column),
                ": syntax error: ", explained.message);
  }
  try {
    return read_document(document, file_name, overrides, paths);
  } catch (const ConfigError& error) {
    return Error{error.what()};
  } catch (const std::exception& error) {
    // A plugin that throws something else while validating is contained and named.
    return fail(file_name, ": a plugin failed while validating its settings: ", error.what());
  }
}

Result<std::string> read_pipeline_text(const std::filesystem::path& file) {
  // Opened without blocking (a FIFO would wait for a writer forever), then only a regular file of bounded
  // size is read (a link to /dev/zero would grow without end).
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd) return fail(file.string(), ": cannot read: ", std::strerror(errno));
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return fail(file.string(), ": cannot read: ", std::strerror(errno));
  if (S_ISDIR(info.st_mode)) return fail(file.string(), ": cannot read: ", std::strerror(EISDIR));
  if (!S_ISREG(info.st_mode)) return fail(file.string(), ": cannot read: not a regular file");
  const auto too_big = [&] {
    return fail(file.string(), ": cannot read: larger than ", std::to_string(kMaxPipelineFileBytes >> 20),
                " MiB, the limit for a pipeline file");
  };
  if (static_cast<std::uint64_t>(info.st_size) > kMaxPipelineFileBytes) return too_big();
  std::string text;
  char buffer[65536];
  for (;;) {
    ssize_t got = ::read(fd.get(), buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return fail(file.string(), ": cannot read: ", std::strerror(errno));
    if (got == 0) break;
    text.append(buffer, got);
    if (text.size() > kMaxPipelineFileBytes) return too_big();  // it grew while being read
  }
  return text;
}

Result<PipelineSpec> load_pipeline_file(const std::filesystem::path& file, const Overrides& overrides,
                                        const SearchPaths& paths) {
  auto text = read_pipeline_text(file);
  if (!text) return text.error();
  return parse_pipeline(*text, file.string(), overrides, paths);
}

}  // namespace xdpp
