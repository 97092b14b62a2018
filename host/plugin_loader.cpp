#include "plugin_loader.h"

#include "bpf_object.h"  // UniqueFd

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/dll/shared_library.hpp>
#include <cerrno>
#include <cstring>
#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>

namespace xdpp {
namespace {

class DllPlugin final : public LoadedPlugin {
 public:
  DllPlugin(boost::dll::shared_library library, StageFactory* factory, std::filesystem::path path, UniqueFd image)
      : library_(std::move(library)), factory_(factory), path_(std::move(path)), image_(std::move(image)) {}
  const StageFactory& factory() const override { return *factory_; }
  const std::filesystem::path& path() const override { return path_; }

 private:
  boost::dll::shared_library library_;  // keeps the code of factory_ mapped
  StageFactory* factory_;
  std::filesystem::path path_;
  UniqueFd image_;  // the in-memory copy it was loaded from; open while loaded, so its /proc name is unique
};

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Root-owned and writable by nobody else; `what` names `path` ("file", "its directory", "directory"),
// `kind` the thing checked ("plugin", "BPF object"). A directory that others may write to but that has
// the sticky bit (/tmp) is safe to pass through: nobody but root can rename or remove root's entries in
// it, and every entry looked up there is checked to be root's.
Status check_owner_and_mode(const struct stat& info, const std::filesystem::path& path, const char* what,
                            const std::filesystem::path& file, const char* kind) {
  if (info.st_uid != 0)
    return fail(kind, " ", file.string(), ": refused: ", what, " ", path.string(), " is owned by uid ",
                std::to_string(info.st_uid), ", not root");
  const bool sticky_dir = S_ISDIR(info.st_mode) && (info.st_mode & S_ISVTX);
  if ((info.st_mode & (S_IWGRP | S_IWOTH)) && !sticky_dir)
    return fail(kind, " ", file.string(), ": refused: ", what, " ", path.string(),
                " is writable by group or others (mode ", octal_mode(info.st_mode), ")");
  return {};
}

// The file `file` names, resolved one component at a time as the kernel would (symbolic links
// included), with every directory looked into checked like the file itself: root's and closed to
// others, up to /. So nobody but root can change what the path leads to, not by writing the file, nor
// by renaming or exchanging a directory on the way (as OpenSSH's safe_path checks authorized_keys),
// nor through a symbolic link placed in a directory they can write.
struct Resolved {
  std::filesystem::path path;
  struct stat info {};
};

Result<Resolved> resolve_safely(const std::filesystem::path& file, const char* kind) {
  std::error_code error;
  std::filesystem::path absolute = std::filesystem::absolute(file, error);
  if (error) return fail(kind, " ", file.string(), ": ", error.message());
  std::vector<std::string> pending;  // components still to walk, last first
  auto push_components = [&](const std::filesystem::path& path) {
    std::vector<std::string> parts;
    for (const auto& part : path.relative_path()) parts.push_back(part.string());
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) pending.push_back(*it);
  };
  push_components(absolute);
  std::filesystem::path current = "/";
  struct stat info {};
  if (::stat("/", &info) != 0) return fail(kind, " ", file.string(), ": /: ", std::strerror(errno));
  XDPP_TRY(check_owner_and_mode(info, current, "directory", file, kind));
  int links = 0;
  while (!pending.empty()) {
    const std::string part = pending.back();
    pending.pop_back();
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      current = current.parent_path();  // a directory already checked on the way down
      continue;
    }
    const std::filesystem::path next = current / part;
    if (::lstat(next.c_str(), &info) != 0) return fail(kind, " ", file.string(), ": ", next.string(), ": ", std::strerror(errno));
    if (S_ISLNK(info.st_mode)) {
      // The link's directory was checked; in a sticky one (/tmp) the link must be root's own too.
      if (info.st_uid != 0)
        return fail(kind, " ", file.string(), ": refused: symbolic link ", next.string(), " is owned by uid ",
                    std::to_string(info.st_uid), ", not root");
      if (++links > 40) return fail(kind, " ", file.string(), ": ", std::strerror(ELOOP));
      auto target = std::filesystem::read_symlink(next, error);
      if (error) return fail(kind, " ", file.string(), ": ", next.string(), ": ", error.message());
      if (target.is_absolute()) current = "/";
      push_components(target.is_absolute() ? target : std::filesystem::path("/") / target);
      continue;
    }
    const bool last = pending.empty();
    // The directory holding the last name is "its directory" in messages, as users think of it.
    XDPP_TRY(check_owner_and_mode(info, next, last ? "file" : pending.size() == 1 ? "its directory" : "directory",
                                  file, kind));
    if (!last) {
      if (!S_ISDIR(info.st_mode)) return fail(kind, " ", file.string(), ": ", next.string(), ": ", std::strerror(ENOTDIR));
      current = next;
      continue;
    }
    if (!S_ISREG(info.st_mode)) return fail(kind, " ", file.string(), ": not a regular file");
    return Resolved{.path = next, .info = info};
  }
  return fail(kind, " ", file.string(), ": not a regular file");
}

// `source` copied into an anonymous memory file: each load gets an inode of its own (the dynamic
// loader would hand back a cached library for a known inode or name), and nothing is written to disk,
// so a killed daemon leaves no copy behind.
Result<UniqueFd> memory_copy(int source, const std::string& name, const std::filesystem::path& file) {
  UniqueFd image(::memfd_create(("xdpp-plugin:" + name).c_str(), MFD_CLOEXEC));
  if (!image) return fail("plugin ", file.string(), ": memfd_create: ", std::strerror(errno));
  char buffer[65536];
  for (;;) {
    ssize_t got = ::read(source, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return fail("plugin ", file.string(), ": reading: ", std::strerror(errno));
    if (got == 0) break;
    for (ssize_t done = 0; done < got;) {
      ssize_t wrote = ::write(image.get(), buffer + done, got - done);
      if (wrote < 0 && errno == EINTR) continue;
      if (wrote < 0) return fail("plugin ", file.string(), ": copying into memory: ", std::strerror(errno));
      done += wrote;
    }
  }
  return image;
}

// "/proc/self/fd/N" for `image`, a name no loaded library has: glibc matches dlopen() names against
// libraries already loaded (one that dlclose() could not unload keeps its name), so a number used
// before is traded for another.
Result<std::string> unique_proc_name(UniqueFd& image, const std::filesystem::path& file) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    std::string name = "/proc/self/fd/" + std::to_string(image.get());
    void* loaded = ::dlopen(name.c_str(), RTLD_LAZY | RTLD_NOLOAD);
    if (!loaded) return name;
    ::dlclose(loaded);
    UniqueFd other(::fcntl(image.get(), F_DUPFD_CLOEXEC, image.get() + 1));
    if (!other) return fail("plugin ", file.string(), ": ", std::strerror(errno));
    image = std::move(other);
  }
  return fail("plugin ", file.string(), ": no free name to load it under");
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
  auto resolved = resolve_safely(file, kind);
  if (!resolved) return resolved.error();
  return {};
}

Status check_plugin_file_safe(const std::filesystem::path& file) { return check_file_safe(file, "plugin"); }

Result<std::shared_ptr<LoadedPlugin>> load_plugin_file(const std::filesystem::path& file) {
  auto resolved = resolve_safely(file, "plugin");
  if (!resolved) return resolved.error();
  const std::filesystem::path& real = resolved->path;
  // Opened once; what is loaded is what this descriptor reads, and it must be the file just checked
  // (same device and inode, still root's and closed to others), whatever happens to the path meanwhile.
  UniqueFd fd(::open(real.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  if (!fd) return fail("plugin ", file.string(), ": ", std::strerror(errno));
  struct stat opened {};
  if (::fstat(fd.get(), &opened) != 0) return fail("plugin ", file.string(), ": ", std::strerror(errno));
  if (opened.st_dev != resolved->info.st_dev || opened.st_ino != resolved->info.st_ino)
    return fail("plugin ", file.string(), ": refused: the file changed while it was being checked");
  XDPP_TRY(check_owner_and_mode(opened, real, "file", file, "plugin"));
  auto image = memory_copy(fd.get(), real.filename().string(), file);
  if (!image) return image.error();
  auto name = unique_proc_name(*image, file);
  if (!name) return name.error();

  boost::dll::shared_library library;
  std::error_code error;  // BOOST_DLL_USE_STD_FS: Boost.DLL speaks std::filesystem
  // RTLD_LOCAL: two plugins may define the same internal names without clashing.
  library.load(std::filesystem::path(*name), error, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
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
  return std::shared_ptr<LoadedPlugin>(std::make_shared<DllPlugin>(std::move(library), factory, real, std::move(*image)));
}

Result<std::shared_ptr<LoadedPlugin>> load_plugin_fresh(const std::filesystem::path& file,
                                                        const std::vector<std::filesystem::path>& allowed_dirs) {
  std::error_code error;
  auto real = std::filesystem::canonical(file, error);
  if (error) return fail("plugin ", file.string(), ": ", error.message());
  bool allowed = false;
  for (const auto& dir : allowed_dirs)
    if (auto canonical_dir = std::filesystem::canonical(dir, error); !error && canonical_dir == real.parent_path())
      allowed = true;
  if (!allowed) return fail("plugin ", file.string(), ": refused: not in the plugin path of this pipeline");
  // Every load is fresh (a copy in memory), so a rebuilt plugin at the same path is never the cached one.
  auto plugin = load_plugin_file(file);
  if (!plugin) return plugin.error();
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
  // Every directory is looked into: a name found in two of them is refused rather than resolved by order,
  // so that a port_filter.so dropped into a plugin_dir can never silently stand in for the built-in one.
  std::string looked;
  std::vector<std::filesystem::path> found, real_files;  // as written in the path (loaded so: its links checked), resolved
  for (const auto& dir : dirs) {
    auto file = dir / (name + ".so");
    std::error_code missing;  // a name too long for a path is just not found (exists() would throw)
    looked += (looked.empty() ? "" : ", ") + dir.string();
    if (!std::filesystem::exists(file, missing)) continue;
    auto real = std::filesystem::canonical(file, missing);
    if (missing) return fail("plugin ", file.string(), ": ", missing.message());
    if (std::find(real_files.begin(), real_files.end(), real) != real_files.end()) continue;  // one file reached twice
    XDPP_TRY(check_plugin_file_safe(file));  // an unsafe file on the path is an error, whichever would win
    found.push_back(file);
    real_files.push_back(real);
  }
  if (found.empty())
    return fail("unknown plugin '", name, "' (no ", name, ".so in ", looked.empty() ? "an empty plugin path" : looked, ")");
  if (found.size() > 1)
    return fail("plugin '", name, "' is ambiguous: both ", found[0].string(), " and ", found[1].string(),
                " are on the plugin path; a plugin name must be unique there (rename one, and its plugin_name())");
  const std::filesystem::path& file = found.front();
  std::lock_guard lock(mutex);
  auto& entry = cache[file];
  auto cached = entry.plugin.lock();
  if (cached && entry.signature == file_signature(file)) return cached;
  // Rebuilt since it was loaded (a reload after a build): loaded afresh (every load is a copy in memory).
  auto plugin = load_plugin_file(file);
  if (!plugin) return plugin.error();
  if (plugin->get()->factory().plugin_name() != name)
    return fail("plugin ", file.string(), ": refused: it calls itself '",
                std::string(plugin->get()->factory().plugin_name()), "', not '", name, "'");
  entry = {*plugin, file_signature(file)};
  return plugin;
}

}  // namespace xdpp
