#include "control.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "state.h"

namespace xdpp {
namespace {

std::string socket_path(const std::string& name) { return (kRunRoot / (name + ".sock")).string(); }

Result<sockaddr_un> address_of(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) return fail("socket path too long: ", path);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

Result<UniqueFd> connect_to(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail("socket: ", std::strerror(errno));
  auto address = address_of(path);
  if (!address) return address.error();
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof(*address)) != 0)
    return fail(path, ": ", std::strerror(errno));
  return fd;
}

void set_timeout(int fd, int seconds) {
  timeval timeout{.tv_sec = seconds, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
}

// Reads up to a newline (requests and replies are one line each), at most 1 MiB.
Result<std::string> read_line(int fd) {
  std::string line;
  char buffer[4096];
  while (line.find('\n') == std::string::npos) {
    ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return fail("read: ", std::strerror(errno));
    if (got == 0) break;
    line.append(buffer, got);
    if (line.size() > (1u << 20)) return fail("message too long");
  }
  if (auto end = line.find('\n'); end != std::string::npos) line.resize(end);
  return line;
}

bool write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t wrote = ::send(fd, text.data() + done, text.size() - done, MSG_NOSIGNAL);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return false;
    done += wrote;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::listen(const std::string& name) {
  std::error_code error;
  std::filesystem::create_directories(kRunRoot, error);
  if (::chmod(kRunRoot.c_str(), 0700) != 0) return fail(kRunRoot.string(), ": ", std::strerror(errno));
  std::unique_ptr<ControlServer> self(new ControlServer());
  const std::string path = socket_path(name);
  // A live pipeline of that name answers: leave its socket alone (path_ stays empty, so the destructor
  // unlinks nothing).
  if (connect_to(path)) return fail("pipeline '", name, "' is already running (its control socket answers)");
  ::unlink(path.c_str());  // a stale socket of a killed run
  self->listener_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!self->listener_) return fail("socket: ", std::strerror(errno));
  auto address = address_of(path);
  if (!address) return address.error();
  // The umask makes the socket 0600 from its creation: no window in which another user could connect.
  mode_t previous = ::umask(0177);
  int bound = ::bind(self->listener_.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof(*address));
  ::umask(previous);
  if (bound != 0) return fail(path, ": ", std::strerror(errno));
  self->path_ = path;  // ours from here on: removed by the destructor
  if (::listen(self->listener_.get(), 8) != 0) return fail(path, ": listen: ", std::strerror(errno));
  return self;
}

ControlServer::~ControlServer() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

void ControlServer::serve_one(const std::function<nlohmann::json(const nlohmann::json&)>& handler) {
  UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!client) return;
  set_timeout(client.get(), 5);
  nlohmann::json reply;
  ucred peer{};
  socklen_t length = sizeof peer;
  if (::getsockopt(client.get(), SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 || peer.uid != 0) {
    reply = {{"ok", false}, {"error", "the control channel is for root only"}};
  } else if (auto line = read_line(client.get()); !line) {
    reply = {{"ok", false}, {"error", line.error().message}};
  } else {
    try {
      reply = handler(nlohmann::json::parse(*line));
    } catch (const std::exception& error) {
      reply = {{"ok", false}, {"error", std::string("bad request: ") + error.what()}};
    }
  }
  write_all(client.get(), reply.dump() + "\n");
}

Result<nlohmann::json> control_request(const std::optional<std::string>& name, const nlohmann::json& request) {
  std::string path;
  if (name) {
    path = socket_path(*name);
  } else {
    std::vector<std::string> found;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(kRunRoot, error))
      if (entry.path().extension() == ".sock") found.push_back(entry.path().stem().string());
    if (found.empty()) return fail("no pipeline is running");
    if (found.size() > 1) {
      std::string names;
      for (const auto& one : found) names += (names.empty() ? "" : ", ") + one;
      return fail("several pipelines are running (", names, "): name one with --pipeline");
    }
    path = socket_path(found.front());
  }
  auto fd = connect_to(path);
  if (!fd) return fail("cannot reach the pipeline: ", fd.error().message);
  set_timeout(fd->get(), 60);
  if (!write_all(fd->get(), request.dump() + "\n")) return fail("sending the request: ", std::strerror(errno));
  auto line = read_line(fd->get());
  if (!line) return line.error();
  try {
    return nlohmann::json::parse(*line);
  } catch (const std::exception& error) {
    return fail("bad reply: ", error.what());
  }
}

}  // namespace xdpp
