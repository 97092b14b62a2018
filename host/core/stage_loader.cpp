#include "stage_loader.h"

#include <bpf/libbpf.h>

#include <exception>

#include "bpf_object.h"
#include "log.h"

extern "C" {
#include <xdp_pipeline/contract.h>
}

namespace xdpp {

Result<std::shared_ptr<Stage>> create_instance(const std::shared_ptr<LoadedPlugin>& plugin, const toml::table& settings,
                                            const std::string& file, const std::string& name) {
  try {
    Settings reader(settings, file, name);
    for (const char* key : {"name", "plugin", "object"}) reader.find(key);
    std::shared_ptr<Stage> instance = adopt_stage(plugin->factory().create(reader), plugin);
    reader.reject_unread_keys();
    return instance;
  } catch (const std::exception& failure) {
    return Error{failure.what()};
  } catch (...) {
    return fail("stage '", name, "': the plugin threw while validating its settings");
  }
}

namespace {

// A stage's BPF object, opened (not loaded) once the file is safe to load; errors begin with `where`.
Result<std::unique_ptr<LoadedObject>> open_stage_object(const StageSpec& spec, const InterfaceInfo& interface,
                                                        const std::string& where) {
  XDPP_TRY(check_file_safe(spec.object_path, "BPF object").context(where));
  auto object = LoadedObject::open(spec.object_path, spec.name, interface, std::string(spec.plugin->factory().program_name()));
  if (!object) return fail(where, ": ", object.error().message);
  return object;
}

// The size of the packet context section: one line per CPU, XDPP_MAX_CPUS of them.
constexpr std::size_t kContextBytes = std::size_t(XDPP_MAX_CPUS) * XDPP_CONTEXT_LINE;

// The packet context section a stage object declares must be the one this host's chains share
// (a stage built with another XDPP_MAX_CPUS would mask CPU numbers with it).
Status check_context_section(const LoadedObject& object, const std::string& where) {
  const bpf_map* map = bpf_object__find_map_by_name(object.raw(), XDPP_CONTEXT_SECTION);
  if (!map) return fail(where, ": no packet context section '", XDPP_CONTEXT_SECTION, "'; build it with <xdp_pipeline/stage.h>");
  if (bpf_map__value_size(map) != kContextBytes)
    return fail(where, ": its packet context holds ", std::to_string(bpf_map__value_size(map)), " bytes, this host's ",
                std::to_string(kContextBytes), " (XDPP_MAX_CPUS ", std::to_string(XDPP_MAX_CPUS), " lines of ",
                std::to_string(XDPP_CONTEXT_LINE), " bytes): rebuild the stage against this xdp-pipeline's headers");
  return {};
}

// The packet context has one line per CPU, indexed by the CPU number masked with XDPP_MAX_CPUS - 1: on a
// machine with more possible CPUs two of them would share a line and corrupt each other's packets.
Status check_cpu_count() {
  auto cpus = possible_cpus();
  if (!cpus) return cpus.error();
  if (*cpus > XDPP_MAX_CPUS)
    return fail("this machine has ", std::to_string(*cpus), " possible CPUs and the packet context holds ",
                std::to_string(XDPP_MAX_CPUS), ": rebuild xdp-pipeline with a larger XDPP_MAX_CPUS (a power of 2) in "
                "bpf/include/xdp_pipeline/contract.h");
  return {};
}

}  // namespace

Status check_stage_objects(const PipelineSpec& pipeline) {
  const InterfaceInfo nowhere{};
  for (const StageSpec& spec : pipeline.stages) {
    const std::string where =
        (spec.object_where.empty() ? pipeline.file : spec.object_where) + ": stage '" + spec.name + "'";
    auto object = open_stage_object(spec, nowhere, where);
    if (!object) return object.error();
    // What load_stage_object() sets and shares must be there: a stage built without xdp_pipeline/stage.h
    // would open and then fail at load.
    for (const char* constant : {"xdpp_next_slot", "xdpp_default_verdict", "xdpp_entry", "xdpp_counters_slot"})
      if (!(*object)->has_constant(constant))
        return fail(where, ": BPF object ", spec.object_path.string(), ": no constant '", constant, "'");
    if (!bpf_object__find_map_by_name((*object)->raw(), XDPP_CHAIN_MAP_NAME))
      return fail(where, ": BPF object ", spec.object_path.string(), ": no map '", XDPP_CHAIN_MAP_NAME, "'");
    XDPP_TRY(check_context_section(**object, where + ": BPF object " + spec.object_path.string()));
  }
  return {};
}

Result<SharedMaps> shared_maps_of(const LoadedObject& root, std::uint32_t counters_slot, std::size_t interfaces) {
  auto chain = root.map(XDPP_CHAIN_MAP_NAME);
  auto context = root.map(XDPP_CONTEXT_SECTION);
  auto if_packets = root.map(XDPP_IF_COUNTERS_MAP_NAME);
  if (!chain || !context || !if_packets) return fail("dispatcher: shared maps missing");
  if (context->value_size != kContextBytes)
    return fail("dispatcher: its packet context holds ", std::to_string(context->value_size), " bytes, not ",
                std::to_string(kContextBytes));
  XDPP_TRY(check_cpu_count());
  return SharedMaps{.chain = chain->fd, .context = context->fd, .multi_buffer = root.multi_buffer(),
                    .counters_slot = counters_slot, .if_packets = if_packets->fd,
                    .count_interfaces = interfaces > 1 ? 1u : 0u};
}

namespace {

// Points every map of `object` (before load) at the map of the same name in `origin.previous`, so that the
// stage's state carries over (MapOrigin says when not). The stage's counters (the framework's, not the
// stage's state) carry over even with reset_state, so that they never go back; a counters map of another
// shape (another contract) starts empty, and what it counted is kept in the bases (LiveChanges::rebuild).
Status carry_over_maps(LoadedObject& object, const MapOrigin& origin) {
  bpf_map* map;
  bpf_object__for_each_map(map, object.raw()) {
    std::string name = bpf_map__name(map);
    if (is_internal_map(name) || name == XDPP_CHAIN_MAP_NAME || name == XDPP_CONTEXT_SECTION ||
        name == XDPP_IF_COUNTERS_MAP_NAME)
      continue;
    const bool counters = name == XDPP_COUNTERS_MAP_NAME;
    if (origin.reset_state && !counters) continue;
    auto old = origin.previous->map(name);
    if (!old) continue;  // a map the old program did not have starts empty
    const bool same = old->type == static_cast<std::uint32_t>(bpf_map__type(map)) &&
                      old->key_size == bpf_map__key_size(map) && old->value_size == bpf_map__value_size(map) &&
                      old->max_entries == bpf_map__max_entries(map);
    if (!same && counters) continue;
    if (!same && origin.fresh_if_changed) {
      log::warn("stage '" + object.stage_name() + "': map '" + name + "' changed shape: it starts empty");
      continue;
    }
    if (!same)
      return fail("map '", name, "' changed shape (type/key/value/entries ", std::to_string(old->type), "/",
                  std::to_string(old->key_size), "/", std::to_string(old->value_size), "/",
                  std::to_string(old->max_entries), " -> ", std::to_string(bpf_map__type(map)), "/",
                  std::to_string(bpf_map__key_size(map)), "/", std::to_string(bpf_map__value_size(map)), "/",
                  std::to_string(bpf_map__max_entries(map)), "), so its state cannot carry over");
    XDPP_TRY(object.reuse_map(name, old->fd));
  }
  return {};
}

// The kernel would refuse the program at load with a bare EINVAL (a prog array's programs must agree on
// BPF_F_XDP_HAS_FRAGS); says what is wrong and what to do instead.
Status check_same_buffers(const StageSpec& spec, const LoadedObject& loaded, bool chain_multi_buffer) {
  if (loaded.multi_buffer() == chain_multi_buffer) return {};
  auto section = [](bool frags) { return frags ? "SEC(\"xdp.frags\") (multi-buffer aware)" : "SEC(\"xdp\") (single buffer)"; };
  return fail("stage '", spec.name, "': ", spec.object_path.string(), ": program '",
              std::string(spec.plugin->factory().program_name()), "' is ", section(loaded.multi_buffer()),
              " but the dispatcher is ", section(chain_multi_buffer),
              ", and the kernel requires every program of one chain to agree; rebuild the stage with XDPP_STAGE() "
              "from <xdp_pipeline/stage.h>, which declares SEC(\"xdp.frags\")");
}

}  // namespace

Result<std::unique_ptr<LoadedObject>> load_stage_object(const StageSpec& spec, const StagePlace& place,
                                                        const SharedMaps& shared, const InterfaceInfo& interface,
                                                        const MapOrigin& origin) {
  const std::string where = "stage '" + spec.name + "'";
  auto object = open_stage_object(spec, interface, where);
  if (!object) return object.error();
  LoadedObject& loaded = **object;
  XDPP_TRY(check_same_buffers(spec, loaded, shared.multi_buffer));
  const bool entry = place.slot == 0;
  std::uint32_t next = place.slot + 1 < place.count ? place.slot + 1 : XDPP_NO_NEXT;
  XDPP_TRY(loaded.set_constant("xdpp_next_slot", next));
  XDPP_TRY(loaded.set_constant("xdpp_default_verdict", place.default_verdict));
  XDPP_TRY(loaded.set_constant("xdpp_entry", static_cast<std::uint32_t>(entry)));
  XDPP_TRY(loaded.set_constant("xdpp_counters_slot", shared.counters_slot));
  XDPP_TRY(loaded.set_constant("xdpp_count_interfaces", entry ? shared.count_interfaces : 0u));
  XDPP_TRY(loaded.reuse_map(XDPP_CHAIN_MAP_NAME, shared.chain));
  XDPP_TRY(check_context_section(loaded, where));
  XDPP_TRY(loaded.reuse_map(XDPP_CONTEXT_SECTION, shared.context));
  XDPP_TRY(loaded.reuse_map(XDPP_IF_COUNTERS_MAP_NAME, shared.if_packets));
  XDPP_TRY(call_plugin(where, [&] { return spec.instance->before_load(loaded); }).context(where));
  if (origin.previous) XDPP_TRY(carry_over_maps(loaded, origin).context(where));
  XDPP_TRY(loaded.load());
  return std::move(*object);
}

Status configure_stage(const StageSpec& spec, LoadedObject& object) {
  const std::string where = "stage '" + spec.name + "'";
  return call_plugin(where, [&] { return spec.instance->configure(object); }).context(where);
}

}  // namespace xdpp
