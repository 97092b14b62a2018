#include "bpf_object.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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
  self->object_ = bpf_object__open_file(file.c_str(), nullptr);
  if (!self->object_) return fail("BPF object ", file.string(), ": ", errno_text(errno));

  bpf_program* program;
  bpf_object__for_each_program(program, self->object_) {
    bool wanted = program_name == bpf_program__name(program);
    bpf_program__set_autoload(program, wanted);
    if (wanted) self->program_ = program;
  }
  if (!self->program_) return fail("BPF object ", file.string(), ": no program named '", program_name, "'");
  if (bpf_program__type(self->program_) != BPF_PROG_TYPE_XDP)
    return fail("BPF object ", file.string(), ": program '", program_name, "' is not SEC(\"xdp\")");

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
  bpf_map* map = bpf_object__find_map_by_name(object_, std::string(name).c_str());
  if (!map) return fail("stage '", stage_name_, "': no map '", std::string(name), "'");
  if (!loaded_) return fail("stage '", stage_name_, "': map '", std::string(name), "' used before load");
  return map_handle_from_fd(bpf_map__fd(map), std::string(name));
}

Status LoadedObject::set_constant(std::string_view name, const void* value, std::size_t size) {
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
  bpf_map* map = bpf_object__find_map_by_name(object_, std::string(name).c_str());
  if (!map) return fail("stage '", stage_name_, "': no map '", std::string(name), "'");
  if (int err = bpf_map__set_max_entries(map, max_entries))
    return fail("stage '", stage_name_, "': map '", std::string(name), "': size ", std::to_string(max_entries), ": ",
                errno_text(err));
  return {};
}

Status LoadedObject::reuse_map(std::string_view name, int fd) {
  bpf_map* map = bpf_object__find_map_by_name(object_, std::string(name).c_str());
  if (!map) return fail("stage '", stage_name_, "': no map '", std::string(name), "' to share");
  if (int err = bpf_map__reuse_fd(map, fd))
    return fail("stage '", stage_name_, "': sharing map '", std::string(name), "': ", errno_text(err));
  return {};
}

Status LoadedObject::load() {
  // libbpf prints the verifier log through its print callback (installed by the host) on failure.
  if (int err = bpf_object__load(object_))
    return fail("stage '", stage_name_, "': loading ", file_.string(), ": ", errno_text(err));
  loaded_ = true;
  return {};
}

int LoadedObject::prog_fd() const { return bpf_program__fd(program_); }

std::uint32_t LoadedObject::prog_id() const {
  bpf_prog_info info{};
  __u32 length = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd(), &info, &length) != 0) return 0;
  return info.id;
}

std::vector<MapHandle> LoadedObject::maps_of_type(std::uint32_t type) const {
  std::vector<MapHandle> result;
  bpf_map* map;
  bpf_object__for_each_map(map, object_) {
    if (bpf_map__type(map) != static_cast<bpf_map_type>(type)) continue;
    if (auto handle = map_handle_from_fd(bpf_map__fd(map), bpf_map__name(map))) result.push_back(*handle);
  }
  return result;
}

}  // namespace xdpp
