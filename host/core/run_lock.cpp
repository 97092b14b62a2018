#include "run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "state.h"

namespace xdpp {

std::filesystem::path RunLock::path_of(const std::string& name) { return kRunRoot / (name + ".lock"); }

int RunLock::holder(const std::string& name) {
  std::ifstream in(path_of(name));
  int pid = 0;
  in >> pid;
  return in ? pid : 0;
}

bool RunLock::held(const std::string& name) {
  UniqueFd fd(::open(path_of(name).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return false;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return false;  // closing the fd drops the probe
  return errno == EWOULDBLOCK;
}

Result<RunLock> RunLock::acquire(const std::string& name) {
  std::error_code error;
  std::filesystem::create_directories(kRunRoot, error);
  if (::chmod(kRunRoot.c_str(), 0700) != 0) return fail(kRunRoot.string(), ": ", std::strerror(errno));
  RunLock lock;
  lock.path_ = path_of(name);
  // A status probe holds a shared lock for microseconds: retry a little before calling the lock taken.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  for (;;) {
    UniqueFd fd(::open(lock.path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return fail(lock.path_.string(), ": ", std::strerror(errno));
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) return fail(lock.path_.string(), ": flock: ", std::strerror(errno));
      if (std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      const int pid = holder(name);
      return fail("pipeline '", name, "' is already running", pid ? " (daemon pid " + std::to_string(pid) + ")" : "",
                  ": one daemon per pipeline name (", lock.path_.string(),
                  " is locked); stop it first, or give this pipeline another [pipeline] name");
    }
    // Locked, but the file may have been removed by the previous holder's clean exit in between: then
    // the lock guards nothing; take the file that is there now.
    struct stat opened {}, named {};
    if (::fstat(fd.get(), &opened) != 0 || ::stat(lock.path_.c_str(), &named) != 0 || opened.st_ino != named.st_ino ||
        opened.st_dev != named.st_dev)
      continue;
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd.get(), 0) != 0 || ::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
      return fail(lock.path_.string(), ": ", std::strerror(errno));
    lock.fd_ = std::move(fd);
    return lock;
  }
}

void RunLock::remove() {
  if (fd_) ::unlink(path_.c_str());
}

}  // namespace xdpp
