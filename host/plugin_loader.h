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

/// Checks that `file` is owned by root and writable by nobody else (nor is its directory); `kind` names
/// it in messages ("plugin", "BPF object"): the daemon runs as root, so neither may come from a file that
/// anyone else could change.
Status check_file_safe(const std::filesystem::path& file, const char* kind);
Status check_plugin_file_safe(const std::filesystem::path& file);

/// Loads `file`: safety check, then the ABI version symbol, then the factory symbol.
Result<std::shared_ptr<LoadedPlugin>> load_plugin_file(const std::filesystem::path& file);

/// Loads a fresh instance of plugin file `file` (for a swap: a rebuilt plugin at the same path must not
/// come back from the dynamic loader's cache). `file` must lie in one of `allowed_dirs` and pass the
/// safety check; it is copied into `private_dir` (root-only) and loaded from there.
Result<std::shared_ptr<LoadedPlugin>> load_plugin_fresh(const std::filesystem::path& file,
                                                        const std::vector<std::filesystem::path>& allowed_dirs,
                                                        const std::filesystem::path& private_dir);

/// Finds plugin `name` (file NAME.so) in `dirs`, in order, and loads it. Plugins are cached per path.
Result<std::shared_ptr<LoadedPlugin>> find_plugin(const std::string& name,
                                                  const std::vector<std::filesystem::path>& dirs);

}  // namespace xdpp
