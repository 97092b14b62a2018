// Loads stage plugins with Boost.DLL, refusing anything that is not safe or not ours.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <xdp_pipeline/plugin.h>
#include <xdp_pipeline/result.h>

namespace xdpp {

/// A plugin library kept loaded as long as anything uses its factory or stages.
class LoadedPlugin {
 public:
  virtual ~LoadedPlugin() = default;
  virtual const StageFactory& factory() const = 0;
  virtual const std::filesystem::path& path() const = 0;
};

/// Owns a Stage made by `plugin`'s factory and keeps the plugin's code mapped until the Stage is gone
/// (its destructor and vtable live in the plugin).
std::shared_ptr<Stage> adopt_stage(std::unique_ptr<Stage> stage, std::shared_ptr<LoadedPlugin> plugin);

/// Calls into a plugin (before_load, configure, ...) and turns anything it throws into an Error while the
/// plugin is still loaded (the exception's type and message may live in the plugin's code).
template <class Call>
Status call_plugin(const std::string& what, Call&& call) noexcept {
  try {
    return call();
  } catch (const std::exception& error) {
    return Error{what + ": the plugin threw: " + error.what()};
  } catch (...) {
    return Error{what + ": the plugin threw"};
  }
}

/// Device, inode, size and modification time of `file` ("" when it cannot be read): tells a rebuilt
/// plugin from the one loaded.
std::string file_signature(const std::filesystem::path& file);

/// Checks that `file` is owned by root and writable by nobody else, nor is any directory on its way from /
/// (symbolic links resolved, each one's own directory checked too; a root-owned sticky directory such as
/// /tmp may be passed through); `kind` names it in messages ("plugin", "BPF object"): the daemon runs as
/// root, so neither may come from a file that anyone else could change or swap.
Status check_file_safe(const std::filesystem::path& file, const char* kind);
Status check_plugin_file_safe(const std::filesystem::path& file);

/// Loads `file`: safety check, then the file is opened once and verified to be the one checked, copied
/// into memory (memfd) and loaded from there through /proc/self/fd/N; then the ABI version symbol and
/// the factory symbol. Every load is a fresh instance, and nothing is written to disk.
Result<std::shared_ptr<LoadedPlugin>> load_plugin_file(const std::filesystem::path& file);

/// Loads a fresh instance of plugin file `file` (for a swap: a rebuilt plugin at the same path must not
/// come back from the dynamic loader's cache). `file` must lie in one of `allowed_dirs`, pass the
/// safety check and call itself by its file's stem.
Result<std::shared_ptr<LoadedPlugin>> load_plugin_fresh(const std::filesystem::path& file,
                                                        const std::vector<std::filesystem::path>& allowed_dirs);

/// Finds plugin `name` (file NAME.so) in `dirs` and loads it; refuses a name found in two directories (the
/// same file reached twice is one). Plugins are cached per path.
Result<std::shared_ptr<LoadedPlugin>> find_plugin(const std::string& name,
                                                  const std::vector<std::filesystem::path>& dirs);

}  // namespace xdpp
