// One error channel for the host and plugins: a value or an error message, with context added at each
// level ("loading stage 'ping-lb': map 'backends': ..."). No exceptions on the packet or event path.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace xdpp {

struct Error {
  std::string message;
};

/// Makes an Error; `return fail("map '", name, "': ", why);`
template <class... Parts>
Error fail(Parts&&... parts) {
  std::string message;
  (message.append(std::forward<Parts>(parts)), ...);
  return Error{std::move(message)};
}

/// A T or an Error (std::expected is C++23; this is the small part of it we use).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}
  Result(Error error) : state_(std::move(error)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  const T& value() const& { return std::get<0>(state_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const Error& error() const { return std::get<1>(state_); }

  /// Prefixes the error message with context; a value passes through.
  Result context(const std::string& prefix) && {
    if (ok()) return std::move(*this);
    return Error{prefix + ": " + error().message};
  }

 private:
  std::variant<T, Error> state_;
};

/// Success or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), failed_(true) {}

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return error_; }
  Status context(const std::string& prefix) && {
    if (ok()) return *this;
    return Error{prefix + ": " + error_.message};
  }

 private:
  Error error_;
  bool failed_ = false;
};

}  // namespace xdpp

/// Propagates an error from a Status or Result expression, adding no context.
#define XDPP_TRY(expr)                                 \
  do {                                                 \
    if (auto xdpp_try_ = (expr); !xdpp_try_.ok())      \
      return ::xdpp::Error{xdpp_try_.error().message}; \
  } while (0)
