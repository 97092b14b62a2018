// The state file, typed (host/core/state_file.h): a file as runs have always written it reads into the structs
// and writes back key for key; older and hand-written files with keys missing read with defaults; a key of the
// wrong type, or a required one missing, is named, with everything else still read.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "state.h"
#include "state_file.h"

namespace xdpp::host_test {
namespace {

using nlohmann::json;

// A state file as a persisted run on two interfaces writes it (every key; the format other shells,
// bpftool users and the live tests read).
const char* const kPublished = R"({
  "name": "edge", "pid": 4242, "file": "/etc/xdp-pipeline/edge.toml", "interface": "veth0,veth1",
  "interfaces": [
    {"name": "veth0", "ifindex": 7, "mode": "native", "link_id": 31},
    {"name": "veth1", "ifindex": 9, "mode": "generic", "link_id": 32}
  ],
  "ifindex": 7, "mode": "auto", "link_id": 31, "persist": true, "contract_version": 2, "default_verdict": 2,
  "entry_prog_id": 101,
  "counter_bases": {
    "slot": 1,
    "pipeline": {"packets": 10, "bytes": 640, "fell_off": 1, "events_lost": 0,
                 "aborted": 0, "drop": 3, "pass": 6, "tx": 0, "redirect": 0},
    "stages": {"parse": {"packets": 10, "bytes": 640, "fell_off": 0, "events_lost": 0,
                         "aborted": 0, "drop": 0, "pass": 0, "tx": 0, "redirect": 0}}
  },
  "dispatcher": {"prog_id": 100, "prog_tag": "00112233aabbccdd", "object": "/usr/lib/xdp-pipeline/bpf/dispatcher.bpf.o",
                 "object_sha256": "ab12", "interfaces_map_id": 55, "pins": "/sys/fs/bpf/xdp-pipeline/edge/dispatcher"},
  "version": "0.9.0", "started": 1764489600,
  "stages": [
    {"name": "parse", "plugin": "parse", "object": "/usr/lib/xdp-pipeline/bpf/parse.bpf.o", "object_sha256": "cd34",
     "prog_tag": "8899aabbccddeeff", "settings": "", "plugin_file": "/usr/lib/xdp-pipeline/plugins/parse.so",
     "pins": "/sys/fs/bpf/xdp-pipeline/edge/parse", "slot": 0, "prog_id": 101, "counters_map_id": 56}
  ]
})";

TEST(StateFile, PublishedFileReadsAndWritesBackKeyForKey) {
  const json published = json::parse(kPublished);
  state::File file;
  Status read = state::from_json(published, file);
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(file.name, "edge");
  EXPECT_EQ(file.pid, 4242);
  ASSERT_EQ(file.interfaces.size(), 2u);
  EXPECT_EQ(file.interfaces[1].mode, "generic");
  EXPECT_EQ(file.interfaces[1].link_id, 32u);
  EXPECT_TRUE(file.persist);
  EXPECT_EQ(file.default_verdict, 2u);
  EXPECT_EQ(file.counter_bases.slot, 1u);
  EXPECT_EQ(file.counter_bases.pipeline.verdict[1], 3u);  // drop
  EXPECT_EQ(file.counter_bases.stages.at("parse").packets, 10u);
  EXPECT_EQ(file.dispatcher.interfaces_map_id, 55u);
  EXPECT_EQ(file.version, "0.9.0");
  ASSERT_EQ(file.stages.size(), 1u);
  EXPECT_EQ(file.stages[0].prog_tag, "8899aabbccddeeff");
  EXPECT_EQ(file.stages[0].counters_map_id, 56u);
  EXPECT_EQ(state::to_json(file), published);
}

TEST(StateFile, MissingKeysKeepTheirDefaults) {
  // What a killed run of an older version may have left: its name and pid, one interface by name.
  RunState old;
  Status read = state::from_json(json::parse(R"({"name": "old", "pid": 12, "interface": "eth0", "mode": "native"})"), old);
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(old.interface_names(), std::vector<std::string>{"eth0"});
  EXPECT_FALSE(old.persist);
  EXPECT_EQ(old.contract_version, 0);
  EXPECT_FALSE(old.default_verdict);
  EXPECT_FALSE(old.version);
  EXPECT_TRUE(old.stages.empty());
  EXPECT_EQ(old.counter_bases.slot, 0u);
  EXPECT_EQ(old.dispatcher.prog_id, 0u);
  // Several interfaces: their names, in order, not the joined "interface".
  RunState two;
  ASSERT_TRUE(state::from_json(json::parse(kPublished), two));
  EXPECT_EQ(two.interface_names(), (std::vector<std::string>{"veth0", "veth1"}));
}

TEST(StateFile, MalformedKeysAreNamedAndTheRestIsRead) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (const Case& bad : {
           Case{R"({"pid": 1})", "key 'name' is missing"},
           Case{R"({"name": "a", "pid": "1"})", "key 'pid' must be a number"},
           Case{R"({"name": "a", "pid": 1, "persist": true, "stages": [{"name": "s", "plugin": "p", "object": "/o"}]})",
                "stages[0]: key 'settings' is missing"},
           Case{R"({"name": "a", "pid": 1, "persist": true, "stages": {}})", "key 'stages' must be an array"},
           Case{R"({"name": "a", "pid": 1, "persist": true, "counter_bases": {"slot": "one"}})",
                "counter_bases: key 'slot' must be a number"},
           Case{R"({"name": "a", "pid": 1, "persist": true, "interfaces": [{"name": 3}]})",
                "interfaces[0]: key 'name' must be a string"},
           Case{R"([1, 2])", "is not a JSON object"},
       }) {
    SCOPED_TRACE(bad.text);
    state::File file;
    Status read = state::from_json(json::parse(bad.text), file);
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error().message, bad.error);
  }
  // The first problem is the one reported; the keys after it are read all the same.
  state::File file;
  Status read = state::from_json(
      json::parse(R"({"name": "a", "pid": 1, "mode": 7, "persist": true, "stages": [{"name": "s"}]})"), file);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().message, "key 'mode' must be a string");
  EXPECT_TRUE(file.persist);
  ASSERT_EQ(file.stages.size(), 1u);
  EXPECT_EQ(file.stages[0].name, "s");
}

}  // namespace
}  // namespace xdpp::host_test
