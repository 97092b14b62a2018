#include "test_pipeline.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sched.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <vector>

namespace xdpp::test {

std::string action_name(std::uint32_t action) {
  switch (action) {
    case kAborted: return "XDP_ABORTED";
    case kDrop: return "XDP_DROP";
    case kPass: return "XDP_PASS";
    case kTx: return "XDP_TX";
    case kRedirect: return "XDP_REDIRECT";
    default: return "action " + std::to_string(action);
  }
}

InterfaceInfo test_interface() {
  return InterfaceInfo{.name = "test0", .ifindex = 0, .mac = kInterfaceMac};
}

SearchPaths test_search_paths() {
  return SearchPaths{.plugin_dirs = {XDPP_TEST_PLUGIN_DIR}, .bpf_dirs = {XDPP_TEST_BPF_DIR}};
}

namespace {
std::string current_test_file_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (!info) return "test.toml";
  return case_name(info->name()) + ".toml";
}
}  // namespace

std::unique_ptr<Pipeline> load_pipeline(std::string_view toml) {
  std::string file = current_test_file_name();
  auto spec = parse_pipeline(toml, file, Overrides{}, test_search_paths());
  if (!spec) {
    ADD_FAILURE() << "parsing the pipeline failed: " << spec.error().message << "\n--- " << file << " ---\n"
                  << toml;
    return nullptr;
  }
  auto pipeline = Pipeline::load(std::move(spec).value(), test_search_paths(), test_interface());
  if (!pipeline) {
    ADD_FAILURE() << "loading the pipeline failed: " << pipeline.error().message << "\n--- " << file
                  << " ---\n"
                  << toml;
    return nullptr;
  }
  return std::move(pipeline).value();
}

std::optional<TestRunResult> run(Pipeline& pipeline, std::span<const std::uint8_t> frame, std::uint32_t first_buffer) {
  auto result = TestRunner(pipeline).run(frame, first_buffer);
  if (!result) {
    ADD_FAILURE() << "test_run of a " << frame.size() << "-byte frame failed: " << result.error().message;
    return std::nullopt;
  }
  return std::move(result).value();
}

int stage_index(Pipeline& pipeline, std::string_view name) {
  if (name == kPipelineTotal) return -1;
  const auto& stages = pipeline.stages();
  for (std::size_t i = 0; i < stages.size(); ++i)
    if (stages[i].spec.name == name) return static_cast<int>(i);
  ADD_FAILURE() << "no stage called '" << name << "' in the pipeline";
  return -1;
}

CounterTotals counters(Pipeline& pipeline, std::string_view name) {
  auto totals = stage_counters(pipeline, stage_index(pipeline, name));
  if (!totals) {
    ADD_FAILURE() << "counters of '" << name << "': " << totals.error().message;
    return {};
  }
  return totals.value();
}

xdpp_packet packet_context(Pipeline& pipeline) {
  auto context = xdpp::packet_context(pipeline, 0);
  if (!context) {
    ADD_FAILURE() << "packet_context(0): " << context.error().message;
    return {};
  }
  return context.value();
}

Status clear_chain_slot(Pipeline& pipeline, std::uint32_t slot) {
  bpf_prog_info info{};
  std::uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(pipeline.root_fd(), &info, &len) != 0)
    return fail("dispatcher info: ", std::strerror(errno));
  std::vector<std::uint32_t> map_ids(info.nr_map_ids);
  std::uint32_t count = info.nr_map_ids;
  info = bpf_prog_info{};
  info.nr_map_ids = count;
  info.map_ids = reinterpret_cast<std::uintptr_t>(map_ids.data());
  len = sizeof info;
  if (bpf_obj_get_info_by_fd(pipeline.root_fd(), &info, &len) != 0)
    return fail("dispatcher map ids: ", std::strerror(errno));
  for (std::uint32_t id : map_ids) {
    int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_map_info map_info{};
    std::uint32_t map_len = sizeof map_info;
    bool is_chain = bpf_obj_get_info_by_fd(fd, &map_info, &map_len) == 0 &&
                    map_info.type == BPF_MAP_TYPE_PROG_ARRAY &&
                    std::string_view(map_info.name) == XDPP_CHAIN_MAP_NAME;
    if (is_chain) {
      int rc = bpf_map_delete_elem(fd, &slot);
      int saved = errno;
      close(fd);
      if (rc != 0) return fail("clearing chain slot ", std::to_string(slot), ": ", std::strerror(saved));
      return {};
    }
    close(fd);
  }
  return fail("the dispatcher uses no map called " XDPP_CHAIN_MAP_NAME);
}

void BpfTest::SetUp() {
  if (geteuid() != 0)
    GTEST_SKIP() << "skipped: BPF_PROG_TEST_RUN tests need root (CAP_BPF and CAP_NET_ADMIN); run ctest as root";
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(0, &cpus);
  ASSERT_EQ(sched_setaffinity(0, sizeof cpus, &cpus), 0)
      << "cannot pin the test to CPU 0 (packet_context(0) needs it): " << std::strerror(errno);
}

std::string case_name(std::string_view description) {
  std::string out;
  for (char c : description) {
    if (std::isalnum(static_cast<unsigned char>(c))) out += c;
    else if (!out.empty() && out.back() != '_') out += '_';
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out.empty() ? "case" : out;
}

}  // namespace xdpp::test
