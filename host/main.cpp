// xdp-pipeline: compose XDP pipelines from stages.
//
//   xdp-pipeline run FILE [--interface IF] [--mode native|generic|offload|auto] [--plugin-dir DIR]... [-v|-q]
//   xdp-pipeline check FILE [--plugin-dir DIR]...
//
// Exit codes: 0 done, 1 failed while loading/attaching/running, 2 bad command line or pipeline file.
#include <signal.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "log.h"

namespace po = boost::program_options;

namespace {

void print_usage(std::ostream& out) {
  out << "usage: xdp-pipeline COMMAND [options]\n"
         "\n"
         "commands:\n"
         "  run FILE      load the pipeline, attach it, print its events until SIGINT/SIGTERM, detach\n"
         "  check FILE    validate the pipeline file and its plugins' settings; load nothing\n"
         "  help          this text; `xdp-pipeline COMMAND --help` for a command's options\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(std::cerr);
    return xdpp::kExitUsage;
  }
  std::string command = argv[1];
  if (command == "help" || command == "--help" || command == "-h") {
    print_usage(std::cout);
    return 0;
  }

  po::options_description common("options");
  common.add_options()("help,h", "show this command's options")(
      "verbose,v", "debug logs, including libbpf's")("quiet,q", "warnings and errors only")(
      "plugin-dir", po::value<std::vector<std::string>>()->composing(),
      "also look for plugins and BPF objects in DIR (before the built-in ones); repeatable");
  po::options_description run_options = common;
  run_options.add_options()("interface,i", po::value<std::string>(), "interface to attach to (overrides the file)")(
      "mode,m", po::value<std::string>(), "native, generic, offload or auto (overrides the file)");
  po::options_description hidden;
  hidden.add_options()("file", po::value<std::string>());
  po::positional_options_description positional;
  positional.add("file", 1);

  xdpp::CommandOptions options;
  po::variables_map values;
  const bool is_run = command == "run";
  if (!is_run && command != "check") {
    std::cerr << "xdp-pipeline: unknown command '" << command << "'\n\n";
    print_usage(std::cerr);
    return xdpp::kExitUsage;
  }
  const po::options_description& visible = is_run ? run_options : common;
  try {
    po::options_description all;
    all.add(visible).add(hidden);
    po::store(po::command_line_parser(argc - 1, argv + 1).options(all).positional(positional).run(), values);
    po::notify(values);
  } catch (const po::error& error) {
    std::cerr << "xdp-pipeline " << command << ": " << error.what() << "\n";
    return xdpp::kExitUsage;
  }
  if (values.count("help")) {
    std::cout << "usage: xdp-pipeline " << command << " FILE [options]\n" << visible;
    return 0;
  }
  if (!values.count("file")) {
    std::cerr << "xdp-pipeline " << command << ": missing the pipeline FILE\n";
    return xdpp::kExitUsage;
  }
  options.file = values["file"].as<std::string>();
  if (values.count("verbose")) xdpp::log::set_level(xdpp::log::Level::debug);
  if (values.count("quiet")) xdpp::log::set_level(xdpp::log::Level::warn);
  if (values.count("plugin-dir"))
    for (const auto& dir : values["plugin-dir"].as<std::vector<std::string>>()) options.overrides.plugin_dirs.push_back(dir);
  if (values.count("interface")) options.overrides.interface = values["interface"].as<std::string>();
  if (values.count("mode")) {
    const auto& mode = values["mode"].as<std::string>();
    if (mode == "native") options.overrides.mode = xdpp::AttachMode::native;
    else if (mode == "generic") options.overrides.mode = xdpp::AttachMode::generic;
    else if (mode == "auto") options.overrides.mode = xdpp::AttachMode::automatic;
    else if (mode == "offload") options.overrides.mode = xdpp::AttachMode::offload;
    else {
      std::cerr << "xdp-pipeline run: --mode '" << mode << "' is not one of native, generic, offload, auto\n";
      return xdpp::kExitUsage;
    }
  }
  xdpp::log::capture_libbpf();
  return is_run ? xdpp::command_run(options) : xdpp::command_check(options);
}
