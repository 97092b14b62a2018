// `new-stage NAME DIR`: writes a skeleton stage that builds against the installed SDK
// (find_package(XdpPipeline)) and passes its own replay test unchanged.
//
// The skeleton is a small but real stage: it counts UDP packets to one destination port and, if told to,
// drops them. It shows each part of the contract once: reading parse's struct xdpp_packet, a settings
// table validated into an immutable config, a map written in configure(), XDPP_CONTINUE or a verdict.
// The templates are raw strings below; @NAME@, @UPPER@ and @CAMEL@ are replaced by the stage's name
// (udp_watch, UDP_WATCH, UdpWatch). Other @...@ are left for CMake's configure_file.
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <string_view>

#include "commands.h"
#include "config.h"
#include "log.h"

namespace xdpp {
namespace {

constexpr std::string_view kHeader = R"tmpl(/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* @NAME@: shared between @NAME@.bpf.c and its plugin @NAME@.cpp. */
#ifndef @UPPER@_H
#define @UPPER@_H

#include <linux/types.h>

/* @NAME@_cfg: BPF_MAP_TYPE_ARRAY, 1 entry, written by the plugin's configure(). One 4-byte value, so a
 * live change is a single store; a config of several words would be double-buffered (two sets and an
 * "active" index flipped last), as the built-in port_filter and icmp_lb do. */
#define @UPPER@_CONFIG_MAP "@NAME@_cfg"
struct @NAME@_config {
	__u16 udp_port;         /* destination port to watch, host order (as in struct xdpp_packet) */
	__u8 drop;              /* 1: matching packets are dropped; 0: counted and passed on */
	__u8 pad;
};

/* @NAME@_hits: BPF_MAP_TYPE_PERCPU_ARRAY, 1 entry, __u64: packets that matched, per CPU. */
#define @UPPER@_HITS_MAP "@NAME@_hits"

#endif
)tmpl";

constexpr std::string_view kBpf = R"tmpl(/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * @NAME@: counts UDP packets to one destination port and, if configured so, drops them.
 *
 * Reads what the built-in parse stage recorded (struct xdpp_packet), so it goes after parse in a
 * pipeline and never re-parses headers. XDPP_STAGE() counts verdicts and bytes for it (once, where the
 * packet's way ends; the host derives packets in); the body
 * only decides: an XDP action ends the chain here, XDPP_CONTINUE hands the packet to the next stage.
 */
#include <linux/in.h>
#include <xdp_pipeline/stage.h>
#include "@NAME@.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct @NAME@_config);
} @NAME@_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} @NAME@_hits SEC(".maps");

XDPP_STAGE(@NAME@)(struct xdp_md *xdp, struct xdpp_packet *pkt)
{
	/* Cheap tests on parse's record first. XDPP_F_L4 means the UDP header was complete, so dport is
	 * real (a non-first fragment has no ports and no XDPP_F_L4). */
	const __u32 want = XDPP_F_PARSED | XDPP_F_L4;
	if ((pkt->flags & want) != want || pkt->l4_proto != IPPROTO_UDP)
		return XDPP_CONTINUE;

	__u32 zero = 0;
	struct @NAME@_config *cfg = bpf_map_lookup_elem(&@NAME@_cfg, &zero);
	if (!cfg || cfg->udp_port == 0 || pkt->dport != cfg->udp_port)
		return XDPP_CONTINUE;

	/* Per CPU, so a plain increment is exact. */
	__u64 *hits = bpf_map_lookup_elem(&@NAME@_hits, &zero);
	if (hits)
		(*hits)++;
	return cfg->drop ? XDP_DROP : XDPP_CONTINUE;
}
)tmpl";

constexpr std::string_view kPlugin = R"tmpl(// @NAME@: host plugin. Validates the stage's settings once and writes them into the stage's map.
//
// Settings:
//   udp_port = 5353                UDP destination port to watch, 1..65535 (required)
//   action = "count" | "drop"      what happens to matching packets (default "count": they go on)
#include <xdp_pipeline/plugin.h>

extern "C" {
#include "@NAME@.h"
}

namespace {

using namespace xdpp;

struct @CAMEL@Config {
  std::uint16_t udp_port = 0;
  bool drop = false;
};

class @CAMEL@Stage final : public Stage {
 public:
  explicit @CAMEL@Stage(@CAMEL@Config config) : config_(config) {}

  // After load and on every live reconfiguration.
  Status configure(StageObject& object) override {
    auto config_map = object.map(@UPPER@_CONFIG_MAP);
    if (!config_map) return config_map.error();
    const struct @NAME@_config value = {
        .udp_port = config_.udp_port,
        .drop = static_cast<std::uint8_t>(config_.drop ? 1 : 0),
        .pad = 0,
    };
    return config_map->update(std::uint32_t{0}, value);
  }

  std::string describe() const override {
    return (config_.drop ? "drop" : "count") + std::string(" UDP to port ") + std::to_string(config_.udp_port);
  }

 private:
  const @CAMEL@Config config_;
};

class @CAMEL@Factory final : public StageFactory {
 public:
  std::string_view plugin_name() const override { return "@NAME@"; }
  std::string_view object_file() const override { return "@NAME@.bpf.o"; }
  std::string_view program_name() const override { return "@NAME@"; }

  // Throws ConfigError at the offending key ("file:line:col: stage 'x': key 'udp_port': ...").
  std::unique_ptr<Stage> create(const Settings& settings) const override {
    @CAMEL@Config config;
    const std::int64_t port = settings.required<std::int64_t>("udp_port");
    if (port < 1 || port > 65535)
      settings.fail(*settings.find("udp_port"), "udp_port", "port " + std::to_string(port) + " is out of range 1..65535");
    config.udp_port = static_cast<std::uint16_t>(port);

    if (auto action = settings.optional<std::string>("action")) {
      if (*action == "drop") config.drop = true;
      else if (*action != "count")
        settings.fail(*settings.find("action"), "action",
                      "'" + *action + "' is not an action (expected \"count\" or \"drop\")");
    }
    return std::make_unique<@CAMEL@Stage>(config);
  }
};

}  // namespace

XDPP_PLUGIN(@CAMEL@Factory)
)tmpl";

constexpr std::string_view kCMakeLists = R"tmpl(# @NAME@: an xdp-pipeline stage, built against an installed xdp-pipeline:
#   cmake -S . -B build -DCMAKE_PREFIX_PATH=<xdp-pipeline's install prefix>
#   cmake --build build && ctest --test-dir build --output-on-failure     (as root: BPF_PROG_TEST_RUN)
cmake_minimum_required(VERSION 3.20)
project(@NAME@ LANGUAGES CXX)

set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE RelWithDebInfo)
endif()

find_package(XdpPipeline 0.1 REQUIRED)

# @NAME@.bpf.o and @NAME@.so side by side in ${XDPP_STAGE_OUTPUT_DIR} (build/stages). xdp-pipeline only
# loads plugins that root owns and nobody else can write: build as root with umask 022.
xdp_pipeline_add_stage(@NAME@ BPF @NAME@.bpf.c PLUGIN @NAME@.cpp INSTALL)

# A pipeline file (parse, then @NAME@) whose plugin_dir is that directory.
configure_file(@NAME@.toml.in "${CMAKE_CURRENT_BINARY_DIR}/@NAME@.toml" @ONLY)

enable_testing()
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME @NAME@_replay
         COMMAND Python3::Interpreter "${CMAKE_CURRENT_SOURCE_DIR}/test_@NAME@.py"
                 --xdp-pipeline "$<TARGET_FILE:XdpPipeline::xdp-pipeline>"
                 --pipeline "${CMAKE_CURRENT_BINARY_DIR}/@NAME@.toml"
                 --work-dir "${CMAKE_CURRENT_BINARY_DIR}")
# 77: not root, so no BPF_PROG_TEST_RUN. xdpp_replay.py comes with the SDK.
set_tests_properties(@NAME@_replay PROPERTIES SKIP_RETURN_CODE 77 ENVIRONMENT "PYTHONPATH=${XDPP_PYTHON_DIR}")
)tmpl";

constexpr std::string_view kPipeline = R"tmpl(# The built-in parse stage, then @NAME@. CMake writes this file into the build directory with
# plugin_dir set to where @NAME@.so and @NAME@.bpf.o are built; the built-in stages come from the
# installed xdp-pipeline. Try it without a NIC:
#   xdp-pipeline replay build/@NAME@.toml --pcap some.pcap
[pipeline]
# interface = "eth0"      # for `xdp-pipeline run`; replay needs none
default_verdict = "pass"
plugin_dir = "@XDPP_STAGE_OUTPUT_DIR@"

[[stage]]
name = "parse"
plugin = "parse"

[[stage]]
name = "@NAME@"
plugin = "@NAME@"
udp_port = 5353
action = "drop"
)tmpl";

constexpr std::string_view kTest = R"tmpl(#!/usr/bin/env python3
"""@NAME@'s test: writes a pcap, replays it through the pipeline (parse, then @NAME@) with
`xdp-pipeline replay --json` and checks every packet's verdict and deciding stage.

The expectations follow @NAME@.toml.in (udp_port = 5353, action = "drop"). Needs root for
BPF_PROG_TEST_RUN; exits 77 (skipped) otherwise. Frames and replay come from the SDK's xdpp_replay
(on PYTHONPATH: XDPP_PYTHON_DIR of the XdpPipeline package).
"""
import os
import sys

from xdpp_replay import ipv4, ipv6, replay, tcp, test_arguments, udp

STAGE = "@NAME@"
PORT = 5353


# (what, frame, expected verdict, expected deciding stage or None for "any")
CASES = [
    ("UDP to the watched port", ipv4("10.0.0.1", "10.0.0.2", 17, udp(40000, PORT)), "drop", STAGE),
    ("UDP to another port", ipv4("10.0.0.1", "10.0.0.2", 17, udp(40000, 53)), "pass", None),
    ("TCP to the watched port", ipv4("10.0.0.1", "10.0.0.2", 6, tcp(40000, PORT, 0x02)), "pass", None),
    ("UDP over IPv6 to the watched port", ipv6("2001:db8::1", "2001:db8::2", 17, udp(40000, PORT)), "drop", STAGE),
    ("UDP over IPv6 to another port", ipv6("2001:db8::1", "2001:db8::2", 17, udp(40000, 123)), "pass", None),
]


def main():
    args = test_arguments()
    if args is None:
        return 77

    pcap = os.path.join(args.work_dir, STAGE + "_test.pcap")
    packets, _ = replay(args.xdp_pipeline, args.pipeline, [frame for _, frame, _, _ in CASES], pcap)
    if packets is None:
        return 1

    failures = 0
    for index, (what, _, verdict, stage) in enumerate(CASES):
        got = packets[index] if index < len(packets) else {}
        ok = got.get("verdict") == verdict and (stage is None or got.get("stage") == stage)
        print("%s  #%d %s: %s by %s (want %s%s)" % ("ok  " if ok else "FAIL", index, what, got.get("verdict"),
                                                  got.get("stage"), verdict, " by " + stage if stage else ""))
        failures += not ok
    if len(packets) != len(CASES):
        print("FAIL: %d packets replayed, expected %d" % (len(packets), len(CASES)))
        failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
)tmpl";

struct Template {
  const char* file;  // with @NAME@
  std::string_view text;
};

constexpr std::array kTemplates = {
    Template{"@NAME@.h", kHeader},           Template{"@NAME@.bpf.c", kBpf},
    Template{"@NAME@.cpp", kPlugin},         Template{"CMakeLists.txt", kCMakeLists},
    Template{"@NAME@.toml.in", kPipeline},   Template{"test_@NAME@.py", kTest},
};

std::string replace_all(std::string text, std::string_view from, const std::string& to) {
  for (std::size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size()))
    text.replace(pos, from.size(), to);
  return text;
}

// "udp_watch" -> "UdpWatch": the C++ class names of the plugin.
std::string camel_case(const std::string& name) {
  std::string camel;
  bool upper = true;
  for (char c : name) {
    if (c == '_') {
      upper = true;
      continue;
    }
    camel.push_back(upper && c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
    upper = false;
  }
  return camel;
}

// Why NAME cannot be a stage's name, or "" when it can. NAME becomes a C identifier (the SEC("xdp.frags")
// program and its maps), a file name and the plugin's name; a built-in's name would be refused on the
// plugin path (plugin_loader.cpp: one name once).
std::string name_problem(const std::string& name) {
  static const std::regex pattern("[a-z][a-z0-9_]*");
  if (!std::regex_match(name, pattern)) return "a stage name is [a-z][a-z0-9_]* (a C identifier in lower case)";
  if (name.size() > 32) return "a stage name has at most 32 characters";
  if (name.rfind("xdpp", 0) == 0 || name.rfind("bpf_", 0) == 0)
    return "names starting with 'xdpp' or 'bpf_' belong to the framework and libbpf";
  // What this executable ships (its plugins and BPF objects, the chain's root object included), not a list
  // kept here: a new built-in stage is covered by being built.
  std::error_code error;
  const SearchPaths builtin = SearchPaths::builtin();
  for (const auto& dir : builtin.plugin_dirs)
    if (std::filesystem::exists(dir / (name + ".so"), error))
      return "'" + name + "' is a built-in stage; the plugin loader refuses a second plugin of that name";
  for (const auto& dir : builtin.bpf_dirs)
    if (std::filesystem::exists(dir / (name + ".bpf.o"), error)) return "'" + name + "' is a built-in BPF object";
  static const std::array<std::string_view, 44> keywords = {
      "auto",     "break",    "case",     "char",    "const",     "continue", "default",  "do",
      "double",   "else",     "enum",     "extern",  "float",     "for",      "goto",     "if",
      "inline",   "int",      "long",     "register", "restrict", "return",   "short",    "signed",
      "sizeof",   "static",   "struct",   "switch",  "typedef",   "union",    "unsigned", "void",
      "volatile", "while",    "bool",     "class",   "namespace", "new",      "delete",   "template",
      "this",     "private",  "public",   "main"};
  for (auto keyword : keywords)
    if (name == keyword) return "'" + name + "' is a C or C++ keyword";
  return {};
}

}  // namespace

int command_new_stage(const CommandOptions& options) {
  if (options.file.empty() || !options.dir) {
    log::error("usage: xdp-pipeline new-stage NAME DIR");
    return kExitUsage;
  }
  const std::string& name = options.file;
  if (std::string problem = name_problem(name); !problem.empty()) {
    log::error("new-stage: '" + name + "' is not a usable stage name: " + problem);
    return kExitUsage;
  }
  const std::filesystem::path dir = *options.dir;
  std::error_code error;
  if (std::filesystem::exists(dir, error)) {
    if (!std::filesystem::is_directory(dir, error)) {
      log::error("new-stage: " + dir.string() + " exists and is not a directory");
      return kExitUsage;
    }
    if (!std::filesystem::is_empty(dir, error)) {
      log::error("new-stage: " + dir.string() + " is not empty; give a new or empty directory");
      return kExitUsage;
    }
  }
  std::filesystem::create_directories(dir, error);
  if (error) {
    log::error("new-stage: cannot create " + dir.string() + ": " + error.message());
    return kExitFailure;
  }

  const std::string upper = [&] {
    std::string text = name;
    for (char& c : text)
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return text;
  }();
  auto expand = [&](std::string_view text) {
    std::string out = replace_all(std::string(text), "@NAME@", name);
    out = replace_all(std::move(out), "@UPPER@", upper);
    return replace_all(std::move(out), "@CAMEL@", camel_case(name));
  };

  std::string written;
  for (const Template& item : kTemplates) {
    const std::filesystem::path path = dir / expand(item.file);
    std::ofstream out(path, std::ios::binary);
    out << expand(item.text);
    out.close();
    if (!out) {
      log::error("new-stage: cannot write " + path.string() + ": " + std::strerror(errno));
      return kExitFailure;
    }
    written += " " + path.filename().string();
  }

  // The prefix this xdp-pipeline is installed in (bin/..), for CMAKE_PREFIX_PATH.
  auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  std::string prefix = error ? "<prefix>" : exe.parent_path().parent_path().string();
  std::printf(
      "new-stage: wrote stage '%s' to %s:%s\n"
      "build and test it (as root, umask 022: xdp-pipeline loads only root-owned, non-writable plugins):\n"
      "  cmake -S %s -B %s/build -DCMAKE_PREFIX_PATH=%s\n"
      "  cmake --build %s/build && ctest --test-dir %s/build --output-on-failure\n",
      name.c_str(), dir.c_str(), written.c_str(), dir.c_str(), dir.c_str(), prefix.c_str(), dir.c_str(), dir.c_str());
  return 0;
}

}  // namespace xdpp
