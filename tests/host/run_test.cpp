// `xdp-pipeline run` on a veth pair in a network namespace that each test creates and always removes:
// it attaches (ip link shows the dispatcher), SIGINT and SIGTERM detach it and exit 0, SIGKILL leaves
// nothing attached (the bpf_link dies with the process: fail-open), auto picks native on veth, and a
// second run on a busy interface fails without disturbing the first.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "host_test_util.h"

namespace xdpp::host_test {
namespace {

constexpr const char* kVeth = VethNamespace::kVeth;

// The first line of `ip link show`, whose flags say "xdp" (native) or "xdpgeneric".
std::string flags_line(const std::string& link) { return link.substr(0, link.find('\n')); }

class RunTest : public PipelineInNamespaceTest {
 protected:
  void SetUp() override { set_up("host-test-"); }

  // Whether a run of `name` has anything published: pins or a state file.
  static bool published(const std::string& name) {
    return std::filesystem::exists(kPinRoot / name) || std::filesystem::exists(kRunRoot / (name + ".json"));
  }

  // Starts `run CONFIG --interface xdpt0 --mode MODE` in the namespace and waits (bounded) until ip link
  // shows the program and the executable has reported the attachment and published its state.
  // With `extra` (e.g. --netns NS), `run` itself is started in the test's namespace instead.
  void start(const std::string& mode, const std::vector<std::string>& extra = {}) {
    std::string error;
    std::vector<std::string> argv = {kExecutable, "run", config_, "--interface", kVeth, "--mode", mode};
    argv.insert(argv.end(), extra.begin(), extra.end());
    child_ = Child::start(argv, extra.empty() ? netns_->name() : "", dir_.path() / "run.out", dir_.path() / "run.err",
                          error);
    ASSERT_NE(child_, nullptr) << error;
    const bool attached = wait_until(
        [&] {
          if (!child_->running()) return true;
          return netns_->xdp_attached() && child_->stderr_text().find(" control socket ") != std::string::npos;
        },
        30s);
    ASSERT_TRUE(child_->running()) << "run ended before attaching; stderr: " << child_->stderr_text();
    ASSERT_TRUE(attached) << "not attached within 30 s; ip link: " << netns_->link_show()
                          << "; stderr: " << child_->stderr_text();
  }

  // The prog id of what the interface runs (the first stage), as run reported it ("entry prog id N").
  std::optional<unsigned> reported_prog_id() const {
    static const std::regex pattern(R"(entry prog id (\d+))");
    std::smatch match;
    std::string text = child_->stderr_text();
    if (!std::regex_search(text, match, pattern)) return std::nullopt;
    return static_cast<unsigned>(std::stoul(match[1].str()));
  }

  // Sends `signal`; run must say it detached, exit 0 within a few seconds, and leave no program.
  void expect_clean_stop(int signal) {
    ASSERT_TRUE(child_->send(signal));
    std::optional<int> status = child_->wait(10s);
    ASSERT_TRUE(status) << "still running 10 s after " << strsignal(signal) << "; stderr: " << child_->stderr_text();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "wait status " << *status << "; stderr: " << child_->stderr_text();
    EXPECT_NE(child_->stderr_text().find(std::string("detached from ") + kVeth + " (" + strsignal(signal) + ")"),
              std::string::npos)
        << child_->stderr_text();
    EXPECT_TRUE(wait_until([&] { return !netns_->xdp_attached(); }, 2s)) << netns_->link_show();
    EXPECT_FALSE(published(name_)) << "pins or state file of '" << name_ << "' left after a clean stop";
  }

};

TEST_F(RunTest, NativeAttachesAndSigintDetaches) {
  ASSERT_NO_FATAL_FAILURE(start("native"));
  const std::string link = netns_->link_show();
  EXPECT_NE(flags_line(link).find(" xdp "), std::string::npos) << link;  // native: not xdpgeneric
  EXPECT_NE(link.find("name parse"), std::string::npos) << link;  // the first stage itself, no dispatcher hop
  EXPECT_TRUE(published(name_)) << "a running pipeline publishes its pins and state";
  auto attached_id = netns_->xdp_prog_id();
  ASSERT_TRUE(attached_id) << link;
  EXPECT_EQ(reported_prog_id(), attached_id) << child_->stderr_text();
  EXPECT_NE(child_->stderr_text().find(std::string("attached to ") + kVeth + " in native mode"), std::string::npos)
      << child_->stderr_text();
  expect_clean_stop(SIGINT);
}

TEST_F(RunTest, GenericAttachesAndSigtermDetaches) {
  ASSERT_NO_FATAL_FAILURE(start("generic"));
  const std::string link = netns_->link_show();
  EXPECT_NE(flags_line(link).find(" xdpgeneric "), std::string::npos) << link;
  EXPECT_NE(child_->stderr_text().find(std::string("attached to ") + kVeth + " in generic mode"), std::string::npos)
      << child_->stderr_text();
  expect_clean_stop(SIGTERM);
}

TEST_F(RunTest, NativeSigtermDetaches) {
  ASSERT_NO_FATAL_FAILURE(start("native"));
  expect_clean_stop(SIGTERM);
}

// Nothing is pinned: once the process is gone, its bpf_link's last reference goes and the kernel detaches
// the program, whatever the way it died.
TEST_F(RunTest, SigkillLeavesNothingAttached) {
  ASSERT_NO_FATAL_FAILURE(start("native"));
  ASSERT_TRUE(child_->send(SIGKILL));
  std::optional<int> status = child_->wait(10s);
  ASSERT_TRUE(status) << "still running 10 s after SIGKILL";
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << "wait status " << *status;
  EXPECT_TRUE(wait_until([&] { return !netns_->xdp_attached(); }, 5s))
      << "a program stayed attached after SIGKILL: " << netns_->link_show();
  // Its pins and state file stay (a killed process cleans nothing); the next run of the name removes
  // them, and TearDown does here.
}

TEST_F(RunTest, AutoReportsNativeOnVeth) {
  ASSERT_NO_FATAL_FAILURE(start("auto"));
  EXPECT_NE(child_->stderr_text().find(std::string("attached to ") + kVeth + " in native mode (auto)"),
            std::string::npos)
      << child_->stderr_text();
  EXPECT_NE(flags_line(netns_->link_show()).find(" xdp "), std::string::npos) << netns_->link_show();
  expect_clean_stop(SIGINT);
}

// A second run on the same interface must not replace (or stack beside) the first: it fails, says why,
// and the first stays attached and running.
TEST_F(RunTest, SecondRunOnBusyInterfaceFails) {
  ASSERT_NO_FATAL_FAILURE(start("native"));
  auto first_id = netns_->xdp_prog_id();
  ASSERT_TRUE(first_id);

  const auto other = write_config(name_ + "-b");
  for (const std::string mode : {"native", "auto", "generic"}) {
    SCOPED_TRACE("second run in mode " + mode);
    CommandResult second =
        run_command({kExecutable, "run", other, "--interface", kVeth, "--mode", mode}, 60s, netns_->name());
    EXPECT_EQ(second.exit_code, 1) << describe(second);
    EXPECT_NE(second.err.find(std::string("attaching to ") + kVeth), std::string::npos) << describe(second);
    EXPECT_NE(second.err.find("already has an XDP program"), std::string::npos) << describe(second);
    // It names who attached it: the first run, by pipeline name and pid.
    EXPECT_NE(second.err.find("pipeline '" + name_ + "' (xdp-pipeline run, pid " + std::to_string(child_->pid()) + ")"),
              std::string::npos) << describe(second);
    EXPECT_TRUE(child_->running()) << "the first run ended: " << child_->stderr_text();
    EXPECT_EQ(netns_->xdp_prog_id(), first_id) << netns_->link_show();
    EXPECT_FALSE(published(name_ + "-b")) << "the failed run left pins or a state file";
  }
  expect_clean_stop(SIGINT);
}

// The same pipeline (same name) twice is refused before anything is loaded, naming the running one.
TEST_F(RunTest, SecondRunOfSamePipelineFails) {
  ASSERT_NO_FATAL_FAILURE(start("native"));
  auto first_id = netns_->xdp_prog_id();
  ASSERT_TRUE(first_id);
  CommandResult second =
      run_command({kExecutable, "run", config_, "--interface", kVeth, "--mode", "native"}, 60s, netns_->name());
  EXPECT_EQ(second.exit_code, 1) << describe(second);
  EXPECT_NE(second.err.find("pipeline '" + name_ + "' is already running"), std::string::npos) << describe(second);
  EXPECT_TRUE(child_->running()) << "the first run ended: " << child_->stderr_text();
  EXPECT_EQ(netns_->xdp_prog_id(), first_id) << netns_->link_show();
  EXPECT_TRUE(published(name_)) << "the second run removed the first one's state";
  expect_clean_stop(SIGINT);
}

// A TCP port on 127.0.0.1 that nothing listens on now, in the calling thread's namespace.
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  int port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0)
    port = ntohs(address.sin_port);
  if (fd >= 0) ::close(fd);
  return port;
}

CommandResult curl(const std::string& url, const std::string& netns = {}) {
  return run_command({"curl", "-sf", "--max-time", "5", url}, 20s, netns);
}

// With --netns NS, metrics listen by default where a Prometheus on the host reaches them: the namespace
// `run` started in. The log says where; the page and `status --json` carry the build's version.
TEST_F(RunTest, MetricsListenInTheHostNamespaceByDefault) {
  ASSERT_EQ(run_command({"ip", "-n", netns_->name(), "link", "set", "lo", "up"}).exit_code, 0);
  const int port = free_port();
  ASSERT_NE(port, 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  ASSERT_NO_FATAL_FAILURE(start("generic", {"--netns", netns_->name(), "--metrics", address}));
  EXPECT_TRUE(wait_until([&] { return child_->stderr_text().find("/metrics in ") != std::string::npos; }, 5s));
  EXPECT_NE(child_->stderr_text().find("metrics at http://" + address + "/metrics in the host's network namespace"),
            std::string::npos)
      << child_->stderr_text();
  CommandResult page = curl("http://" + address + "/metrics");
  ASSERT_EQ(page.exit_code, 0) << describe(page);
  EXPECT_NE(page.out.find("xdp_pipeline_stage_packets_total{pipeline=\"" + name_ + "\",stage=\"parse\""),
            std::string::npos)
      << page.out;
  EXPECT_NE(page.out.find(std::string("xdp_pipeline_build_info{pipeline=\"") + name_ + "\",version=\"" +
                          XDPP_VERSION + "\"} 1"),
            std::string::npos)
      << page.out;
  EXPECT_NE(curl("http://" + address + "/metrics", netns_->name()).exit_code, 0)
      << "the metrics page also answers inside " << netns_->name();
  CommandResult status = run_command({kExecutable, "status", name_, "--json"});
  ASSERT_EQ(status.exit_code, 0) << describe(status);
  EXPECT_NE(status.out.find(std::string("\"version\":\"") + XDPP_VERSION + "\""), std::string::npos) << status.out;
  expect_clean_stop(SIGINT);
}

TEST_F(RunTest, MetricsNetnsPipelineListensInsideTheNamespace) {
  ASSERT_EQ(run_command({"ip", "-n", netns_->name(), "link", "set", "lo", "up"}).exit_code, 0);
  // A fresh namespace: no port is taken there.
  const std::string address = "127.0.0.1:" + std::to_string(20000 + ::getpid() % 20000);
  ASSERT_NO_FATAL_FAILURE(
      start("generic", {"--netns", netns_->name(), "--metrics", address, "--metrics-netns", "pipeline"}));
  EXPECT_TRUE(wait_until([&] { return child_->stderr_text().find("/metrics in ") != std::string::npos; }, 5s));
  EXPECT_NE(child_->stderr_text().find("metrics at http://" + address + "/metrics in network namespace '" +
                                       netns_->name() + "'"),
            std::string::npos)
      << child_->stderr_text();
  CommandResult page = curl("http://" + address + "/metrics", netns_->name());
  ASSERT_EQ(page.exit_code, 0) << describe(page);
  EXPECT_NE(page.out.find("xdp_pipeline_stage_packets_total{pipeline=\"" + name_ + "\""), std::string::npos)
      << page.out;
  expect_clean_stop(SIGINT);
}

}  // namespace
}  // namespace xdpp::host_test
