#include "host_test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

namespace xdpp::host_test {
namespace {

using Clock = std::chrono::steady_clock;

// argv[0] as a path: as given when it has a '/', else the first executable of that name in PATH, then in
// /usr/sbin and /sbin (where `ip` lives, and which a test runner's PATH may lack).
std::string resolve_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
  dirs += ":/usr/sbin:/sbin:/usr/bin:/bin";
  std::stringstream stream(dirs);
  for (std::string dir; std::getline(stream, dir, ':');) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;  // execv fails, and the child reports it
}

// Everything the child needs, prepared before fork(): after it, only async-signal-safe calls.
struct ExecPlan {
  std::string program;
  std::vector<std::string> args;
  std::vector<char*> argv;
  int netns_fd = -1;

  ~ExecPlan() {
    if (netns_fd >= 0) ::close(netns_fd);
  }

  std::string prepare(const std::vector<std::string>& command, const std::string& netns) {
    if (command.empty()) return "empty command";
    program = resolve_program(command[0]);
    args = command;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    if (!netns.empty()) {
      const std::string path = "/run/netns/" + netns;
      netns_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (netns_fd < 0) return "network namespace " + path + ": " + std::strerror(errno);
    }
    return {};
  }

  // In the child: enter the namespace, wire stdout/stderr, exec. Never returns.
  [[noreturn]] void exec_child(int out_fd, int err_fd) const {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    if (::dup2(out_fd, STDOUT_FILENO) < 0 || ::dup2(err_fd, STDERR_FILENO) < 0) ::_exit(126);
    if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) {
      static const char message[] = "host_test: setns failed\n";
      (void)!::write(STDERR_FILENO, message, sizeof message - 1);
      ::_exit(126);
    }
    ::execv(program.c_str(), argv.data());
    static const char message[] = "host_test: exec failed\n";
    (void)!::write(STDERR_FILENO, message, sizeof message - 1);
    ::_exit(127);
  }
};

void decode_status(int status, CommandResult& result) {
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
}

std::string random_suffix() {
  std::random_device device;
  std::uniform_int_distribution<unsigned> digit(0, 15);
  std::string text;
  for (int i = 0; i < 6; ++i) text += "0123456789abcdef"[digit(device)];
  return text;
}

}  // namespace

std::string describe(const CommandResult& result) {
  std::string text = result.timed_out ? "timed out" : result.signal ? "killed by signal " + std::to_string(result.signal)
                                                                    : "exit " + std::to_string(result.exit_code);
  return text + "; stderr: [" + result.err + "]; stdout: [" + result.out + "]";
}

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          const std::string& netns) {
  CommandResult result;
  ExecPlan plan;
  if (std::string error = plan.prepare(argv, netns); !error.empty()) {
    result.err = "host_test: " + error;
    return result;
  }
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.err = std::string("host_test: pipe: ") + std::strerror(errno);
    return result;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    result.err = std::string("host_test: pipe: ") + std::strerror(errno);
    return result;
  }
  pid_t pid = ::fork();
  if (pid == 0) plan.exec_child(out_pipe[1], err_pipe[1]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    result.err = std::string("host_test: fork: ") + std::strerror(errno);
    return result;
  }

  const auto deadline = Clock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_count = 2;
  while (open_count > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      result.timed_out = true;
      break;
    }
    int ready = ::poll(fds, 2, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buffer[4096];
      ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;  // poll ignores negative fds
        --open_count;
      }
    }
  }
  for (auto& fd : fds)
    if (fd.fd >= 0) ::close(fd.fd);

  int status = 0;
  while (!result.timed_out) {
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      decode_status(status, result);
      return result;
    }
    if (Clock::now() >= deadline) {
      result.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  decode_status(status, result);
  return result;
}

std::vector<std::string> lines(std::string_view text) {
  std::vector<std::string> result;
  while (!text.empty()) {
    auto end = text.find('\n');
    result.emplace_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return result;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
}

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TempDir::TempDir() {
  std::string pattern = "/tmp/xdpp-host-test-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  path_ = pattern;
  // 0755 whatever the umask: the plugin loader refuses a directory that others can write, and a
  // test that drops privileges must still reach the files.
  ::chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  std::error_code error;
  std::filesystem::remove_all(path_, error);
}

std::filesystem::path TempDir::write(const std::string& name, std::string_view text) const {
  auto file = path_ / name;
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  return file;
}

VethNamespace::VethNamespace() : name_("xdpp-test-" + std::to_string(::getpid()) + "-" + random_suffix()) {
  auto step = [&](const std::vector<std::string>& argv) {
    if (!error_.empty()) return;
    CommandResult result = run_command(argv, 20s);
    if (result.exit_code != 0) {
      std::string command;
      for (const auto& arg : argv) command += (command.empty() ? "" : " ") + arg;
      error_ = command + ": " + describe(result);
    }
  };
  step({"ip", "netns", "add", name_});
  created_ = error_.empty();
  step({"ip", "-n", name_, "link", "add", kVeth, "type", "veth", "peer", "name", kPeer});
  step({"ip", "-n", name_, "link", "set", kVeth, "up"});
  step({"ip", "-n", name_, "link", "set", kPeer, "up"});
}

VethNamespace::~VethNamespace() {
  // The namespace, and the veth pair in it, go once no process is left inside: the tests end theirs first.
  if (created_) run_command({"ip", "netns", "delete", name_}, 20s);
}

std::string VethNamespace::link_show(const std::string& interface) const {
  return run_command({"ip", "-n", name_, "link", "show", "dev", interface}, 20s).out;
}

bool VethNamespace::xdp_attached(const std::string& interface) const {
  return link_show(interface).find("prog/xdp") != std::string::npos;
}

std::optional<unsigned> VethNamespace::xdp_prog_id(const std::string& interface) const {
  static const std::regex pattern(R"(prog/xdp\w* id (\d+))");
  std::smatch match;
  std::string text = link_show(interface);
  if (!std::regex_search(text, match, pattern)) return std::nullopt;
  return static_cast<unsigned>(std::stoul(match[1].str()));
}

std::unique_ptr<Child> Child::start(const std::vector<std::string>& argv, const std::string& netns,
                                    const std::filesystem::path& out_file, const std::filesystem::path& err_file,
                                    std::string& error) {
  ExecPlan plan;
  if (error = plan.prepare(argv, netns); !error.empty()) return nullptr;
  int out_fd = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err_fd = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out_fd < 0 || err_fd < 0) {
    error = "cannot create " + out_file.string() + " or " + err_file.string() + ": " + std::strerror(errno);
    if (out_fd >= 0) ::close(out_fd);
    if (err_fd >= 0) ::close(err_fd);
    return nullptr;
  }
  pid_t pid = ::fork();
  if (pid == 0) plan.exec_child(out_fd, err_fd);
  ::close(out_fd);
  ::close(err_fd);
  if (pid < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<Child>(new Child(pid, out_file, err_file));
}

Child::~Child() {
  if (status_) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
}

bool Child::running() {
  if (status_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    status_ = status;
    return false;
  }
  return true;
}

bool Child::send(int signal) {
  if (status_) return false;
  return ::kill(pid_, signal) == 0;
}

std::optional<int> Child::wait(std::chrono::milliseconds timeout) {
  wait_until([&] { return !running(); }, timeout);
  return status_;
}

std::string Child::stdout_text() const { return read_text(out_file_); }
std::string Child::stderr_text() const { return read_text(err_file_); }

void PipelineInNamespaceTest::set_up(const std::string& prefix) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "needs root: creates a network namespace and attaches XDP programs (CAP_NET_ADMIN, CAP_BPF)";
  netns_ = std::make_unique<VethNamespace>();
  ASSERT_EQ(netns_->error(), "") << "cannot set up the veth pair";
  name_ = prefix + netns_->name().substr(std::string("xdpp-test-").size());
  config_ = write_config(name_);
}

// Processes first (SIGKILL and reap whatever still runs), then whatever a killed run left published under
// the test's pipeline names (a killed run's lock file too, which the next run would reuse), then the
// namespace with its veth pair.
void PipelineInNamespaceTest::TearDown() {
  child_.reset();
  std::error_code error;
  for (const auto& name : names_) {
    std::filesystem::remove_all(kPinRoot / name, error);
    for (const char* suffix : {".json", ".json.tmp", ".sock", ".plugins", ".lock"})
      std::filesystem::remove_all(kRunRoot / (name + suffix), error);
  }
  if (std::filesystem::is_empty(kPinRoot, error)) std::filesystem::remove(kPinRoot, error);
  netns_.reset();
}

std::filesystem::path PipelineInNamespaceTest::write_config(const std::string& name) {
  std::string text = read_text(kFullConfig);
  const std::string original = "name = \"full\"";
  auto at = text.find(original);
  EXPECT_NE(at, std::string::npos) << kFullConfig << " has no " << original;
  if (at != std::string::npos) text.replace(at, original.size(), "name = \"" + name + "\"");
  names_.push_back(name);
  return dir_.write(name + ".toml", text);
}

}  // namespace xdpp::host_test
