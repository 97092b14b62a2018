// Every class of error in a pipeline file, through the real executable: `check FILE` and, for some,
// `run FILE` on a veth pair in a namespace of the test's own. Each must give exit code 2 and exactly one
// message "FILE:LINE:COL: SCOPE: key 'KEY': REASON" pointing at the offending key or value, and `run`
// must leave the interface without an XDP program.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "host_test_util.h"

namespace xdpp::host_test {
namespace {

constexpr int kExitUsage = 2;
// For `run` where the test needs no interface: should the executable wrongly go on, it stops at the
// interface lookup instead of attaching anything to a real one.
constexpr const char* kAbsentInterface = "xdpp-absent0";

// Lines 1-7 of most cases: a valid [pipeline] and a parse stage, so that errors come after valid text.
// A case appends from line 8 on (so its [[stage]] is line 9, name 10, plugin 11, first setting 12).
const std::string kHead = R"([pipeline]
interface = "eth0"
mode = "auto"

[[stage]]
name = "parse"
plugin = "parse"
)";

// A pipeline of `count` parse stages, parse1..parseN; stage i's [[stage]] header is on line 4 * i.
std::string parse_stages(int count) {
  std::string text = "[pipeline]\nmode = \"auto\"\n";
  for (int i = 1; i <= count; ++i)
    text += "\n[[stage]]\nname = \"parse" + std::to_string(i) + "\"\nplugin = \"parse\"\n";
  return text;
}

struct ErrorCase {
  std::string name;    // the test's name
  std::string text;    // the pipeline file
  int line;            // where the error is, 1-based
  int column;
  std::string scope;   // "[pipeline]", "stage 'NAME'", "[[stage]] #N" or "file"
  std::string key;
  std::string reason;  // part of the message after the key
  bool also_run;       // also through `run` on a veth
};

void PrintTo(const ErrorCase& error_case, std::ostream* out) { *out << error_case.name; }

const std::vector<ErrorCase>& error_cases() {
  static const std::vector<ErrorCase> cases = {
      {.name = "unknown_key_in_pipeline",
       .text = "[pipeline]\ninterface = \"eth0\"\n  colour = \"blue\"\nmode = \"auto\"\n\n"
               "[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n",
       .line = 3, .column = 3, .scope = "[pipeline]", .key = "colour", .reason = "unknown key",
       .also_run = false},
      {.name = "misspelt_key_in_stage",
       .text = kHead + "\n[[stage]]\nname = \"no-8080\"\nplugin = \"port_filter\"\ndrop_tcp_dts = [8080]\n",
       .line = 12, .column = 1, .scope = "stage 'no-8080'", .key = "drop_tcp_dts", .reason = "unknown key",
       .also_run = true},
      {.name = "wrong_type_in_stage",
       .text = kHead + "\n[[stage]]\nname = \"flows\"\nplugin = \"metadata\"\nsample = \"1\"\n",
       .line = 12, .column = 10, .scope = "stage 'flows'", .key = "sample",
       .reason = "expected an integer, found a string", .also_run = false},
      {.name = "wrong_type_in_pipeline",
       .text = "[pipeline]\ninterface = \"eth0\"\nmode = 1\n\n[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n",
       .line = 3, .column = 8, .scope = "[pipeline]", .key = "mode",
       .reason = "expected a string, found an integer", .also_run = false},
      {.name = "port_out_of_range",
       .text = kHead + "\n[[stage]]\nname = \"no-8080\"\nplugin = \"port_filter\"\ndrop_tcp_dst = [80, 70000]\n",
       .line = 12, .column = 21, .scope = "stage 'no-8080'", .key = "drop_tcp_dst",
       .reason = "port 70000 is out of range 0..65535", .also_run = true},
      {.name = "reversed_range",
       .text = kHead + "\n[[stage]]\nname = \"no-dns\"\nplugin = \"port_filter\"\ndrop_udp_dst = [53, \"9100-9000\"]\n",
       .line = 12, .column = 21, .scope = "stage 'no-dns'", .key = "drop_udp_dst",
       .reason = "range 9100-9000 is reversed", .also_run = false},
      {.name = "bad_ipv4_vip",
       .text = kHead + "\n[[stage]]\nname = \"ping-lb\"\nplugin = \"icmp_lb\"\nvip = \"192.168.1.256\"\n"
                       "backends = [ { ip = \"192.168.1.3\", mac = \"52:54:00:ff:ff:55\" } ]\n",
       .line = 12, .column = 7, .scope = "stage 'ping-lb'", .key = "vip",
       .reason = "'192.168.1.256' is not an IPv4 address", .also_run = true},
      {.name = "bad_ipv4_backend",
       .text = kHead + "\n[[stage]]\nname = \"ping-lb\"\nplugin = \"icmp_lb\"\nvip = \"192.168.1.2\"\n"
                       "backends = [\n  { ip = \"192.168.1.3\", mac = \"52:54:00:ff:ff:55\" },\n"
                       "  { ip = \"10.0.0.300\", mac = \"52:54:00:ff:ff:56\" },\n]\n",
       .line = 15, .column = 10, .scope = "stage 'ping-lb'", .key = "backends",
       .reason = "backend 2: ip '10.0.0.300' is not an IPv4 address", .also_run = false},
      {.name = "bad_mac",
       .text = kHead + "\n[[stage]]\nname = \"ping-lb\"\nplugin = \"icmp_lb\"\nvip = \"192.168.1.2\"\n"
                       "backends = [\n  { ip = \"192.168.1.3\", mac = \"52:54:00:ff:ff\" },\n]\n",
       .line = 14, .column = 31, .scope = "stage 'ping-lb'", .key = "backends",
       .reason = "backend 1: mac '52:54:00:ff:ff' is not a MAC address", .also_run = false},
      {.name = "unknown_mode",
       .text = "[pipeline]\ninterface = \"eth0\"\nmode = \"turbo\"\n\n[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n",
       .line = 3, .column = 8, .scope = "[pipeline]", .key = "mode",
       .reason = "'turbo' is not one of native, generic, offload, auto", .also_run = false},
      // The reason must say why, not only that: the pipeline is built on tail calls, which no offloading
      // driver runs.
      {.name = "offload_mode",
       .text = "[pipeline]\ninterface = \"eth0\"\nmode = \"offload\"\n\n[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n",
       .line = 3, .column = 8, .scope = "[pipeline]", .key = "mode",
       .reason = "offload is impossible for a pipeline: it is built on bpf_tail_call", .also_run = true},
      // [pipeline] interface: a name, a list, or rules resolved on the node (issue 16).
      {.name = "interface_unknown_rule",
       .text = "[pipeline]\ninterface = { first_up = [\"eth0\"] }\n\n[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n",
       .line = 2, .column = 15, .scope = "[pipeline]", .key = "interface",
       .reason = "unknown rule 'first_up' (first_of = [NAMES] or default_route = true)", .also_run = false},
      {.name = "interface_listed_twice",
       .text = "[pipeline]\ninterface = [\"eth0\", \"eth1\", \"eth0\"]\n\n[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n",
       .line = 2, .column = 30, .scope = "[pipeline]", .key = "interface", .reason = "'eth0' is listed twice",
       .also_run = false},
      {.name = "interface_first_of_empty",
       .text = "[pipeline]\ninterface = [\"eth0\", { first_of = [] }]\n\n[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n",
       .line = 2, .column = 35, .scope = "[pipeline]", .key = "interface",
       .reason = "first_of: expected a non-empty list of names", .also_run = false},
      {.name = "interface_bad_name_in_list",
       .text = "[pipeline]\ninterface = [\"eth0\", 7]\n\n[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n",
       .line = 2, .column = 22, .scope = "[pipeline]", .key = "interface",
       .reason = "expected an interface name, found an integer", .also_run = false},
      {.name = "watch_not_boolean",
       .text = "[pipeline]\ninterface = \"eth0\"\nwatch = \"yes\"\n\n[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n",
       .line = 3, .column = 9, .scope = "[pipeline]", .key = "watch", .reason = "expected a boolean, found a string",
       .also_run = false},
      {.name = "unknown_plugin",
       .text = kHead + "\n[[stage]]\nname = \"mystery\"\nplugin = \"nosuch\"\n",
       .line = 11, .column = 10, .scope = "stage 'mystery'", .key = "plugin",
       .reason = "unknown plugin 'nosuch' (no nosuch.so in ", .also_run = true},
      {.name = "duplicate_stage_name",
       .text = kHead + "\n[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n",
       .line = 10, .column = 8, .scope = "[[stage]] #2", .key = "name",
       .reason = "duplicate stage name 'parse'", .also_run = false},
      {.name = "no_stages",
       .text = "[pipeline]\ninterface = \"eth0\"\nmode = \"auto\"\n",
       .line = 1, .column = 1, .scope = "file", .key = "stage", .reason = "no stages", .also_run = true},
      // XDPP_MAX_STAGES is 33 (the kernel's tail-call limit); the error points at the 34th [[stage]].
      {.name = "too_many_stages",
       .text = parse_stages(34),
       .line = 4 * 34, .column = 1, .scope = "file", .key = "stage",
       .reason = "too many stages: 34, the kernel's tail-call limit allows 33", .also_run = true},
      {.name = "missing_required_key",
       .text = kHead + "\n[[stage]]\nname = \"ping-lb\"\nplugin = \"icmp_lb\"\n"
                       "backends = [ { ip = \"192.168.1.3\", mac = \"52:54:00:ff:ff:55\" } ]\n",
       .line = 9, .column = 1, .scope = "stage 'ping-lb'", .key = "vip", .reason = "missing (required)",
       .also_run = false},
  };
  return cases;
}

std::vector<ErrorCase> run_cases() {
  std::vector<ErrorCase> cases;
  for (const auto& error_case : error_cases())
    if (error_case.also_run) cases.push_back(error_case);
  return cases;
}

// The one line that the executable must print: "xdp-pipeline: error: " and the message.
std::string expected_prefix(const std::string& file, const ErrorCase& error_case) {
  return "xdp-pipeline: error: " + file + ":" + std::to_string(error_case.line) + ":" +
         std::to_string(error_case.column) + ": " + error_case.scope + ": key '" + error_case.key + "': ";
}

void expect_one_error(const CommandResult& result, const std::string& prefix, const std::string& reason) {
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  auto messages = lines(result.err);
  ASSERT_EQ(messages.size(), 1u) << "expected exactly one message; " << describe(result);
  const std::string& message = messages[0];
  EXPECT_EQ(message.substr(0, prefix.size()), prefix) << "whole message: " << message;
  EXPECT_NE(message.find(reason, prefix.size()), std::string::npos)
      << "the reason should contain \"" << reason << "\"; whole message: " << message;
}

class ConfigErrorTest : public ::testing::TestWithParam<ErrorCase> {
 protected:
  TempDir dir_;
};

TEST_P(ConfigErrorTest, CheckPointsAtTheKey) {
  const ErrorCase& error_case = GetParam();
  const auto file = dir_.write(error_case.name + ".toml", error_case.text);
  CommandResult result = run_command({kExecutable, "check", file});
  EXPECT_EQ(result.out, "");
  expect_one_error(result, expected_prefix(file, error_case), error_case.reason);
}

std::string case_name(const ::testing::TestParamInfo<ErrorCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Classes, ConfigErrorTest, ::testing::ValuesIn(error_cases()), case_name);

// `run` with a bad file: the same message and exit code, and nothing attached to the interface.
class RunBadFileTest : public ::testing::TestWithParam<ErrorCase> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: creates a network namespace with a veth pair";
    netns_ = std::make_unique<VethNamespace>();
    ASSERT_EQ(netns_->error(), "") << "cannot set up the veth pair";
  }

  TempDir dir_;
  std::unique_ptr<VethNamespace> netns_;
};

TEST_P(RunBadFileTest, RefusesBeforeAttaching) {
  const ErrorCase& error_case = GetParam();
  const auto file = dir_.write(error_case.name + ".toml", error_case.text);
  CommandResult result =
      run_command({kExecutable, "run", file, "--interface", VethNamespace::kVeth}, 60s, netns_->name());
  expect_one_error(result, expected_prefix(file, error_case), error_case.reason);
  EXPECT_FALSE(netns_->xdp_attached()) << netns_->link_show();
  // Nothing published either: the pipeline's name is the file's stem here (host/state.h has the paths).
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/bpf/xdp-pipeline/" + error_case.name));
  EXPECT_FALSE(std::filesystem::exists("/run/xdp-pipeline/" + error_case.name + ".json"));
}

INSTANTIATE_TEST_SUITE_P(Classes, RunBadFileTest, ::testing::ValuesIn(run_cases()), case_name);

// A TOML syntax error has no key to name (the parser stops before one exists); it names the position.
TEST(ConfigSyntax, SyntaxErrorGivesPosition) {
  TempDir dir;
  const auto file = dir.write("syntax.toml", kHead + "\n[[stage]]\nname = \"no-8080\"\nplugin = port_filter\n");
  CommandResult result = run_command({kExecutable, "check", file});
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  auto messages = lines(result.err);
  ASSERT_EQ(messages.size(), 1u) << describe(result);
  const std::string prefix = "xdp-pipeline: error: " + file.string() + ":11:10: syntax error: ";
  EXPECT_EQ(messages[0].substr(0, prefix.size()), prefix) << "whole message: " << messages[0];
}

TEST(ConfigSyntax, UnclosedArrayGivesPosition) {
  TempDir dir;
  const auto file = dir.write("unclosed.toml", kHead + "\n[[stage]]\nname = \"no-8080\"\nplugin = \"port_filter\"\n"
                                                       "drop_tcp_dst = [8080,\n\n[[stage]]\n");
  CommandResult result = run_command({kExecutable, "check", file});
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  auto messages = lines(result.err);
  ASSERT_EQ(messages.size(), 1u) << describe(result);
  const std::string prefix = "xdp-pipeline: error: " + file.string() + ":";
  EXPECT_EQ(messages[0].substr(0, prefix.size()), prefix) << messages[0];
  EXPECT_NE(messages[0].find(": syntax error: "), std::string::npos) << messages[0];
}

TEST(ConfigLimits, ThirtyThreeStagesAreValid) {
  TempDir dir;
  const auto file = dir.write("stages33.toml", parse_stages(33));
  CommandResult result = run_command({kExecutable, "check", file});
  EXPECT_EQ(result.exit_code, 0) << describe(result);
  EXPECT_EQ(result.out, file.string() + ": pipeline 'stages33', 33 stages, valid\n");
}

// The shipped configurations are the documentation's examples: they must stay valid.
TEST(ConfigShipped, EveryConfigIsValid) {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(XDPP_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".toml") continue;
    CommandResult result = run_command({kExecutable, "check", entry.path()});
    EXPECT_EQ(result.exit_code, 0) << entry.path() << ": " << describe(result);
    ++checked;
  }
  EXPECT_GT(checked, 0) << "no configs/*.toml";
}

TEST(ConfigFile, MissingFile) {
  TempDir dir;
  const auto file = dir.path() / "absent.toml";
  CommandResult result = run_command({kExecutable, "check", file});
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  EXPECT_EQ(result.err, "xdp-pipeline: error: " + file.string() + ": cannot read: No such file or directory\n");
}

TEST(ConfigFile, MissingFileThroughRun) {
  TempDir dir;
  const auto file = dir.path() / "absent.toml";
  CommandResult result = run_command({kExecutable, "run", file, "--interface", kAbsentInterface});
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  EXPECT_EQ(result.err, "xdp-pipeline: error: " + file.string() + ": cannot read: No such file or directory\n");
}

// Root reads anything, so the file is made unreadable for an unprivileged user that runs `check`.
TEST(ConfigFile, UnreadableFile) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the check as another user";
  TempDir dir;
  const auto file = dir.write("secret.toml", kHead);
  ASSERT_EQ(::chmod(file.c_str(), 0000), 0);
  CommandResult result = run_command(
      {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", kExecutable, "check", file});
  if (result.err.find("setpriv") != std::string::npos || result.err.find("exec failed") != std::string::npos)
    GTEST_SKIP() << "cannot drop privileges with setpriv: " << describe(result);
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  EXPECT_EQ(result.err, "xdp-pipeline: error: " + file.string() + ": cannot read: Permission denied\n");
}

TEST(ConfigFile, DirectoryInsteadOfFile) {
  TempDir dir;
  CommandResult result = run_command({kExecutable, "check", dir.path()});
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  EXPECT_EQ(result.err, "xdp-pipeline: error: " + dir.path().string() + ": cannot read: Is a directory\n");
}

// --mode offload on the command line is refused before the file is even read, with the same reason.
TEST(ConfigMode, OffloadOnCommandLine) {
  TempDir dir;
  const auto file = dir.write("valid.toml", kHead);
  CommandResult result = run_command({kExecutable, "run", file, "--interface", kAbsentInterface, "--mode", "offload"});
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  EXPECT_NE(result.err.find("--mode offload is impossible for a pipeline: it is built on bpf_tail_call"),
            std::string::npos)
      << describe(result);
}

}  // namespace
}  // namespace xdpp::host_test
