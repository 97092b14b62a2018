// `run --watch`: notices that the pipeline file changed, including the way kubelet updates a ConfigMap
// volume (FILE -> ..data/FILE, ..data -> ..TIMESTAMP; an update renames a new ..data_tmp over ..data).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <xdp_pipeline/result.h>

namespace xdpp {

class FileWatch {
 public:
  /// Watches `file` with inotify: its directory (the file written in place, renamed over, created; or
  /// `..data` swapped, as kubelet's atomic writer advises) and, when `file` is a symlink, its target's
  /// directory. `baseline` is the content the caller runs; if the file already differs from it (written
  /// before the watch began), changed() says so at once.
  static Result<std::unique_ptr<FileWatch>> open(const std::filesystem::path& file, std::string baseline);
  ~FileWatch();
  FileWatch(const FileWatch&) = delete;
  FileWatch& operator=(const FileWatch&) = delete;

  /// Readable when inotify has events.
  int fd() const { return fd_; }
  /// Reads the pending events (call when fd() is readable).
  void drain();
  /// How long the caller may sleep before changed() can say yes (-1: until fd() is readable). Several
  /// events in a row (an editor's writes, kubelet's steps) are waited out for a short quiet time.
  int timeout_ms() const;
  /// True once after the file's content differs from the last content seen (an update that touched
  /// nothing, or wrote the same bytes, is no change).
  bool changed();

 private:
  FileWatch() = default;
  void watch_target();
  std::filesystem::path file_;
  std::string name_;
  std::string target_name_;  // the symlink target's file name, when it lives elsewhere
  int fd_ = -1;
  int dir_watch_ = -1;
  std::optional<std::chrono::steady_clock::time_point> due_;
  std::string content_;
};

}  // namespace xdpp
