// Parsing and formatting of IPv4, IPv6 and MAC addresses for plugins (header-only).
//
// Parsers are strict and return std::nullopt instead of guessing: "192.168.1.300", "1.2.3", "010.1.1.1"
// (leading zeros read as octal by inet_aton) and "52:54:00:ff:ff" are all rejected. Addresses are kept
// as bytes in network order, the way the BPF side stores them (struct xdpp_packet, stage maps).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace xdpp::net {

using Ipv4Address = std::array<std::uint8_t, 4>;   // network order: 192.168.1.2 is {192, 168, 1, 2}
using Ipv6Address = std::array<std::uint8_t, 16>;  // network order
using MacAddress = std::array<std::uint8_t, 6>;

/// Dotted-quad IPv4: exactly four decimal parts 0..255, no leading zeros, no whitespace.
inline std::optional<Ipv4Address> parse_ipv4(std::string_view text) {
  Ipv4Address address{};
  std::size_t pos = 0;
  for (std::size_t part = 0; part < 4; ++part) {
    if (part > 0) {
      if (pos >= text.size() || text[pos] != '.') return std::nullopt;
      ++pos;
    }
    std::size_t start = pos;
    unsigned value = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9' && pos - start < 3)
      value = value * 10 + static_cast<unsigned>(text[pos++] - '0');
    std::size_t digits = pos - start;
    if (digits == 0 || value > 255 || (digits > 1 && text[start] == '0')) return std::nullopt;
    address[part] = static_cast<std::uint8_t>(value);
  }
  if (pos != text.size()) return std::nullopt;
  return address;
}

/// IPv6 in any RFC 4291 text form ("2001:db8::1", "::ffff:192.0.2.1"); no zone index, no brackets.
inline std::optional<Ipv6Address> parse_ipv6(std::string_view text) {
  // inet_pton is strict already; it only needs a NUL-terminated copy. 45 chars is the longest valid form.
  if (text.empty() || text.size() > INET6_ADDRSTRLEN - 1) return std::nullopt;
  char buffer[INET6_ADDRSTRLEN] = {};
  std::memcpy(buffer, text.data(), text.size());
  Ipv6Address address{};
  if (inet_pton(AF_INET6, buffer, address.data()) != 1) return std::nullopt;
  return address;
}

/// MAC as six two-digit hex octets separated by ':' ("52:54:00:12:34:56"), either case.
inline std::optional<MacAddress> parse_mac(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  MacAddress mac{};
  for (std::size_t i = 0; i < 6; ++i) {
    if (i > 0 && text[i * 3 - 1] != ':') return std::nullopt;
    int high = hex(text[i * 3]), low = hex(text[i * 3 + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    mac[i] = static_cast<std::uint8_t>(high << 4 | low);
  }
  return mac;
}

/// "192.168.1.2"
inline std::string format_ipv4(std::span<const std::uint8_t, 4> address) {
  char buffer[INET_ADDRSTRLEN];
  std::snprintf(buffer, sizeof buffer, "%u.%u.%u.%u", address[0], address[1], address[2], address[3]);
  return buffer;
}

/// RFC 5952 form ("2001:db8::1", lower case, longest zero run compressed), as inet_ntop writes it.
inline std::string format_ipv6(std::span<const std::uint8_t, 16> address) {
  char buffer[INET6_ADDRSTRLEN];
  if (!inet_ntop(AF_INET6, address.data(), buffer, sizeof buffer)) return {};
  return buffer;
}

/// "52:54:00:12:34:56" (lower case)
inline std::string format_mac(std::span<const std::uint8_t, 6> mac) {
  char buffer[18];
  std::snprintf(buffer, sizeof buffer, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                mac[5]);
  return buffer;
}

/// Multicast (and broadcast) MACs have the group bit, the lowest bit of the first octet, set.
inline bool is_multicast_mac(std::span<const std::uint8_t, 6> mac) { return (mac[0] & 1u) != 0; }

}  // namespace xdpp::net
