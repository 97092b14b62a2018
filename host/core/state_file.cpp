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

// Each object of the file as a list of its keys, each with its member and whether a reader requires it, in
// the order they are read: one list for writing and reading alike. `visit(key, member, required)`.
constexpr bool kRequired = true;

constexpr auto kStageKeys = [](auto& stage, auto&& visit) {
  visit(kName, stage.name, kRequired);
  visit(kPlugin, stage.plugin, kRequired);
  visit(kObject, stage.object, kRequired);
  visit(kSettings, stage.settings, kRequired);
  visit(kObjectSha256, stage.object_sha256, false);
  visit(kProgTag, stage.prog_tag, false);
  visit(kPluginFile, stage.plugin_file, false);
  visit(kPins, stage.pins, false);
  visit(kSlot, stage.slot, false);
  visit(kProgId, stage.prog_id, false);
  visit(kCountersMapId, stage.counters_map_id, false);
};

constexpr auto kInterfaceKeys = [](auto& interface, auto&& visit) {
  visit(kName, interface.name, false);
  visit(kIfindex, interface.ifindex, false);
  visit(kMode, interface.mode, false);
  visit(kLinkId, interface.link_id, false);
};

constexpr auto kDispatcherKeys = [](auto& dispatcher, auto&& visit) {
  visit(kProgId, dispatcher.prog_id, false);
  visit(kProgTag, dispatcher.prog_tag, false);
  visit(kObject, dispatcher.object, false);
  visit(kObjectSha256, dispatcher.object_sha256, false);
  visit(kInterfacesMapId, dispatcher.interfaces_map_id, false);
  visit(kPins, dispatcher.pins, false);
};

constexpr auto kTotalsKeys = [](auto& totals, auto&& visit) {
  visit(kPackets, totals.packets, false);
  visit(kBytes, totals.bytes, false);
  visit(kFellOff, totals.fell_off, false);
  visit(kEventsLost, totals.events_lost, false);
  for (std::uint32_t v = 0; v < XDPP_VERDICTS; ++v) visit(verdict_name(v), totals.verdict[v], false);
};

// The file's own keys but for the nested objects and arrays (interfaces, counter_bases, dispatcher, stages).
constexpr auto kFileKeys = [](auto& file, auto&& visit) {
  visit(kName, file.name, kRequired);
  visit(kPid, file.pid, kRequired);
  visit(kFile, file.file, false);
  visit(kInterface, file.interface, false);
  visit(kIfindex, file.ifindex, false);
  visit(kMode, file.mode, false);
  visit(kLinkId, file.link_id, false);
  visit(kPersist, file.persist, false);
  visit(kContractVersion, file.contract_version, false);
  visit(kDefaultVerdict, file.default_verdict, false);
  visit(kEntryProgId, file.entry_prog_id, false);
  visit(kVersion, file.version, false);
  visit(kStarted, file.started, false);
};

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

// What a value of type T is called in an error.
template <class T>
constexpr const char* type_name() {
  if constexpr (is_optional<T>::value) return type_name<typename T::value_type>();
  else if constexpr (std::is_same_v<T, bool>) return "a boolean";
  else if constexpr (std::is_arithmetic_v<T>) return "a number";
  else return "a string";
}

// `object` with the keys `keys` lists (an optional that is empty is left out).
template <class T, class Keys>
json write(const T& object, Keys keys) {
  json out = json::object();
  keys(object, [&](const char* key, const auto& member, bool) {
    if constexpr (is_optional<std::decay_t<decltype(member)>>::value) {
      if (member) out[key] = *member;
    } else {
      out[key] = member;
    }
  });
  return out;
}

// Reads the keys of one object of the file; a key that fails keeps its default, and the first failure is kept
// (with where in the file it was) for the caller.
class Reader {
 public:
  Reader(const json& object, std::string where, Status& first) : object_(object), where_(std::move(where)), first_(first) {
    if (!object_.is_object()) note(fail("is not a JSON object"));
  }

  // Every key `keys` lists, into `out`.
  template <class T, class Keys>
  void keys(T& out, Keys keys) {
    if (!object_.is_object()) return;
    keys(out, [&](const char* key, auto& member, bool required) {
      using Member = std::decay_t<decltype(member)>;
      if constexpr (is_optional<Member>::value)
        note(read_optional(object_, key, member, type_name<Member>()));
      else
        note(read_key(object_, key, member, required, type_name<Member>()));
    });
  }
  // The value of `key` when it is there (null otherwise), for a nested object or array.
  const json& nested(const char* key) const {
    static const json null;
    auto it = object_.is_object() ? object_.find(key) : object_.end();
    return it == object_.end() ? null : *it;
  }
  // Each element of the array `key` (nothing when it is missing), read by `read_one(element, where)`.
  template <class T, class ReadOne>
  void array(const char* key, std::vector<T>& out, ReadOne read_one) {
    const json& array = nested(key);
    if (array.is_array()) {
      for (std::size_t i = 0; i < array.size(); ++i)
        out.push_back(read_one(array[i], std::string(key) + "[" + std::to_string(i) + "]"));
    } else if (!array.is_null()) {
      note(fail("key '", key, "' must be an array"));
    }
  }
  const std::string& where() const { return where_; }

 private:
  void note(Status status) {
    if (!status && first_) first_ = fail(where_.empty() ? "" : where_ + ": ", status.error().message);
  }

  const json& object_;
  std::string where_;
  Status& first_;
};

// An object `keys` lists, read from `object` (at `where` in the file).
template <class T, class Keys>
T read(const json& object, std::string where, Status& first, Keys keys) {
  T out;
  Reader(object, std::move(where), first).keys(out, keys);
  return out;
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
  Reader reader(object, kCounterBases, first);
  reader.keys(bases, [](auto& out, auto&& visit) { visit(kSlot, out.slot, false); });
  bases.slot = bases.slot ? 1 : 0;
  if (const json& pipeline = reader.nested(kPipeline); !pipeline.is_null())
    bases.pipeline = read<CounterTotals>(pipeline, reader.where() + "." + kPipeline, first, kTotalsKeys);
  if (const json& stages = reader.nested(kStages); stages.is_object())
    for (const auto& [name, totals] : stages.items())
      bases.stages[name] = read<CounterTotals>(totals, reader.where() + "." + kStages + "." + name, first, kTotalsKeys);
  return bases;
}

}  // namespace

json counter_totals_json(const CounterTotals& totals) { return write(totals, kTotalsKeys); }

json to_json(const File& file) {
  json out = write(file, kFileKeys);
  out[kInterfaces] = json::array();
  for (const Interface& interface : file.interfaces) out[kInterfaces].push_back(write(interface, kInterfaceKeys));
  out[kCounterBases] = counter_bases_json(file.counter_bases);
  out[kDispatcher] = write(file.dispatcher, kDispatcherKeys);
  out[kStages] = json::array();
  for (const Stage& stage : file.stages) out[kStages].push_back(write(stage, kStageKeys));
  return out;
}

Status from_json(const json& json, File& out) {
  Status first;
  Reader reader(json, "", first);
  reader.keys(out, kFileKeys);
  reader.array(kInterfaces, out.interfaces, [&](const nlohmann::json& element, std::string where) {
    return read<Interface>(element, std::move(where), first, kInterfaceKeys);
  });
  out.counter_bases = counter_bases_from(reader.nested(kCounterBases), first);
  // Older or hand-written files may have no dispatcher.
  if (const auto& dispatcher = reader.nested(kDispatcher); !dispatcher.is_null())
    out.dispatcher = read<Dispatcher>(dispatcher, kDispatcher, first, kDispatcherKeys);
  reader.array(kStages, out.stages, [&](const nlohmann::json& element, std::string where) {
    return read<Stage>(element, std::move(where), first, kStageKeys);
  });
  return first;
}

}  // namespace xdpp::state
