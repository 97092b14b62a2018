// Levelled logs on stderr: "xdp-pipeline: LEVEL: [stage] message". -q shows warnings and errors, -v debug.
#pragma once

#include <string>

namespace xdpp::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

void set_level(Level level);
Level level();
/// Writes one line; control bytes of `message` (a NUL, an escape) appear as \xNN.
void write(Level level, const std::string& message);
/// `message` with its control bytes other than newline and tab escaped as \xNN.
std::string printable(const std::string& message);

inline void debug(const std::string& message) { write(Level::debug, message); }
inline void info(const std::string& message) { write(Level::info, message); }
inline void warn(const std::string& message) { write(Level::warn, message); }
inline void error(const std::string& message) { write(Level::error, message); }

/// Routes libbpf's own messages (including verifier logs) through write(): warnings always, debug with -v.
void capture_libbpf();

}  // namespace xdpp::log
