// parse: host plugin. The stage reads the headers once for every later stage; its only setting is what
// happens to a malformed packet, a load-time constant so that the verifier sees a fixed verdict.
//
// Settings:
//   malformed = "pass" | "drop"    verdict for malformed packets (default "pass")
#include <xdp_pipeline/plugin.h>

extern "C" {
#include "parse.h"
}

#include <linux/bpf.h>

namespace {

using namespace xdpp;

struct ParseConfig {
  std::uint32_t malformed_verdict = XDP_PASS;
};

class ParseStage final : public Stage {
 public:
  explicit ParseStage(ParseConfig config) : config_(config) {}

  Status before_load(StageObject& object) override {
    return object.set_constant(PARSE_MALFORMED_VERDICT_NAME, config_.malformed_verdict)
        .context("constant '" PARSE_MALFORMED_VERDICT_NAME "'");
  }

  // Nothing lives in maps: the verdict is frozen into the program at load.
  Status configure(StageObject&) override { return {}; }

  std::string describe() const override {
    return std::string("malformed packets: ") + (config_.malformed_verdict == XDP_DROP ? "drop" : "pass");
  }

 private:
  const ParseConfig config_;
};

class ParseFactory final : public StageFactory {
 public:
  std::string_view plugin_name() const override { return "parse"; }
  std::string_view object_file() const override { return "parse.bpf.o"; }
  std::string_view program_name() const override { return "parse"; }

  std::unique_ptr<Stage> create(const Settings& settings) const override {
    ParseConfig config;
    if (auto malformed = settings.verdict("malformed")) config.malformed_verdict = *malformed;
    return std::make_unique<ParseStage>(config);
  }
};

}  // namespace

XDPP_PLUGIN(ParseFactory)
