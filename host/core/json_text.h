// JSON text that survives any byte: names, paths and messages come from files, command lines and
// sockets, and may hold bytes that are not UTF-8. nlohmann::json's plain dump() throws on those (a
// type_error that would abort a daemon); here they become U+FFFD instead.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace xdpp {

/// `json` as text (one line, or indented by `indent`), invalid UTF-8 replaced by U+FFFD; never throws.
inline std::string json_text(const nlohmann::json& json, int indent = -1) {
  return json.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// Whether `text` is valid UTF-8, i.e. travels through JSON unchanged.
inline bool is_utf8(const std::string& text) {
  try {
    (void)nlohmann::json(text).dump();  // the strict handler throws type_error 316 on invalid UTF-8
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

}  // namespace xdpp
