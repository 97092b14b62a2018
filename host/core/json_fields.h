// Reading the keys of a JSON object into typed fields, with an error that names the key: shared by the
// typed documents (the control channel's messages, daemon/messages.h, and the state file, state_file.h).
#pragma once

#include <optional>

#include <nlohmann/json.hpp>
#include <xdp_pipeline/result.h>

namespace xdpp {

/// Reads `key` of `object` into `out` when present (else `out` keeps its value; an error when `required`);
/// a value of another type is an error naming the key and the `type` it must be, and leaves `out` as it was.
template <class T>
Status read_key(const nlohmann::json& object, const char* key, T& out, bool required, const char* type) {
  auto it = object.find(key);
  if (it == object.end()) {
    if (required) return fail("key '", key, "' is missing");
    return {};
  }
  try {
    out = it->template get<T>();
  } catch (const nlohmann::json::exception&) {
    return fail("key '", key, "' must be ", type);
  }
  return {};
}

/// As read_key, into an optional that stays empty when `key` is missing.
template <class T>
Status read_optional(const nlohmann::json& object, const char* key, std::optional<T>& out, const char* type) {
  if (!object.contains(key)) return {};
  T value{};
  XDPP_TRY(read_key(object, key, value, true, type));
  out = std::move(value);
  return {};
}

}  // namespace xdpp
