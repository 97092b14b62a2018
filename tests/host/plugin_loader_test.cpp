// The plugin loader refuses what is not ours or not safe, with a message naming the file and the reason:
// broken fixture plugins (wrong ABI, no factory, a factory that names itself otherwise), and good
// plugins that someone other than root could have replaced.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "host_test_util.h"
#include "plugin_loader.h"

namespace xdpp::host_test {
namespace {

namespace fs = std::filesystem;

const fs::path kFixtureDir = XDPP_TEST_FIXTURE_DIR;
const fs::path kPluginDir = XDPP_TEST_PLUGIN_DIR;

std::string error_of(const Result<std::shared_ptr<LoadedPlugin>>& result) {
  return result ? std::string("(loaded)") : result.error().message;
}

// "plugin FILE: refused: REASON...": the message starts with the file and then says why.
void expect_refused(const Result<std::shared_ptr<LoadedPlugin>>& result, const fs::path& file,
                    const std::string& reason) {
  ASSERT_FALSE(result) << file << " was loaded";
  const std::string& message = result.error().message;
  const std::string prefix = "plugin " + file.string() + ": refused: ";
  EXPECT_EQ(message.substr(0, prefix.size()), prefix) << message;
  EXPECT_NE(message.find(reason), std::string::npos) << "expected \"" << reason << "\" in: " << message;
}

struct BrokenPlugin {
  std::string name;    // file NAME.so in the fixture directory
  std::string reason;  // what the refusal must say
};

void PrintTo(const BrokenPlugin& plugin, std::ostream* out) { *out << plugin.name; }

const std::vector<BrokenPlugin>& broken_plugins() {
  static const std::vector<BrokenPlugin> plugins = {
      {"wrong_abi", "built against plugin ABI " + std::to_string(kPluginAbiVersion + 1) +
                        ", this xdp-pipeline needs " + std::to_string(kPluginAbiVersion)},
      {"no_factory", "missing symbol xdpp_plugin_factory"},
      {"misnamed", "it calls itself 'renamed', not 'misnamed'"},
  };
  return plugins;
}

class FixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The loader refuses a plugin directory that others can write; the fixtures must not fail on that.
    struct stat info {};
    ASSERT_EQ(::stat(kFixtureDir.c_str(), &info), 0) << kFixtureDir << ": not built";
    if (info.st_uid != 0 || (info.st_mode & (S_IWGRP | S_IWOTH)))
      GTEST_SKIP() << kFixtureDir << " is not root-owned and closed to others (the build ran as another user "
                   << "or with a permissive umask); the loader would refuse it for that reason first";
  }
};

class BrokenPluginTest : public FixtureTest, public ::testing::WithParamInterface<BrokenPlugin> {};

TEST_P(BrokenPluginTest, FindPluginRefuses) {
  const fs::path file = kFixtureDir / (GetParam().name + ".so");
  ASSERT_TRUE(fs::exists(file)) << file << ": not built";
  expect_refused(find_plugin(GetParam().name, {kFixtureDir}), file, GetParam().reason);
}

// Through a pipeline file and --plugin-dir: exit 2, the message at the plugin key, naming the file.
TEST_P(BrokenPluginTest, PipelineFileRefuses) {
  TempDir dir;
  const auto pipeline = dir.write("broken.toml", "[pipeline]\nmode = \"auto\"\n\n[[stage]]\nname = \"broken\"\n"
                                                 "plugin = \"" + GetParam().name + "\"\n");
  CommandResult result = run_command({kExecutable, "check", pipeline, "--plugin-dir", kFixtureDir});
  EXPECT_EQ(result.exit_code, 2) << describe(result);
  const fs::path file = kFixtureDir / (GetParam().name + ".so");
  const std::string prefix = "xdp-pipeline: error: " + pipeline.string() + ":6:10: stage 'broken': key 'plugin': plugin " +
                             file.string() + ": refused: ";
  auto messages = lines(result.err);
  ASSERT_EQ(messages.size(), 1u) << describe(result);
  EXPECT_EQ(messages[0].substr(0, prefix.size()), prefix) << messages[0];
  EXPECT_NE(messages[0].find(GetParam().reason), std::string::npos) << messages[0];
}

std::string plugin_name(const ::testing::TestParamInfo<BrokenPlugin>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Fixtures, BrokenPluginTest, ::testing::ValuesIn(broken_plugins()), plugin_name);

// The version is checked before anything else is used; the file alone says which check failed.
TEST_F(FixtureTest, LoadPluginFileRefusesWrongAbi) {
  const fs::path file = kFixtureDir / "wrong_abi.so";
  expect_refused(load_plugin_file(file), file, "built against plugin ABI " + std::to_string(kPluginAbiVersion + 1));
}

TEST_F(FixtureTest, LoadPluginFileRefusesMissingFactory) {
  const fs::path file = kFixtureDir / "no_factory.so";
  expect_refused(load_plugin_file(file), file, "missing symbol xdpp_plugin_factory");
}

TEST(FindPlugin, UnknownPluginNamesTheDirectories) {
  auto result = find_plugin("nosuch", {kFixtureDir, kPluginDir});
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message,
            "unknown plugin 'nosuch' (no nosuch.so in " + kFixtureDir.string() + ", " + kPluginDir.string() + ")");
}

TEST(FindPlugin, RefusesPathsAsNames) {
  for (const std::string name : {"../parse", "/tmp/parse", ".hidden", ""}) {
    auto result = find_plugin(name, {kPluginDir});
    ASSERT_FALSE(result) << name;
    EXPECT_EQ(result.error().message, "'" + name + "' is not a plugin name");
  }
}

// Copies of the built parse plugin with the ownership and modes under test, in a directory of their own.
class PluginSafetyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: the loader accepts only root-owned plugins";
    ASSERT_TRUE(fs::exists(kPluginDir / "parse.so")) << "parse plugin not built";
    dir_ = std::make_unique<TempDir>();
  }

  // dir_/sub/parse.so with `file_mode`, in a directory with `dir_mode`.
  fs::path copy_parse(mode_t file_mode, mode_t dir_mode) {
    const fs::path sub = dir_->path() / "plugins";
    fs::create_directory(sub);
    const fs::path file = sub / "parse.so";
    fs::copy_file(kPluginDir / "parse.so", file, fs::copy_options::overwrite_existing);
    EXPECT_EQ(::chmod(file.c_str(), file_mode), 0);
    EXPECT_EQ(::chmod(sub.c_str(), dir_mode), 0);
    return file;
  }

  // dir_/NAME/parse.so, a symbolic link to `target`, in a directory NAME with `dir_mode`.
  fs::path link_parse(const std::string& name, mode_t dir_mode, const fs::path& target) {
    const fs::path dir = dir_->path() / name;
    fs::create_directory(dir);
    EXPECT_EQ(::chmod(dir.c_str(), dir_mode), 0);
    fs::create_symlink(target, dir / "parse.so");
    return dir / "parse.so";
  }

  // `check` on a one-stage pipeline whose parse plugin is looked for first in `plugin_dir`.
  CommandResult check_with(const fs::path& plugin_dir) {
    const auto pipeline = dir_->write("p.toml", "[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n");
    return run_command({kExecutable, "check", pipeline, "--plugin-dir", plugin_dir});
  }

  std::unique_ptr<TempDir> dir_;
};

TEST_F(PluginSafetyTest, WorldWritableFileIsRefused) {
  const fs::path file = copy_parse(0666, 0755);
  const std::string reason = "file " + file.string() + " is writable by group or others (mode 0666)";
  expect_refused(load_plugin_file(file), file, reason);
  expect_refused(find_plugin("parse", {file.parent_path()}), file, reason);

  CommandResult result = check_with(file.parent_path());
  EXPECT_EQ(result.exit_code, 2) << describe(result);
  EXPECT_NE(result.err.find(":3:10: stage 'parse': key 'plugin': plugin " + file.string() + ": refused: " + reason),
            std::string::npos)
      << describe(result);
}

TEST_F(PluginSafetyTest, GroupWritableDirectoryIsRefused) {
  const fs::path file = copy_parse(0755, 0775);
  const std::string reason =
      "its directory " + file.parent_path().string() + " is writable by group or others (mode 0775)";
  expect_refused(load_plugin_file(file), file, reason);

  CommandResult result = check_with(file.parent_path());
  EXPECT_EQ(result.exit_code, 2) << describe(result);
  EXPECT_NE(result.err.find("plugin " + file.string() + ": refused: " + reason), std::string::npos) << describe(result);
}

TEST_F(PluginSafetyTest, FileOwnedByAnotherUserIsRefused) {
  const fs::path file = copy_parse(0755, 0755);
  ASSERT_EQ(::chown(file.c_str(), 65534, 65534), 0);
  expect_refused(load_plugin_file(file), file, "file " + file.string() + " is owned by uid 65534, not root");
}

TEST_F(PluginSafetyTest, SafeCopyLoads) {
  const fs::path file = copy_parse(0755, 0755);
  auto plugin = load_plugin_file(file);
  ASSERT_TRUE(plugin) << error_of(plugin);
  EXPECT_EQ((*plugin)->factory().plugin_name(), "parse");
  EXPECT_EQ((*plugin)->path(), fs::canonical(file));

  auto found = find_plugin("parse", {file.parent_path()});
  ASSERT_TRUE(found) << error_of(found);
  EXPECT_EQ((*found)->path(), fs::canonical(file));
  // The same directory twice (or a link to it) is one plugin, not two.
  auto twice = find_plugin("parse", {file.parent_path(), file.parent_path() / "." });
  EXPECT_TRUE(twice) << error_of(twice);
}

// A plugin_dir holding a plugin of a built-in's name does not silently replace it (nor lose to it): the
// name is ambiguous, and check says where both are.
TEST_F(PluginSafetyTest, SameNameTwiceOnThePluginPathIsRefused) {
  const fs::path file = copy_parse(0755, 0755);
  auto found = find_plugin("parse", {file.parent_path(), kPluginDir});
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().message, "plugin 'parse' is ambiguous: both " + file.string() + " and " +
                                       (kPluginDir / "parse.so").string() +
                                       " are on the plugin path; a plugin name must be unique there (rename one, "
                                       "and its plugin_name())");

  CommandResult result = check_with(file.parent_path());
  EXPECT_EQ(result.exit_code, 2) << describe(result);
  EXPECT_NE(result.err.find(":3:10: stage 'parse': key 'plugin': plugin 'parse' is ambiguous: both " + file.string()),
            std::string::npos)
      << describe(result);
}

// A symlink does not launder a writable file: the loader checks the file it resolves to.
TEST_F(PluginSafetyTest, SymlinkToWritableFileIsRefused) {
  const fs::path target = copy_parse(0666, 0755);
  const fs::path link = link_parse("safe", 0755, target);
  expect_refused(load_plugin_file(link), link,
                 "file " + target.string() + " is writable by group or others (mode 0666)");
}

// Every directory on the way from / counts, not just the plugin's own: whoever owns an ancestor can
// rename or exchange what lies below it.
TEST_F(PluginSafetyTest, AncestorDirectoryOwnedByAnotherUserIsRefused) {
  const fs::path theirs = dir_->path() / "theirs";
  fs::create_directories(theirs / "plugins");
  fs::copy_file(kPluginDir / "parse.so", theirs / "plugins" / "parse.so");
  ASSERT_EQ(::chown(theirs.c_str(), 65534, 65534), 0);
  const fs::path file = theirs / "plugins" / "parse.so";
  expect_refused(load_plugin_file(file), file, "directory " + theirs.string() + " is owned by uid 65534, not root");
  CommandResult result = check_with(file.parent_path());
  EXPECT_EQ(result.exit_code, 2) << describe(result);
}

// A link in a directory that others can write is theirs to replace, whatever it points at now.
TEST_F(PluginSafetyTest, SymlinkInAWritableDirectoryIsRefused) {
  const fs::path link = link_parse("open", 0777, copy_parse(0755, 0755));
  expect_refused(load_plugin_file(link), link,
                 "its directory " + link.parent_path().string() + " is writable by group or others (mode 0777)");
}

// In a sticky directory (like /tmp) others cannot touch root's entries, but their own link is theirs.
TEST_F(PluginSafetyTest, LinkOfAnotherUserInAStickyDirectoryIsRefused) {
  const fs::path link = link_parse("sticky", 01777, copy_parse(0755, 0755));
  ASSERT_EQ(::lchown(link.c_str(), 65534, 65534), 0);
  expect_refused(load_plugin_file(link), link, "symbolic link " + link.string() + " is owned by uid 65534, not root");
  // Root's own link there is fine: nobody else may remove or replace it.
  ASSERT_EQ(::lchown(link.c_str(), 0, 0), 0);
  EXPECT_TRUE(load_plugin_file(link)) << "a root-owned link in a sticky directory";
}

}  // namespace
}  // namespace xdpp::host_test
