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

void write(Level level, const std::string& message) {
  if (level < current) return;
  static const char* names[] = {"debug", "info", "warning", "error"};
  std::lock_guard lock(mutex);
  std::fprintf(stderr, "xdp-pipeline: %s: %s\n", names[static_cast<int>(level)], message.c_str());
  std::fflush(stderr);
}

void capture_libbpf() { libbpf_set_print(libbpf_print); }

}  // namespace xdpp::log
