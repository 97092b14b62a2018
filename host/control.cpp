#include "control.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "json_text.h"
#include "log.h"
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
  if (::listen(self->listener_.get(), 64) != 0) return fail(path, ": listen: ", std::strerror(errno));
  return self;
}

ControlServer::~ControlServer() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

std::string control_reply(std::string_view line, const ControlHandler& handler) noexcept {
  try {
    control::Reply reply;
    try {
      auto request = control::request_from_json(nlohmann::json::parse(line));
      reply = request ? handler(*request) : control::Reply::failure("bad request: " + request.error().message, true);
    } catch (const nlohmann::json::exception& error) {
      reply = control::Reply::failure(std::string("bad request: ") + error.what(), true);
    } catch (const std::exception& error) {
      reply = control::Reply::failure(std::string("the request failed: ") + error.what());
    } catch (...) {
      reply = control::Reply::failure("the request failed");
    }
    return json_text(control::to_json(reply)) + "\n";
  } catch (...) {  // out of memory while building the reply: still one well-formed line
    return "{\"ok\":false,\"error\":\"internal error while answering\"}\n";
  }
}

namespace {

// One connected client: its request as it arrives, then its reply as it leaves.
struct Client {
  UniqueFd fd;
  std::chrono::steady_clock::time_point deadline;
  std::string request;
  std::string reply;  // non-empty once answered: then only written
  std::size_t sent = 0;
  bool done = false;  // replied, or dropped: closed at the end of this round
};

std::string error_line(const std::string& message) { return json_text(control::to_json(control::Reply::failure(message))) + "\n"; }

// The peer closed its end: nobody waits for the reply any more. (A peer that only shut down its writing
// side, as `socat` does at the end of its input, still reads: that is POLLRDHUP, not POLLHUP.)
bool hung_up(int fd) {
  pollfd probe{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&probe, 1, 0) > 0 && (probe.revents & (POLLHUP | POLLERR));
}

// Reads what is there; true once the request line is complete (newline, or end of input).
bool read_some(Client& client) {
  char buffer[4096];
  for (;;) {
    ssize_t got = ::recv(client.fd.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return errno != EAGAIN && errno != EWOULDBLOCK;  // an error ends the request too
    if (got == 0) return true;
    client.request.append(buffer, got);
    if (auto end = client.request.find('\n'); end != std::string::npos) {
      client.request.resize(end);
      return true;
    }
    if (client.request.size() > kControlMaxRequest) return true;
  }
}

// Writes what the socket takes now; true once the whole reply is out (or the client is gone).
bool write_some(Client& client) {
  while (client.sent < client.reply.size()) {
    ssize_t wrote = ::send(client.fd.get(), client.reply.data() + client.sent, client.reply.size() - client.sent,
                           MSG_DONTWAIT | MSG_NOSIGNAL);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
    client.sent += wrote;
  }
  return true;
}

}  // namespace

void ControlServer::serve(const ControlHandler& handler, const std::atomic<bool>& stop) {
  std::vector<Client> clients;
  std::vector<pollfd> fds;
  while (!stop) {
    const auto now = std::chrono::steady_clock::now();
    // Clients past their deadline: told so if they still listen, and closed.
    std::erase_if(clients, [&](Client& client) {
      if (now < client.deadline) return false;
      if (client.reply.empty()) {
        client.reply = error_line("the request line was not complete within " +
                                  std::to_string(kControlRequestDeadline.count()) + " ms");
        write_some(client);
      }
      return true;
    });
    fds.clear();
    fds.push_back({.fd = listener_.get(), .events = POLLIN, .revents = 0});
    auto wake = now + std::chrono::milliseconds(100);
    for (const Client& client : clients) {
      fds.push_back({.fd = client.fd.get(), .events = short(client.reply.empty() ? POLLIN : POLLOUT), .revents = 0});
      wake = std::min(wake, client.deadline);
    }
    const int timeout = static_cast<int>(
        std::chrono::ceil<std::chrono::milliseconds>(wake - now).count());
    if (::poll(fds.data(), fds.size(), std::max(timeout, 0)) <= 0) continue;

    // Served in place: fds[i + 1] belongs to clients[i], and new clients are appended after the loop.
    for (std::size_t i = 0; i < clients.size(); ++i) {
      Client& client = clients[i];
      if (!fds[i + 1].revents) continue;
      if (client.reply.empty()) {
        if (!read_some(client)) continue;
        if (client.request.size() > kControlMaxRequest) {
          client.reply = error_line("request longer than " + std::to_string(kControlMaxRequest) + " bytes");
        } else if (hung_up(client.fd.get())) {
          // It gave up waiting (a timeout, Ctrl-C): applying its change now would surprise everyone. (An
          // empty one is a probe, as `run` makes to see whether a pipeline of its name answers.)
          if (!client.request.empty())
            log::warn("control: a client hung up before its request was handled; dropped, nothing changed");
          client.done = true;
          continue;
        } else {
          client.reply = control_reply(client.request, handler);
        }
      }
      client.done = write_some(client);
    }
    std::erase_if(clients, [](const Client& client) { return client.done; });

    if (fds[0].revents & POLLIN) {
      for (;;) {
        UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!fd) break;
        Client client{.fd = std::move(fd),
                      .deadline = std::chrono::steady_clock::now() + kControlRequestDeadline,
                      .request = {},
                      .reply = {},
                      .sent = 0,
                      .done = false};
        ucred peer{};
        socklen_t length = sizeof peer;
        if (::getsockopt(client.fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 || peer.uid != 0)
          client.reply = error_line("the control channel is for root only");
        else if (clients.size() >= kControlMaxClients)
          client.reply = error_line("busy: " + std::to_string(kControlMaxClients) + " clients are connected");
        if (!client.reply.empty() && write_some(client)) continue;  // answered at once and closed
        clients.push_back(std::move(client));
      }
    }
  }
}

Result<control::Reply> control_request(const std::optional<std::string>& name, const control::Request& request) {
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
  if (!write_all(fd->get(), json_text(control::to_json(request)) + "\n"))
    return fail("sending the request: ", std::strerror(errno));
  auto line = read_line(fd->get());
  if (!line) return line.error();
  try {
    auto reply = control::reply_from_json(nlohmann::json::parse(*line));
    if (!reply) return fail("bad reply: ", reply.error().message);
    return reply;
  } catch (const std::exception& error) {
    return fail("bad reply: ", error.what());
  }
}

}  // namespace xdpp
