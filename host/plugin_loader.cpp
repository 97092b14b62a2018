#include "plugin_loader.h"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/dll/shared_library.hpp>
#include <cstdio>
#include <map>
#include <mutex>

namespace xdpp {
namespace {

class DllPlugin final : public LoadedPlugin {
 public:
  DllPlugin(boost::dll::shared_library library, StageFactory* factory, std::filesystem::path path)
      : library_(std::move(library)), factory_(factory), path_(std::move(path)) {}
  const StageFactory& factory() const override { return *factory_; }
  const std::filesystem::path& path() const override { return path_; }

 private:
  boost::dll::shared_library library_;  // keeps the code of factory_ mapped
  StageFactory* factory_;
  std::filesystem::path path_;
};

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Root-owned and writable by nobody else; `what` is "file" or "its directory", `kind` "plugin" or "BPF object".
Status check_owner_and_mode(const std::filesystem::path& path, const char* what, const std::filesystem::path& file,
                            const char* kind) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    return fail(kind, " ", file.string(), ": ", what, " ", path.string(), ": ", std::strerror(errno));
  if (info.st_uid != 0)
    return fail(kind, " ", file.string(), ": refused: ", what, " ", path.string(), " is owned by uid ",
                std::to_string(info.st_uid), ", not root");
  if (info.st_mode & (S_IWGRP | S_IWOTH))
    return fail(kind, " ", file.string(), ": refused: ", what, " ", path.string(),
                " is writable by group or others (mode ", octal_mode(info.st_mode), ")");
  return {};
}

}  // namespace

std::shared_ptr<Stage> adopt_stage(std::unique_ptr<Stage> stage, std::shared_ptr<LoadedPlugin> plugin) {
  return std::shared_ptr<Stage>(stage.release(), [plugin = std::move(plugin)](Stage* owned) { delete owned; });
}

std::string file_signature(const std::filesystem::path& file) {
  struct stat info {};
  if (::stat(file.c_str(), &info) != 0) return {};
  return std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino) + ":" + std::to_string(info.st_size) + ":" +
         std::to_string(info.st_mtim.tv_sec) + "." + std::to_string(info.st_mtim.tv_nsec);
}

Status check_file_safe(const std::filesystem::path& file, const char* kind) {
  std::error_code error;
  auto real = std::filesystem::canonical(file, error);
  if (error) return fail(kind, " ", file.string(), ": ", error.message());
  if (!std::filesystem::is_regular_file(real)) return fail(kind, " ", file.string(), ": not a regular file");
  XDPP_TRY(check_owner_and_mode(real, "file", file, kind));
  XDPP_TRY(check_owner_and_mode(real.parent_path(), "its directory", file, kind));
  return {};
}

Status check_plugin_file_safe(const std::filesystem::path& file) { return check_file_safe(file, "plugin"); }

Result<std::shared_ptr<LoadedPlugin>> load_plugin_file(const std::filesystem::path& file) {
  XDPP_TRY(check_plugin_file_safe(file));
  std::error_code gone;
  auto real = std::filesystem::canonical(file, gone);
  if (gone) return fail("plugin ", file.string(), ": ", gone.message());
  boost::dll::shared_library library;
  std::error_code error;  // BOOST_DLL_USE_STD_FS: Boost.DLL speaks std::filesystem
  // RTLD_LOCAL: two plugins may define the same internal names without clashing.
  library.load(real, error, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  if (error) return fail("plugin ", file.string(), ": cannot load: ", error.message());
  if (!library.has("xdpp_plugin_abi_version"))
    return fail("plugin ", file.string(), ": refused: not an xdp-pipeline plugin (no xdpp_plugin_abi_version)");
  std::uint32_t abi = library.get<const std::uint32_t>("xdpp_plugin_abi_version");
  if (abi != kPluginAbiVersion)
    return fail("plugin ", file.string(), ": refused: built against plugin ABI ", std::to_string(abi),
                ", this xdp-pipeline needs ", std::to_string(kPluginAbiVersion), " (rebuild it against this SDK)");
  if (!library.has("xdpp_plugin_factory"))
    return fail("plugin ", file.string(), ": refused: missing symbol xdpp_plugin_factory (use XDPP_PLUGIN())");
  auto make_factory = library.get<StageFactory*()>("xdpp_plugin_factory");
  StageFactory* factory = make_factory();
  if (!factory) return fail("plugin ", file.string(), ": refused: xdpp_plugin_factory returned no factory");
  return std::shared_ptr<LoadedPlugin>(std::make_shared<DllPlugin>(std::move(library), factory, real));
}

Result<std::shared_ptr<LoadedPlugin>> load_plugin_fresh(const std::filesystem::path& file,
                                                        const std::vector<std::filesystem::path>& allowed_dirs,
                                                        const std::filesystem::path& private_dir) {
  std::error_code error;
  auto real = std::filesystem::canonical(file, error);
  if (error) return fail("plugin ", file.string(), ": ", error.message());
  bool allowed = false;
  for (const auto& dir : allowed_dirs)
    if (auto canonical_dir = std::filesystem::canonical(dir, error); !error && canonical_dir == real.parent_path())
      allowed = true;
  if (!allowed) return fail("plugin ", file.string(), ": refused: not in the plugin path of this pipeline");
  XDPP_TRY(check_plugin_file_safe(real));

  static unsigned generation = 0;
  std::filesystem::create_directories(private_dir, error);
  ::chmod(private_dir.c_str(), 0700);
  auto copy = private_dir / (real.stem().string() + "." + std::to_string(::getpid()) + "." +
                             std::to_string(++generation) + ".so");
  std::filesystem::copy_file(real, copy, std::filesystem::copy_options::overwrite_existing, error);
  if (error) return fail("plugin ", file.string(), ": copying for a fresh load: ", error.message());
  ::chmod(copy.c_str(), 0500);
  auto plugin = load_plugin_file(copy);
  std::filesystem::remove(copy, error);  // the mapping outlives the name
  std::filesystem::remove(private_dir, error);  // and the directory, once empty: nothing is left in /run
  if (!plugin) return fail(plugin.error().message, " (loaded from a copy of ", real.string(), ")");
  if (plugin->get()->factory().plugin_name() != real.stem().string())
    return fail("plugin ", file.string(), ": refused: it calls itself '",
                std::string(plugin->get()->factory().plugin_name()), "', not '", real.stem().string(), "'");
  return plugin;
}

Result<std::shared_ptr<LoadedPlugin>> find_plugin(const std::string& name,
                                                  const std::vector<std::filesystem::path>& dirs) {
  // A plugin name is a file name in the plugin path, never a path: plugins come from there only.
  if (name.empty() || name.find('/') != std::string::npos || name.front() == '.')
    return fail("'", name, "' is not a plugin name");
  static std::mutex mutex;
  struct Cached {
    std::weak_ptr<LoadedPlugin> plugin;
    std::string signature;  // file_signature() when loaded
  };
  static std::map<std::filesystem::path, Cached> cache;
  std::string looked;
  for (const auto& dir : dirs) {
    auto file = dir / (name + ".so");
    if (!std::filesystem::exists(file)) {
      looked += (looked.empty() ? "" : ", ") + dir.string();
      continue;
    }
    std::lock_guard lock(mutex);
    auto& entry = cache[file];
    auto cached = entry.plugin.lock();
    if (cached && entry.signature == file_signature(file)) return cached;
    // Rebuilt since it was loaded (a reload after a build): the dynamic loader would hand back the old code
    // for the same path, so load a private copy.
    auto plugin = cached ? load_plugin_fresh(file, {dir}, "/run/xdp-pipeline/plugins." + std::to_string(::getpid()))
                         : load_plugin_file(file);
    if (!plugin) return plugin.error();
    if (plugin->get()->factory().plugin_name() != name)
      return fail("plugin ", file.string(), ": refused: it calls itself '",
                  std::string(plugin->get()->factory().plugin_name()), "', not '", name, "'");
    entry = {*plugin, file_signature(file)};
    return plugin;
  }
  return fail("unknown plugin '", name, "' (no ", name, ".so in ", looked.empty() ? "an empty plugin path" : looked, ")");
}

}  // namespace xdpp
