#include "packet.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <type_traits>

namespace xdpp::test {

namespace {

void put8(Bytes& out, std::uint8_t value) { out.push_back(value); }
void put16(Bytes& out, std::uint16_t value) {
  out.push_back(static_cast<std::uint8_t>(value >> 8));
  out.push_back(static_cast<std::uint8_t>(value));
}
void put32(Bytes& out, std::uint32_t value) {
  put16(out, static_cast<std::uint16_t>(value >> 16));
  put16(out, static_cast<std::uint16_t>(value));
}
void put(Bytes& out, std::span<const std::uint8_t> bytes) { out.insert(out.end(), bytes.begin(), bytes.end()); }
void set16(Bytes& out, std::size_t off, std::uint16_t value) {
  out.at(off) = static_cast<std::uint8_t>(value >> 8);
  out.at(off + 1) = static_cast<std::uint8_t>(value);
}

Bytes padded(const Bytes& bytes, std::size_t multiple) {
  Bytes out = bytes;
  while (out.size() % multiple) out.push_back(0);
  return out;
}

std::uint8_t l4_protocol(const Packet& packet) {
  return std::visit(
      [](const auto& l4) -> std::uint8_t {
        using T = std::decay_t<decltype(l4)>;
        if constexpr (std::is_same_v<T, Tcp>) return 6;
        else if constexpr (std::is_same_v<T, Udp>) return 17;
        else if constexpr (std::is_same_v<T, Icmp>) return 1;
        else if constexpr (std::is_same_v<T, Icmpv6>) return 58;
        else return 253;
      },
      packet.l4);
}

/// The L4 header with a zero checksum field; returns the checksum field's offset in it (or npos).
Bytes l4_header(const Packet& packet, std::size_t& checksum_off) {
  Bytes out;
  checksum_off = std::string::npos;
  std::visit(
      [&](const auto& l4) {
        using T = std::decay_t<decltype(l4)>;
        if constexpr (std::is_same_v<T, Tcp>) {
          Bytes options = padded(l4.options, 4);
          std::uint8_t doff = l4.data_offset.value_or(static_cast<std::uint8_t>((20 + options.size()) / 4));
          put16(out, l4.sport);
          put16(out, l4.dport);
          put32(out, l4.seq);
          put32(out, l4.ack);
          put8(out, static_cast<std::uint8_t>(doff << 4));
          put8(out, l4.flags);
          put16(out, l4.window);
          checksum_off = out.size();
          put16(out, 0);
          put16(out, 0);  // urgent pointer
          put(out, options);
        } else if constexpr (std::is_same_v<T, Udp>) {
          put16(out, l4.sport);
          put16(out, l4.dport);
          put16(out, l4.length.value_or(static_cast<std::uint16_t>(8 + packet.payload.size())));
          checksum_off = out.size();
          put16(out, 0);
        } else if constexpr (std::is_same_v<T, Icmp> || std::is_same_v<T, Icmpv6>) {
          put8(out, l4.type);
          put8(out, l4.code);
          checksum_off = out.size();
          put16(out, 0);
          put16(out, l4.id);
          put16(out, l4.seq);
        }
      },
      packet.l4);
  return out;
}

/// Sum of the IPv4 or IPv6 pseudo-header for an upper-layer checksum.
std::uint32_t pseudo_header_sum(std::span<const std::uint8_t> src, std::span<const std::uint8_t> dst,
                                std::uint8_t protocol, std::uint32_t length) {
  Bytes pseudo;
  put(pseudo, src);
  put(pseudo, dst);
  if (src.size() == 4) {
    put8(pseudo, 0);
    put8(pseudo, protocol);
    put16(pseudo, static_cast<std::uint16_t>(length));
  } else {
    put32(pseudo, length);
    put16(pseudo, 0);
    put8(pseudo, 0);
    put8(pseudo, protocol);
  }
  return ones_complement_sum(pseudo);
}

Bytes ipv6_extension(const Ipv6Extension& ext, std::uint8_t next) {
  Bytes out;
  put8(out, next);
  if (ext.type == Ipv6Extension::fragment) {
    put8(out, 0);
    put16(out, static_cast<std::uint16_t>((ext.fragment_offset << 3) | (ext.more_fragments ? 1 : 0)));
    put32(out, ext.identification);
    return out;
  }
  std::size_t size = std::max<std::size_t>(8, (ext.size + 7) / 8 * 8);
  put8(out, static_cast<std::uint8_t>(size / 8 - 1));
  if (ext.type == Ipv6Extension::routing) {
    put8(out, 253);  // routing type: experimental; segments left 0, so nodes ignore it
    put8(out, 0);
    while (out.size() < size) put8(out, static_cast<std::uint8_t>(0xa0 + out.size()));
  } else {
    // One PadN option filling the header.
    put8(out, 1);
    put8(out, static_cast<std::uint8_t>(size - 4));
    while (out.size() < size) put8(out, 0);
  }
  return out;
}

}  // namespace

Mac mac(std::string_view text) {
  Mac out{};
  unsigned v[6];
  char extra;
  std::string s(text);
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &extra) != 6)
    throw std::invalid_argument("bad MAC address: " + s);
  for (int i = 0; i < 6; ++i) {
    if (v[i] > 0xff) throw std::invalid_argument("bad MAC address: " + s);
    out[i] = static_cast<std::uint8_t>(v[i]);
  }
  return out;
}

Ipv4Address ipv4(std::string_view text) {
  Ipv4Address out{};
  if (inet_pton(AF_INET, std::string(text).c_str(), out.data()) != 1)
    throw std::invalid_argument("bad IPv4 address: " + std::string(text));
  return out;
}

Ipv6Address ipv6(std::string_view text) {
  Ipv6Address out{};
  if (inet_pton(AF_INET6, std::string(text).c_str(), out.data()) != 1)
    throw std::invalid_argument("bad IPv6 address: " + std::string(text));
  return out;
}

std::string to_string(std::span<const std::uint8_t, 6> m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return buf;
}

Frame build(const Packet& packet) {
  Frame frame;
  Bytes& out = frame.bytes;

  put(out, packet.eth.dst);
  put(out, packet.eth.src);
  for (const Vlan& vlan : packet.vlans) {
    put16(out, vlan.tpid);
    put16(out, static_cast<std::uint16_t>((vlan.pcp & 0x7) << 13 | (vlan.id & 0x0fff)));
  }
  std::uint16_t ethertype = packet.eth.type.value_or(
      std::holds_alternative<Ipv4>(packet.l3) ? kEthIpv4
      : std::holds_alternative<Ipv6>(packet.l3) ? kEthIpv6
                                                 : kEthArp);
  put16(out, ethertype);
  frame.l3_off = out.size();

  std::size_t l4_checksum_off = std::string::npos;
  Bytes l4 = l4_header(packet, l4_checksum_off);
  std::uint8_t protocol = l4_protocol(packet);
  std::uint32_t l4_length = static_cast<std::uint32_t>(l4.size() + packet.payload.size());
  std::uint32_t pseudo_sum = 0;

  if (const auto* ip = std::get_if<Ipv4>(&packet.l3)) {
    Bytes options = padded(ip->options, 4);
    std::size_t header_len = 20 + options.size();
    Ipv4Address src = ipv4(ip->src), dst = ipv4(ip->dst);
    std::uint8_t ip_protocol = ip->protocol.value_or(protocol);
    std::uint8_t ihl = ip->ihl.value_or(static_cast<std::uint8_t>(header_len / 4));
    put8(out, static_cast<std::uint8_t>(0x40 | (ihl & 0x0f)));
    put8(out, ip->tos);
    put16(out, ip->total_length.value_or(static_cast<std::uint16_t>(header_len + l4_length)));
    put16(out, ip->id);
    put16(out, static_cast<std::uint16_t>((ip->dont_fragment ? 0x4000 : 0) | (ip->more_fragments ? 0x2000 : 0) |
                                          (ip->fragment_offset & 0x1fff)));
    put8(out, ip->ttl);
    put8(out, ip_protocol);
    put16(out, 0);
    put(out, src);
    put(out, dst);
    put(out, options);
    std::uint16_t checksum =
        ip->checksum.value_or(internet_checksum(std::span(out).subspan(frame.l3_off, header_len)));
    set16(out, frame.l3_off + kIpv4Checksum, checksum);
    if (protocol != 1) pseudo_sum = pseudo_header_sum(src, dst, protocol, l4_length);
  } else if (const auto* ip = std::get_if<Ipv6>(&packet.l3)) {
    Ipv6Address src = ipv6(ip->src), dst = ipv6(ip->dst);
    Bytes extensions;
    for (std::size_t i = 0; i < ip->extensions.size(); ++i) {
      std::uint8_t next = i + 1 < ip->extensions.size() ? static_cast<std::uint8_t>(ip->extensions[i + 1].type)
                                                        : ip->next_header.value_or(protocol);
      put(extensions, ipv6_extension(ip->extensions[i], next));
    }
    std::uint8_t first_next = ip->extensions.empty() ? ip->next_header.value_or(protocol)
                                                     : static_cast<std::uint8_t>(ip->extensions[0].type);
    put32(out, 0x60000000u | (std::uint32_t(ip->traffic_class) << 20) | (ip->flow_label & 0xfffff));
    put16(out, ip->payload_length.value_or(static_cast<std::uint16_t>(extensions.size() + l4_length)));
    put8(out, first_next);
    put8(out, ip->hop_limit);
    put(out, src);
    put(out, dst);
    put(out, extensions);
    pseudo_sum = pseudo_header_sum(src, dst, protocol, l4_length);
  }
  frame.l4_off = out.size();

  if (l4_checksum_off != std::string::npos) {
    Bytes segment = l4;
    put(segment, packet.payload);
    std::uint16_t checksum = internet_checksum(segment, protocol == 1 ? 0 : pseudo_sum);
    if (protocol == 17 && checksum == 0) checksum = 0xffff;  // UDP: 0 means "no checksum"
    set16(l4, l4_checksum_off, checksum);
  }
  put(out, l4);
  frame.payload_off = out.size();
  put(out, packet.payload);
  put(out, packet.trailer);
  if (packet.truncate_to && *packet.truncate_to < out.size()) out.resize(*packet.truncate_to);
  return frame;
}

Bytes ipv4_options(std::size_t words) {
  Bytes options;
  if (words == 0) return options;
  // Router alert (RFC 2113): type 148, length 4, value 0.
  options = {0x94, 0x04, 0x00, 0x00};
  std::size_t room = (words - 1) * 4;
  if (room >= 7) {
    // Record route: type 7, length, pointer, then addresses with high bytes set.
    std::size_t length = 3 + (room - 3) / 4 * 4;
    options.push_back(0x07);
    options.push_back(static_cast<std::uint8_t>(length));
    options.push_back(4);
    for (std::size_t i = 3; i < length; ++i) options.push_back(static_cast<std::uint8_t>(0xf1 - i * 7));
  }
  while (options.size() + 1 < words * 4) options.push_back(0x01);  // NOP
  while (options.size() < words * 4) options.push_back(0x00);      // EOL
  return options;
}

Bytes pattern(std::size_t n, std::uint8_t start) {
  Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(start + i);
  return out;
}

std::uint16_t ones_complement_sum(std::span<const std::uint8_t> data, std::uint32_t initial) {
  std::uint64_t sum = initial;
  for (std::size_t i = 0; i + 1 < data.size(); i += 2) sum += (std::uint32_t(data[i]) << 8) | data[i + 1];
  if (data.size() % 2) sum += std::uint32_t(data.back()) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

std::uint16_t internet_checksum(std::span<const std::uint8_t> data, std::uint32_t initial) {
  return static_cast<std::uint16_t>(~ones_complement_sum(data, initial));
}

std::uint16_t ipv4_header_checksum(std::span<const std::uint8_t> frame, std::size_t l3_off) {
  std::size_t header_len = (read_u8(frame, l3_off) & 0x0f) * 4u;
  if (header_len < 20 || l3_off + header_len > frame.size())
    throw std::out_of_range("no complete IPv4 header in the frame");
  Bytes header(frame.begin() + l3_off, frame.begin() + l3_off + header_len);
  header[kIpv4Checksum] = header[kIpv4Checksum + 1] = 0;
  return internet_checksum(header);
}

bool ipv4_checksum_valid(std::span<const std::uint8_t> frame, std::size_t l3_off) {
  std::size_t header_len = (read_u8(frame, l3_off) & 0x0f) * 4u;
  if (header_len < 20 || l3_off + header_len > frame.size()) return false;
  return ones_complement_sum(frame.subspan(l3_off, header_len)) == 0xffff;
}

std::uint8_t read_u8(std::span<const std::uint8_t> frame, std::size_t off) {
  if (off >= frame.size()) throw std::out_of_range("read past the end of the frame");
  return frame[off];
}

std::uint16_t read_be16(std::span<const std::uint8_t> frame, std::size_t off) {
  return static_cast<std::uint16_t>(read_u8(frame, off) << 8 | read_u8(frame, off + 1));
}

std::uint32_t read_be32(std::span<const std::uint8_t> frame, std::size_t off) {
  return std::uint32_t(read_be16(frame, off)) << 16 | read_be16(frame, off + 2);
}

Mac read_mac(std::span<const std::uint8_t> frame, std::size_t off) {
  Mac out;
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = read_u8(frame, off + i);
  return out;
}

Ipv4Address read_ipv4(std::span<const std::uint8_t> frame, std::size_t off) {
  Ipv4Address out;
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = read_u8(frame, off + i);
  return out;
}

std::vector<std::size_t> differing_bytes(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i)
    if (i >= a.size() || i >= b.size() || a[i] != b[i]) out.push_back(i);
  return out;
}

std::string hex(std::span<const std::uint8_t> bytes) {
  std::string out;
  char buf[4];
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i && i % 16 == 0) out += '\n';
    else if (i) out += ' ';
    std::snprintf(buf, sizeof buf, "%02x", bytes[i]);
    out += buf;
  }
  return out;
}

}  // namespace xdpp::test
