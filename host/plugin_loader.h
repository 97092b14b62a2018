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

/// Checks that `file` is owned by root and writable by nobody else (nor is its directory).
Status check_plugin_file_safe(const std::filesystem::path& file);

/// Loads `file`: safety check, then the ABI version symbol, then the factory symbol.
Result<std::shared_ptr<LoadedPlugin>> load_plugin_file(const std::filesystem::path& file);

/// Finds plugin `name` (file NAME.so) in `dirs`, in order, and loads it. Plugins are cached per path.
Result<std::shared_ptr<LoadedPlugin>> find_plugin(const std::string& name,
                                                  const std::vector<std::filesystem::path>& dirs);

}  // namespace xdpp
