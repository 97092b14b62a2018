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
      // A misspelling names the nearest valid key (edit distance; a swap of two letters is one edit).
      {.name = "misspelt_key_in_stage",
       .text = kHead + "\n[[stage]]\nname = \"no-8080\"\nplugin = \"port_filter\"\ndrop_tcp_dts = [8080]\n",
       .line = 12, .column = 1, .scope = "stage 'no-8080'", .key = "drop_tcp_dts",
       .reason = "unknown key; did you mean 'drop_tcp_dst'?", .also_run = true},
      {.name = "misspelt_key_in_pipeline",
       .text = "[pipeline]\ninterfce = \"eth0\"\n\n[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n",
       .line = 2, .column = 1, .scope = "[pipeline]", .key = "interfce",
       .reason = "unknown key; did you mean 'interface'?", .also_run = false},
      {.name = "misspelt_key_in_icmp_lb",
       .text = kHead + "\n[[stage]]\nname = \"ping-lb\"\nplugin = \"icmp_lb\"\nvip = \"192.168.1.2\"\n"
                       "backend = [ { ip = \"192.168.1.3\", mac = \"52:54:00:ff:ff:55\" } ]\n",
       .line = 13, .column = 1, .scope = "stage 'ping-lb'", .key = "backend",
       .reason = "unknown key; did you mean 'backends'?", .also_run = false},
      // [stage] alone (no syntax error: one plain table named stage) is said in the same words as below.
      {.name = "single_bracket_stage",
       .text = "[pipeline]\ninterface = \"eth0\"\n\n[stage]\nname = \"parse\"\nplugin = \"parse\"\n",
       .line = 4, .column = 1, .scope = "file", .key = "stage",
       .reason = "[stage] is written [[stage]]", .also_run = false},
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
      {.name = "persist_not_a_boolean",
       .text = "[pipeline]\ninterface = \"eth0\"\npersist = \"yes\"\n\n[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n",
       .line = 3, .column = 11, .scope = "[pipeline]", .key = "persist",
       .reason = "expected a boolean, found a string", .also_run = false},
      {.name = "stage_named_links",
       .text = kHead + "\n[[stage]]\nname = \"links\"\nplugin = \"parse\"\n",
       .line = 10, .column = 8, .scope = "[[stage]] #2", .key = "name",
       .reason = "'links' is reserved for the pinned XDP links of a persisted pipeline", .also_run = false},
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
  // A suggestion only where one is near: 'colour' is like no key of [pipeline].
  if (error_case.reason == "unknown key") {
    EXPECT_EQ(result.err.find("did you mean"), std::string::npos) << result.err;
  }
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

// A TOML syntax error has no key to name (the parser stops before one exists). It is said in the user's
// terms, at the real mistake (which may be lines before where the parser gave up), with the fix.
struct SyntaxCase {
  std::string name;
  std::string text;
  int line;
  int column;
  std::string message;  // the whole message after "syntax error: ", or its start when it ends in "..."
};

void PrintTo(const SyntaxCase& syntax_case, std::ostream* out) { *out << syntax_case.name; }

// kHead is lines 1-7; a case's [[stage]] is line 9, its name line 10, plugin 11, first setting 12.
const std::string kStageHead = kHead + "\n[[stage]]\nname = \"no-8080\"\n";

const std::vector<SyntaxCase>& syntax_cases() {
  static const std::vector<SyntaxCase> cases = {
      // The parser: "unescaped control characters other than TAB (U+0009) are explicitly prohibited" at 11:22.
      {.name = "missing_closing_quote", .text = kStageHead + "plugin = \"port_filter\n", .line = 11, .column = 10,
       .message = "the string that starts here has no closing quote: end it with \" on the same line"},
      // The parser: "cannot redefine existing array 'stage' as table", at the [stage] itself.
      {.name = "single_bracket_stage_after_stages", .text = kHead + "\n[stage]\nname = \"flows\"\nplugin = \"metadata\"\n",
       .line = 9, .column = 1,
       .message = "[stage] is written [[stage]]: every stage is one table of the list of stages, in double brackets"},
      // The parser stops at the second [stage] ("cannot redefine existing table 'stage'"); the first is as wrong.
      {.name = "two_single_bracket_stages",
       .text = "[pipeline]\ninterface = \"eth0\"\n\n[stage]\nname = \"parse\"\nplugin = \"parse\"\n\n"
               "[stage]\nname = \"flows\"\nplugin = \"metadata\"\n",
       .line = 4, .column = 1,
       .message = "[stage] is written [[stage]]: every stage is one table of the list of stages, in double brackets"},
      // The parser gives up at the next [[stage]], three lines later ("could not determine value type").
      {.name = "unclosed_array",
       .text = kStageHead + "plugin = \"port_filter\"\ndrop_tcp_dst = [8080,\n\n[[stage]]\nname = \"flows\"\n"
                            "plugin = \"metadata\"\n",
       .line = 12, .column = 16,
       .message = "the array of 'drop_tcp_dst' that starts here is not closed: add ']' after its last element"},
      {.name = "unclosed_array_before_a_key",
       .text = kStageHead + "plugin = \"port_filter\"\ndrop_tcp_dst = [8080, 8081\nfragments = \"drop\"\n",
       .line = 12, .column = 16,
       .message = "the array of 'drop_tcp_dst' that starts here is not closed: add ']' after its last element"},
      {.name = "unquoted_string", .text = kStageHead + "plugin = port_filter\n", .line = 11, .column = 10,
       .message = "the value port_filter is not quoted: strings are written in quotes, \"port_filter\""},
      // The parser reads 9000-9100 as the start of a date ("expected month between 1 and 12").
      {.name = "unquoted_port_range",
       .text = kStageHead + "plugin = \"port_filter\"\ndrop_tcp_dst = [8080, 9000-9100]\n", .line = 12,
       .column = 23, .message = "a port range is a string: write \"9000-9100\" (in quotes)"},
      // Addresses written bare: the parser reads them as a float and as a time.
      {.name = "unquoted_ipv4", .text = kStageHead + "plugin = \"icmp_lb\"\nvip = 192.168.1.2\n", .line = 12,
       .column = 7, .message = "the value 192.168.1.2 is not quoted: strings are written in quotes, \"192.168.1.2\""},
      {.name = "unquoted_mac",
       .text = kStageHead + "plugin = \"icmp_lb\"\nvip = \"192.168.1.2\"\nbackends = [ { ip = \"192.168.1.3\", mac = "
                            "02:00:00:00:00:aa } ]\n",
       .line = 13, .column = 42,
       .message = "the value 02:00:00:00:00:aa is not quoted: strings are written in quotes, \"02:00:00:00:00:aa\""},
      {.name = "capitalised_boolean", .text = kStageHead + "plugin = \"port_filter\"\ndrop_tcp_src = True\n",
       .line = 12, .column = 16, .message = "booleans are lower case in TOML: write true"},
      {.name = "colon_for_equals", .text = kStageHead + "plugin: \"port_filter\"\n", .line = 11, .column = 7,
       .message = "write '=' between a key and its value, not ':'"},
      {.name = "key_set_twice", .text = kStageHead + "plugin = \"port_filter\"\nname = \"other\"\n", .line = 12,
       .column = 1, .message = "key 'name' is set twice in this table (first at line 10): keep one"},
      {.name = "inline_table_across_lines",
       .text = kHead + "\n[[stage]]\nname = \"ping-lb\"\nplugin = \"icmp_lb\"\nvip = \"192.168.1.2\"\n"
                       "backends = [ { ip = \"192.168.1.3\",\n  mac = \"52:54:00:ff:ff:55\" } ]\n",
       .line = 13, .column = 14,
       .message = "this inline table is not closed on its line: an inline table { ... } must be on one line; "
                  "close it with '}' before the line ends"},
      {.name = "unclosed_table_header", .text = kHead + "\n[[stage]\nname = \"flows\"\n", .line = 9, .column = 1,
       .message = "this table header is not closed: write [pipeline] or [[stage]] with all their brackets"},
      {.name = "semicolon", .text = kStageHead + "plugin = \"port_filter\";\n", .line = 11, .column = 23,
       .message = "remove the ';': a TOML line ends without one"},
  };
  return cases;
}

class ConfigSyntaxTest : public ::testing::TestWithParam<SyntaxCase> {
 protected:
  TempDir dir_;
};

TEST_P(ConfigSyntaxTest, SaysTheMistakeWhereItIs) {
  const SyntaxCase& syntax_case = GetParam();
  const auto file = dir_.write(syntax_case.name + ".toml", syntax_case.text);
  CommandResult result = run_command({kExecutable, "check", file});
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err, "xdp-pipeline: error: " + file.string() + ":" + std::to_string(syntax_case.line) + ":" +
                            std::to_string(syntax_case.column) + ": syntax error: " + syntax_case.message + "\n");
}

INSTANTIATE_TEST_SUITE_P(Mistakes, ConfigSyntaxTest, ::testing::ValuesIn(syntax_cases()),
                         [](const ::testing::TestParamInfo<SyntaxCase>& info) { return info.param.name; });

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
