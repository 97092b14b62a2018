// Helpers for the host tier: run the real xdp-pipeline executable (to completion or in the background,
// optionally inside a network namespace), temporary directories, and a veth pair in a namespace of its own.
#pragma once

#include <gtest/gtest.h>

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xdpp::host_test {

using namespace std::chrono_literals;

/// The xdp-pipeline executable of this build.
inline const std::filesystem::path kExecutable = XDPP_TEST_EXECUTABLE;

/// How a finished command ended and what it wrote.
struct CommandResult {
  int exit_code = -1;      // its exit status, or -1 when it did not exit normally
  int signal = 0;          // the signal that ended it, or 0
  bool timed_out = false;  // run_command killed it after the timeout
  std::string out;
  std::string err;
};

/// "exit 2; stderr: ...; stdout: ..." for assertion messages.
std::string describe(const CommandResult& result);

/// Runs `argv` (argv[0] is looked up in PATH, then /usr/sbin and /sbin), inside network namespace `netns`
/// (a name from `ip netns`) when it is not empty; kills it after `timeout`.
CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 60s,
                          const std::string& netns = {});

/// The lines of `text`, without their newlines.
std::vector<std::string> lines(std::string_view text);

/// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

/// A fresh directory under /tmp, mode 0755 (root-owned when the tests run as root), removed with its
/// contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// Writes `text` to `name` in the directory and returns its path.
  std::filesystem::path write(const std::string& name, std::string_view text) const;

 private:
  std::filesystem::path path_;
};

/// A network namespace of a unique name holding a veth pair, kVeth <-> kPeer, both up. Deleting the
/// namespace (on destruction) deletes the pair with it.
class VethNamespace {
 public:
  static constexpr const char* kVeth = "xdpt0";
  static constexpr const char* kPeer = "xdpt1";

  VethNamespace();
  ~VethNamespace();
  VethNamespace(const VethNamespace&) = delete;
  VethNamespace& operator=(const VethNamespace&) = delete;

  /// Empty when the namespace and the pair are up; otherwise what failed.
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }

  /// `ip -n NS link show dev IF`.
  std::string link_show(const std::string& interface = kVeth) const;
  /// Whether `ip link` shows an XDP program (prog/xdp..., native or generic) on the interface.
  bool xdp_attached(const std::string& interface = kVeth) const;
  /// The id of that program, from "prog/xdp id N" or "prog/xdpgeneric id N".
  std::optional<unsigned> xdp_prog_id(const std::string& interface = kVeth) const;

 private:
  std::string name_;
  std::string error_;
  bool created_ = false;
};

/// A command running in the background, its stdout and stderr going to files. SIGKILLed and reaped on
/// destruction if it is still running, so that a failing test leaves no process behind.
class Child {
 public:
  /// Starts `argv` (argv[0] a path) in namespace `netns` (when not empty); nullptr and `error` on failure.
  static std::unique_ptr<Child> start(const std::vector<std::string>& argv, const std::string& netns,
                                      const std::filesystem::path& out_file, const std::filesystem::path& err_file,
                                      std::string& error);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  /// Whether it still runs (reaps it when it has ended).
  bool running();
  /// Sends `signal`; false if it has already been reaped.
  bool send(int signal);
  /// Waits at most `timeout` for it to end; its wait status, or nullopt if it still runs.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  /// Its wait status once reaped.
  std::optional<int> status() const { return status_; }

  std::string stdout_text() const;
  std::string stderr_text() const;

 private:
  Child(pid_t pid, std::filesystem::path out_file, std::filesystem::path err_file)
      : pid_(pid), out_file_(std::move(out_file)), err_file_(std::move(err_file)) {}

  pid_t pid_;
  std::optional<int> status_;
  std::filesystem::path out_file_;
  std::filesystem::path err_file_;
};

/// The whole content of `file` ("" when it cannot be read).
std::string read_text(const std::filesystem::path& file);

/// Where a run publishes itself (host/core/state.h): pins per pipeline name, state file and control socket.
inline const std::filesystem::path kPinRoot = "/sys/fs/bpf/xdp-pipeline";
inline const std::filesystem::path kRunRoot = "/run/xdp-pipeline";
inline const std::filesystem::path kFullConfig = std::filesystem::path(XDPP_SOURCE_DIR) / "configs" / "full.toml";

/// A test that runs pipelines in a veth namespace of its own (root only, skipped otherwise): the
/// namespace, a temporary directory, the running `run` (child_), and configs/full.toml under pipeline names
/// of the test's own; TearDown kills the child, removes what its runs left published, then the namespace.
class PipelineInNamespaceTest : public ::testing::Test {
 protected:
  /// `prefix` + the namespace's unique suffix: pipeline names are global on the host.
  void set_up(const std::string& prefix);
  void TearDown() override;
  /// configs/full.toml under [pipeline] name `name`, in the test's directory.
  std::filesystem::path write_config(const std::string& name);

  TempDir dir_;
  std::string name_;                // this test's pipeline name
  std::filesystem::path config_;    // full.toml under that name
  std::vector<std::string> names_;  // every pipeline name the test wrote, for TearDown
  std::unique_ptr<VethNamespace> netns_;
  std::unique_ptr<Child> child_;
};

}  // namespace xdpp::host_test
