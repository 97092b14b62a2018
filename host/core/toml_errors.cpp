#include "toml_errors.h"

#include <cctype>
#include <optional>
#include <regex>
#include <vector>

namespace xdpp {
namespace {

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

// The key of a "key = value" line ("" for any other line).
std::string key_of(std::string_view line) {
  auto equals = line.find('=');
  if (equals == std::string_view::npos) return {};
  std::string_view key = trim(line.substr(0, equals));
  const bool quoted = key.size() >= 2 && (key.front() == '"' || key.front() == '\'') && key.back() == key.front() &&
                      key.substr(1, key.size() - 2).find(key.front()) == std::string_view::npos;
  const std::string bare_chars = std::string(kWordChars) + ".-";
  return quoted || consists_of(key, bare_chars, bare_chars) ? std::string(key) : std::string();
}

bool is_header(std::string_view line) { return trim(line).starts_with('['); }

// The part of the parser's description between the first pair of single quotes: "... table 'stage'".
std::string quoted_name(std::string_view description) {
  auto open = description.find('\'');
  if (open == std::string_view::npos) return {};
  auto close = description.find('\'', open + 1);
  if (close == std::string_view::npos) return {};
  return std::string(description.substr(open + 1, close - open - 1));
}

struct Bracket {
  char open;
  std::size_t line, column;
  std::string key;  // the key whose value it starts, on its line
};

// Brackets and braces of values still open at line:column, outside strings and comments; table headers
// ([x], [[x]]) are not values and are skipped.
std::vector<Bracket> open_brackets(const std::vector<std::string_view>& lines, std::size_t stop_line,
                                   std::size_t stop_column) {
  std::vector<Bracket> stack;
  enum class In { value, basic, literal, multi_basic, multi_literal } in = In::value;
  for (std::size_t l = 0; l < lines.size() && l + 1 <= stop_line; ++l) {
    std::string_view line = lines[l];
    if (stack.empty() && in == In::value && is_header(line)) continue;
    const std::string key = key_of(line);
    for (std::size_t c = 0; c < line.size(); ++c) {
      if (l + 1 == stop_line && c + 1 >= stop_column) return stack;
      const char ch = line[c];
      auto starts = [&](std::string_view what) { return line.substr(c).starts_with(what); };
      switch (in) {
        case In::basic:
          if (ch == '\\') ++c;
          else if (ch == '"') in = In::value;
          continue;
        case In::literal:
          if (ch == '\'') in = In::value;
          continue;
        case In::multi_basic:
          if (ch == '\\') ++c;
          else if (starts("\"\"\"")) in = In::value, c += 2;
          continue;
        case In::multi_literal:
          if (starts("'''")) in = In::value, c += 2;
          continue;
        case In::value:
          break;
      }
      if (ch == '#') break;
      if (starts("\"\"\"")) in = In::multi_basic, c += 2;
      else if (starts("'''")) in = In::multi_literal, c += 2;
      else if (ch == '"') in = In::basic;
      else if (ch == '\'') in = In::literal;
      else if (ch == '[' || ch == '{') stack.push_back({ch, l + 1, c + 1, key});
      else if ((ch == ']' || ch == '}') && !stack.empty()) stack.pop_back();
    }
    // A single-line string left open at the end of its line is the parser's error, not ours to follow.
    if (in == In::basic || in == In::literal) in = In::value;
  }
  return stack;
}

// Column (1-based) of the quote that opens the string left unclosed on `line`, or 0.
std::size_t unclosed_quote(std::string_view line) {
  char quote = 0;
  std::size_t opened = 0;
  for (std::size_t c = 0; c < line.size(); ++c) {
    const char ch = line[c];
    if (quote == '"' && ch == '\\') {
      ++c;
    } else if (quote && ch == quote) {
      quote = 0;
    } else if (!quote && ch == '#') {
      break;
    } else if (!quote && (ch == '"' || ch == '\'')) {
      quote = ch;
      opened = c + 1;
    }
  }
  return quote ? opened : 0;
}

// The first line from `from` (1-based) on that matches `pattern`, or 0.
// Lines longer than kLongestSearchedLine are passed over: no header or key we look for is that long, and
// libstdc++'s regex matcher recurses per character (a long line would overflow the stack).
constexpr std::size_t kLongestSearchedLine = 4096;
std::size_t find_line(const std::vector<std::string_view>& lines, const std::regex& pattern, std::size_t from = 1) {
  for (std::size_t l = from; l <= lines.size(); ++l)
    if (lines[l - 1].size() <= kLongestSearchedLine &&
        std::regex_search(lines[l - 1].begin(), lines[l - 1].end(), pattern))
      return l;
  return 0;
}

std::string escape_for_regex(const std::string& text) {
  static const std::regex special(R"([.^$|()\[\]{}*+?\\])");
  return std::regex_replace(text, special, R"(\$&)");
}

// The value token around line:column: from the last delimiter before it to the next one after.
std::optional<SyntaxError> explain_bad_value(const std::vector<std::string_view>& lines, std::size_t line,
                                             std::size_t column) {
  if (line == 0 || line > lines.size()) return std::nullopt;
  std::string_view text = lines[line - 1];
  static const std::string_view delimiters = " \t,[]{}=#";
  std::size_t start = std::min(column ? column - 1 : 0, text.size());
  while (start > 0 && delimiters.find(text[start - 1]) == std::string_view::npos) --start;
  std::size_t end = start;
  while (end < text.size() && delimiters.find(text[end]) == std::string_view::npos) ++end;
  const std::string token(text.substr(start, end - start));
  if (token.empty()) return std::nullopt;
  constexpr std::string_view digits = "0123456789";
  const auto dash = token.find('-');
  const bool range = dash != std::string::npos && consists_of(std::string_view(token).substr(0, dash), digits, digits) &&
                     consists_of(std::string_view(token).substr(dash + 1), digits, digits);
  static const std::regex boolean("true|false", std::regex::icase);  // fixed alternatives: no recursion per character
  const std::string word_rest = std::string(kWordChars) + ".:/-";
  if (range)
    return SyntaxError{line, start + 1, "a port range is a string: write \"" + token + "\" (in quotes)"};
  if (token.size() <= 5 && std::regex_match(token, boolean)) {
    std::string lower = token;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return SyntaxError{line, start + 1, "booleans are lower case in TOML: write " + lower};
  }
  // Words, and addresses written bare (192.168.1.2, 02:00:00:00:00:aa, fe80::1): all strings in TOML.
  const bool all_digits = token.find_first_not_of(digits) == std::string::npos;
  if (!all_digits && consists_of(token, word_rest, word_rest))
    return SyntaxError{line, start + 1, "the value " + token + " is not quoted: strings are written in quotes, \"" +
                                            token + "\""};
  return std::nullopt;
}

// "cannot redefine existing ...": a table header written twice ([stage] where [[stage]] is meant) or a key
// set twice in one table.
SyntaxError explain_redefinition(const std::vector<std::string_view>& lines, std::size_t line, std::size_t column,
                                 std::string_view description) {
  const std::string_view here = line >= 1 && line <= lines.size() ? lines[line - 1] : std::string_view();
  auto says = [&](std::string_view part) { return description.find(part) != std::string_view::npos; };
  auto at = [&](std::size_t l, std::size_t c, std::string message) { return SyntaxError{l, c, std::move(message)}; };
  // [stage] where [[stage]] is meant (the second one, or one after [[stage]], is where the parser stops).
  if (says("table header")) {
    const std::string name = quoted_name(description);
    const std::regex single("^\\s*\\[\\s*" + escape_for_regex(name) + "\\s*\\]");
    const std::size_t first = find_line(lines, single);
    if (name == "stage")
      return at(first ? first : line, 1,
                "[stage] is written [[stage]]: every stage is one table of the list of stages, in double brackets");
    if (says("array"))
      return at(line, column, "[" + name + "] after [[" + name + "]]: '" + name +
                                  "' is a list of tables, so each of its tables is written [[" + name + "]]");
    return at(line, column, "table [" + name + "] appears twice" +
                                (first && first != line ? " (first at line " + std::to_string(first) + ")" : "") +
                                ": put its keys under one [" + name + "]");
  }

  // The same key twice in one table.
  const std::string name = quoted_name(description);
  std::size_t first = 0;
  for (std::size_t l = line; l-- > 1;) {
    if (is_header(lines[l - 1])) break;
    if (key_of(lines[l - 1]) == name) first = l;
  }
  return at(line, here.find_first_not_of(" \t") + 1,
            "key '" + name + "' is set twice in this table" +
                (first ? " (first at line " + std::to_string(first) + ")" : "") + ": keep one");
}

}  // namespace

bool consists_of(std::string_view text, std::string_view first, std::string_view rest) {
  if (text.empty() || first.find(text.front()) == std::string_view::npos) return false;
  return text.substr(1).find_first_not_of(rest) == std::string_view::npos;
}

SyntaxError explain_syntax_error(std::string_view text, std::size_t line, std::size_t column,
                                 std::string_view description) {
  const auto lines = split_lines(text);
  const std::string_view here = line >= 1 && line <= lines.size() ? lines[line - 1] : std::string_view();
  auto says = [&](std::string_view part) { return description.find(part) != std::string_view::npos; };
  auto at = [&](std::size_t l, std::size_t c, std::string message) { return SyntaxError{l, c, std::move(message)}; };

  // A string without its closing quote runs into the end of the line.
  if (says("control characters")) {
    if (std::size_t quote = unclosed_quote(here))
      return at(line, quote, std::string("the string that starts here has no closing quote: end it with ") +
                                 here[quote - 1] + " on the same line");
  }

  if (says("cannot redefine existing")) return explain_redefinition(lines, line, column, description);

  // An inline table { ... } must end on its own line (TOML 1.0).
  if (says("inline table") && says("'\\n'")) {
    auto brackets = open_brackets(lines, line, column);
    if (!brackets.empty() && brackets.back().open == '{')
      return at(brackets.back().line, brackets.back().column,
                "this inline table is not closed on its line: an inline table { ... } must be on one line; "
                "close it with '}' before the line ends");
  }
  if (says("dangling comma"))
    return at(line, column, "remove the comma before '}': TOML allows none at the end of an inline table");

  // An array or inline table left open: the parser stops at the next key or table header, lines later,
  // or at the end of the text.
  if (auto brackets = open_brackets(lines, line, column); !brackets.empty()) {
    const Bracket& outer = brackets.front();
    const bool next_statement = is_header(here) || !key_of(here).empty();
    if ((outer.line < line && next_statement) || says("end-of-file")) {
      const std::string of = outer.key.empty() ? "" : " of '" + outer.key + "'";
      return at(outer.line, outer.column,
                outer.open == '['
                    ? "the array" + of + " that starts here is not closed: add ']' after its last element"
                    : "the inline table" + of + " that starts here is not closed: add '}' on its line");
    }
  }

  if (says("could not determine value type") || says("while parsing date") || says("while parsing time") ||
      says("while parsing boolean") || says("integer") || says("while parsing floating")) {
    if (auto value = explain_bad_value(lines, line, column)) return *value;
  }
  if (says("expected '=', saw ':'")) return at(line, column, "write '=' between a key and its value, not ':'");
  if (says("expected '='"))
    return at(line, column, "expected '=' after the key: write KEY = VALUE (a key with spaces must be quoted)");
  if (says("expected value"))
    return at(line, column, "key '" + key_of(here) + "' has no value: write one after '='");
  if (says("expected a comment or whitespace, saw ';'"))
    return at(line, column, "remove the ';': a TOML line ends without one");
  if (says("expected a comment or whitespace"))
    return at(line, column, "unexpected text after the value: one KEY = VALUE per line; comments start with #");
  if (says("table header") && says("expected ']'"))
    return at(line, here.find_first_not_of(" \t") + 1,
              "this table header is not closed: write [pipeline] or [[stage]] with all their brackets");
  if (says("unknown escape sequence"))
    return at(line, column,
              "a backslash in a \"...\" string starts an escape: write \\\\ for a backslash, or use a literal "
              "string in single quotes ('C:\\dir')");
  return at(line, column, std::string(description));
}

}  // namespace xdpp
