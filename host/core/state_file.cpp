#include "state_file.h"

#include "json_fields.h"

namespace xdpp::state {
namespace {

using nlohmann::json;

// Keys of the state file.
constexpr const char* kName = "name";
constexpr const char* kPid = "pid";
constexpr const char* kFile = "file";
constexpr const char* kInterface = "interface";
constexpr const char* kInterfaces = "interfaces";
constexpr const char* kIfindex = "ifindex";
constexpr const char* kMode = "mode";
constexpr const char* kLinkId = "link_id";
constexpr const char* kPersist = "persist";
constexpr const char* kContractVersion = "contract_version";
constexpr const char* kDefaultVerdict = "default_verdict";
constexpr const char* kEntryProgId = "entry_prog_id";
constexpr const char* kCounterBases = "counter_bases";
constexpr const char* kDispatcher = "dispatcher";
constexpr const char* kVersion = "version";
constexpr const char* kStarted = "started";
constexpr const char* kStages = "stages";
constexpr const char* kPlugin = "plugin";
constexpr const char* kObject = "object";
constexpr const char* kObjectSha256 = "object_sha256";
constexpr const char* kProgTag = "prog_tag";
constexpr const char* kSettings = "settings";
constexpr const char* kPluginFile = "plugin_file";
constexpr const char* kPins = "pins";
constexpr const char* kSlot = "slot";
constexpr const char* kProgId = "prog_id";
constexpr const char* kCountersMapId = "counters_map_id";
constexpr const char* kInterfacesMapId = "interfaces_map_id";
constexpr const char* kPipeline = "pipeline";
constexpr const char* kPackets = "packets";
constexpr const char* kBytes = "bytes";
constexpr const char* kFellOff = "fell_off";
constexpr const char* kEventsLost = "events_lost";

constexpr const char* kString = "a string";
constexpr const char* kNumber = "a number";

// Reads the keys of one object of the file; a key that fails keeps its default, and the first failure is kept
// (with where in the file it was) for the caller.
class Reader {
 public:
  Reader(const json& object, std::string where, Status& first) : object_(object), where_(std::move(where)), first_(first) {
    if (!object_.is_object()) note(fail("is not a JSON object"));
  }

  template <class T>
  void key(const char* key, T& out, const char* type, bool required = false) {
    if (object_.is_object()) note(read_key(object_, key, out, required, type));
  }
  template <class T>
  void optional(const char* key, std::optional<T>& out, const char* type) {
    if (object_.is_object()) note(read_optional(object_, key, out, type));
  }
  // The value of `key` when it is there (null otherwise), for a nested object or array.
  const json& nested(const char* key) const {
    static const json null;
    auto it = object_.is_object() ? object_.find(key) : object_.end();
    return it == object_.end() ? null : *it;
  }
  // `key` is there but of another type than the `type` it must be.
  void wrong(const char* key, const char* type) { note(fail("key '", key, "' must be ", type)); }
  const std::string& where() const { return where_; }

 private:
  void note(Status status) {
    if (!status && first_) first_ = fail(where_.empty() ? "" : where_ + ": ", status.error().message);
  }

  const json& object_;
  std::string where_;
  Status& first_;
};

json stage_json(const Stage& stage) {
  return {{kName, stage.name},       {kObjectSha256, stage.object_sha256}, {kProgTag, stage.prog_tag},
          {kSettings, stage.settings}, {kCountersMapId, stage.counters_map_id}, {kPlugin, stage.plugin},
          {kSlot, stage.slot},       {kProgId, stage.prog_id},             {kObject, stage.object},
          {kPluginFile, stage.plugin_file}, {kPins, stage.pins}};
}

Stage stage_from(const json& object, std::string where, Status& first) {
  Stage stage;
  Reader read(object, std::move(where), first);
  read.key(kName, stage.name, kString, true);
  read.key(kPlugin, stage.plugin, kString, true);
  read.key(kObject, stage.object, kString, true);
  read.key(kSettings, stage.settings, kString, true);
  read.key(kObjectSha256, stage.object_sha256, kString);
  read.key(kProgTag, stage.prog_tag, kString);
  read.key(kPluginFile, stage.plugin_file, kString);
  read.key(kPins, stage.pins, kString);
  read.key(kSlot, stage.slot, kNumber);
  read.key(kProgId, stage.prog_id, kNumber);
  read.key(kCountersMapId, stage.counters_map_id, kNumber);
  return stage;
}

json interface_json(const Interface& interface) {
  return {{kName, interface.name}, {kIfindex, interface.ifindex}, {kMode, interface.mode}, {kLinkId, interface.link_id}};
}

Interface interface_from(const json& object, std::string where, Status& first) {
  Interface interface;
  Reader read(object, std::move(where), first);
  read.key(kName, interface.name, kString);
  read.key(kIfindex, interface.ifindex, kNumber);
  read.key(kMode, interface.mode, kString);
  read.key(kLinkId, interface.link_id, kNumber);
  return interface;
}

json dispatcher_json(const Dispatcher& dispatcher) {
  return {{kProgId, dispatcher.prog_id},
          {kProgTag, dispatcher.prog_tag},
          {kObject, dispatcher.object},
          {kObjectSha256, dispatcher.object_sha256},
          {kInterfacesMapId, dispatcher.interfaces_map_id},
          {kPins, dispatcher.pins}};
}

Dispatcher dispatcher_from(const json& object, Status& first) {
  Dispatcher dispatcher;
  if (object.is_null()) return dispatcher;  // older or hand-written files have none
  Reader read(object, kDispatcher, first);
  read.key(kProgId, dispatcher.prog_id, kNumber);
  read.key(kProgTag, dispatcher.prog_tag, kString);
  read.key(kObject, dispatcher.object, kString);
  read.key(kObjectSha256, dispatcher.object_sha256, kString);
  read.key(kInterfacesMapId, dispatcher.interfaces_map_id, kNumber);
  read.key(kPins, dispatcher.pins, kString);
  return dispatcher;
}

CounterTotals totals_from(const json& object, std::string where, Status& first) {
  CounterTotals totals;
  Reader read(object, std::move(where), first);
  read.key(kPackets, totals.packets, kNumber);
  read.key(kBytes, totals.bytes, kNumber);
  read.key(kFellOff, totals.fell_off, kNumber);
  read.key(kEventsLost, totals.events_lost, kNumber);
  for (std::uint32_t v = 0; v < XDPP_VERDICTS; ++v) read.key(verdict_name(v), totals.verdict[v], kNumber);
  return totals;
}

json counter_bases_json(const CounterBases& bases) {
  json stages = json::object();
  for (const auto& [name, totals] : bases.stages) stages[name] = counter_totals_json(totals);
  return {{kSlot, bases.slot}, {kPipeline, counter_totals_json(bases.pipeline)}, {kStages, stages}};
}

// The counters slot is 0 or 1: anything else recorded counts as 1.
CounterBases counter_bases_from(const json& object, Status& first) {
  CounterBases bases;
  if (!object.is_object()) return bases;  // none recorded: no bases
  Reader read(object, kCounterBases, first);
  std::uint32_t slot = 0;
  read.key(kSlot, slot, kNumber);
  bases.slot = slot ? 1 : 0;
  if (const json& pipeline = read.nested(kPipeline); !pipeline.is_null())
    bases.pipeline = totals_from(pipeline, read.where() + "." + kPipeline, first);
  if (const json& stages = read.nested(kStages); stages.is_object())
    for (const auto& [name, totals] : stages.items())
      bases.stages[name] = totals_from(totals, read.where() + "." + kStages + "." + name, first);
  return bases;
}

}  // namespace

json counter_totals_json(const CounterTotals& totals) {
  json out = {{kPackets, totals.packets}, {kBytes, totals.bytes}, {kFellOff, totals.fell_off},
              {kEventsLost, totals.events_lost}};
  for (std::uint32_t v = 0; v < XDPP_VERDICTS; ++v) out[verdict_name(v)] = totals.verdict[v];
  return out;
}

json to_json(const File& file) {
  json interfaces = json::array(), stages = json::array();
  for (const Interface& interface : file.interfaces) interfaces.push_back(interface_json(interface));
  for (const Stage& stage : file.stages) stages.push_back(stage_json(stage));
  json out = {{kName, file.name},
              {kFile, file.file},
              {kInterface, file.interface},
              {kInterfaces, std::move(interfaces)},
              {kIfindex, file.ifindex},
              {kMode, file.mode},
              {kLinkId, file.link_id},
              {kPersist, file.persist},
              {kContractVersion, file.contract_version},
              {kEntryProgId, file.entry_prog_id},
              {kCounterBases, counter_bases_json(file.counter_bases)},
              {kDispatcher, dispatcher_json(file.dispatcher)},
              {kPid, file.pid},
              {kStarted, file.started},
              {kStages, std::move(stages)}};
  if (file.default_verdict) out[kDefaultVerdict] = *file.default_verdict;
  if (file.version) out[kVersion] = *file.version;
  return out;
}

Status from_json(const json& json, File& out) {
  Status first;
  Reader read(json, "", first);
  read.key(kName, out.name, kString, true);
  read.key(kPid, out.pid, kNumber, true);
  read.key(kFile, out.file, kString);
  read.key(kInterface, out.interface, kString);
  if (const auto& interfaces = read.nested(kInterfaces); interfaces.is_array())
    for (std::size_t i = 0; i < interfaces.size(); ++i)
      out.interfaces.push_back(interface_from(interfaces[i], std::string(kInterfaces) + "[" + std::to_string(i) + "]", first));
  else if (!interfaces.is_null())
    read.wrong(kInterfaces, "an array");
  read.key(kIfindex, out.ifindex, kNumber);
  read.key(kMode, out.mode, kString);
  read.key(kLinkId, out.link_id, kNumber);
  read.key(kPersist, out.persist, "a boolean");
  read.key(kContractVersion, out.contract_version, kNumber);
  read.optional(kDefaultVerdict, out.default_verdict, kNumber);
  read.key(kEntryProgId, out.entry_prog_id, kNumber);
  out.counter_bases = counter_bases_from(read.nested(kCounterBases), first);
  out.dispatcher = dispatcher_from(read.nested(kDispatcher), first);
  read.optional(kVersion, out.version, kString);
  read.key(kStarted, out.started, kNumber);
  if (const auto& stages = read.nested(kStages); stages.is_array())
    for (std::size_t i = 0; i < stages.size(); ++i)
      out.stages.push_back(stage_from(stages[i], std::string(kStages) + "[" + std::to_string(i) + "]", first));
  else if (!stages.is_null())
    read.wrong(kStages, "an array");
  return first;
}

}  // namespace xdpp::state
