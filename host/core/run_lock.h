// One daemon per pipeline name: an exclusive flock(2) on /run/xdp-pipeline/NAME.lock, taken before anything
// is loaded or attached and held for the daemon's life. The kernel drops it when the holder's files are
// closed, i.e. when it exits however it exits: a killed daemon that its parent has not reaped yet (a
// zombie) holds no lock, so "is a daemon running?" never depends on pids, which a zombie keeps.
#pragma once

#include <filesystem>
#include <string>

#include "bpf_object.h"
#include <xdp_pipeline/result.h>

namespace xdpp {

class RunLock {
 public:
  /// Takes the lock of pipeline `name`, or says which process holds it. Writes this process's pid into
  /// the file (for that message and for operators: `flock -n /run/xdp-pipeline/NAME.lock true`).
  static Result<RunLock> acquire(const std::string& name);
  /// Whether some process holds the lock of `name` now (probed with a shared lock, dropped at once).
  static bool held(const std::string& name);
  /// The pid recorded by the holder of `name`'s lock (0 when unknown).
  static int holder(const std::string& name);
  static std::filesystem::path path_of(const std::string& name);

  RunLock(RunLock&&) = default;
  RunLock& operator=(RunLock&&) = default;
  /// Removes the lock file while still holding the lock (a clean exit leaves nothing in /run); a run
  /// that locked the old file at that instant notices it lost the race and locks the new one.
  void remove();

 private:
  RunLock() = default;
  UniqueFd fd_;
  std::filesystem::path path_;
};

}  // namespace xdpp
