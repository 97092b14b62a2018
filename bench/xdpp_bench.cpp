// xdpp-bench: what the pipeline costs, side by side with the alternatives, in one process run.
//
// Prints Markdown (the body of docs/benchmarks.md) on stdout, progress on stderr. bench/run.sh builds it,
// runs it and adds the machine description. Every figure that matters is a ratio of measurements taken in
// this run, interleaved (the programs compared take turns inside each round, the order reversed every
// other round), over several rounds, and the median is reported.
//
//   xdpp-bench [--tag NAME] [--rounds N] [--sections 123456] [--quick] [--baseline-bpf DIR [--baseline-commit REF]]
//
// The live sections create two network namespaces NAME-g and NAME-r joined by a veth pair and remove them
// on every way out (normal exit, error, SIGINT/SIGTERM).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bpf_object.h"
#include "config.h"
#include "interface.h"
#include "packet.h"
#include "pipeline.h"

extern "C" {
#include "icmp_lb.h"
#include "metadata.h"
#include "mono.h"
#include <xdp_pipeline/contract.h>
}

namespace {

using namespace xdpp;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------------------
// Cleanup of what the harness creates in the system (namespaces), on every way out.

std::string g_tag;
std::vector<std::string> g_namespaces;
std::vector<std::filesystem::path> g_paths;

void cleanup() {
  for (const auto& ns : g_namespaces) {
    std::string command = "ip netns del " + ns + " 2>/dev/null";
    if (std::system(command.c_str()) != 0) { /* already gone */ }
  }
  g_namespaces.clear();
  for (const auto& path : g_paths) {
    std::error_code error;
    std::filesystem::remove_all(path, error);
  }
  g_paths.clear();
}

[[noreturn]] void die(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::fprintf(stderr, "xdpp-bench: ");
  std::vfprintf(stderr, format, args);
  std::fprintf(stderr, "\n");
  va_end(args);
  cleanup();
  std::_Exit(1);
}

void on_signal(int) {
  cleanup();
  std::_Exit(130);
}

template <class T>
T must(Result<T> result, const char* what) {
  if (!result) die("%s: %s", what, result.error().message.c_str());
  return std::move(result).value();
}
void must(Status status, const char* what) {
  if (!status) die("%s: %s", what, status.error().message.c_str());
}

void progress(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::fprintf(stderr, "[bench] ");
  std::vfprintf(stderr, format, args);
  std::fprintf(stderr, "\n");
  va_end(args);
}

void sh(const std::string& command) {
  if (std::system(command.c_str()) != 0) die("command failed: %s", command.c_str());
}

std::string capture(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return out;
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  return out;
}

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % std::max(1u, std::thread::hardware_concurrency()), &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// ---------------------------------------------------------------------------------------------------------
// Statistics.

double median(std::vector<double> values) {
  if (values.empty()) return NAN;
  std::sort(values.begin(), values.end());
  std::size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// The median of a[i] - b[i]: two kinds measured in the same rounds, so that what drifts from round to round
// (the machine) cancels.
double median_difference(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> differences;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) differences.push_back(a[i] - b[i]);
  return median(differences);
}

// Least squares y = a + b x; returns {b, a}.
std::pair<double, double> fit(const std::vector<double>& x, const std::vector<double>& y) {
  double n = x.size(), sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i];
    sxx += x[i] * x[i];
    sxy += x[i] * y[i];
  }
  double b = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  return {b, (sy - b * sx) / n};
}

std::string fmt(const char* format, ...) {
  char buffer[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  return buffer;
}

// ---------------------------------------------------------------------------------------------------------
// Packets.

constexpr test::Mac kMacG = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};  // generator side (set on the veth)
constexpr test::Mac kMacR = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};  // receiver side
constexpr const char* kIpG = "10.201.0.1";
constexpr const char* kIpR = "10.201.0.2";
constexpr const char* kVip = "192.168.1.2";

enum class Kind { tcp_drop, tcp_pass, tcp_drop_vlan, ipv6_pass, icmp_vip, udp_meta, tcp_rst_pass };

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::tcp_drop: return "TCP to dropped port 8080";
    case Kind::tcp_pass: return "TCP that passes (port 22)";
    case Kind::tcp_drop_vlan: return "TCP to 8080 behind a VLAN tag (dropped)";
    case Kind::ipv6_pass: return "IPv6 TCP that passes (port 22)";
    case Kind::icmp_vip: return "ICMP echo to the VIP";
    case Kind::udp_meta: return "UDP reaching metadata";
    case Kind::tcp_rst_pass: return "TCP RST to a closed port (passes)";
  }
  return "?";
}

// A 64-byte Ethernet frame (without FCS; 86 bytes for IPv6), valid checksums, from the generator side to the
// receiver, built by the tests' packet builder (tests/support/packet.h). The IPv4 datagrams fill the 64 bytes
// (payload after the L4 header); the VLAN-tagged one is padded with a trailer.
std::vector<std::uint8_t> make_frame(Kind kind) {
  // Assigned field by field: the builder's structs have many defaults (no -Wmissing-field-initializers).
  test::Packet packet;
  packet.eth.dst = kMacR;
  packet.eth.src = kMacG;
  test::Ipv4 ipv4;
  ipv4.src = kIpG;
  ipv4.dst = kIpR;
  ipv4.id = 0x1234;
  ipv4.dont_fragment = true;
  packet.l3 = ipv4;
  test::Tcp tcp;
  tcp.sport = 40000;
  tcp.seq = 1;
  tcp.flags = test::kTcpAck;
  tcp.window = 0xffff;
  switch (kind) {
    case Kind::tcp_drop:
    case Kind::tcp_pass:
    case Kind::tcp_rst_pass: {
      test::Tcp header = tcp;
      header.dport = kind == Kind::tcp_drop ? 8080 : kind == Kind::tcp_pass ? 22 : 9;
      if (kind == Kind::tcp_rst_pass) header.flags = test::kTcpRst;  // no answer from the stack
      packet.l4 = header;
      packet.payload = test::Bytes(10, 0);
      break;
    }
    case Kind::tcp_drop_vlan: {
      test::Tcp header = tcp;
      header.dport = 8080;
      test::Vlan vlan;
      vlan.id = 100;
      packet.vlans = {vlan};
      packet.l4 = header;
      packet.trailer = test::Bytes(6, 0);
      break;
    }
    case Kind::ipv6_pass: {
      test::Tcp header;
      header.flags = test::kTcpAck;
      packet.l3 = test::Ipv6{};
      packet.l4 = header;
      break;
    }
    case Kind::udp_meta: {
      test::Udp udp;
      udp.sport = 40000;
      udp.dport = 5000;
      packet.l4 = udp;
      packet.payload = test::Bytes(22, 0);
      break;
    }
    case Kind::icmp_vip: {
      std::get<test::Ipv4>(packet.l3).dst = kVip;
      test::Icmp echo;  // an echo request
      echo.id = 0x1234;
      packet.l4 = echo;
      packet.payload = test::Bytes(22, 0);
      break;
    }
  }
  return test::build(packet).bytes;
}

// ---------------------------------------------------------------------------------------------------------
// BPF helpers.

std::filesystem::path bench_object(const char* name) { return std::filesystem::path(XDPP_BENCH_BPF_DIR) / name; }

// bench/bare.bpf.c, loaded whole.
struct Bare {
  bpf_object* object = nullptr;
  ~Bare() {
    if (object) bpf_object__close(object);
  }
  int prog(const char* name) const {
    bpf_program* p = bpf_object__find_program_by_name(object, name);
    return p ? bpf_program__fd(p) : -1;
  }
  int count_map() const { return bpf_object__find_map_fd_by_name(object, "bench_drop_count"); }
};

std::unique_ptr<Bare> load_bare() {
  auto bare = std::make_unique<Bare>();
  bare->object = bpf_object__open_file(bench_object("bench_bare.bpf.o").c_str(), nullptr);
  if (!bare->object) die("bench_bare.bpf.o: %s", std::strerror(errno));
  if (int err = bpf_object__load(bare->object)) die("loading bench_bare.bpf.o: %s", std::strerror(-err));
  return bare;
}

std::uint64_t sum_percpu_u64(int fd) {
  int cpus = libbpf_num_possible_cpus();
  std::vector<std::uint64_t> values(cpus);
  std::uint32_t zero = 0;
  if (bpf_map_lookup_elem(fd, &zero, values.data()) != 0) die("per-CPU counter: %s", std::strerror(errno));
  return std::accumulate(values.begin(), values.end(), std::uint64_t{0});
}

struct RunOut {
  std::uint32_t retval = 0;
  std::uint32_t duration = 0;  // mean ns per run
  std::vector<std::uint8_t> data;
};

RunOut test_run(int prog_fd, const std::vector<std::uint8_t>& frame, std::uint32_t repeat) {
  RunOut out;
  out.data.resize(frame.size() + 256);
  LIBBPF_OPTS(bpf_test_run_opts, options, .data_in = frame.data(), .data_out = out.data.data(),
              .data_size_in = static_cast<__u32>(frame.size()), .data_size_out = static_cast<__u32>(out.data.size()),
              .repeat = static_cast<int>(repeat));
  if (int err = bpf_prog_test_run_opts(prog_fd, &options)) die("BPF_PROG_TEST_RUN: %s", std::strerror(-err));
  out.retval = options.retval;
  out.duration = options.duration;
  out.data.resize(options.data_size_out);
  return out;
}

// Drains a ring buffer without decoding: counts records, and keeps copies of the first few.
struct RingDrain {
  ring_buffer* ring = nullptr;
  std::uint64_t records = 0;
  std::vector<std::vector<std::uint8_t>> kept;
  explicit RingDrain(int fd) {
    ring = ring_buffer__new(fd, &RingDrain::on_record, this, nullptr);
    if (!ring) die("ring_buffer__new: %s", std::strerror(errno));
  }
  ~RingDrain() { ring_buffer__free(ring); }
  static int on_record(void* context, void* data, std::size_t size) {
    auto* self = static_cast<RingDrain*>(context);
    if (self->kept.size() < 4) {
      auto* p = static_cast<std::uint8_t*>(data);
      self->kept.emplace_back(p, p + size);
    }
    self->records++;
    return 0;
  }
  int poll(int timeout_ms) {
    int n = ring_buffer__poll(ring, timeout_ms);
    if (n < 0 && n != -EINTR) die("polling a ring: %s", std::strerror(-n));
    return n;
  }
  std::uint64_t drain() {
    std::uint64_t before = records;
    kept.clear();
    if (int n = ring_buffer__consume(ring); n < 0) die("draining a ring: %s", std::strerror(-n));
    return records - before;
  }
};

// ---------------------------------------------------------------------------------------------------------
// The programs under test.

const char* kStagesToml = R"(
[[stage]]
name = "parse"
plugin = "parse"
malformed = "pass"

[[stage]]
name = "no-8080"
plugin = "port_filter"
drop_tcp_dst = [8080]

[[stage]]
name = "ping-lb"
plugin = "icmp_lb"
vip = "192.168.1.2"
lb_mac = "02:00:00:00:00:02"
backends = [
  { ip = "192.168.1.3", mac = "52:54:00:ff:ff:55" },
  { ip = "192.168.1.4", mac = "52:54:00:5d:6e:a1" },
]

[[stage]]
name = "flows"
plugin = "metadata"
format = "text"
sample = 1
)";

std::string pipeline_toml(const std::string& name, const std::string& interface, const std::string& default_verdict,
                          const std::string& metadata_extra) {
  return "[pipeline]\nname = \"" + name + "\"\ninterface = \"" + interface + "\"\nmode = \"native\"\n" +
         "default_verdict = \"" + default_verdict + "\"\n" + kStagesToml + metadata_extra + "\n";
}

PipelineSpec parse_spec(const std::string& toml) {
  return must(parse_pipeline(toml, "bench.toml", Overrides{}, SearchPaths::builtin()), "pipeline config");
}

std::unique_ptr<Pipeline> load_pipeline(const std::string& toml, const InterfaceInfo& interface) {
  return must(Pipeline::load(parse_spec(toml), SearchPaths::builtin(), interface), "loading the pipeline");
}

// The monolithic comparator (bench/mono.bpf.c). Its configuration is global data, filled here before load with
// what kStagesToml says (the same values the stages' plugins write into their maps); the check before timing
// (same verdict, frame and events for every benchmarked packet) is what shows that the two agree.
struct Mono {
  std::unique_ptr<LoadedObject> object;
  int fd() const { return object->prog_fd(); }
  int ring_fd() const { return must(object->map(METADATA_EVENTS_MAP), "mono ring").fd; }
  // Packets and events lost, from its one per-CPU entry (struct mono_percpu in mono.bpf.c).
  std::pair<std::uint64_t, std::uint64_t> packets_and_lost() const {
    struct PerCpu {
      xdpp_counters counters;
      std::uint64_t packets, seq;
    };
    int fd = must(object->map("mono_percpu"), "mono_percpu").fd;
    const int cpus = libbpf_num_possible_cpus();
    std::vector<PerCpu> values(cpus);
    std::uint32_t zero = 0;
    if (bpf_map_lookup_elem(fd, &zero, values.data()) != 0) die("mono_percpu: %s", std::strerror(errno));
    std::uint64_t packets = 0, lost = 0;
    for (const PerCpu& v : values) packets += v.packets, lost += v.counters.events_lost;
    return {packets, lost};
  }
};

std::unique_ptr<Mono> load_mono(std::uint32_t default_verdict, std::uint32_t ring_size) {
  auto mono = std::make_unique<Mono>();
  InterfaceInfo none{.name = "none", .ifindex = 0, .mac = std::nullopt};
  mono->object = must(LoadedObject::open(bench_object("bench_mono.bpf.o"), "mono", none, "xdpp_mono"), "mono");
  if (ring_size) must(mono->object->set_map_size(METADATA_EVENTS_MAP, ring_size), "mono ring size");
  bpf_map* data = nullptr;
  bpf_map* map;
  bpf_object__for_each_map(map, mono->object->raw()) {
    if (std::string_view(bpf_map__name(map)).ends_with(".data")) data = map;
  }
  std::size_t size = 0;
  auto* config = data ? static_cast<mono_config*>(const_cast<void*>(bpf_map__initial_value(data, &size))) : nullptr;
  if (!config || size < sizeof(mono_config)) die("mono: no .data of the size of struct mono_config");
  // kStagesToml: parse malformed = "pass"; no-8080 drop_tcp_dst = [8080]; ping-lb vip / lb_mac / 2 backends;
  // flows sample = 1 (wakeup_batch 0).
  *config = mono_config{};
  config->malformed_verdict = XDP_PASS;
  config->default_verdict = default_verdict;
  config->port_lists = PORT_FILTER_TCP_DST;
  config->ports[8080] = PORT_FILTER_TCP_DST;
  config->nonfirst_frag_verdict = XDP_PASS;
  std::memcpy(&config->vip, test::ipv4(kVip).data(), 4);
  config->backend_count = 2;
  const std::uint8_t lb_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
  std::memcpy(config->lb_mac, lb_mac, 6);
  const std::uint8_t ips[2][4] = {{192, 168, 1, 3}, {192, 168, 1, 4}};
  const std::uint8_t macs[2][6] = {{0x52, 0x54, 0x00, 0xff, 0xff, 0x55}, {0x52, 0x54, 0x00, 0x5d, 0x6e, 0xa1}};
  for (int i = 0; i < 2; ++i) {
    std::memcpy(&config->backends[i].ip, ips[i], 4);
    std::memcpy(config->backends[i].mac, macs[i], 6);
  }
  config->sample = 1;
  must(mono->object->load(), "loading the monolithic program");
  return mono;
}

// For the timed runs of the echo to the VIP (see backends_to_vip below): the monolithic program's backends
// all get the VIP's address, in its .data in place.
void mono_backends_to_vip(const Mono& mono) {
  bpf_map* map;
  bpf_object__for_each_map(map, mono.object->raw()) {
    if (!std::string_view(bpf_map__name(map)).ends_with(".data")) continue;
    int fd = bpf_map__fd(map);
    std::vector<std::uint8_t> value(bpf_map__value_size(map));
    std::uint32_t zero = 0;
    if (bpf_map_lookup_elem(fd, &zero, value.data()) != 0) die("mono .data: %s", std::strerror(errno));
    auto* config = reinterpret_cast<mono_config*>(value.data());
    for (std::uint32_t i = 0; i < config->backend_count; ++i) config->backends[i].ip = config->vip;
    if (bpf_map_update_elem(fd, &zero, value.data(), BPF_ANY) != 0) die("mono .data: %s", std::strerror(errno));
    return;
  }
  die("mono: no .data");
}

// BPF_PROG_TEST_RUN with repeat runs every iteration on the same buffer, so after the first iteration an echo to
// the VIP would be addressed to a backend and take another path. For the timing, every backend's address is
// set to the VIP itself (written into the active set directly: the plugin rightly refuses such a
// configuration), which makes the rewrite idempotent: every iteration is a balanced echo request ending in
// XDP_TX, with the same work (atomic round robin, checksum update, MAC rewrite).
void backends_to_vip(const LoadedObject& object) {
  MapHandle map = must(object.map(XDPP_STAGE_DATA_SECTION), "icmp_lb data");
  MappedData mapped = must(map.mmap<icmp_lb_data>(), "icmp_lb data");
  icmp_lb_data& data = mapped.as<icmp_lb_data>();
  icmp_lb_set& set = data.sets[data.active % ICMP_LB_SETS];
  for (std::uint32_t i = 0; i < set.backend_count; ++i) set.backends[i].ip = set.vip;
}

int pipeline_ring_fd(Pipeline& pipeline) {
  for (auto& stage : pipeline.stages()) {
    auto rings = stage.object->maps_of_type(BPF_MAP_TYPE_RINGBUF);
    if (!rings.empty()) return rings.front().fd;
  }
  die("pipeline has no ring buffer");
}

std::uint64_t pipeline_packets(const Pipeline& pipeline) { return must(stage_counters(pipeline, -1), "counters").packets; }

// ---------------------------------------------------------------------------------------------------------
// Output.

std::ostringstream md;

struct Options {
  int rounds = 7;
  std::string sections = "123457";  // 6 (multi-buffer before/after) needs a contract-1 baseline: no longer loadable
  bool quick = false;
  std::string baseline_bpf;     // section 6: the BPF objects from before multi-buffer awareness
  std::string baseline_commit;  // and the commit they were built from, for the text
  std::string compare;          // section 2: an ablation (bench/ablation/NAME.bpf.c) in the comparison column
};
Options opt;

// ---------------------------------------------------------------------------------------------------------
// 1. Per packet.

// The packets of section 1, one of each path.
constexpr Kind kPerPacketKinds[] = {Kind::tcp_drop, Kind::tcp_pass, Kind::tcp_drop_vlan, Kind::ipv6_pass,
                                    Kind::icmp_vip, Kind::udp_meta};

// Same semantics before timing: one packet of each kind through both, same verdict, same bytes out, same event.
void check_same_semantics(Mono& mono, Pipeline& pipeline, RingDrain& mono_ring, RingDrain& pipe_ring) {
  const auto& kinds = kPerPacketKinds;
  // Same semantics first: one packet of each kind through both, same verdict, same bytes out, same event.
  md << "### Same semantics (checked before timing)\n\n| packet | verdict | frame out | events |\n|---|---|---|---|\n";
  for (Kind kind : kinds) {
    auto frame = make_frame(kind);
    mono_ring.drain();
    pipe_ring.drain();
    auto a = test_run(mono.fd(), frame, 1);
    auto b = test_run(pipeline.entry_fd(), frame, 1);
    std::uint64_t ea = mono_ring.drain(), eb = pipe_ring.drain();
    bool same_event = ea == eb;
    for (std::size_t i = 0; same_event && i < mono_ring.kept.size(); ++i) {
      auto x = mono_ring.kept[i], y = pipe_ring.kept[i];
      if (x.size() != y.size() || x.size() < 8) { same_event = false; break; }
      std::fill(x.begin(), x.begin() + 8, 0);  // timestamp_ns
      std::fill(y.begin(), y.begin() + 8, 0);
      same_event = x == y;
    }
    if (a.retval != b.retval || a.data != b.data || !same_event)
      die("monolithic and pipeline differ on '%s': verdict %u/%u, frame %s, events %lu/%lu %s", kind_name(kind),
          a.retval, b.retval, a.data == b.data ? "same" : "differs", (unsigned long)ea, (unsigned long)eb,
          same_event ? "" : "(contents differ)");
    md << "| " << kind_name(kind) << " | " << verdict_name(a.retval) << " (both) | "
       << (a.data == frame ? "unchanged" : "rewritten") << ", identical | " << ea << " each, identical |\n";
  }
  md << "\n";
}

// One run's figures of section 1 for one kind of packet, a value per round.
struct PerPacketCell {
  std::vector<double> floor, mono, pipe, ratio_pm, ratio_mf, diff;
};

// The bare program, the monolithic one and the pipeline, interleaved in each round (order reversed every other).
std::map<Kind, PerPacketCell> time_per_packet(Bare& bare, Mono& mono, Pipeline& pipeline,
                                              RingDrain& mono_ring, RingDrain& pipe_ring, std::uint32_t repeat) {
  const auto& kinds = kPerPacketKinds;
  std::map<Kind, PerPacketCell> cells;
  for (int round = 0; round < opt.rounds; ++round) {
    for (Kind kind : kinds) {
      auto frame = make_frame(kind);
      double t[3];
      int order[3] = {0, 1, 2};
      if (round % 2) std::reverse(order, order + 3);
      for (int which : order) {
        int fd = which == 0 ? bare.prog("bench_pass") : which == 1 ? mono.fd() : pipeline.entry_fd();
        t[which] = test_run(fd, frame, repeat).duration;
        if (which == 1) mono_ring.drain();
        if (which == 2) pipe_ring.drain();
      }
      PerPacketCell& c = cells[kind];
      c.floor.push_back(t[0]);
      c.mono.push_back(t[1]);
      c.pipe.push_back(t[2]);
      c.ratio_pm.push_back(t[2] / t[1]);
      c.ratio_mf.push_back(t[1] / t[0]);
      c.diff.push_back(t[2] - t[1]);
    }
    progress("  round %d/%d", round + 1, opt.rounds);
  }
  return cells;
}

void section_per_packet() {
  progress("1. per packet (BPF_PROG_TEST_RUN)");
  const std::uint32_t repeat = opt.quick ? 200000 : 1000000;
  // A ring that holds every event of one run (1e6 x 80 bytes), drained between runs, in both programs.
  const std::string toml = pipeline_toml("bench", "none", "pass", "ring_size = 134217728");
  InterfaceInfo none{.name = "none", .ifindex = 0, .mac = std::nullopt};
  auto bare = load_bare();
  auto mono = load_mono(XDP_PASS, 134217728);
  auto pipeline = load_pipeline(toml, none);
  RingDrain mono_ring(mono->ring_fd());
  RingDrain pipe_ring(pipeline_ring_fd(*pipeline));

  const auto& kinds = kPerPacketKinds;
  check_same_semantics(*mono, *pipeline, mono_ring, pipe_ring);
  mono_backends_to_vip(*mono);
  backends_to_vip(*pipeline->stages()[2].object);
  for (auto* fd : {&mono_ring, &pipe_ring}) fd->drain();
  {
    auto frame = make_frame(Kind::icmp_vip);
    auto a = test_run(mono->fd(), frame, 1000), b = test_run(pipeline->entry_fd(), frame, 1000);
    if (a.retval != 3 || b.retval != 3 || a.data != b.data || mono_ring.drain() || pipe_ring.drain())
      die("ICMP echo to the VIP, repeated: not balanced every time");
  }

  auto cells = time_per_packet(*bare, *mono, *pipeline, mono_ring, pipe_ring, repeat);
  auto lost = must(stage_counters(*pipeline, 3), "metadata counters").events_lost;
  md << "### Time per packet\n\n"
     << "BPF_PROG_TEST_RUN, repeat = " << repeat << ", " << opt.rounds
     << " rounds, the three programs interleaved in each round (order reversed every other round); medians of the "
        "per-round figures. Metadata at sample = 1 in both the pipeline and the monolithic program, each with a "
        "128 MiB ring (ring_size = 134217728) that holds every event of one run and is drained (records counted, "
        "not decoded) between runs, so every event is a successful reservation in both. For the echo to the VIP, every backend's "
        "address is set to the VIP in the maps (in both programs) after the check above: BPF_PROG_TEST_RUN repeats "
        "on the same buffer, and this makes the rewrite idempotent, so that every iteration is balanced (XDP_TX, "
        "checked).\n\n"
     << "| packet | floor (bare XDP_PASS) ns | monolithic ns | pipeline ns | pipeline - mono ns | "
        "**pipeline / monolithic** (target <= 1.25) | monolithic / floor |\n|---|---|---|---|---|---|---|\n";
  double worst = 0;
  for (Kind kind : kinds) {
    PerPacketCell& c = cells[kind];
    double r = median(c.ratio_pm);
    worst = std::max(worst, r);
    md << "| " << kind_name(kind) << " | " << fmt("%.1f", median(c.floor)) << " | " << fmt("%.1f", median(c.mono))
       << " | " << fmt("%.1f", median(c.pipe)) << " | " << fmt("%+.1f", median(c.diff)) << " | **"
       << fmt("%.3f", r) << "** " << (r <= 1.25 ? "met" : "MISSED") << " | " << fmt("%.2f", median(c.ratio_mf))
       << " |\n";
  }
  md << "\nEvents lost during the timed runs: pipeline " << lost << ", monolithic "
     << mono->packets_and_lost().second << ".\n\n";
  md << "Worst pipeline / monolithic ratio: **" << fmt("%.3f", worst) << "** (target <= 1.25: "
     << (worst <= 1.25 ? "met" : "MISSED") << ").\n\n";
  progress("  worst pipeline/mono %.3f", worst);
}

// ---------------------------------------------------------------------------------------------------------
// 2. Chain scaling.

// A chain of no-op stages as host/pipeline.cpp builds one: the root object creates the shared maps, the stage
// of slot 0 is the entry (what an interface would run), each stage's next slot a load-time constant.
enum class Noop { framework, bss_key, direct, comparison };

struct Chain {
  std::unique_ptr<LoadedObject> root;
  std::vector<std::unique_ptr<LoadedObject>> stages;
  int entry_fd() const { return stages.front()->prog_fd(); }
};

// The name of section 2's comparison column: contract 3's wrapper, or the ablation asked for.
std::string comparison_name() { return opt.compare.empty() ? "contract 3 wrapper" : "ablation " + opt.compare; }

Chain build_chain(int stages, Noop kind) {
  const std::string comparison_file = "bench_ablation_" + opt.compare + ".bpf.o";
  Chain chain;
  InterfaceInfo none{.name = "none", .ifindex = 0, .mac = std::nullopt};
  auto builtin = SearchPaths::builtin();
  chain.root = must(LoadedObject::open(builtin.bpf_dirs.front() / "dispatcher.bpf.o", "dispatcher", none,
                                       "xdpp_dispatcher"),
                    "root object");
  must(chain.root->load(), "root load");
  int chain_fd = must(chain.root->map(XDPP_CHAIN_MAP_NAME), "chain").fd;
  int context_fd = must(chain.root->map(XDPP_CONTEXT_SECTION), "packet context").fd;
  const std::uint32_t pass = 2, drop = 1;
  const char* file = kind == Noop::framework ? "bench_noop.bpf.o"
                     : kind == Noop::bss_key ? "bench_noop_bss.bpf.o"
                     : kind == Noop::direct  ? "bench_noop_direct.bpf.o"
                     : opt.compare.empty()   ? "bench_noop_v3.bpf.o"
                                             : comparison_file.c_str();
  const char* program = kind == Noop::framework ? "noop"
                        : kind == Noop::bss_key ? "noop_bss"
                        : kind == Noop::direct  ? "noop_direct"
                        : opt.compare.empty()   ? "noop_v3"
                                                : "ablation";
  for (int slot = 0; slot < stages; ++slot) {
    auto object = must(LoadedObject::open(bench_object(file), "noop" + std::to_string(slot), none, program), "noop stage");
    std::uint32_t next = slot + 1 < stages ? slot + 1 : XDPP_NO_NEXT;
    must(object->set_constant("xdpp_next_slot", next), "noop next");
    // The packet ends with XDP_DROP only if it reached the end of the chain; falling off anywhere gives PASS.
    must(object->set_constant("xdpp_default_verdict", next == XDPP_NO_NEXT ? drop : pass), "noop verdict");
    must(object->set_constant("xdpp_entry", static_cast<std::uint32_t>(slot == 0)), "noop entry");
    if (kind == Noop::bss_key) {
      bpf_map* bss = nullptr;
      bpf_map* map;
      bpf_object__for_each_map(map, object->raw()) {
        if (std::string_view(bpf_map__name(map)).ends_with(".bss")) bss = map;
      }
      if (!bss) die("noop_bss: no .bss");
      std::uint32_t key = next;
      if (bpf_map__set_initial_value(bss, &key, sizeof key) != 0) die("noop_bss: .bss initial value");
    }
    must(object->reuse_map(XDPP_CHAIN_MAP_NAME, chain_fd), "reuse chain");
    if (kind != Noop::direct) must(object->reuse_map(XDPP_CONTEXT_SECTION, context_fd), "reuse packet context");
    // Contract 3's per-CPU context array (bench/contract3_context.h) was one map that the whole chain shared.
    if (kind == Noop::comparison && slot > 0 && bpf_object__find_map_by_name(object->raw(), "xdpp_scratch"))
      must(object->reuse_map("xdpp_scratch", must(chain.stages.front()->map("xdpp_scratch"), "per-CPU context").fd),
           "reuse per-CPU context");
    must(object->load(), "noop load");
    chain.stages.push_back(std::move(object));
  }
  for (int slot = stages - 1; slot >= 0; --slot) {
    std::uint32_t key = slot;
    int fd = chain.stages[slot]->prog_fd();
    if (bpf_map_update_elem(chain_fd, &key, &fd, BPF_ANY) != 0) die("chain slot %d: %s", slot, std::strerror(errno));
  }
  return chain;
}

// The kernel's symbols (/proc/kallsyms, readable with addresses as root), to name jump targets.
std::map<std::uint64_t, std::string> kernel_symbols() {
  std::map<std::uint64_t, std::string> symbols;
  std::ifstream in("/proc/kallsyms");
  std::string address, type, name;
  while (in >> address >> type >> name) {
    std::string rest;
    std::getline(in, rest);
    if (name.find("thunk") != std::string::npos || name.rfind("bpf_prog_", 0) == 0)
      symbols[std::stoull(address, nullptr, 16)] = name;
  }
  return symbols;
}

// The JIT image of a program (what `bpftool prog dump jited` reads: BPF_OBJ_GET_INFO_BY_FD jited_prog_insns),
// disassembled by objdump at its kernel address; the lines from the tail call's counter check (cmp with 33 =
// 0x21) to the jump, jump targets named from /proc/kallsyms.
std::string jit_excerpt(int prog_fd, const std::map<std::uint64_t, std::string>& symbols) {
  bpf_prog_info info{};
  __u32 length = sizeof info;
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &length) != 0) die("prog info: %s", std::strerror(errno));
  std::vector<std::uint8_t> image(info.jited_prog_len);
  std::uint64_t ksym = 0;
  std::uint32_t id = info.id;
  std::memset(&info, 0, sizeof info);
  info.jited_prog_len = image.size();
  info.jited_prog_insns = reinterpret_cast<std::uintptr_t>(image.data());
  info.nr_jited_ksyms = 1;
  info.jited_ksyms = reinterpret_cast<std::uintptr_t>(&ksym);
  length = sizeof info;
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &length) != 0) die("prog info: %s", std::strerror(errno));
  auto file = std::filesystem::temp_directory_path() / (g_tag + "-jit-" + std::to_string(id) + ".bin");
  g_paths.push_back(file);
  std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(image.data()), image.size());
  std::string dump = capture(fmt("objdump -D -b binary -m i386:x86-64 --adjust-vma=0x%llx %s 2>&1",
                                 (unsigned long long)ksym, file.c_str()));
  std::error_code error;
  std::filesystem::remove(file, error);
  std::istringstream in(dump);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    // Name the target of a jmp/call: "jmp    0xffffffffc0a1b2c3" -> "<bpf_prog_..._noop+0xb>".
    auto at = line.find("0xffffffff");
    if (at != std::string::npos && (line.find("jmp") != std::string::npos || line.find("call") != std::string::npos)) {
      std::uint64_t target = std::stoull(line.substr(at), nullptr, 16);
      auto it = symbols.upper_bound(target);
      if (it != symbols.begin()) {
        --it;
        if (target - it->first < 0x10000) line += fmt("   <%s+0x%llx>", it->second.c_str(), (unsigned long long)(target - it->first));
      }
    }
    lines.push_back(line);
  }
  std::string out = fmt("prog id %u, JIT image %zu bytes at 0x%llx\n...\n", id, image.size(), (unsigned long long)ksym);
  bool found = false;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find("$0x21,(") == std::string::npos) continue;
    std::size_t from = i >= 3 ? i - 3 : 0, to = std::min(lines.size(), i + (lines[i + 2].find("nop") != std::string::npos ? 12 : 18));
    for (std::size_t j = from; j < to; ++j) out += lines[j] + "\n";
    found = true;
    break;
  }
  if (!found) out += dump;
  return out + "...\n";
}

// Section 2's chains: no-op stages of four kinds, 1..33 long (the .bss kind at some lengths only).
constexpr int kChainKinds = 4;
struct ChainSet {
  std::vector<int> ns;      // lengths of kinds 0, 1 and 3
  std::vector<int> ns_bss;  // lengths of kind 2 (the .bss key)
  std::vector<Chain> chains[kChainKinds];
  const std::vector<int>& lengths(int kind) const { return kind == 2 ? ns_bss : ns; }
};

// What section 2 measured: per kind, ns per packet by length (each round's), and each round's fitted slope.
struct ChainTimes {
  std::vector<std::vector<double>> t[kChainKinds];
  std::vector<double> slopes[kChainKinds];
};

ChainSet load_chains(const std::vector<std::uint8_t>& frame) {
  ChainSet set;
  // 1..33 stages: the interface runs slot 0, so 33 stages take 32 tail calls.
  for (int n = 1; n <= XDPP_MAX_STAGES; ++n) set.ns.push_back(n);
  set.ns_bss = {1, 2, 4, 8, 12, 16, 20, 24, 28, 33};
  // Kinds 0, 1 and 3 at every length; the .bss key (2) at some.
  const Noop kinds[kChainKinds] = {Noop::framework, Noop::direct, Noop::bss_key, Noop::comparison};
  for (int k = 0; k < kChainKinds; ++k)
    for (int n : set.lengths(k)) set.chains[k].push_back(build_chain(n, kinds[k]));
  progress("  %zu + %zu + %zu + %zu chains loaded", set.chains[0].size(), set.chains[1].size(), set.chains[2].size(),
           set.chains[3].size());

  // Every chain must end at its last stage (XDP_DROP), never fall off (XDP_PASS).
  for (int k = 0; k < kChainKinds; ++k)
    for (std::size_t i = 0; i < set.chains[k].size(); ++i) {
      auto r = test_run(set.chains[k][i].entry_fd(), frame, 1);
      if (r.retval != 1) die("chain kind %d of %zu stages: verdict %u, the packet did not reach the last stage", k,
                             set.chains[k][i].stages.size(), r.retval);
    }

  return set;
}

ChainTimes time_chains(const ChainSet& set, const std::vector<std::uint8_t>& frame, std::uint32_t repeat) {
  const auto& ns = set.ns;
  ChainTimes times;
  auto& t = times.t;
  auto& slopes = times.slopes;
  for (int k = 0; k < kChainKinds; ++k) t[k].resize(set.chains[k].size());
  for (int round = 0; round < opt.rounds; ++round) {
    // The three kinds take turns at each length, the order of lengths reversed every other round.
    for (std::size_t step = 0; step < ns.size(); ++step) {
      std::size_t i = round % 2 ? ns.size() - 1 - step : step;
      for (int k = 0; k < kChainKinds; ++k) {
        int kk = round % 2 ? kChainKinds - 1 - k : k;
        const auto& list = set.chains[kk];
        auto at = kk == 2 ? std::find(set.ns_bss.begin(), set.ns_bss.end(), ns[i]) - set.ns_bss.begin() : std::ptrdiff_t(i);
        if (at >= static_cast<std::ptrdiff_t>(list.size())) continue;
        t[kk][at].push_back(test_run(list[at].entry_fd(), frame, repeat).duration);
      }
    }
    for (int k = 0; k < kChainKinds; ++k) {
      const auto& xs = set.lengths(k);
      std::vector<double> x(xs.begin(), xs.end()), y;
      for (auto& v : t[k]) y.push_back(v.back());
      slopes[k].push_back(fit(x, y).first);
    }
    progress("  round %d/%d: slope %.2f ns/stage (framework), %.2f (direct tail call only), %.2f (.bss key), %.2f "
             "(%s)", round + 1, opt.rounds, slopes[0].back(), slopes[1].back(), slopes[2].back(), slopes[3].back(),
             comparison_name().c_str());
  }
  return times;
}

// The JIT's code for the tail call: a middle stage of the longest chain of each kind.
void report_chain_jit(const ChainSet& set) {
  const auto& chains_bss = set.chains[2];
  const auto& chains_framework = set.chains[0];
  auto symbols = kernel_symbols();
  std::string direct = jit_excerpt(chains_framework.back().stages[5]->prog_fd(), symbols);
  std::string indirect = jit_excerpt(chains_bss.back().stages[5]->prog_fd(), symbols);
  md << "JIT output at the tail call. This bpftool (7.1, Debian) is built without libbfd, so `bpftool prog dump "
        "jited` cannot disassemble here; the harness reads the same JIT image bpftool would (BPF_OBJ_GET_INFO_BY_FD, "
        "jited_prog_insns and jited_ksyms), disassembles it with `objdump -b binary --adjust-vma=<its kernel "
        "address>` and names jump targets from /proc/kallsyms. The excerpt starts at the tail-call counter check "
        "(`cmpq $0x21,(%rax)`: the tail-call counter, behind a pointer on this kernel, against 33).\n\n"
        "The framework's no-op stage (key = `const volatile` xdpp_next_slot in .rodata): the JIT emitted "
        "`emit_bpf_tail_call_direct`: after the counter check the 5-byte bypass jump is patched to a `nopl` (the "
        "slot is filled), the counter is incremented, the callee-saved registers popped, and a patched direct "
        "`jmp rel32` goes straight into the next stage's program past its prologue (`<bpf_prog_..._noop+0xc>`): "
        "no load from the prog array, no indirect branch, no retpoline.\n\n```\n"
     << direct
     << "```\n\nThe comparison stage (key from `.bss`): bounds check of the index against the prog array, load "
        "of the program pointer from it, then the jump through the retpoline thunk (spectre_v2 = retpolines "
        "here).\n\n```\n"
     << indirect << "```\n\n";
}

void section_chain() {
  progress("2. chain scaling");
  const std::uint32_t repeat = opt.quick ? 200000 : 1000000;
  auto frame = make_frame(Kind::tcp_pass);
  const ChainSet set = load_chains(frame);
  const ChainTimes times = time_chains(set, frame, repeat);
  const auto& ns = set.ns;
  const auto& ns_bss = set.ns_bss;
  double slope[kChainKinds], fitted[kChainKinds], intercept[kChainKinds];
  std::vector<double> y[kChainKinds];
  for (int k = 0; k < kChainKinds; ++k) {
    const auto& xs = set.lengths(k);
    std::vector<double> x(xs.begin(), xs.end());
    for (auto& v : times.t[k]) y[k].push_back(median(v));
    std::tie(fitted[k], intercept[k]) = fit(x, y[k]);
    slope[k] = median(times.slopes[k]);
  }
  const double s = slope[0];
  md << "BPF_PROG_TEST_RUN of chains of N = 1..33 no-op stages, built as host/pipeline.cpp builds a chain (the "
        "stage of slot 0 is the entry, loaded with xdpp_entry = 1; the root object holds the shared maps), 64-byte "
        "TCP packet, repeat = "
     << repeat << ", " << opt.rounds
     << " rounds, all lengths and kinds interleaved. Each chain was checked to end at its last stage (the last "
        "stage's default verdict is DROP, a packet that falls off gets PASS), including N = 33 (32 tail calls).\n\n"
        "- **framework**: bench/noop_stage.bpf.c, XDPP_STAGE returning XDPP_CONTINUE (the CPU number for the context, the direct "
        "tail call; the counters update once, in the last stage);\n"
        "- **direct tail call only**: bench/noop_direct.bpf.c, a program that only makes the same direct tail call "
        "(the floor of chaining);\n"
        "- **.bss key**: bench/noop_bss_stage.bpf.c, the framework's stage with the tail-call key read from `.bss`, "
        "which the verifier cannot treat as a constant (indirect, retpolined jump);\n"
        "- **contract 3 wrapper**: bench/noop_v3_stage.bpf.c, what every stage did before contract 4 (the context "
        "from a per-CPU array lookup, four callee-saved registers kept across the tail call): the lever of contract 4, "
        "per stage" << (opt.compare.empty() ? std::string()
                        : "; in this run the column holds instead the **" + comparison_name() + "**: bench/ablation/" +
                              opt.compare + ".bpf.c, one part of the wrapper beside the bare direct tail call") << ".\n\n"
     << "| | cost per added stage (slope, median of per-round fits) | fit of the medians | intercept |\n"
     << "|---|---|---|---|\n"
     << "| framework (key `const volatile` in .rodata) | **" << fmt("%.2f ns", s) << "** "
     << (s <= 1.5 ? "met (target <= 1.5 ns)" : "MISSED (target <= 1.5 ns)") << " | " << fmt("%.2f ns", fitted[0])
     << " | " << fmt("%.1f ns", intercept[0]) << " |\n"
     << "| direct tail call only | " << fmt("%.2f ns", slope[1]) << " | " << fmt("%.2f ns", fitted[1]) << " | "
     << fmt("%.1f ns", intercept[1]) << " |\n"
     << "| .bss key (comparison) | " << fmt("%.2f ns", slope[2]) << " | " << fmt("%.2f ns", fitted[2]) << " | "
     << fmt("%.1f ns", intercept[2]) << " |\n"
     << "| " << comparison_name() << " (comparison) | " << fmt("%.2f ns", slope[3]) << " | " << fmt("%.2f ns", fitted[3])
     << " | " << fmt("%.1f ns", intercept[3]) << " |\n\n"
     << (opt.compare.empty() ? "Contract 3 minus contract 4 wrapper: " : comparison_name() + " minus direct tail call: ")
     << fmt("%.2f ns", opt.compare.empty() ? slope[3] - s : slope[3] - slope[1]) << " per stage (median of the per-round "
        "differences: " << fmt("%.2f ns", opt.compare.empty() ? median_difference(times.slopes[3], times.slopes[0])
                                                              : median_difference(times.slopes[3], times.slopes[1]))
     << ").\n\n"
     << "Framework minus direct tail call: " << fmt("%.2f ns", s - slope[1]) << " per stage (median of the per-round "
        "differences: " << fmt("%.2f ns", median_difference(times.slopes[0], times.slopes[1])) << ").\n\n";
  md << "<details><summary>ns per packet by chain length (medians)</summary>\n\n| N | framework ns | direct ns | "
      << comparison_name() << " ns | .bss key ns |\n|---|---|---|---|---|\n";
  for (std::size_t i = 0; i < ns.size(); ++i) {
    auto it = std::find(ns_bss.begin(), ns_bss.end(), ns[i]);
    md << "| " << ns[i] << " | " << fmt("%.1f", y[0][i]) << " | " << fmt("%.1f", y[1][i]) << " | "
       << fmt("%.1f", y[3][i]) << " | " << (it != ns_bss.end() ? fmt("%.1f", y[2][it - ns_bss.begin()]) : std::string("")) << " |\n";
  }
  md << "\n</details>\n\n";
  report_chain_jit(set);
  progress("  slope %.2f ns/stage (framework), %.2f (direct), %.2f (.bss)", s, slope[1], slope[2]);
}

// ---------------------------------------------------------------------------------------------------------
// 3 and 4: live traffic on a veth pair.

struct Lab {
  std::string ns_g, ns_r, if_g, if_r;
  int host_ns = -1;
  int ifindex_g = 0;
  InterfaceInfo r;

  void enter(const std::string& ns) const { must(enter_netns(ns), "setns"); }
  void leave() const {
    if (setns(host_ns, CLONE_NEWNET) != 0) die("setns back: %s", std::strerror(errno));
  }
};

std::string mac_text(const std::uint8_t* m) {
  return fmt("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

Lab make_lab() {
  Lab lab;
  lab.ns_g = g_tag + "-g";
  lab.ns_r = g_tag + "-r";
  lab.if_g = "xbg" + std::to_string(getpid());
  lab.if_r = "xbr" + std::to_string(getpid());
  lab.host_ns = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  g_namespaces.push_back(lab.ns_g);
  sh("ip netns add " + lab.ns_g);
  g_namespaces.push_back(lab.ns_r);
  sh("ip netns add " + lab.ns_r);
  sh("ip link add " + lab.if_g + " netns " + lab.ns_g + " address " + mac_text(kMacG.data()) + " type veth peer name " +
     lab.if_r + " netns " + lab.ns_r + " address " + mac_text(kMacR.data()));
  sh("ip -n " + lab.ns_g + " addr add " + std::string(kIpG) + "/24 dev " + lab.if_g);
  sh("ip -n " + lab.ns_r + " addr add " + std::string(kIpR) + "/24 dev " + lab.if_r);
  sh("ip -n " + lab.ns_g + " link set " + lab.if_g + " up");
  sh("ip -n " + lab.ns_r + " link set " + lab.if_r + " up");
  sh("ip -n " + lab.ns_g + " link set lo up");
  sh("ip -n " + lab.ns_r + " link set lo up");
  lab.enter(lab.ns_g);
  lab.ifindex_g = if_nametoindex(lab.if_g.c_str());
  lab.enter(lab.ns_r);
  lab.r = must(lookup_interface(lab.if_r), "receiver interface");
  lab.leave();
  return lab;
}

int attach_link(const Lab& lab, const std::string& ns, int ifindex, int prog_fd) {
  lab.enter(ns);
  LIBBPF_OPTS(bpf_link_create_opts, options, .flags = XDP_FLAGS_DRV_MODE);
  int fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &options);
  lab.leave();
  if (fd < 0) die("attaching XDP (native) in %s: %s", ns.c_str(), std::strerror(-fd));
  return fd;
}

// Sends `count` copies of `frame` from the generator veth (live frames, XDP_TX) on CPU `cpu`; returns seconds.
double generate(const Lab& lab, int tx_fd, const std::vector<std::uint8_t>& frame, std::uint32_t count, int cpu) {
  double seconds = 0;
  std::thread thread([&] {
    pin_to_cpu(cpu);
    lab.enter(lab.ns_g);
    xdp_md ctx{};
    ctx.data_end = frame.size();
    ctx.ingress_ifindex = lab.ifindex_g;
    LIBBPF_OPTS(bpf_test_run_opts, options, .data_in = frame.data(), .data_size_in = static_cast<__u32>(frame.size()),
                .ctx_in = &ctx, .ctx_size_in = sizeof ctx, .repeat = static_cast<int>(count), .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
    auto start = Clock::now();
    int err = bpf_prog_test_run_opts(tx_fd, &options);
    seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (err) die("live-frames generator: %s", std::strerror(-err));
  });
  thread.join();
  return seconds;
}

// The receiving veth's NAPI kthread in threaded mode (napi/IF-N), pinned to a CPU of its own, and the CPU time it
// has used (/proc/PID/schedstat, ns): the receiver's cost per packet, apart from the generator's. veth removes
// its NAPI instance (and the thread) when XDP is detached, so it is looked up after every attach.
struct Napi {
  int pid = 0;
  void find(const std::string& ifname, int cpu) {
    pid = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      std::ifstream comm(entry.path() / "comm");
      std::string name;
      if (comm && std::getline(comm, name) && name.rfind("napi/" + ifname + "-", 0) == 0) {
        pid = std::atoi(entry.path().filename().c_str());
        break;
      }
    }
    if (!pid) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(pid, sizeof set, &set) != 0) die("pinning napi thread %d: %s", pid, std::strerror(errno));
  }
  std::uint64_t cpu_ns() const {
    if (!pid) return 0;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/schedstat");
    std::uint64_t ns = 0;
    stat >> ns;
    return ns;
  }
};

// What sections 3 and 4 share: the lab, the generator and the programs under test.
struct LiveBench {
  Lab lab;
  std::unique_ptr<Bare> bare;
  std::unique_ptr<Mono> mono;
  std::unique_ptr<Pipeline> pipeline;
  int tx_fd = -1;
  int gen_link = -1;
  std::uint32_t count = 0;  // frames per measurement
  int gen_cpu = 1;

  double generate(const std::vector<std::uint8_t>& frame) const { return ::generate(lab, tx_fd, frame, count, gen_cpu); }
  // The generator's veth needs an XDP program of its own (its rx queue registered for XDP_TX).
  void attach_generator() { gen_link = attach_link(lab, lab.ns_g, lab.ifindex_g, bare->prog("bench_pass")); }
  void detach_generator() { ::close(gen_link); gen_link = -1; }
  // Attaches a pipeline to the receiving veth, in native mode, from the receiver's namespace.
  void attach_receiver(Pipeline& p) const {
    lab.enter(lab.ns_r);
    auto mode = p.attach(AttachMode::native);
    lab.leave();
    if (!mode) die("attaching the pipeline: %s", mode.error().message.c_str());
  }
};

// A program that receives on the receiver veth, by turns.
struct Receiver {
  const char* name;
  std::function<void()> attach;
  std::function<void()> detach;
  std::function<std::uint64_t()> packets;  // what the receiving program counted so far
};

Receiver link_receiver(const LiveBench& bench, const char* name, int prog_fd, std::function<std::uint64_t()> packets) {
  auto fd = std::make_shared<int>(-1);
  const Lab* lab = &bench.lab;
  return Receiver{name, [lab, prog_fd, fd] { *fd = attach_link(*lab, lab->ns_r, lab->r.ifindex, prog_fd); },
                  [fd] { ::close(*fd); *fd = -1; }, std::move(packets)};
}

Receiver pipeline_receiver(const LiveBench& bench) {
  return Receiver{"pipeline", [&bench] { bench.attach_receiver(*bench.pipeline); },
                  [&bench] { bench.pipeline->detach(); }, [&bench] { return pipeline_packets(*bench.pipeline); }};
}

// One packet kind measured against its baseline, the monolithic program and the pipeline (indices 0, 1, 2).
struct LiveCase {
  Kind kind;
  Receiver base;
  const char* base_name;
};

struct LiveResult {
  std::vector<double> rate[3];   // Mpps per round
  std::vector<double> rx_ns[3];  // threaded NAPI: receiver CPU ns per packet
  std::vector<double> pipe_base, mono_base, pipe_mono;  // per-round ratios
};

// Rounds of one case, receivers interleaved (order reversed every other round). With `napi`, the NAPI thread
// is found and pinned after every attach and its CPU time per packet recorded.
LiveResult measure_live_case(LiveBench& bench, LiveCase& c, Receiver& mono_rx, Receiver& pipe_rx, Napi* napi,
                             RingDrain& mono_ring, RingDrain& pipe_ring) {
  auto frame = make_frame(c.kind);
  Receiver* rx[3] = {&c.base, &mono_rx, &pipe_rx};
  LiveResult result;
  for (int round = 0; round < opt.rounds; ++round) {
    int order[3] = {0, 1, 2};
    if (round % 2) std::reverse(order, order + 3);
    double rate[3];
    for (int which : order) {
      Receiver& r = *rx[which];
      mono_ring.drain();
      pipe_ring.drain();
      r.attach();
      if (napi) {
        // veth has a NAPI instance only while XDP is attached: threaded mode is set after every attach.
        sh("ip netns exec " + bench.lab.ns_r + " sh -c 'echo 1 > /sys/class/net/" + bench.lab.if_r + "/threaded'");
        napi->find(bench.lab.if_r, 1 - bench.gen_cpu);
      }
      const std::uint64_t before = r.packets();
      const std::uint64_t napi_before = napi ? napi->cpu_ns() : 0;
      const double seconds = bench.generate(frame);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the last NAPI poll finish
      const std::uint64_t got = r.packets() - before;
      if (napi && napi->pid && got) result.rx_ns[which].push_back(double(napi->cpu_ns() - napi_before) / got);
      r.detach();
      rate[which] = got / seconds / 1e6;
      result.rate[which].push_back(rate[which]);
    }
    result.pipe_base.push_back(rate[2] / rate[0]);
    result.mono_base.push_back(rate[1] / rate[0]);
    result.pipe_mono.push_back(rate[2] / rate[1]);
    progress("  %s round %d: base %.2f mono %.2f pipeline %.2f Mpps", kind_name(c.kind), round + 1, rate[0], rate[1],
             rate[2]);
  }
  return result;
}

void live_rate_row(const LiveCase& c, const LiveResult& r) {
  const bool has_target = c.kind == Kind::tcp_drop || c.kind == Kind::icmp_vip;
  const double pm = median(r.pipe_mono), pb = median(r.pipe_base);
  md << "| " << kind_name(c.kind) << " | " << c.base_name << " | " << fmt("%.2f", median(r.rate[0])) << " | "
     << fmt("%.2f", median(r.rate[1])) << " | " << fmt("%.2f", median(r.rate[2])) << " | **" << fmt("%.3f", pb)
     << "** | " << fmt("%.3f", median(r.mono_base)) << " | **" << fmt("%.3f", pm) << "**"
     << (has_target ? (pm >= 0.9 ? " met (target >= 0.90)" : " MISSED (target >= 0.90)") : " (no target)") << " |\n";
  progress("  %s: pipeline/base %.3f pipeline/mono %.3f", kind_name(c.kind), pb, pm);
}

void live_threaded_row(std::ostringstream& out, const LiveCase& c, const LiveResult& r) {
  auto at = [&](int which) { return r.rx_ns[which].empty() ? 0.0 : median(r.rx_ns[which]); };
  const double b = at(0), m = at(1), p = at(2);
  out << "| " << kind_name(c.kind) << " | " << fmt("%.1f", b) << " | " << fmt("%.1f", m) << " | " << fmt("%.1f", p)
      << " | " << fmt("%+.1f", p - m) << " | **" << fmt("%.3f", p > 0 ? m / p : 0) << "** | "
      << fmt("%.3f", p > 0 ? b / p : 0) << " |\n";
  progress("  threaded NAPI %s: receiver %.1f / %.1f / %.1f ns", kind_name(c.kind), b, m, p);
}

void live_header(const LiveBench& bench) {
  md << "Two namespaces created by the harness, joined by a veth pair. Generator: `BPF_PROG_TEST_RUN` with "
        "`BPF_F_TEST_XDP_LIVE_FRAMES` of an XDP_TX program (bench_tx) on the generator's veth (which has a bare "
        "XDP_PASS attached so that its rx queue is registered), pinned to CPU "
     << bench.gen_cpu << ", " << bench.count
     << " frames of 64 bytes per measurement. Receiver: the peer veth with, in turn, the baseline, the monolithic "
        "program and the pipeline, each attached through a bpf_link in native mode. Rate = packets counted by the "
        "receiving program itself (per-CPU counter of the bare programs, xdpp_counters of the monolithic program, "
        "the pipeline's own derived total) / wall time of the generator run. "
     << opt.rounds << " rounds, receivers interleaved, order reversed every other round; medians.\n\n"
     << "| packet | baseline | baseline Mpps | monolithic Mpps | pipeline Mpps | pipeline / baseline | "
        "monolithic / baseline | **pipeline / monolithic** |\n|---|---|---|---|---|---|---|---|\n";
}

void live_threaded_header(std::ostringstream& out, const LiveBench& bench) {
  out << "\n#### Receiver cost per packet, threaded NAPI\n\nThe same, with the receiving veth's NAPI in threaded mode "
         "(`echo 1 > /sys/class/net/IF/threaded` in its namespace), the NAPI kthread pinned to CPU "
      << (1 - bench.gen_cpu) << " (the generator stays on CPU " << bench.gen_cpu
      << "): receiver ns per packet = the thread's CPU time (/proc/PID/schedstat) / the packets the receiving "
         "program counted. This is the receiver alone, whatever the generator's rate.\n\n"
         "| packet | baseline ns | monolithic ns | pipeline ns | pipeline - mono ns | **mono / pipeline (as a rate)** "
         "| pipeline / baseline (as a rate) |\n|---|---|---|---|---|---|---|\n";
}

// 3. Pass 0: NAPI in softirq, sharing the generator's CPU (the rate shows the receiver's nanoseconds almost one
// for one). Pass 1: threaded NAPI pinned to the other CPU, its CPU time divided by the packets it processed.
void section_live_rates(LiveBench& bench) {
  progress("3. live traffic on a veth pair");
  RingDrain mono_ring(bench.mono->ring_fd()), pipe_ring(pipeline_ring_fd(*bench.pipeline));
  bench.attach_generator();
  progress("  veth %s (%s) -> %s (%s), %u frames per measurement", bench.lab.if_g.c_str(), bench.lab.ns_g.c_str(),
           bench.lab.if_r.c_str(), bench.lab.ns_r.c_str(), bench.count);
  const int count_fd = bench.bare->count_map();
  auto counted = [count_fd] { return sum_percpu_u64(count_fd); };
  Receiver pipe_rx = pipeline_receiver(bench);
  Receiver mono_rx = link_receiver(bench, "monolithic", bench.mono->fd(), [&bench] { return bench.mono->packets_and_lost().first; });
  std::vector<LiveCase> cases = {
      {Kind::tcp_drop, link_receiver(bench, "bare XDP_DROP", bench.bare->prog("bench_drop"), counted), "bare XDP_DROP"},
      {Kind::icmp_vip, link_receiver(bench, "bare XDP_DROP", bench.bare->prog("bench_drop"), counted), "bare XDP_DROP"},
      {Kind::tcp_rst_pass, link_receiver(bench, "bare XDP_PASS (counted)", bench.bare->prog("bench_pass_counted"), counted),
       "bare XDP_PASS"},
  };
  live_header(bench);
  for (LiveCase& c : cases) live_rate_row(c, measure_live_case(bench, c, mono_rx, pipe_rx, nullptr, mono_ring, pipe_ring));

  Napi napi;
  std::ostringstream threaded;
  live_threaded_header(threaded, bench);
  for (LiveCase& c : cases)
    live_threaded_row(threaded, c, measure_live_case(bench, c, mono_rx, pipe_rx, &napi, mono_ring, pipe_ring));
  md << threaded.str();
  md << "\nThe passing packet is a TCP RST to a closed port of the receiver's address with valid checksums: every "
        "receiver passes it to the stack, which runs IP and TCP input on it and drops it without an answer, so "
        "the rate is bounded by the stack, not by XDP (its baseline is a counted bare XDP_PASS). It reaches the "
        "metadata stage: an event per packet into the 128 MiB ring, which nobody reads during the run (drained "
        "before each measurement), in both programs alike.\n\n";
  bench.detach_generator();
}

// Per setting of section 4: rates and what was lost or delivered.
struct EventTotals {
  std::vector<double> delivered_rate, lost_share, pkt_rate;
  std::uint64_t unaccounted = 0, lost = 0, delivered = 0, meta = 0;
};

// One measurement of section 4: the generator runs while a thread on the other CPU delivers events through the
// plugin; then the ring is emptied and every event accounted (delivered or counted lost).
void events_round(LiveBench& bench, Pipeline& p, const char* name, EventTotals& totals,
                  const std::vector<std::uint8_t>& frame) {
  EventHandler ignore = [](const std::string&, EventRecord) {};
  while (must(p.events().poll(0, ignore), "poll") > 0) {}  // left-overs of the previous measurement
  auto meta_before = must(stage_counters(p, 3), "metadata counters");
  bench.attach_receiver(p);
  std::atomic<bool> stop{false};
  std::uint64_t delivered = 0;
  std::thread poller([&] {
    pin_to_cpu(1 - bench.gen_cpu);
    EventHandler count_it = [&](const std::string&, EventRecord) { ++delivered; };
    while (!stop.load(std::memory_order_relaxed)) must(p.events().poll(50, count_it), "poll");
  });
  const double seconds = bench.generate(frame);
  const std::uint64_t delivered_in_window = delivered;  // read racily: only for the rate below
  stop = true;
  poller.join();
  p.detach();
  EventHandler count_rest = [&](const std::string&, EventRecord) { ++delivered; };
  while (must(p.events().poll(0, count_rest), "poll") > 0) {}
  auto meta_after = must(stage_counters(p, 3), "metadata counters");
  const std::uint64_t seen = meta_after.packets - meta_before.packets;
  const std::uint64_t lost = meta_after.events_lost - meta_before.events_lost;
  totals.delivered_rate.push_back(delivered_in_window / seconds / 1e6);
  totals.pkt_rate.push_back(seen / seconds / 1e6);
  totals.lost_share.push_back(seen ? double(lost) / seen : 0);
  totals.unaccounted += seen - std::min(seen, lost + delivered);
  totals.lost += lost;
  totals.delivered += delivered;
  totals.meta += seen;
  progress("  %s: %.2f Mpps, %.2f M events/s delivered, %.1f%% lost", name, seen / seconds / 1e6,
           delivered_in_window / seconds / 1e6, 100.0 * lost / std::max<std::uint64_t>(seen, 1));
}

// For attribution: the same ring read by a bare libbpf consumer that only counts records, without the plugin's
// decoding. Medians of packets Mpps, events M/s and the lost share.
std::array<double, 3> events_raw_consumer(LiveBench& bench, Pipeline& p, const std::vector<std::uint8_t>& frame) {
  std::vector<double> raw_rate, raw_lost, raw_pkt;
  RingDrain raw(pipeline_ring_fd(p));
  for (int round = 0; round < std::max(3, opt.rounds / 2); ++round) {
    raw.drain();
    auto meta_before = must(stage_counters(p, 3), "metadata counters");
    bench.attach_receiver(p);
    std::atomic<bool> stop{false};
    const std::uint64_t start = raw.records;
    std::thread poller([&] {
      pin_to_cpu(1 - bench.gen_cpu);
      while (!stop.load(std::memory_order_relaxed)) raw.poll(50);
    });
    const double seconds = bench.generate(frame);
    const std::uint64_t in_window = raw.records - start;
    stop = true;
    poller.join();
    p.detach();
    auto meta_after = must(stage_counters(p, 3), "metadata counters");
    const std::uint64_t seen = meta_after.packets - meta_before.packets;
    raw_rate.push_back(in_window / seconds / 1e6);
    raw_pkt.push_back(seen / seconds / 1e6);
    raw_lost.push_back(seen ? double(meta_after.events_lost - meta_before.events_lost) / seen : 0);
    progress("  raw consumer: %.2f M events/s", raw_rate.back());
  }
  return {median(raw_pkt), median(raw_rate), median(raw_lost)};
}

void events_table(const char* const names[2], const EventTotals totals[2], const std::array<double, 3>& raw) {
  md << "### 4. Events under live load\n\n"
     << "The pipeline with metadata at sample = 1 (default ring of 1 MiB) and `default_verdict = \"drop\"`, so that "
        "every packet (UDP to an unfiltered port) makes an event and is then dropped: the event path is the load, "
        "not the stack. Same generator as above. A thread on the other CPU calls `EventReader::poll(50, ...)` "
        "in a loop: each record goes through the metadata plugin's `on_event` (decoded to its text line only, as "
        "`run` does) to a handler that counts it. Delivered = events handed to the handler while the generator ran, "
        "per second; lost = the metadata stage's `events_lost` counter (a full ring). "
     << opt.rounds << " rounds, the two settings interleaved; medians.\n\n"
     << "| setting | packets at metadata Mpps | events delivered M/s | events lost | delivered + lost = packets? |\n"
        "|---|---|---|---|---|\n";
  for (int which = 0; which < 2; ++which) {
    const EventTotals& t = totals[which];
    md << "| " << names[which] << " | " << fmt("%.2f", median(t.pkt_rate)) << " | **"
       << fmt("%.2f", median(t.delivered_rate)) << "** | " << fmt("%.1f%%", 100 * median(t.lost_share)) << " of events | "
       << (t.unaccounted == 0 ? "yes, every one accounted (" : "NO, unaccounted: " + std::to_string(t.unaccounted) + " (")
       << t.delivered << " delivered + " << t.lost << " lost of " << t.meta << ") |\n";
  }
  md << "| for attribution: wakeup_batch = 0, ring read by a bare libbpf `ring_buffer__poll` consumer that only "
        "counts (no plugin) | " << fmt("%.2f", raw[0]) << " | " << fmt("%.2f", raw[1]) << " | "
     << fmt("%.1f%%", 100 * raw[2]) << " of events | |\n";
  md << "\nRatio delivered (batch 64 / batch 0): "
     << fmt("%.2f", median(totals[1].delivered_rate) / median(totals[0].delivered_rate)) << ".\n\n";
}

// 4. Every packet reaches metadata (UDP to an open port) and then ends with default_verdict = drop, so the event
// path, not the stack, is what is loaded. The ring is the default 1 MiB.
void section_events(LiveBench& bench) {
  progress("4. events under live load");
  bench.attach_generator();
  const std::string ev0 = pipeline_toml("bench-ev0", bench.lab.if_r, "drop", "wakeup_batch = 0");
  const std::string ev64 = pipeline_toml("bench-ev64", bench.lab.if_r, "drop", "wakeup_batch = 64");
  std::unique_ptr<Pipeline> pipes[2] = {load_pipeline(ev0, bench.lab.r), load_pipeline(ev64, bench.lab.r)};
  // As `run` does with text output: the plugin decodes each event into its text line only.
  for (auto& pipe : pipes) pipe->events().set_need_json(false);
  const char* names[2] = {"wakeup_batch = 0 (wake on every event)", "wakeup_batch = 64"};
  EventTotals totals[2];
  auto frame = make_frame(Kind::udp_meta);
  for (int round = 0; round < opt.rounds; ++round)
    for (int k = 0; k < 2; ++k) {
      const int which = round % 2 ? 1 - k : k;
      events_round(bench, *pipes[which], names[which], totals[which], frame);
    }
  const auto raw = events_raw_consumer(bench, *pipes[0], frame);
  bench.detach_generator();
  events_table(names, totals, raw);
}

// Sections 3 and 4 (4 only when asked for), in one lab.
void section_live() {
  LiveBench bench;
  bench.lab = make_lab();
  bench.bare = load_bare();
  // Ring of 128 MiB, drained before each measurement (identical in both programs); metadata is reached only by
  // the passing packet.
  bench.mono = load_mono(XDP_PASS, 134217728);
  bench.pipeline = load_pipeline(pipeline_toml("bench-live", bench.lab.if_r, "pass", "ring_size = 134217728"), bench.lab.r);
  bench.tx_fd = bench.bare->prog("bench_tx");
  bench.count = opt.quick ? 1000000 : 4000000;
  section_live_rates(bench);
  if (opt.sections.find('4') != std::string::npos) section_events(bench);
  cleanup();
}

// ---------------------------------------------------------------------------------------------------------
// 5. Control plane.

void section_control() {
  progress("5. control plane: xdp-pipeline run");
  Lab lab = make_lab();
  auto dir = std::filesystem::temp_directory_path() / g_tag;
  std::filesystem::create_directories(dir);
  g_paths.push_back(dir);
  const std::string name = g_tag + "-run";
  auto file = dir / "run.toml";
  std::ofstream(file) << pipeline_toml(name, lab.if_r, "pass", "");
  auto exe = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "xdp-pipeline";
  g_paths.push_back(std::filesystem::path("/sys/fs/bpf/xdp-pipeline") / name);  // removed by run itself; in case

  std::vector<double> attach_ms, rss_mb;
  const int runs = std::max(5, opt.rounds);
  for (int i = 0; i < runs; ++i) {
    int err_pipe[2];
    if (pipe2(err_pipe, O_CLOEXEC) != 0) die("pipe: %s", std::strerror(errno));
    auto start = Clock::now();
    pid_t child = fork();
    if (child == 0) {
      dup2(err_pipe[1], 2);
      int null = ::open("/dev/null", O_WRONLY);
      dup2(null, 1);
      execl(exe.c_str(), exe.c_str(), "run", file.c_str(), "--netns", lab.ns_r.c_str(), "--mode", "native",
            (char*)nullptr);
      _exit(127);
    }
    ::close(err_pipe[1]);
    std::string log;
    double ms = -1;
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(err_pipe[0], buffer, sizeof buffer)) > 0) {
      log.append(buffer, n);
      if (ms < 0 && log.find("' attached to ") != std::string::npos) {
        ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
        // Give it the time to publish its state, then stop it as a user would.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        kill(child, SIGTERM);
      }
    }
    ::close(err_pipe[0]);
    int status = 0;
    rusage usage{};
    wait4(child, &status, 0, &usage);
    if (ms < 0) die("xdp-pipeline run never attached (wait status 0x%x):\n%s", status, log.c_str());
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("xdp-pipeline run failed:\n%s", log.c_str());
    if (std::filesystem::exists(std::filesystem::path("/sys/fs/bpf/xdp-pipeline") / name))
      die("xdp-pipeline run left its pins behind");
    attach_ms.push_back(ms);
    rss_mb.push_back(usage.ru_maxrss / 1024.0);
    progress("  run %d: attached after %.1f ms, peak RSS %.1f MiB", i + 1, ms, usage.ru_maxrss / 1024.0);
  }
  md << "`xdp-pipeline run FILE --netns NS --mode native` with the four-stage pipeline (the configuration of "
        "section 1, default ring) on the receiver veth, " << runs
     << " runs. Time from fork to the log line \"... attached to ...\" on stderr; peak RSS from getrusage of the "
        "child (wait4) after SIGTERM 200 ms later. Every run exited 0 and removed its pins.\n\n"
     << "| | median | min | max |\n|---|---|---|---|\n"
     << "| start to attached | **" << fmt("%.1f ms", median(attach_ms)) << "** | "
     << fmt("%.1f ms", *std::min_element(attach_ms.begin(), attach_ms.end())) << " | "
     << fmt("%.1f ms", *std::max_element(attach_ms.begin(), attach_ms.end())) << " |\n"
     << "| peak RSS of run | **" << fmt("%.1f MiB", median(rss_mb)) << "** | "
     << fmt("%.1f MiB", *std::min_element(rss_mb.begin(), rss_mb.end())) << " | "
     << fmt("%.1f MiB", *std::max_element(rss_mb.begin(), rss_mb.end())) << " |\n\n";
  cleanup();
}

// ---------------------------------------------------------------------------------------------------------
// 6. Multi-buffer awareness: the same pipeline, before and after.

void section_multi_buffer() {
  progress("6. multi-buffer awareness (BPF_PROG_TEST_RUN)");
  if (opt.baseline_bpf.empty()) {
    md << "Not measured: no `--baseline-bpf DIR` (bench/run.sh builds it with bench/baseline.sh).\n\n";
    return;
  }
  const std::uint32_t repeat = opt.quick ? 200000 : 1000000;
  const std::string toml = pipeline_toml("bench", "none", "pass", "ring_size = 134217728");
  InterfaceInfo none{.name = "none", .ifindex = 0, .mac = std::nullopt};
  SearchPaths after_paths = SearchPaths::builtin();
  SearchPaths before_paths = after_paths;
  before_paths.bpf_dirs = {opt.baseline_bpf};
  auto load = [&](const SearchPaths& paths) {
    auto spec = must(parse_pipeline(toml, "bench.toml", Overrides{}, paths), "pipeline config");
    return must(Pipeline::load(std::move(spec), paths, none), "loading the pipeline");
  };
  auto before = load(before_paths);
  auto after = load(after_paths);
  if (before->root_object().multi_buffer() || !after->root_object().multi_buffer())
    die("section 6: the baseline must be single-buffer (SEC(\"xdp\")) and this build multi-buffer aware");
  RingDrain before_ring(pipeline_ring_fd(*before));
  RingDrain after_ring(pipeline_ring_fd(*after));

  const Kind kinds[] = {Kind::tcp_drop, Kind::tcp_pass, Kind::icmp_vip, Kind::udp_meta};
  for (Kind kind : kinds) {
    auto frame = make_frame(kind);
    auto a = test_run(before->root_fd(), frame, 1), b = test_run(after->root_fd(), frame, 1);
    if (a.retval != b.retval || a.data != b.data || before_ring.drain() != after_ring.drain())
      die("section 6: before and after differ on '%s'", kind_name(kind));
  }
  backends_to_vip(*before->stages()[2].object);
  backends_to_vip(*after->stages()[2].object);

  std::map<Kind, std::vector<double>> t_before, t_after, ratio;
  for (int round = 0; round < opt.rounds; ++round) {
    for (Kind kind : kinds) {
      auto frame = make_frame(kind);
      double t[2];
      int order[2] = {0, 1};
      if (round % 2) std::swap(order[0], order[1]);
      for (int which : order) {
        t[which] = test_run(which == 0 ? before->root_fd() : after->root_fd(), frame, repeat).duration;
        (which == 0 ? before_ring : after_ring).drain();
      }
      t_before[kind].push_back(t[0]);
      t_after[kind].push_back(t[1]);
      ratio[kind].push_back(t[1] / t[0]);
    }
    progress("  round %d/%d", round + 1, opt.rounds);
  }
  md << "The four-stage pipeline of section 1, 64-byte frames, loaded twice in this process: **before** = the BPF "
        "objects of commit " << (opt.baseline_commit.empty() ? "(unknown)" : opt.baseline_commit)
     << ", the last before multi-buffer awareness (SEC(\"xdp\"), parse checking lengths against the first buffer), "
        "built by bench/baseline.sh; **after** = this build (SEC(\"xdp.frags\"), lengths checked against the whole "
        "frame, headers split across buffers read with bpf_xdp_load_bytes). Same plugins and settings; same verdict, "
        "bytes out and events checked first. BPF_PROG_TEST_RUN, repeat = " << repeat << ", " << opt.rounds
     << " rounds, interleaved (order reversed every other round). The kernel reports whole nanoseconds per run, so "
        "one nanosecond is 1.3-5 % here; the mean of the per-round ratios is given beside their median.\n\n"
     << "| packet | before ns | after ns | **after / before** (median; target <= 1.02) | mean of ratios |\n"
        "|---|---|---|---|---|\n";
  double worst = 0;
  for (Kind kind : kinds) {
    double r = median(ratio[kind]);
    double mean = 0;
    for (double x : ratio[kind]) mean += x / ratio[kind].size();
    worst = std::max(worst, r);
    md << "| " << kind_name(kind) << " | " << fmt("%.1f", median(t_before[kind])) << " | "
       << fmt("%.1f", median(t_after[kind])) << " | **" << fmt("%.3f", r) << "** " << (r <= 1.02 ? "met" : "MISSED")
       << " | " << fmt("%.3f", mean) << " |\n";
  }
  md << "\nWorst after / before: **" << fmt("%.3f", worst) << "** (target <= 1.02: " << (worst <= 1.02 ? "met" : "MISSED")
     << ").\n\n";
  progress("  worst after/before %.3f", worst);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// 7. The context lever: bench/context.bpf.c.

void section_context() {
  progress("7. packet context: metadata area, per-CPU array or global data by CPU");
  const std::uint32_t repeat = opt.quick ? 200000 : 1000000;
  bpf_object* object = bpf_object__open_file(bench_object("bench_context.bpf.o").c_str(), nullptr);
  if (!object || bpf_object__load(object) != 0) die("bench_context.bpf.o: %s", std::strerror(errno));
  constexpr int kPrograms = 4;
  const char* names[kPrograms] = {"ctx_none", "ctx_meta", "ctx_percpu", "ctx_cpu"};
  int fds[kPrograms];
  for (int i = 0; i < kPrograms; ++i) fds[i] = bpf_program__fd(bpf_object__find_program_by_name(object, names[i]));
  auto frame = make_frame(Kind::tcp_drop);
  for (int fd : fds)
    if (test_run(fd, frame, 1000).retval != XDP_DROP) die("context programs: not XDP_DROP every time");
  std::vector<double> t[kPrograms], extra[kPrograms];
  for (int round = 0; round < opt.rounds; ++round) {
    for (int k = 0; k < kPrograms; ++k) {
      int i = round % 2 ? kPrograms - 1 - k : k;
      t[i].push_back(test_run(fds[i], frame, repeat).duration);
    }
    for (int i = 1; i < kPrograms; ++i) extra[i].push_back(t[i].back() - t[0].back());
  }
  bpf_object__close(object);
  md << "bench/context.bpf.c: what carrying 4 bytes of context costs one packet, beside a bare XDP_DROP; "
        "BPF_PROG_TEST_RUN, repeat = " << repeat << ", " << opt.rounds << " rounds interleaved, medians.\n\n"
     << "| program | ns | above the floor |\n|---|---|---|\n"
     << "| ctx_none (floor) | " << fmt("%.1f", median(t[0])) << " | |\n"
     << "| ctx_meta: bpf_xdp_adjust_meta(-32), write, adjust_meta(+32) before the verdict | "
     << fmt("%.1f", median(t[1])) << " | **" << fmt("%+.1f", median(extra[1])) << "** (per packet) |\n"
     << "| ctx_percpu: one per-CPU array lookup, write (contract 3) | " << fmt("%.1f", median(t[2])) << " | **"
     << fmt("%+.1f", median(extra[2])) << "** (per stage that reads the context) |\n"
     << "| ctx_cpu: global data line of this CPU (CPU number, shift), write (contract 4) | "
     << fmt("%.1f", median(t[3])) << " | **" << fmt("%+.1f", median(extra[3])) << "** (per stage that reads the context) |\n\n";
  progress("  meta %+.1f ns, per-CPU %+.1f ns, by CPU number %+.1f ns", median(extra[1]), median(extra[2]),
           median(extra[3]));
}

int main(int argc, char** argv) {
  g_tag = "xdppb" + std::to_string(getpid());
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--tag" && i + 1 < argc) g_tag = argv[++i];
    else if (a == "--rounds" && i + 1 < argc) opt.rounds = std::max(1, std::atoi(argv[++i]));
    else if (a == "--sections" && i + 1 < argc) opt.sections = argv[++i];
    else if (a == "--quick") opt.quick = true;
    else if (a == "--baseline-bpf" && i + 1 < argc) opt.baseline_bpf = argv[++i];
    else if (a == "--baseline-commit" && i + 1 < argc) opt.baseline_commit = argv[++i];
    else if (a == "--compare" && i + 1 < argc) opt.compare = argv[++i];
    else {
      std::fprintf(stderr, "usage: xdpp-bench [--tag NAME] [--rounds N] [--sections 123456] [--quick] "
                           "[--baseline-bpf DIR [--baseline-commit REF]] [--compare regs|stack|cpu|lookup]\n");
      return 2;
    }
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGHUP, on_signal);
  std::atexit(cleanup);
  libbpf_set_print([](enum libbpf_print_level level, const char* format, va_list args) {
    return level == LIBBPF_WARN ? std::vfprintf(stderr, format, args) : 0;
  });
  pin_to_cpu(0);

  auto has = [](char s) { return opt.sections.find(s) != std::string::npos; };
  if (has('1')) {
    md << "## 1. Per packet: floor, monolithic, pipeline\n\n";
    section_per_packet();
  }
  if (has('2')) {
    md << "## 2. Chain scaling\n\n";
    section_chain();
  }
  if (has('3') || has('4')) {
    md << "## 3. Live traffic on a veth pair\n\n";
    section_live();
  }
  if (has('5')) {
    md << "## 5. Control plane\n\n";
    section_control();
  }
  if (has('6')) {
    md << "## 6. Multi-buffer awareness: 64-byte frames before and after\n\n";
    section_multi_buffer();
  }
  if (has('7')) {
    md << "## 7. The packet context: XDP metadata area, per-CPU array or global data by CPU\n\n";
    section_context();
  }
  std::fputs(md.str().c_str(), stdout);
  cleanup();
  return 0;
}
