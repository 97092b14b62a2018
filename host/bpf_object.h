// RAII owners for what libbpf and the kernel hand out: file descriptors and BPF objects.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
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

/// libbpf's maps for global data (.rodata, .bss, .data): not state, never pinned or carried over.
inline bool is_internal_map(const std::string& name) { return name.find('.') != std::string::npos; }

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
  ~LoadedObject() override;

  // StageObject
  const std::string& stage_name() const override { return stage_name_; }
  const InterfaceInfo& interface() const override { return interface_; }
  Result<MapHandle> map(std::string_view name) const override;
  Status set_constant(std::string_view name, const void* value, std::size_t size) override;
  using StageObject::set_constant;
  Status set_map_size(std::string_view name, std::uint32_t max_entries) override;

  /// Before load: use the map `fd` for the object's map `name` (shared chain and scratch maps).
  Status reuse_map(std::string_view name, int fd);
  /// Loads into the kernel (the verifier runs here).
  Status load();

  int prog_fd() const;
  std::uint32_t prog_id() const;
  /// Every map of the given BPF_MAP_TYPE_* (e.g. the ring buffers), after load.
  std::vector<MapHandle> maps_of_type(std::uint32_t type) const;
  const std::filesystem::path& file() const { return file_; }
  bpf_object* raw() const { return object_; }
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
  std::filesystem::path file_;
  std::string stage_name_;
  InterfaceInfo interface_;
  bool loaded_ = false;
};

}  // namespace xdpp
