#include "bpf_object.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

namespace xdpp {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

namespace {
// libbpf's own codes (4000 and up: "Invalid ELF format", "Incorrect kernel version", ...) are not errno
// values: strerror() would say "Unknown error 4003".
std::string errno_text(int err) {
  char text[256];
  libbpf_strerror(err, text, sizeof text);
  return text;
}
}  // namespace

std::string sha256_hex(std::span<const char> bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr)) return "";
  static const char* hex = "0123456789abcdef";
  std::string text;
  for (unsigned int i = 0; i < length; ++i) {
    text += hex[digest[i] >> 4];
    text += hex[digest[i] & 15];
  }
  return text;
}

std::string file_sha256(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return "";
  std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return in.bad() ? "" : sha256_hex(bytes);
}

std::string prog_tag(int prog_fd) {
  bpf_prog_info info{};
  __u32 length = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &length) != 0) return "";
  static const char* hex = "0123456789abcdef";
  std::string text;
  for (int i = 0; i < BPF_TAG_SIZE; ++i) {
    text += hex[info.tag[i] >> 4];
    text += hex[info.tag[i] & 15];
  }
  return text;
}

Result<int> possible_cpus() {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return fail("cannot count the possible CPUs: ", std::strerror(cpus < 0 ? -cpus : EINVAL));
  return cpus;
}

namespace {
// The global data sections the host pins, and their pin names.
constexpr std::pair<const char*, const char*> kSectionPins[] = {{XDPP_STAGE_DATA_SECTION, XDPP_STAGE_DATA_PIN},
                                                                {XDPP_CONTEXT_SECTION, XDPP_CONTEXT_PIN}};
}  // namespace

std::string map_pin_name(const std::string& map_name) {
  for (const auto& [section, pin] : kSectionPins)
    if (map_name == section) return pin;
  return map_name;
}

std::string map_name_of_pin(const std::string& pin_name) {
  for (const auto& [section, pin] : kSectionPins)
    if (pin_name == pin) return section;
  return pin_name;
}

Result<MapHandle> map_handle_from_fd(int fd, const std::string& name) {
  bpf_map_info info{};
  __u32 length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0) return fail("map '", name, "': ", errno_text(errno));
  return MapHandle{.fd = fd,
                   .name = name,
                   .type = info.type,
                   .key_size = info.key_size,
                   .value_size = info.value_size,
                   .max_entries = info.max_entries};
}

Result<std::unique_ptr<LoadedObject>> LoadedObject::open(const std::filesystem::path& file, std::string stage_name,
                                                         const InterfaceInfo& interface,
                                                         const std::string& program_name) {
  std::unique_ptr<LoadedObject> self(new LoadedObject());
  self->file_ = file;
  self->stage_name_ = std::move(stage_name);
  self->interface_ = interface;
  // Read once, digest and open the same bytes: what is recorded is what was loaded, even if the file
  // changes meanwhile.
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail("BPF object ", file.string(), ": ", errno_text(errno));
  self->bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) return fail("BPF object ", file.string(), ": read error");
  self->digest_ = sha256_hex(self->bytes_);
  const std::string object_name = file.stem().string();
  LIBBPF_OPTS(bpf_object_open_opts, options, .object_name = object_name.c_str());
  self->object_ = bpf_object__open_mem(self->bytes_.data(), self->bytes_.size(), &options);
  if (!self->object_) return fail("BPF object ", file.string(), ": ", errno_text(errno));

  bpf_program* program;
  bpf_object__for_each_program(program, self->object_) {
    bool wanted = program_name == bpf_program__name(program);
    bpf_program__set_autoload(program, wanted);
    if (wanted) self->program_ = program;
  }
  if (!self->program_) return fail("BPF object ", file.string(), ": no program named '", program_name, "'");
  if (bpf_program__type(self->program_) != BPF_PROG_TYPE_XDP)
    return fail("BPF object ", file.string(), ": program '", program_name, "' is not an XDP program (SEC(\"xdp.frags\"))");

  auto version = self->rodata_variable("xdpp_contract_version");
  if (!version)
    return fail("BPF object ", file.string(), ": no xdpp_contract_version (not built with xdp_pipeline/stage.h)");
  std::uint32_t found = 0;
  std::memcpy(&found, version->section_data + version->offset, std::min<std::size_t>(version->size, sizeof(found)));
  if (found != XDPP_CONTRACT_VERSION)
    return fail("BPF object ", file.string(), ": built against contract version ", std::to_string(found),
                ", this xdp-pipeline speaks version ", std::to_string(XDPP_CONTRACT_VERSION));
  return self;
}

namespace {

// libbpf adds BPF_F_XDP_HAS_FRAGS for SEC("xdp.frags") only in the load request, not to the program's
// flags: the section name says it.
bool is_multi_buffer(const bpf_program* program) {
  const std::string section = bpf_program__section_name(program);
  return (bpf_program__flags(program) & BPF_F_XDP_HAS_FRAGS) != 0 || section == "xdp.frags" ||
         section.rfind("xdp.frags/", 0) == 0;
}

// Whether the programs of a BPF object file are multi-buffer aware, read from the file (nothing loaded). The
// kernel does not report BPF_F_XDP_HAS_FRAGS for a loaded program, so an adopted program is known by the
// file it was loaded from; a file that cannot be read is taken to be what <xdp_pipeline/stage.h> builds
// (multi-buffer): were it not, the kernel would refuse the mismatched program at the chain's update.
bool file_is_multi_buffer(const std::filesystem::path& file) {
  bpf_object* object = bpf_object__open_file(file.c_str(), nullptr);
  if (!object || libbpf_get_error(object)) return true;
  bool multi_buffer = true;
  bpf_program* program;
  bpf_object__for_each_program(program, object) multi_buffer = is_multi_buffer(program);
  bpf_object__close(object);
  return multi_buffer;
}

}  // namespace

Result<std::unique_ptr<LoadedObject>> LoadedObject::adopt(const std::filesystem::path& pins, std::string stage_name,
                                                          const InterfaceInfo& interface, std::filesystem::path file,
                                                          std::string digest) {
  std::unique_ptr<LoadedObject> self(new LoadedObject());
  self->file_ = std::move(file);
  self->adopted_multi_buffer_ = file_is_multi_buffer(self->file_);
  self->digest_ = std::move(digest);
  self->stage_name_ = std::move(stage_name);
  self->interface_ = interface;
  self->loaded_ = true;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(pins, error)) {
    const std::string name = entry.path().filename().string();
    UniqueFd fd(bpf_obj_get(entry.path().c_str()));
    if (!fd) return fail("stage '", self->stage_name_, "': pin ", entry.path().string(), ": ", errno_text(errno));
    if (name == kProgramPinName)
      self->adopted_program_ = std::move(fd);
    else
      self->adopted_maps_.emplace(map_name_of_pin(name), std::move(fd));
  }
  if (error) return fail("stage '", self->stage_name_, "': ", pins.string(), ": ", error.message());
  if (!self->adopted_program_) return fail("stage '", self->stage_name_, "': no program pinned in ", pins.string());
  return self;
}

LoadedObject::~LoadedObject() {
  if (object_) bpf_object__close(object_);
}

// Finds a global of .rodata through the object's BTF: the DATASEC lists each variable's offset.
Result<LoadedObject::RodataVariable> LoadedObject::rodata_variable(std::string_view name) const {
  bpf_map* rodata = bpf_object__find_map_by_name(object_, ".rodata");
  const btf* types = bpf_object__btf(object_);
  if (!rodata || !types) return fail("no .rodata with BTF");
  std::size_t section_size = 0;
  const auto* data = static_cast<const char*>(bpf_map__initial_value(rodata, &section_size));
  int section_id = btf__find_by_name_kind(types, ".rodata", BTF_KIND_DATASEC);
  if (!data || section_id < 0) return fail("no .rodata with BTF");
  const btf_type* section = btf__type_by_id(types, section_id);
  const btf_var_secinfo* info = btf_var_secinfos(section);
  for (int i = 0; i < btf_vlen(section); ++i, ++info) {
    const btf_type* variable = btf__type_by_id(types, info->type);
    if (name == btf__name_by_offset(types, variable->name_off)) {
      if (info->offset + info->size > section_size) break;
      return RodataVariable{.section = rodata,
                            .section_data = data,
                            .section_size = section_size,
                            .offset = info->offset,
                            .size = info->size};
    }
  }
  return fail("no constant '", std::string(name), "' in .rodata");
}

Result<MapHandle> LoadedObject::map(std::string_view name) const {
  if (adopted()) {
    auto found = adopted_maps_.find(name);
    if (found == adopted_maps_.end()) return fail("stage '", stage_name_, "': no map '", std::string(name), "' pinned");
    return map_handle_from_fd(found->second.get(), std::string(name));
  }
  bpf_map* map = bpf_object__find_map_by_name(object_, std::string(name).c_str());
  if (!map) return fail("stage '", stage_name_, "': no map '", std::string(name), "'");
  if (!loaded_) return fail("stage '", stage_name_, "': map '", std::string(name), "' used before load");
  return map_handle_from_fd(bpf_map__fd(map), std::string(name));
}

Status LoadedObject::set_constant(std::string_view name, const void* value, std::size_t size) {
  if (adopted()) return fail("stage '", stage_name_, "': constant '", std::string(name), "' set on a running program");
  if (loaded_) return fail("stage '", stage_name_, "': constant '", std::string(name), "' set after load");
  auto variable = rodata_variable(name);
  if (!variable) return fail("stage '", stage_name_, "': ", variable.error().message);
  if (variable->size != size)
    return fail("stage '", stage_name_, "': constant '", std::string(name), "' has ", std::to_string(variable->size),
                " bytes, not ", std::to_string(size));
  std::vector<char> section(variable->section_data, variable->section_data + variable->section_size);
  std::memcpy(section.data() + variable->offset, value, size);
  if (int err = bpf_map__set_initial_value(variable->section, section.data(), section.size()))
    return fail("stage '", stage_name_, "': constant '", std::string(name), "': ", errno_text(err));
  return {};
}

Status LoadedObject::set_map_size(std::string_view name, std::uint32_t max_entries) {
  if (adopted()) return fail("stage '", stage_name_, "': map '", std::string(name), "' resized on a running program");
  bpf_map* map = bpf_object__find_map_by_name(object_, std::string(name).c_str());
  if (!map) return fail("stage '", stage_name_, "': no map '", std::string(name), "'");
  if (int err = bpf_map__set_max_entries(map, max_entries))
    return fail("stage '", stage_name_, "': map '", std::string(name), "': size ", std::to_string(max_entries), ": ",
                errno_text(err));
  return {};
}

Status LoadedObject::reuse_map(std::string_view name, int fd) {
  if (adopted()) return fail("stage '", stage_name_, "': map '", std::string(name), "' shared after load");
  bpf_map* map = bpf_object__find_map_by_name(object_, std::string(name).c_str());
  if (!map) return fail("stage '", stage_name_, "': no map '", std::string(name), "' to share");
  if (int err = bpf_map__reuse_fd(map, fd))
    return fail("stage '", stage_name_, "': sharing map '", std::string(name), "': ", errno_text(err));
  return {};
}

Status LoadedObject::load() {
  if (adopted()) return {};
  // libbpf prints the verifier log through its print callback (installed by the host) on failure.
  if (int err = bpf_object__load(object_)) {
    // EPERM is privileges (the verifier refuses with EACCES or EINVAL, and says why in its log).
    if (err == -EPERM)
      return fail("stage '", stage_name_, "': loading ", file_.string(), ": ", errno_text(err),
                  ": missing privileges: loading BPF programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), "
                  "attaching them CAP_NET_ADMIN; run as root, or grant those capabilities (e.g. systemd's "
                  "AmbientCapabilities)");
    return fail("stage '", stage_name_, "': loading ", file_.string(), ": ", errno_text(err));
  }
  loaded_ = true;
  return {};
}

int LoadedObject::prog_fd() const { return adopted() ? adopted_program_.get() : bpf_program__fd(program_); }

bool LoadedObject::multi_buffer() const { return adopted() ? adopted_multi_buffer_ : is_multi_buffer(program_); }

std::uint32_t LoadedObject::prog_id() const {
  bpf_prog_info info{};
  __u32 length = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd(), &info, &length) != 0) return 0;
  return info.id;
}

std::vector<MapHandle> LoadedObject::maps() const {
  std::vector<MapHandle> result;
  if (adopted()) {
    for (const auto& [name, fd] : adopted_maps_)
      if (auto handle = map_handle_from_fd(fd.get(), name)) result.push_back(*handle);
    return result;
  }
  bpf_map* map;
  bpf_object__for_each_map(map, object_) {
    if (is_internal_map(bpf_map__name(map))) continue;
    if (auto handle = map_handle_from_fd(bpf_map__fd(map), bpf_map__name(map))) result.push_back(*handle);
  }
  return result;
}

std::vector<MapHandle> LoadedObject::maps_of_type(std::uint32_t type) const {
  std::vector<MapHandle> result;
  if (adopted()) {
    for (const auto& [name, fd] : adopted_maps_)
      if (auto handle = map_handle_from_fd(fd.get(), name); handle && handle->type == type) result.push_back(*handle);
    return result;
  }
  bpf_map* map;
  bpf_object__for_each_map(map, object_) {
    if (bpf_map__type(map) != static_cast<bpf_map_type>(type)) continue;
    if (auto handle = map_handle_from_fd(bpf_map__fd(map), bpf_map__name(map))) result.push_back(*handle);
  }
  return result;
}

}  // namespace xdpp
