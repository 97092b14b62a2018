#include "log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace xdpp::log {
namespace {
Level current = Level::info;
std::mutex mutex;

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args) {
  Level mapped = level == LIBBPF_WARN ? Level::warn : Level::debug;
  if (mapped < current) return 0;
  char text[4096];
  vsnprintf(text, sizeof text, format, args);
  std::string message(text);
  while (!message.empty() && message.back() == '\n') message.pop_back();
  if (message.rfind("libbpf: ", 0) != 0) message = "libbpf: " + message;
  write(mapped, message);
  return 0;
}
}  // namespace

void set_level(Level level) { current = level; }
Level level() { return current; }

std::string printable(const std::string& message) {
  std::string text;
  text.reserve(message.size());
  for (unsigned char c : message) {
    if (c >= 0x20 || c == '\n' || c == '\t') {
      text.push_back(static_cast<char>(c));
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      text += escaped;
    }
  }
  return text;
}

void write(Level level, const std::string& message) {
  if (level < current) return;
  static const char* names[] = {"debug", "info", "warning", "error"};
  // Names and values in messages come from files and sockets: a NUL would cut the line short and an
  // escape sequence would drive the terminal, so control bytes are shown as \xNN.
  const std::string text = printable(message);
  std::lock_guard lock(mutex);
  std::fprintf(stderr, "xdp-pipeline: %s: %s\n", names[static_cast<int>(level)], text.c_str());
  std::fflush(stderr);
}

void capture_libbpf() { libbpf_set_print(libbpf_print); }

}  // namespace xdpp::log
