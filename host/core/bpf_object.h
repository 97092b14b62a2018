// RAII owners for what libbpf and the kernel hand out: file descriptors and BPF objects.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <xdp_pipeline/plugin.h>
#include <xdp_pipeline/result.h>

struct bpf_object;
struct bpf_program;

namespace xdpp {

/// Owns a file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() { int fd = fd_; fd_ = -1; return fd; }
  void reset(int fd = -1);
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

/// Name of a stage's (or the dispatcher's) program pin next to its maps: a '-' is in no map's name.
inline constexpr const char* kProgramPinName = "xdp-program";

/// SHA-256 of `bytes`, in hex.
std::string sha256_hex(std::span<const char> bytes);

/// SHA-256 of a file's bytes, in hex ("" when it cannot be read).
std::string file_sha256(const std::filesystem::path& file);

/// A loaded program's tag (the kernel's hash of its instructions), in hex ("" on error).
std::string prog_tag(int prog_fd);

/// The number of possible CPUs (what per-CPU maps and the packet context are sized by).
Result<int> possible_cpus();

/// libbpf's maps for global data (.rodata, .bss, .data, .kconfig): not state, never pinned or carried over.
/// A stage's own data section (XDPP_STAGE_DATA_SECTION, contract 3) is state like its maps, and the chain's
/// packet context (XDPP_CONTEXT_SECTION, contract 4) is shared like the chain's maps.
inline bool is_internal_map(const std::string& name) {
  return name.find('.') != std::string::npos && name != XDPP_STAGE_DATA_SECTION && name != XDPP_CONTEXT_SECTION;
}

/// The file name a map is pinned under: its name, except the global data sections', whose dots bpffs refuses.
std::string map_pin_name(const std::string& map_name);
/// The map pinned under file name `pin` (the inverse of map_pin_name).
std::string map_name_of_pin(const std::string& pin);

/// A map's kernel-side identity.
Result<MapHandle> map_handle_from_fd(int fd, const std::string& name);

/// A stage's (or the dispatcher's) BPF object: opened, then configured, then loaded. It is the
/// StageObject a plugin sees.
class LoadedObject final : public StageObject {
 public:
  /// Opens `file` and checks that it was built against this contract version. Only the program
  /// `program_name` will be loaded.
  static Result<std::unique_ptr<LoadedObject>> open(const std::filesystem::path& file, std::string stage_name,
                                                    const InterfaceInfo& interface,
                                                    const std::string& program_name);
  /// What a persisted pipeline left in the kernel: the maps and the program pinned in `pins` (kPinRoot/NAME/
  /// STAGE, see state.h), taken over as they are, nothing loaded. `file` and `digest` are what the run
  /// that loaded them recorded.
  static Result<std::unique_ptr<LoadedObject>> adopt(const std::filesystem::path& pins, std::string stage_name,
                                                     const InterfaceInfo& interface, std::filesystem::path file,
                                                     std::string digest);
  ~LoadedObject() override;

  // StageObject
  const std::string& stage_name() const override { return stage_name_; }
  const InterfaceInfo& interface() const override { return interface_; }
  Result<MapHandle> map(std::string_view name) const override;
  Status set_constant(std::string_view name, const void* value, std::size_t size) override;
  using StageObject::set_constant;
  Status set_map_size(std::string_view name, std::uint32_t max_entries) override;

  /// Before load: use the map `fd` for the object's map `name` (the maps a chain shares).
  Status reuse_map(std::string_view name, int fd);
  /// Loads into the kernel (the verifier runs here).
  Status load();

  int prog_fd() const;
  /// Whether the program is multi-buffer aware: SEC("xdp.frags"), loaded with BPF_F_XDP_HAS_FRAGS.
  bool multi_buffer() const;
  std::uint32_t prog_id() const;
  /// Every map but libbpf's internal ones (.rodata, .bss), after load.
  std::vector<MapHandle> maps() const;
  /// Every map of the given BPF_MAP_TYPE_* (e.g. the ring buffers), after load.
  std::vector<MapHandle> maps_of_type(std::uint32_t type) const;
  const std::filesystem::path& file() const { return file_; }
  /// SHA-256 (hex) of the object file's bytes as they were loaded (libbpf opens those very bytes).
  const std::string& digest() const { return digest_; }
  /// The libbpf object; nullptr for an adopted one (its maps are pins, not libbpf's).
  bpf_object* raw() const { return object_; }
  bool adopted() const { return object_ == nullptr; }
  /// Whether .rodata holds the constant `name` (what set_constant() needs).
  bool has_constant(std::string_view name) const { return rodata_variable(name).ok(); }

 private:
  LoadedObject() = default;
  struct RodataVariable {
    struct bpf_map* section;
    const char* section_data;
    std::size_t section_size;
    std::size_t offset;
    std::size_t size;
  };
  Result<RodataVariable> rodata_variable(std::string_view name) const;

  bpf_object* object_ = nullptr;
  bpf_program* program_ = nullptr;
  std::vector<char> bytes_;  // the file as read; libbpf parses it until load
  std::string digest_;
  std::map<std::string, UniqueFd, std::less<>> adopted_maps_;  // adopted: map name -> fd from its pin
  UniqueFd adopted_program_;
  bool adopted_multi_buffer_ = true;  // adopted: whether the recorded file's program is SEC("xdp.frags")
  std::filesystem::path file_;
  std::string stage_name_;
  InterfaceInfo interface_;
  bool loaded_ = false;
};

}  // namespace xdpp
