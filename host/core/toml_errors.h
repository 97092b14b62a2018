// TOML syntax errors in the user's terms: the parser reports where it gave up and in its own words
// ("could not determine value type" for an unquoted string, an unclosed array on the line after it);
// this finds the real mistake and says how to fix it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace xdpp {

struct SyntaxError {
  std::size_t line = 0;    // 1-based, where the mistake is
  std::size_t column = 0;
  std::string message;     // what is wrong and the fix
};

/// Whether `text` is one or more characters, the first from `first` and the rest from `rest` (a loop, not a
/// std::regex: libstdc++'s matcher recurses once per character and overflows the stack on long input, and
/// these run on what clients and files send).
bool consists_of(std::string_view text, std::string_view first, std::string_view rest);

/// Letters, digits and `_`: the start of a bare key or word.
inline constexpr std::string_view kWordChars =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";

/// Explains the parser's error `description` at line:column of `text`. Errors it does not know keep the
/// parser's position and words.
SyntaxError explain_syntax_error(std::string_view text, std::size_t line, std::size_t column,
                                 std::string_view description);

}  // namespace xdpp
