// A running pipeline against hostile and broken clients, through the real executable on a veth pair in a
// namespace of the test's own: requests and arguments that are not UTF-8, idle and trickling clients
// beside live requests, a client that hangs up before its request is handled, a busy metrics port, idle
// HTTP connections beside a scrape, the leftovers of a killed run, and a full /run (a small tmpfs in a
// private mount namespace, so nobody else's /run is touched). The daemon must answer each with an error
// or carry on, never abort, and never leave state that lies.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "host_test_util.h"

namespace xdpp::host_test {
namespace {

namespace fs = std::filesystem;
constexpr const char* kVeth = VethNamespace::kVeth;

// A unix stream connection to `path`, or -1.
int connect_unix(const fs::path& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A loopback TCP socket bound to a free port (kept open: the port stays taken), and that port.
std::pair<int, int> bind_free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{.sin_family = AF_INET, .sin_port = 0, .sin_addr = {htonl(INADDR_LOOPBACK)}, .sin_zero = {}};
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
    return {-1, 0};
  ::listen(fd, 1);
  return {fd, ntohs(address.sin_port)};
}

// Sends `request` as is and reads the reply line (5 s at most).
std::string exchange(const fs::path& socket, const std::string& request) {
  int fd = connect_unix(socket);
  if (fd < 0) return "<cannot connect: " + std::string(std::strerror(errno)) + ">";
  timeval timeout{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  (void)!::write(fd, request.data(), request.size());
  std::string reply;
  char buffer[4096];
  ssize_t got;
  while ((got = ::read(fd, buffer, sizeof buffer)) > 0) {
    reply.append(buffer, got);
    if (reply.find('\n') != std::string::npos) break;
  }
  ::close(fd);
  return reply;
}

class DaemonTest : public PipelineInNamespaceTest {
 protected:
  void SetUp() override { set_up("robust-"); }

  fs::path socket() const { return kRunRoot / (name_ + ".sock"); }

  // `run` in the namespace, with `extra` arguments; waits until it serves its control socket.
  void start(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {kExecutable, "run", config_, "--interface", kVeth, "--mode", "native"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    std::string error;
    child_ = Child::start(argv, netns_->name(), dir_.path() / "run.out", dir_.path() / "run.err", error);
    ASSERT_NE(child_, nullptr) << error;
    const bool up = wait_until(
        [&] { return !child_->running() || child_->stderr_text().find(" control socket ") != std::string::npos; }, 30s);
    ASSERT_TRUE(up && child_->running()) << "run did not come up: " << child_->stderr_text();
  }

  // A client command against this pipeline.
  CommandResult client(std::vector<std::string> argv, std::chrono::milliseconds timeout = 30s) {
    argv.insert(argv.begin(), kExecutable);
    argv.insert(argv.end(), {"--pipeline", name_});
    return run_command(argv, timeout);
  }

  void expect_alive_and_answering() {
    ASSERT_TRUE(child_->running()) << "the daemon died: " << child_->stderr_text();
    CommandResult set = client({"set", "no-8080", "drop_tcp_dst=[8081]"});
    EXPECT_EQ(set.exit_code, 0) << describe(set);
  }

  void expect_clean_stop() {
    ASSERT_TRUE(child_->send(SIGTERM));
    auto status = child_->wait(5s);
    ASSERT_TRUE(status) << "still running 5 s after SIGTERM: " << child_->stderr_text();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << child_->stderr_text();
    EXPECT_FALSE(fs::exists(kRunRoot / (name_ + ".json"))) << "state left after a clean stop";
  }

};

TEST_F(DaemonTest, RequestsThatAreNotUtf8GetAnErrorReply) {
  ASSERT_NO_FATAL_FAILURE(start());
  for (const std::string& request : {std::string("\xff\n"), std::string("{\"op\":\"\xff\"}\n"),
                                    std::string("{\"op\":\"set\",\"stage\":\"\xfe\"}\n"),
                                    std::string("{\"op\":\"set\",\"stage\":\"no-8080\",\"assignments\":[\"x\xff=1\"]}\n"),
                                    std::string("{\"op\":\"swap\",\"stage\":7}\n"), std::string("[1,2]\n"),
                                    std::string("{\"op\":\"reload\",\"file\":\"/tmp/\xff.toml\"}\n")}) {
    const std::string reply = exchange(socket(), request);
    SCOPED_TRACE(request);
    ASSERT_FALSE(reply.empty()) << "no reply; daemon: " << child_->stderr_text();
    auto json = nlohmann::json::parse(reply, nullptr, false);
    ASSERT_FALSE(json.is_discarded()) << "not JSON: " << reply;
    EXPECT_EQ(json.value("ok", true), false) << reply;
    ASSERT_TRUE(child_->running()) << child_->stderr_text();
  }
  expect_alive_and_answering();
  expect_clean_stop();
}

// libstdc++'s regex matcher recurses once per character: a long value once overflowed the daemon's stack
// while `set` decided whether it was a bare word. Long values and keys are refused, the daemon lives on.
TEST_F(DaemonTest, LongSetValuesAreRefusedWithoutCrashing) {
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string word(120000, 'a');  // under MAX_ARG_STRLEN (128 KiB) for one argument
  for (const std::string& assignment : {"drop_tcp_dst=" + word, "drop_tcp_dst=" + word + " x", word + "=1"}) {
    CommandResult result = client({"set", "no-8080", assignment});
    SCOPED_TRACE(assignment.substr(0, 40));
    EXPECT_EQ(result.exit_code, 2) << result.err.substr(0, 400);
    EXPECT_EQ(result.signal, 0);
    ASSERT_TRUE(child_->running()) << child_->stderr_text();
  }
  expect_alive_and_answering();
  expect_clean_stop();
}

TEST_F(DaemonTest, ClientsWithArgumentsThatAreNotUtf8FailCleanly) {
  ASSERT_NO_FATAL_FAILURE(start());
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{"set", "no-8080\xff", "drop_tcp_dst=[1]"}, {"set", "no-8080", "drop\xff=1"},
        {"swap", "pa\xffrse"}}) {
    CommandResult result = client(argv);
    SCOPED_TRACE(argv[0] + " " + argv[1]);
    // Refused as given (no such stage, no such key): exit 2, as for any invalid request.
    EXPECT_EQ(result.exit_code, 2) << describe(result);
    EXPECT_EQ(result.signal, 0) << describe(result);
    ASSERT_TRUE(child_->running()) << child_->stderr_text();
  }
  expect_alive_and_answering();
  expect_clean_stop();
}

// A file whose path is not UTF-8: run publishes it (the state file stays JSON), SIGHUP reloads it, and
// the `reload` client, which cannot carry the path in JSON, says so instead of reloading another file.
TEST_F(DaemonTest, PipelineFileWhosePathIsNotUtf8RunsAndReloads) {
  const fs::path odd = dir_.path() / "p\xff\xfe.toml";
  fs::copy_file(config_, odd);
  config_ = odd;
  ASSERT_NO_FATAL_FAILURE(start());
  CommandResult reload = client({"reload", odd.string()});
  EXPECT_EQ(reload.exit_code, 2) << describe(reload);
  EXPECT_NE(reload.err.find("the path is not UTF-8"), std::string::npos) << describe(reload);
  ASSERT_TRUE(child_->send(SIGHUP));
  EXPECT_TRUE(wait_until([&] { return child_->stderr_text().find("SIGHUP: reloaded") != std::string::npos; }, 10s))
      << child_->stderr_text();
  auto state = nlohmann::json::parse(read_text(kRunRoot / (name_ + ".json")), nullptr, false);
  EXPECT_FALSE(state.is_discarded()) << read_text(kRunRoot / (name_ + ".json"));
  EXPECT_FALSE(fs::exists(kRunRoot / (name_ + ".json.tmp")));
  CommandResult status = run_command({kExecutable, "status", name_, "--json"});
  EXPECT_EQ(status.exit_code, 0) << describe(status);
  expect_alive_and_answering();
  expect_clean_stop();
}

// 14 idle clients, one that sent half a line, and one that sends a byte a second: a `set` beside them
// takes its usual time, and SIGTERM stops the daemon at once.
TEST_F(DaemonTest, StalledClientsDelayNobody) {
  ASSERT_NO_FATAL_FAILURE(start());
  std::vector<int> idle;
  for (int i = 0; i < 14; ++i) idle.push_back(connect_unix(socket()));
  int half = connect_unix(socket());
  (void)!::write(half, "{\"op\":", 6);
  std::atomic<bool> stop{false};
  std::thread trickler([&] {
    int fd = connect_unix(socket());
    const std::string request = "{\"op\":\"set\",\"stage\":\"no-8080\",\"assignments\":[\"drop_tcp_dst=[1]\"]}\n";
    for (std::size_t i = 0; i < request.size() && !stop; ++i) {
      if (::write(fd, &request[i], 1) != 1) break;
      for (int j = 0; j < 10 && !stop; ++j) std::this_thread::sleep_for(100ms);
    }
    ::close(fd);
  });
  for (int round = 0; round < 3; ++round) {
    const auto started = std::chrono::steady_clock::now();
    CommandResult set = client({"set", "no-8080", "drop_tcp_dst=[" + std::to_string(8080 + round) + "]"}, 20s);
    const auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(set.exit_code, 0) << describe(set);
    EXPECT_LT(took, 2s) << "a set beside stalled clients took " << std::chrono::duration<double>(took).count() << " s";
  }
  const auto stopping = std::chrono::steady_clock::now();
  ASSERT_TRUE(child_->send(SIGTERM));
  auto status = child_->wait(10s);
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, 3s) << "SIGTERM beside stalled clients was slow";
  ASSERT_TRUE(status) << child_->stderr_text();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << child_->stderr_text();
  stop = true;
  trickler.join();
  for (int fd : idle) ::close(fd);
  ::close(half);
}

// The daemon is stopped (SIGSTOP) while a client sends a `set` and hangs up: once it runs again, the
// request is dropped, not applied behind the back of a client that gave up.
TEST_F(DaemonTest, RequestOfAClientThatHungUpIsDropped) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_TRUE(child_->send(SIGSTOP));
  int fd = connect_unix(socket());
  ASSERT_GE(fd, 0);
  const std::string request = "{\"op\":\"set\",\"stage\":\"no-8080\",\"assignments\":[\"drop_tcp_dst=[4444]\"]}\n";
  ASSERT_EQ(::write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  ::close(fd);
  ASSERT_TRUE(child_->send(SIGCONT));
  EXPECT_TRUE(wait_until([&] { return child_->stderr_text().find("hung up before its request") != std::string::npos; }, 5s))
      << child_->stderr_text();
  EXPECT_EQ(child_->stderr_text().find("reconfigured stage"), std::string::npos) << child_->stderr_text();
  expect_alive_and_answering();
  expect_clean_stop();
}

TEST_F(DaemonTest, BusyMetricsPortIsRefusedBeforeAnythingIsLoaded) {
  auto [probe, port] = bind_free_port();
  ASSERT_GE(probe, 0);
  ::close(probe);
  // The port is taken in the namespace where the daemon binds it (its loopback is its own).
  ASSERT_EQ(run_command({"ip", "-n", netns_->name(), "link", "set", "lo", "up"}).exit_code, 0);
  std::string error;
  auto holder = Child::start({"/usr/bin/socat", "TCP-LISTEN:" + std::to_string(port) + ",bind=127.0.0.1,reuseaddr", "-"},
                             netns_->name(), dir_.path() / "socat.out", dir_.path() / "socat.err", error);
  ASSERT_NE(holder, nullptr) << error;
  ASSERT_TRUE(wait_until([&] {
    return run_command({"ss", "-Hltn", "sport = :" + std::to_string(port)}, 5s, netns_->name()).out.find("LISTEN") !=
           std::string::npos;
  }, 5s)) << "socat does not listen: " << holder->stderr_text();
  CommandResult result = run_command({kExecutable, "run", config_, "--interface", kVeth, "--metrics", std::to_string(port)},
                                     30s, netns_->name());
  EXPECT_EQ(result.exit_code, 2) << describe(result);
  EXPECT_NE(result.err.find("metrics on 127.0.0.1:" + std::to_string(port)), std::string::npos) << describe(result);
  EXPECT_EQ(result.err.find("attached"), std::string::npos) << describe(result);
  EXPECT_FALSE(netns_->xdp_attached()) << netns_->link_show();
  EXPECT_FALSE(fs::exists(kRunRoot / (name_ + ".json")));
}

// Idle HTTP connections beside scrapes: fewer than the server's 8 threads cost a scrape nothing; more
// cost it at most the 2 s request timeout (before: one idle connection stalled every scrape for 30 s).
TEST_F(DaemonTest, IdleHttpConnectionsDoNotStallScrapes) {
  auto [probe, port] = bind_free_port();
  ASSERT_GE(probe, 0);
  ::close(probe);
  // The daemon runs in the namespace, whose loopback is its own: scrape from there too.
  ASSERT_EQ(run_command({"ip", "-n", netns_->name(), "link", "set", "lo", "up"}).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(start({"--metrics", std::to_string(port)}));
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";
  for (const auto& [idle, limit_ms] : std::vector<std::pair<int, int>>{{6, 1000}, {12, 3000}}) {
    std::string script = "for i in $(seq " + std::to_string(idle) + "); do exec {fd}<>/dev/tcp/127.0.0.1/" +
                         std::to_string(port) + "; done; sleep 0.3; s=$(date +%s%N); curl -sf -m 10 " + url +
                         " | grep -c '^xdp_pipeline_stage_packets_total{'; echo ms=$(( ($(date +%s%N) - s) / 1000000 ))";
    CommandResult scrape = run_command({"bash", "-c", script}, 30s, netns_->name());
    SCOPED_TRACE(std::to_string(idle) + " idle connections");
    ASSERT_EQ(scrape.exit_code, 0) << describe(scrape);
    auto at = scrape.out.find("ms=");
    ASSERT_NE(at, std::string::npos) << describe(scrape);
    EXPECT_LT(std::stoi(scrape.out.substr(at + 3)), limit_ms) << describe(scrape);
    EXPECT_EQ(scrape.out.substr(0, at), "5\n") << "the pipeline and four stages: " << describe(scrape);
  }
  expect_clean_stop();
}

// A killed run's private plugin copies (older versions copied plugins to NAME.plugins/) are removed by
// the next run; swaps write no such copy any more (plugins load from memory).
TEST_F(DaemonTest, LeftoversOfAKilledRunAreRemovedAndSwapsLeaveNoCopies) {
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  fs::create_directories(kRunRoot / (name_ + ".plugins"));
  std::ofstream(kRunRoot / (name_ + ".plugins") / "parse.123.1.so") << "left by a SIGKILL";
  std::ofstream(kRunRoot / (name_ + ".json")) << R"({"name": ")" << name_ << R"(", "pid": )" << dead << "}";
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_FALSE(fs::exists(kRunRoot / (name_ + ".plugins"))) << "the killed run's plugin copies are still there";
  for (int i = 0; i < 3; ++i) {
    CommandResult swap = client({"swap", "parse"});
    EXPECT_EQ(swap.exit_code, 0) << describe(swap);
    EXPECT_FALSE(fs::exists(kRunRoot / (name_ + ".plugins")));
  }
  // Killed right after a swap: nothing of the swap is on disk to leave behind.
  ASSERT_TRUE(child_->send(SIGKILL));
  child_->wait(5s);
  EXPECT_FALSE(fs::exists(kRunRoot / (name_ + ".plugins")));
}

// ---- a full /run -------------------------------------------------------------------------------------

// Runs `script` in a private mount namespace where /run/xdp-pipeline is a tmpfs of `size` (for
// example "64k"); $X is the executable, $F the pipeline file, $N the pipeline name, $NS the network
// namespace, $V the veth.
CommandResult in_small_run(const std::string& size, const std::string& script, const std::string& name,
                           const fs::path& file, const std::string& netns) {
  const std::string prologue = "set -u; mount -t tmpfs -o size=" + size + ",mode=0700 xdpp-test /run/xdp-pipeline || exit 77; X='" +
                               kExecutable.string() + "'; F='" + file.string() + "'; N='" + name + "'; NS='" +
                               netns + "'; V='" + kVeth + "'; fill() { dd if=/dev/zero of=/run/xdp-pipeline/filler bs=4k 2>/dev/null; true; }\n";
  return run_command({"unshare", "--mount", "--propagation", "private", "bash", "-c", prologue + script}, 90s);
}

TEST_F(DaemonTest, StartOnAFullRunFailsAndLeavesNothing) {
  fs::create_directories(kRunRoot);
  CommandResult result = in_small_run("64k",
                                      "fill; \"$X\" run \"$F\" --interface \"$V\" --mode native --netns \"$NS\"; echo rc=$?; "
                                      "ls -A /run/xdp-pipeline",
                                      name_, config_, netns_->name());
  if (result.exit_code == 77) GTEST_SKIP() << "cannot mount a tmpfs in a private mount namespace: " << describe(result);
  EXPECT_NE(result.out.find("rc=1"), std::string::npos) << describe(result);
  EXPECT_NE(result.err.find("No space left on device"), std::string::npos) << describe(result);
  EXPECT_EQ(result.out.find(".tmp"), std::string::npos) << "a temporary state file was left: " << describe(result);
  EXPECT_FALSE(fs::exists(kPinRoot / name_)) << "pins were left";
  EXPECT_FALSE(netns_->xdp_attached()) << netns_->link_show();
}

TEST_F(DaemonTest, SwapWithResetStateOnAFullRunReportsThatTheStateWasNotWritten) {
  fs::create_directories(kRunRoot);
  const std::string script =
      "\"$X\" run \"$F\" --interface \"$V\" --mode native --netns \"$NS\" >/dev/null 2>&1 & pid=$!; "
      "for i in $(seq 100); do [ -S /run/xdp-pipeline/$N.sock ] && [ -f /run/xdp-pipeline/$N.json ] && break; sleep 0.1; done; fill; "
      "\"$X\" swap parse --reset-state --pipeline \"$N\"; echo swap=$?; rm -f /run/xdp-pipeline/filler; "
      "\"$X\" set no-8080 'drop_tcp_dst=[1]' --pipeline \"$N\"; echo set=$?; "
      "\"$X\" status \"$N\" --json >/dev/null; echo status=$?; "
      "kill -INT $pid; wait $pid; echo run=$?; ls -A /run/xdp-pipeline";
  CommandResult result = in_small_run("256k", script, name_, config_, netns_->name());
  if (result.exit_code == 77) GTEST_SKIP() << "cannot mount a tmpfs in a private mount namespace: " << describe(result);
  EXPECT_NE(result.out.find("swap=1"), std::string::npos) << describe(result);
  EXPECT_NE(result.err.find("but the state file was not rewritten"), std::string::npos) << describe(result);
  // With room again, the next change publishes, and status reads the pipeline as it is.
  EXPECT_NE(result.out.find("set=0"), std::string::npos) << describe(result);
  EXPECT_NE(result.out.find("status=0"), std::string::npos) << describe(result);
  EXPECT_NE(result.out.find("run=0"), std::string::npos) << describe(result);
  EXPECT_EQ(result.out.find(".tmp"), std::string::npos) << describe(result);
  EXPECT_FALSE(fs::exists(kPinRoot / name_)) << "pins were left";
}

}  // namespace
}  // namespace xdpp::host_test
