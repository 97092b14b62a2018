// The command line a new user meets first, through the real executable: --version, every command's
// usage line naming every option it takes, an example in every --help whose options parse, usage errors
// that show the usage, and `run` on an interface that does not exist.
#include <gtest/gtest.h>
#include <unistd.h>

#include <regex>
#include <sstream>
#include <set>
#include <string>
#include <vector>

#include "host_test_util.h"

namespace xdpp::host_test {
namespace {

constexpr int kExitUsage = 2;
const std::filesystem::path kFullConfig = std::filesystem::path(XDPP_SOURCE_DIR) / "configs" / "full.toml";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Version, FlagAndCommandPrintTheBuild) {
  for (const char* spelling : {"--version", "version"}) {
    CommandResult result = run_command({kExecutable, spelling});
    EXPECT_EQ(result.exit_code, 0) << describe(result);
    EXPECT_EQ(result.out.rfind(std::string("xdp-pipeline ") + XDPP_VERSION + " (plugin ABI ", 0), 0u) << result.out;
    EXPECT_EQ(result.err, "");
  }
}

// The commands `xdp-pipeline help` lists: the first word of each indented synopsis line.
std::vector<std::string> listed_commands() {
  CommandResult result = run_command({kExecutable, "help"});
  EXPECT_EQ(result.exit_code, 0) << describe(result);
  std::vector<std::string> names;
  static const std::regex synopsis("^  ([a-z][a-z-]*) ");
  for (const auto& line : lines(result.out)) {
    std::smatch match;
    if (std::regex_search(line, match, synopsis)) names.push_back(match[1]);
  }
  return names;
}

TEST(Usage, HelpListsEveryCommand) {
  auto names = listed_commands();
  const std::set<std::string> got(names.begin(), names.end());
  EXPECT_EQ(got, (std::set<std::string>{"run", "check", "replay", "swap", "set", "reload", "status", "detach", "new-stage"}));
  CommandResult result = run_command({kExecutable, "help"});
  EXPECT_TRUE(contains(result.out, "--version")) << result.out;
}

// Every option a command's --help lists appears in its usage line, and the help has an example of
// that command whose options the command accepts (checked by running the example with --help added,
// which parses the whole line before printing the help).
TEST(Usage, EveryCommandsUsageShowsEveryOptionAndHasAnExample) {
  for (const auto& name : listed_commands()) {
    SCOPED_TRACE(name);
    CommandResult help = run_command({kExecutable, name, "--help"});
    ASSERT_EQ(help.exit_code, 0) << describe(help);
    auto text = lines(help.out);
    ASSERT_FALSE(text.empty());
    const std::string usage = text[0];
    EXPECT_EQ(usage.rfind("usage: xdp-pipeline " + name + " ", 0), 0u) << usage;

    static const std::regex option_line(R"(^  (-[a-z] \[ )?--([a-z-]+))");
    int options = 0;
    std::string example;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == "example:" && i + 1 < text.size()) example = text[i + 1];
      std::smatch match;
      if (std::regex_search(text[i], match, option_line)) {
        ++options;
        EXPECT_TRUE(contains(usage, "--" + match[2].str())) << "--" << match[2] << " is missing from: " << usage;
      }
    }
    EXPECT_GE(options, 3) << "no options parsed from: " << help.out;  // at least --help, --verbose, --quiet

    ASSERT_EQ(example.rfind("  xdp-pipeline " + name + " ", 0), 0u) << "no example in: " << help.out;
    std::vector<std::string> argv = {kExecutable};
    std::istringstream words(example.substr(std::string("  xdp-pipeline ").size()));
    for (std::string word; words >> word;) argv.push_back(word);
    argv.push_back("--help");
    CommandResult parsed = run_command(argv);
    EXPECT_EQ(parsed.exit_code, 0) << "the example does not parse: " << example << "; " << describe(parsed);
  }
}

TEST(Usage, UnknownOptionShowsTheUsage) {
  CommandResult result = run_command({kExecutable, "run", kFullConfig, "--metric", "9100"});
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  EXPECT_TRUE(contains(result.err, "usage: xdp-pipeline run FILE [--interface IF[,IF...]]")) << result.err;
  EXPECT_TRUE(contains(result.err, "--metrics [ADDR:]PORT")) << result.err;
}

TEST(Usage, MissingArgumentShowsUsageAndExample) {
  CommandResult result = run_command({kExecutable, "set"});
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  EXPECT_TRUE(contains(result.err, "missing the STAGE")) << result.err;
  EXPECT_TRUE(contains(result.err, "example: xdp-pipeline set ")) << result.err;
}

// --interface takes IF or IF,IF,...: anything else is refused before anything is loaded, as a usage error.
TEST(Usage, InterfaceListMustHoldInterfaceNames) {
  for (const std::string bad : {"", "eth0,", "eth0,,eth1", "a/b", "eth0, eth1", "averyveryverylongname0"}) {
    CommandResult result = run_command({kExecutable, "run", kFullConfig, "--interface", bad});
    EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
    EXPECT_TRUE(contains(result.err, "--interface '" + bad + "' is not IF or IF,IF,...")) << result.err;
  }
}

TEST(Usage, MetricsNetnsNeedsNetnsAndAKnownValue) {
  CommandResult alone = run_command({kExecutable, "run", kFullConfig, "--metrics-netns", "host"});
  EXPECT_EQ(alone.exit_code, kExitUsage) << describe(alone);
  EXPECT_TRUE(contains(alone.err, "give --netns too")) << alone.err;
  CommandResult bad = run_command({kExecutable, "run", kFullConfig, "--netns", "x", "--metrics-netns", "elsewhere"});
  EXPECT_EQ(bad.exit_code, kExitUsage) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "--metrics-netns 'elsewhere' is not host or pipeline")) << bad.err;
}

// The shipped files name eth0. On a host without it, `run` names the namespace it looked in, the
// option that picks another interface, and the interfaces there are; nothing is loaded (exit 2).
TEST(MissingInterface, NamesTheNamespaceTheOptionAndTheInterfaces) {
  if (::geteuid() != 0) GTEST_SKIP() << "run refuses non-root before it looks for the interface";
  CommandResult result = run_command({kExecutable, "run", kFullConfig, "--interface", "xdpp-absent0"});
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  auto messages = lines(result.err);
  ASSERT_EQ(messages.size(), 1u) << describe(result);
  EXPECT_TRUE(contains(messages[0], "xdp-pipeline: error: interface 'xdpp-absent0' does not exist in ")) << messages[0];
  EXPECT_TRUE(contains(messages[0], "(interfaces there: lo")) << messages[0];
  EXPECT_TRUE(contains(messages[0], "name one with --interface IF")) << messages[0];
  EXPECT_TRUE(contains(messages[0], "--netns NS")) << messages[0];
}

TEST(MissingInterface, InsideNetnsNamesThatNamespaceAndItsInterfaces) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: creates a network namespace";
  VethNamespace netns;
  ASSERT_EQ(netns.error(), "");
  CommandResult result =
      run_command({kExecutable, "run", kFullConfig, "--netns", netns.name(), "--interface", "xdpp-absent0"});
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  // The kernel numbers the two ends of a veth pair in either order.
  const std::string a = VethNamespace::kVeth, b = VethNamespace::kPeer;
  auto expected = [&](const std::string& first, const std::string& second) {
    return "xdp-pipeline: error: interface 'xdpp-absent0' does not exist in network namespace '" + netns.name() +
           "' (interfaces there: lo, " + first + ", " + second + "); name one with --interface IF (it overrides " +
           "[pipeline] interface in " + kFullConfig.string() + ")\n";
  };
  EXPECT_TRUE(result.err == expected(a, b) || result.err == expected(b, a)) << result.err;
}

TEST(MissingInterface, NetnsThatDoesNotExistIsAUsageErrorWithAHint) {
  if (::geteuid() != 0) GTEST_SKIP() << "run refuses non-root before it enters the namespace";
  const std::string absent = "xdpp-absent-ns-" + std::to_string(::getpid());
  CommandResult result = run_command({kExecutable, "run", kFullConfig, "--netns", absent});
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  EXPECT_TRUE(contains(result.err, "network namespace '" + absent + "': /run/netns/" + absent +
                                       ": No such file or directory; `ip netns list` shows the ones there are"))
      << describe(result);
}

}  // namespace
}  // namespace xdpp::host_test
