// xdp-pipeline: compose XDP pipelines from stages.
//
// Exit codes: 0 done, 1 failed while loading/attaching/running, 2 bad command line or input file.
#include <boost/program_options.hpp>
#include <functional>
#include <iostream>

#include "commands.h"
#include "log.h"
#include <xdp_pipeline/net.h>

namespace po = boost::program_options;

namespace {

struct Command {
  const char* name;
  const char* synopsis;
  const char* summary;
  std::function<void(po::options_description&)> add_options;
  std::function<int(const xdpp::CommandOptions&)> handler;
};

const std::vector<Command>& commands() {
  static const std::vector<Command> list = {
      {"run", "run FILE [--interface IF[,IF...]] [--mode native|generic|offload|auto] [--watch]",
       "load the pipeline, attach it, print its events until SIGINT/SIGTERM, detach",
       [](po::options_description& options) {
         options.add_options()("interface,i", po::value<std::string>(),
                               "interface(s) to attach to, IF or IF,IF,... (overrides the file)")(
             "watch,w", "reload the file whenever it changes (also kubelet's ConfigMap updates); as watch = true")(
             "mode,m", po::value<std::string>(), "native, generic, offload or auto (overrides the file)")(
             "metrics", po::value<std::string>(), "serve Prometheus metrics at PORT (loopback) or ADDR:PORT")(
             "netns", po::value<std::string>(),
             "run in network namespace NAME (ip netns); unlike `ip netns exec` this keeps /sys/fs/bpf for the pins");
       },
       xdpp::command_run},
      {"check", "check FILE", "validate the pipeline file and every stage's settings; load nothing",
       [](po::options_description&) {}, xdpp::command_check},
      {"replay", "replay FILE --pcap IN [--out OUT.pcap] [--json] [--mac MAC]",
       "run the pipeline over a pcap file with BPF_PROG_TEST_RUN, no NIC: verdicts, rewrites, events",
       [](po::options_description& options) {
         options.add_options()("pcap", po::value<std::string>(), "the packets to replay (Ethernet pcap)")(
             "out", po::value<std::string>(), "write the leaving packets (tx, pass, redirect) to this pcap")(
             "json", "one JSON object per packet, then a {\"summary\": ...} line")(
             "mac", po::value<std::string>(), "the interface's MAC, for stages that need it (overrides the file)");
       },
       xdpp::command_replay},
      {"swap", "swap STAGE [--object PATH] [--plugin PATH] [--reset-state] [--pipeline NAME]",
       "replace a running stage's program and/or plugin (default: reload its files); its maps carry over",
       [](po::options_description& options) {
         options.add_options()("object", po::value<std::string>(), "the new BPF object")(
             "plugin", po::value<std::string>(), "the new plugin (in the pipeline's plugin path)")(
             "reset-state", "start the stage with fresh maps (needed when a map changed shape)")(
             "pipeline,p", po::value<std::string>(), "the running pipeline (default: the only one)")(
             "json", "print the reply as JSON");
       },
       xdpp::command_swap},
      {"set", "set STAGE KEY=VALUE... [--pipeline NAME]",
       "change a running stage's settings: KEY=VALUE, KEY+=VALUE (append), KEY-=VALUE (remove); values are TOML",
       [](po::options_description& options) {
         options.add_options()("pipeline,p", po::value<std::string>(), "the running pipeline (default: the only one)")(
             "json", "print the reply as JSON");
       },
       xdpp::command_set},
      {"reload", "reload FILE [--pipeline NAME]",
       "apply an edited pipeline file to the running pipeline (SIGHUP to run does the same with its own file)",
       [](po::options_description& options) {
         options.add_options()("pipeline,p", po::value<std::string>(), "the running pipeline (default: the only one)")(
             "json", "print the reply as JSON");
       },
       xdpp::command_reload},
      {"status", "status [NAME] [--json] [--watch]",
       "counters and rates of running pipelines (all, or the one named), from their pinned maps",
       [](po::options_description& options) {
         options.add_options()("json", "JSON: one object for NAME, else {\"pipelines\": [...]}")(
             "watch,w", "refresh every second, like top, until Ctrl-C");
       },
       xdpp::command_status},
      {"new-stage", "new-stage NAME DIR",
       "write a skeleton stage (BPF program, plugin, CMakeLists.txt, replay test) into a new or empty DIR",
       [](po::options_description& options) {
         options.add_options()("dir", po::value<std::string>(), "DIR (also positional): where to write the stage");
       },
       xdpp::command_new_stage},
  };
  return list;
}

void print_usage(std::ostream& out) {
  out << "usage: xdp-pipeline COMMAND [options]\n\ncommands:\n";
  for (const auto& command : commands()) out << "  " << command.synopsis << "\n      " << command.summary << "\n";
  out << "\n`xdp-pipeline COMMAND --help` lists a command's options.\n";
}


}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(std::cerr);
    return xdpp::kExitUsage;
  }
  const std::string name = argv[1];
  if (name == "help" || name == "--help" || name == "-h") {
    print_usage(std::cout);
    return 0;
  }
  const Command* command = nullptr;
  for (const auto& candidate : commands())
    if (name == candidate.name) command = &candidate;
  if (!command) {
    std::cerr << "xdp-pipeline: unknown command '" << name << "'\n\n";
    print_usage(std::cerr);
    return xdpp::kExitUsage;
  }

  po::options_description visible("options");
  visible.add_options()("help,h", "show this command's options")("verbose,v", "debug logs, including libbpf's")(
      "quiet,q", "warnings and errors only")("plugin-dir", po::value<std::vector<std::string>>()->composing(),
                                             "look for plugins and BPF objects in DIR first; repeatable");
  command->add_options(visible);
  po::options_description all;
  all.add(visible).add_options()("file", po::value<std::string>())("args", po::value<std::vector<std::string>>());
  po::positional_options_description positional;
  positional.add("file", 1);
  if (name == "set") positional.add("args", -1);
  if (visible.find_nothrow("dir", false)) positional.add("dir", 1);

  po::variables_map values;
  try {
    po::store(po::command_line_parser(argc - 1, argv + 1).options(all).positional(positional).run(), values);
    po::notify(values);
  } catch (const po::error& error) {
    std::cerr << "xdp-pipeline " << name << ": " << error.what() << "\n";
    return xdpp::kExitUsage;
  }
  if (values.count("help")) {
    std::cout << "usage: xdp-pipeline " << command->synopsis << "\n" << command->summary << "\n\n" << visible;
    return 0;
  }
  if (!values.count("file") && name != "status" && name != "new-stage") {
    std::cerr << "xdp-pipeline " << name << ": missing " << (name == "swap" || name == "set" ? "the STAGE" : "the pipeline FILE") << "\n";
    return xdpp::kExitUsage;
  }

  xdpp::CommandOptions options;
  if (values.count("file")) options.file = values["file"].as<std::string>();
  if (values.count("verbose")) xdpp::log::set_level(xdpp::log::Level::debug);
  if (values.count("quiet")) xdpp::log::set_level(xdpp::log::Level::warn);
  if (values.count("plugin-dir"))
    for (const auto& dir : values["plugin-dir"].as<std::vector<std::string>>())
      options.overrides.plugin_dirs.push_back(dir);
  if (values.count("interface")) options.overrides.interface = values["interface"].as<std::string>();
  if (values.count("mode")) {
    options.overrides.mode = xdpp::parse_attach_mode(values["mode"].as<std::string>());
    if (!options.overrides.mode) {
      std::cerr << "xdp-pipeline " << name << ": --mode '" << values["mode"].as<std::string>()
                << "' is not one of native, generic, offload, auto\n";
      return xdpp::kExitUsage;
    }
  }
  if (values.count("pcap")) options.pcap = values["pcap"].as<std::string>();
  if (values.count("out")) options.out = values["out"].as<std::string>();
  if (values.count("json")) options.json = true;
  if (values.count("watch")) options.watch = true;
  if (values.count("pipeline")) options.pipeline = values["pipeline"].as<std::string>();
  if (values.count("object")) options.object = values["object"].as<std::string>();
  if (values.count("plugin")) options.plugin = values["plugin"].as<std::string>();
  if (values.count("reset-state")) options.reset_state = true;
  if (values.count("args")) options.args = values["args"].as<std::vector<std::string>>();
  if (values.count("netns")) options.netns = values["netns"].as<std::string>();
  if (values.count("dir")) options.dir = values["dir"].as<std::string>();
  if (values.count("metrics")) options.overrides.metrics = values["metrics"].as<std::string>();
  if (values.count("mac")) {
    options.mac = xdpp::net::parse_mac(values["mac"].as<std::string>());
    if (!options.mac) {
      std::cerr << "xdp-pipeline " << name << ": --mac '" << values["mac"].as<std::string>() << "' is not a MAC address\n";
      return xdpp::kExitUsage;
    }
  }
  xdpp::log::capture_libbpf();
  return command->handler(options);
}
