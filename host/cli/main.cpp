// xdp-pipeline: compose XDP pipelines from stages.
//
// Exit codes: 0 done, 1 failed while loading/attaching/running, 2 bad command line or input file.
#include <boost/program_options.hpp>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>

#include "commands.h"
#include "log.h"
#include <xdp_pipeline/net.h>

namespace po = boost::program_options;

namespace {

constexpr const char* kCommonSynopsis = "[-h|--help] [-v|--verbose] [-q|--quiet]";

// Where plugins are looked for first: for the commands that read a pipeline file themselves.
void add_plugin_dir(po::options_description& options) {
  options.add_options()("plugin-dir", po::value<std::vector<std::string>>()->composing(),
                        "look for plugins and BPF objects in DIR first; repeatable");
}

struct Command {
  const char* name;
  const char* synopsis;  // every option of the command but the common ones (kCommonSynopsis)
  const char* summary;
  const char* example;
  std::function<void(po::options_description&)> add_options;
  std::function<int(const xdpp::CommandOptions&)> handler;
};

// The commands by group, in the order usage lists them: loading a pipeline file, changing a running
// pipeline, and the rest (reading and removing what runs, writing a new stage).
std::vector<Command> loading_commands() {
  return {
      {"run",
       "run FILE [--interface IF[,IF...]] [--mode native|generic|offload|auto] [--persist] [--reset-state] [--watch] "
       "[--netns NS] [--metrics [ADDR:]PORT] [--metrics-netns host|pipeline] [--plugin-dir DIR]...",
       "load the pipeline, attach it, print its events until SIGINT/SIGTERM, detach (with --persist: leave it "
       "running); adopts a persisted pipeline of the same name; --watch reloads the file when it changes",
       "xdp-pipeline run configs/full.toml --interface eth1 --mode native --metrics 9100",
       [](po::options_description& options) {
         options.add_options()("interface,i", po::value<std::string>(),
                               "interface(s) to attach to, IF or IF,IF,... (overrides the file)")(
             "watch,w", "reload the file whenever it changes (also kubelet's ConfigMap updates); as watch = true")(
             "mode,m", po::value<std::string>(), "native, generic, offload or auto (overrides the file)")(
             "metrics", po::value<std::string>(), "serve Prometheus metrics at PORT (loopback) or ADDR:PORT")(
             "netns", po::value<std::string>(),
             "run in network namespace NS (ip netns); unlike `ip netns exec` this keeps /sys/fs/bpf for the pins")(
             "metrics-netns", po::value<std::string>(),
             "with --netns: where metrics listen, `host` (the namespace run started in, which a Prometheus on "
             "the host reaches; the default) or `pipeline` (NS)")(
             "persist", "pin link, chain, programs and maps: the pipeline keeps running when this daemon ends "
                        "(as [pipeline] persist = true)")(
             "reset-state", "when adopting or upgrading, maps that changed shape start empty instead of refusing");
         add_plugin_dir(options);
       },
       xdpp::command_run},
      {"check", "check FILE [--plugin-dir DIR]...", "validate the pipeline file and every stage's settings; load nothing",
       "xdp-pipeline check configs/full.toml",
       [](po::options_description& options) { add_plugin_dir(options); }, xdpp::command_check},
      {"replay", "replay FILE --pcap IN [--out OUT.pcap] [--json] [--mac MAC] [--plugin-dir DIR]...",
       "run the pipeline over a pcap file with BPF_PROG_TEST_RUN, no NIC: verdicts, rewrites, events",
       "xdp-pipeline replay configs/full.toml --pcap in.pcap --out out.pcap --mac 02:00:00:00:00:01",
       [](po::options_description& options) {
         add_plugin_dir(options);
         options.add_options()("pcap", po::value<std::string>(), "the packets to replay (Ethernet pcap)")(
             "out", po::value<std::string>(), "write the leaving packets (tx, pass, redirect) to this pcap")(
             "json", "one JSON object per packet, then a {\"summary\": ...} line")(
             "mac", po::value<std::string>(), "the interface's MAC, for stages that need it (overrides the file)");
       },
       xdpp::command_replay},
  };
}

std::vector<Command> live_commands() {
  return {
      {"swap", "swap STAGE [--object PATH] [--plugin PATH] [--reset-state] [--pipeline NAME] [--json]",
       "replace a running stage's program and/or plugin (default: reload its files); its maps carry over",
       "xdp-pipeline swap ping-lb --object build/lib/xdp-pipeline/bpf/icmp_lb.bpf.o",
       [](po::options_description& options) {
         options.add_options()("object", po::value<std::string>(), "the new BPF object")(
             "plugin", po::value<std::string>(), "the new plugin (in the pipeline's plugin path)")(
             "reset-state", "start the stage with fresh maps (needed when a map changed shape)")(
             "pipeline,p", po::value<std::string>(), "the running pipeline (default: the only one)")(
             "json", "print the reply as JSON");
       },
       xdpp::command_swap},
      {"set", "set STAGE KEY=VALUE... [--reset-state] [--pipeline NAME] [--json]",
       "change a running stage's settings: KEY=VALUE, KEY+=VALUE (append), KEY-=VALUE (remove); values are "
       "TOML, a bare word is a string",
       "xdp-pipeline set no-8080 drop_tcp_dst+=8081 fragments=drop",
       [](po::options_description& options) {
         options.add_options()("reset-state",
                               "a setting that needs a new program (a map's size) starts the stage with fresh maps")(
             "pipeline,p", po::value<std::string>(), "the running pipeline (default: the only one)")(
             "json", "print the reply as JSON");
       },
       xdpp::command_set},
      {"reload", "reload FILE [--pipeline NAME] [--json]",
       "apply an edited pipeline file to the running pipeline (SIGHUP to run does the same with its own file)",
       "xdp-pipeline reload configs/full.toml --pipeline full",
       [](po::options_description& options) {
         options.add_options()("pipeline,p", po::value<std::string>(), "the running pipeline (default: the only one)")(
             "json", "print the reply as JSON");
       },
       xdpp::command_reload},
  };
}

std::vector<Command> other_commands() {
  return {
      {"status", "status [NAME] [--json] [--watch]",
       "counters and rates of running pipelines (all, or the one named), from their pinned maps",
       "xdp-pipeline status full --watch",
       [](po::options_description& options) {
         options.add_options()("json", "JSON: one object for NAME, else {\"pipelines\": [...]}")(
             "watch,w", "refresh every second, like top, until Ctrl-C");
       },
       xdpp::command_status},
      {"detach", "detach NAME",
       "remove a persisted pipeline that runs without a daemon: detach it, unpin it, remove its state",
       "xdp-pipeline detach edge",
       [](po::options_description&) {}, xdpp::command_detach},
      {"new-stage", "new-stage NAME DIR (or --dir DIR)",
       "write a skeleton stage (BPF program, plugin, CMakeLists.txt, replay test) into a new or empty DIR",
       "xdp-pipeline new-stage syn_guard ./syn_guard",
       [](po::options_description& options) {
         options.add_options()("dir", po::value<std::string>(), "DIR (also positional): where to write the stage");
       },
       xdpp::command_new_stage},
  };
}

const std::vector<Command>& commands() {
  static const std::vector<Command> list = [] {
    std::vector<Command> all;
    for (auto group : {loading_commands, live_commands, other_commands})
      for (Command& command : group()) all.push_back(std::move(command));
    return all;
  }();
  return list;
}

void print_usage(std::ostream& out) {
  out << "usage: xdp-pipeline COMMAND [options]\n\ncommands:\n";
  for (const auto& command : commands()) out << "  " << command.synopsis << "\n      " << command.summary << "\n";
  out << "  --version\n      the version of this build\n"
      << "\nEvery command also takes " << kCommonSynopsis << ".\n"
      << "`xdp-pipeline COMMAND --help` lists a command's options with an example.\n";
}

void print_version() {
  std::cout << "xdp-pipeline " << XDPP_VERSION << " (plugin ABI " << xdpp::kPluginAbiVersion << ", BPF contract "
            << XDPP_CONTRACT_VERSION << ")\n";
}


// The command line's values as CommandOptions, each checked before anything is loaded; a bad one is
// explained on stderr (nullopt: exit 2).
std::optional<xdpp::CommandOptions> options_from(const po::variables_map& values, const std::string& name) {
  xdpp::CommandOptions options;
  if (values.count("file")) options.file = values["file"].as<std::string>();
  if (values.count("verbose")) xdpp::log::set_level(xdpp::log::Level::debug);
  if (values.count("quiet")) xdpp::log::set_level(xdpp::log::Level::warn);
  if (values.count("plugin-dir"))
    for (const auto& dir : values["plugin-dir"].as<std::vector<std::string>>())
      options.overrides.plugin_dirs.push_back(dir);
  if (values.count("interface")) {
    options.overrides.interface = values["interface"].as<std::string>();
    std::stringstream names(*options.overrides.interface);
    std::string each;
    bool valid = !options.overrides.interface->empty() && options.overrides.interface->back() != ',';
    while (valid && std::getline(names, each, ',')) valid = xdpp::valid_interface_name(each);
    if (!valid) {
      std::cerr << "xdp-pipeline " << name << ": --interface '" << *options.overrides.interface
                << "' is not IF or IF,IF,... (interface names; `ip -br link` lists them)\n";
      return std::nullopt;
    }
  }
  if (values.count("mode")) {
    options.overrides.mode = xdpp::parse_attach_mode(values["mode"].as<std::string>());
    if (!options.overrides.mode) {
      std::cerr << "xdp-pipeline " << name << ": --mode '" << values["mode"].as<std::string>()
                << "' is not one of native, generic, offload, auto\n";
      return std::nullopt;
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
  if (values.count("persist")) options.overrides.persist = true;
  if (values.count("metrics")) {
    // Checked here, before anything is loaded or attached (the port itself is bound before loading too).
    options.overrides.metrics = values["metrics"].as<std::string>();
    if (!xdpp::valid_metrics_address(*options.overrides.metrics)) {
      std::cerr << "xdp-pipeline " << name << ": --metrics '" << *options.overrides.metrics
                << "' is not PORT or IPV4:PORT (port 1..65535)\n";
      return std::nullopt;
    }
  }
  if (values.count("metrics-netns")) {
    const std::string where = values["metrics-netns"].as<std::string>();
    if (where != "host" && where != "pipeline") {
      std::cerr << "xdp-pipeline " << name << ": --metrics-netns '" << where << "' is not host or pipeline\n";
      return std::nullopt;
    }
    if (!options.netns) {
      std::cerr << "xdp-pipeline " << name << ": --metrics-netns chooses between the host's namespace and --netns NS: "
                   "give --netns too\n";
      return std::nullopt;
    }
    options.metrics_in_pipeline_netns = where == "pipeline";
  }
  if (values.count("mac")) {
    options.mac = xdpp::net::parse_mac(values["mac"].as<std::string>());
    if (!options.mac) {
      std::cerr << "xdp-pipeline " << name << ": --mac '" << values["mac"].as<std::string>() << "' is not a MAC address\n";
      return std::nullopt;
    }
  }
  return options;
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
  if (name == "--version" || name == "version") {
    print_version();
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
      "quiet,q", "warnings and errors only");
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
    std::cerr << "xdp-pipeline " << name << ": " << error.what() << "\nusage: xdp-pipeline " << command->synopsis
              << "\n(`xdp-pipeline " << name << " --help` explains every option)\n";
    return xdpp::kExitUsage;
  }
  if (values.count("help")) {
    std::cout << "usage: xdp-pipeline " << command->synopsis << " " << kCommonSynopsis << "\n"
              << command->summary << "\n\nexample:\n  " << command->example << "\n\n" << visible;
    return 0;
  }
  if (!values.count("file") && name != "status" && name != "new-stage") {
    std::cerr << "xdp-pipeline " << name << ": missing "
              << (name == "swap" || name == "set" ? "the STAGE" : name == "detach" ? "the pipeline NAME" : "the pipeline FILE")
              << "\nusage: xdp-pipeline " << command->synopsis << "\nexample: " << command->example << "\n";
    return xdpp::kExitUsage;
  }

  auto options = options_from(values, name);
  if (!options) return xdpp::kExitUsage;
  xdpp::log::capture_libbpf();
  return command->handler(*options);
}
