#include "file_watch.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "config.h"

namespace xdpp {
namespace {

// Quiet time after the last event: kubelet's update is a few renames within milliseconds, an editor's
// save a write or two.
constexpr auto kSettle = std::chrono::milliseconds(150);
constexpr std::uint32_t kEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE;

// What the file holds now; "" when it cannot be read (between kubelet's steps, or removed): a later good
// update differs from it and is applied.
std::string read_all(const std::filesystem::path& file) {
  auto text = read_pipeline_text(file);
  return text ? *text : std::string();
}

}  // namespace

Result<std::unique_ptr<FileWatch>> FileWatch::open(const std::filesystem::path& file, std::string baseline) {
  std::unique_ptr<FileWatch> self(new FileWatch());
  self->file_ = file;
  self->name_ = file.filename().string();
  self->fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (self->fd_ < 0) return fail("watching ", file.string(), ": inotify: ", std::strerror(errno));
  std::filesystem::path dir = file.parent_path().empty() ? "." : file.parent_path();
  self->dir_watch_ = ::inotify_add_watch(self->fd_, dir.c_str(), kEvents);
  if (self->dir_watch_ < 0)
    return fail("watching ", dir.string(), ": ", std::strerror(errno));
  self->watch_target();
  self->content_ = std::move(baseline);
  if (read_all(file) != self->content_) self->due_ = std::chrono::steady_clock::now();
  return self;
}

FileWatch::~FileWatch() {
  if (fd_ >= 0) ::close(fd_);
}

// A symlink elsewhere (not kubelet's ..data, which the directory watch sees): its target's directory too.
// Re-done after each change, since the target may have moved.
void FileWatch::watch_target() {
  std::error_code error;
  auto target = std::filesystem::canonical(file_, error);
  if (!error && target.parent_path() != std::filesystem::absolute(file_).parent_path()) {
    target_name_ = target.filename().string();
    (void)::inotify_add_watch(fd_, target.parent_path().c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE);
  }
}

void FileWatch::drain() {
  alignas(inotify_event) char buffer[4096];
  bool relevant = false;
  for (;;) {
    ssize_t length = ::read(fd_, buffer, sizeof(buffer));
    if (length <= 0) break;
    for (char* at = buffer; at < buffer + length;) {
      const auto* event = reinterpret_cast<const inotify_event*>(at);
      const std::string name = event->len ? event->name : "";
      // Our file, kubelet's ..data swap, or the symlink's target in its own directory.
      if (event->wd == dir_watch_ ? (name == name_ || name == "..data") : name == target_name_) relevant = true;
      at += sizeof(inotify_event) + event->len;
    }
  }
  if (relevant) due_ = std::chrono::steady_clock::now() + kSettle;
}

int FileWatch::timeout_ms() const {
  if (!due_) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*due_ - std::chrono::steady_clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

bool FileWatch::changed() {
  if (!due_ || std::chrono::steady_clock::now() < *due_) return false;
  due_.reset();
  watch_target();
  std::string now = read_all(file_);
  if (now == content_) return false;
  content_ = std::move(now);
  return true;
}

}  // namespace xdpp
