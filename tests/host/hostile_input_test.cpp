// Hostile and broken input to the commands that read files, through the real executable: a FIFO, a link
// to /dev/zero and an oversized file as the pipeline file; files that are no BPF object for this
// machine under `check`; a 4000-character plugin name; a NUL in a name; a bad or busy --metrics; a
// `status` of a run that is gone; and a plugin path that a non-root user can change, raced by that
// user while `check` runs. Each must end in a clear error, quickly, never in a hang, an abort or code
// of another user running as root.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "host_test_util.h"

namespace xdpp::host_test {
namespace {

namespace fs = std::filesystem;
constexpr int kExitUsage = 2;
const fs::path kPluginDir = XDPP_TEST_PLUGIN_DIR;
const fs::path kBpfDir = XDPP_TEST_BPF_DIR;

const std::string kValid = "[pipeline]\nmode = \"auto\"\n\n[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n";

CommandResult check(const fs::path& file, std::chrono::milliseconds timeout = 10s) {
  return run_command({kExecutable, "check", file}, timeout);
}

void expect_usage_error(const CommandResult& result, const std::string& part) {
  EXPECT_FALSE(result.timed_out) << describe(result);
  EXPECT_EQ(result.exit_code, kExitUsage) << describe(result);
  EXPECT_NE(result.err.find(part), std::string::npos) << "expected '" << part << "' in: " << describe(result);
}

TEST(PipelineFile, FifoIsRefusedWithoutWaiting) {
  TempDir dir;
  const fs::path fifo = dir.path() / "pipe.toml";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  expect_usage_error(check(fifo, 10s), "not a regular file");
}

TEST(PipelineFile, LinkToDevZeroIsRefused) {
  TempDir dir;
  const fs::path link = dir.path() / "zero.toml";
  fs::create_symlink("/dev/zero", link);
  expect_usage_error(check(link, 10s), "not a regular file");
}

TEST(PipelineFile, LargerThanTheLimitIsRefusedAndTheLimitIsSaid) {
  TempDir dir;
  const fs::path big = dir.write("big.toml", kValid);
  fs::resize_file(big, (16u << 20) + 1);  // sparse: costs no disk
  expect_usage_error(check(big), "larger than 16 MiB");
}

TEST(PipelineFile, PluginNameOf4000CharactersKeepsItsPosition) {
  TempDir dir;
  const std::string name(4000, 'p');
  const fs::path file = dir.write("long.toml", "[[stage]]\nname = \"s\"\nplugin = \"" + name + "\"\n");
  CommandResult result = check(file);
  expect_usage_error(result, file.string() + ":3:10: stage 's': key 'plugin': unknown plugin");
}

TEST(PipelineFile, NulInANameDoesNotCutTheMessage) {
  TempDir dir;
  const fs::path file = dir.write("nul.toml", "[[stage]]\nname = \"a\\u0000b\"\nplugin = \"parse\"\n");
  CommandResult result = check(file);
  expect_usage_error(result, "'a\\x00b' is not a name (letters, digits");
}

// A directory of the test's own, root's and closed to others, holding `object` as stage.bpf.o, and a
// pipeline file whose parse stage uses it (object key on line 7, column 10).
fs::path pipeline_with_object(const TempDir& dir, const fs::path& object) {
  fs::copy_file(object, dir.path() / "stage.bpf.o", fs::copy_options::overwrite_existing);
  ::chmod((dir.path() / "stage.bpf.o").c_str(), 0644);
  return dir.write("p.toml", kValid + "object = \"stage.bpf.o\"\n");
}

TEST(CheckObjects, FilesThatAreNoBpfObjectForThisPipelineAreRefused) {
  TempDir dir;
  // A truncated ELF: the real parse object cut after its ELF header.
  const fs::path truncated = dir.path() / "truncated.o";
  {
    std::string bytes = read_text(kBpfDir / "parse.bpf.o");
    ASSERT_GT(bytes.size(), 200u);
    std::ofstream(truncated, std::ios::binary) << bytes.substr(0, 200);
  }
  // An object of another architecture: arm64, compiled here by clang.
  const fs::path source = dir.write("empty.c", "int answer = 42;\n");
  const fs::path arm64 = dir.path() / "arm64.o";
  CommandResult compiled = run_command({"clang", "--target=aarch64-linux-gnu", "-c", source, "-o", arm64});
  struct Case {
    fs::path object;
    const char* what;
  };
  std::vector<Case> cases = {{"/etc/passwd", "text"}, {truncated, "truncated ELF"}, {"/bin/true", "x86-64 executable"},
                             {kBpfDir / "dispatcher.bpf.o", "BPF object without the stage's program"}};
  if (compiled.exit_code == 0) cases.push_back({arm64, "arm64 object"});
  else ADD_FAILURE() << "clang could not build an arm64 object: " << describe(compiled);
  for (const Case& one : cases) {
    TempDir stage_dir;
    const fs::path file = pipeline_with_object(stage_dir, one.object);
    CommandResult result = check(file);
    SCOPED_TRACE(one.what);
    expect_usage_error(result, file.string() + ":7:10: stage 'parse': BPF object ");
    EXPECT_EQ(result.err.find("Unknown error"), std::string::npos) << "an untranslated libbpf code: " << result.err;
    EXPECT_EQ(result.out.find("valid"), std::string::npos) << result.out;
  }
  // The real object still passes.
  TempDir good_dir;
  CommandResult good = check(pipeline_with_object(good_dir, kBpfDir / "parse.bpf.o"));
  EXPECT_EQ(good.exit_code, 0) << describe(good);
}

TEST(Metrics, BadValueIsAUsageErrorBeforeAnythingElse) {
  TempDir dir;
  const fs::path file = dir.write("m.toml", kValid);
  for (const std::string bad : {"nonsense", "0", "65536", "300.1.1.1:80", "127.0.0.1:", "99999999999"}) {
    CommandResult result = run_command({kExecutable, "run", file, "--interface", "xdpp-absent0", "--metrics", bad});
    SCOPED_TRACE(bad);
    expect_usage_error(result, "--metrics '" + bad + "' is not PORT or IPV4:PORT");
  }
}

// ---- status of a run that is gone ------------------------------------------------------------------

TEST(Status, OfARunThatIsGoneFails) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: writes a state file under /run/xdp-pipeline";
  // A pid that surely is dead: a child of ours, reaped.
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::string name = "hostile-dead-" + std::to_string(::getpid());
  const fs::path state = fs::path("/run/xdp-pipeline") / (name + ".json");
  fs::create_directories(state.parent_path());
  std::ofstream(state) << R"({"name": ")" << name << R"(", "pid": )" << dead
                       << R"(, "stages": [], "dispatcher": {}})";
  CommandResult result = run_command({kExecutable, "status", name});
  fs::remove(state);
  EXPECT_EQ(result.exit_code, 1) << describe(result);
  EXPECT_NE(result.err.find("is gone"), std::string::npos) << describe(result);
}

// ---- the plugin path, raced by a non-root user ----------------------------------------------------

// A user that is not root, and a home for them: `nobody` is in every Debian base system.
std::optional<uid_t> unprivileged_uid() {
  passwd* entry = ::getpwnam("nobody");
  if (!entry || entry->pw_uid == 0) return std::nullopt;
  return entry->pw_uid;
}

TEST(PluginPath, AncestorOwnedByAnotherUserRefusesEvenWhileThatUserSwapsDirectories) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: creates files of another user and runs as them";
  auto uid = unprivileged_uid();
  if (!uid) GTEST_SKIP() << "no user 'nobody' on this system";
  TempDir dir;
  // plugins/ belongs to the other user; inside it, good/ is root's with a real parse.so, and evil/ is
  // the user's own with a parse.so whose constructor leaves a mark: code that must never run as root.
  const fs::path theirs = dir.path() / "plugins";
  fs::create_directories(theirs / "good");
  fs::create_directories(theirs / "evil");
  fs::copy_file(kPluginDir / "parse.so", theirs / "good" / "parse.so");
  fs::copy_file(fs::path(XDPP_TEST_FIXTURE_DIR) / "evil.so", theirs / "evil" / "parse.so");
  const fs::path mark = dir.path() / "evil-ran";
  ASSERT_EQ(::chown(theirs.c_str(), *uid, *uid), 0);
  ASSERT_EQ(::chown((theirs / "evil").c_str(), *uid, *uid), 0);
  ASSERT_EQ(::chown((theirs / "evil" / "parse.so").c_str(), *uid, *uid), 0);
  ::setenv("XDPP_TEST_EVIL_MARK", mark.c_str(), 1);
  const fs::path file = dir.write("p.toml", "[pipeline]\nplugin_dir = \"plugins/good\"\n\n[[stage]]\nname = \"parse\"\n"
                                             "plugin = \"parse\"\n");

  // The user exchanges good/ and evil/ as fast as they can (renameat2 RENAME_EXCHANGE).
  pid_t racer = ::fork();
  ASSERT_GE(racer, 0);
  if (racer == 0) {
    if (::setgid(*uid) != 0 || ::setuid(*uid) != 0) ::_exit(3);
    const std::string a = (theirs / "good").string(), b = (theirs / "evil").string();
    for (;;) ::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE);
  }
  int refused = 0;
  std::string last;
  for (int i = 0; i < 30; ++i) {
    CommandResult result = check(file);
    last = describe(result);
    if (result.exit_code == kExitUsage && result.err.find("is owned by uid " + std::to_string(*uid)) != std::string::npos)
      ++refused;
  }
  ::kill(racer, SIGKILL);
  ::waitpid(racer, nullptr, 0);
  ::unsetenv("XDPP_TEST_EVIL_MARK");
  EXPECT_FALSE(fs::exists(mark)) << "the other user's plugin ran as root";
  EXPECT_EQ(refused, 30) << "every check must refuse the path; last: " << last;
}

}  // namespace
}  // namespace xdpp::host_test
