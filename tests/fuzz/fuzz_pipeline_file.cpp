// Fuzz target: the pipeline file parser, with the real built-in plugins validating their settings.
// Any input must give a spec or an error message; nothing may throw, crash or abort.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const xdpp::SearchPaths paths{.plugin_dirs = {XDPP_TEST_PLUGIN_DIR}, .bpf_dirs = {XDPP_TEST_BPF_DIR}};
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = xdpp::parse_pipeline(text, "fuzz.toml", {}, paths);
  if (!spec && spec.error().message.empty()) std::abort();  // every refusal says why
  return 0;
}
