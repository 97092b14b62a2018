// Crafted frames for the BPF tests: a packet is described with named fields (designated initializers)
// and built into bytes, with every checksum computed from scratch here (RFC 1071 over the whole
// header), independently of the code under test.
//
//     Frame frame = build({
//         .vlans = {{.tpid = 0x88A8, .id = 100}, {.id = 200}},
//         .l3 = Ipv4{.src = "192.168.1.3", .dst = "192.168.1.2", .options = ipv4_options(4)},
//         .l4 = Tcp{.sport = 35668, .dport = 8080},
//     });
//
// The builder writes what it is told, right or wrong: a wrong IHL or total length, a TCP header after a
// non-first fragment (so that payload bytes "look like" ports), a frame cut to N bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace xdpp::test {

using Bytes = std::vector<std::uint8_t>;
using Mac = std::array<std::uint8_t, 6>;
using Ipv4Address = std::array<std::uint8_t, 4>;
using Ipv6Address = std::array<std::uint8_t, 16>;

/// "52:54:00:ff:ff:55" -> bytes; throws std::invalid_argument on bad text.
Mac mac(std::string_view text);
/// "192.168.1.2" -> network-order bytes; throws std::invalid_argument on bad text.
Ipv4Address ipv4(std::string_view text);
/// "2001:db8::1" -> network-order bytes; throws std::invalid_argument on bad text.
Ipv6Address ipv6(std::string_view text);
/// "aa:bb:cc:dd:ee:ff" for messages.
std::string to_string(std::span<const std::uint8_t, 6> mac);

// ---- Layers ------------------------------------------------------------------------------------------

inline constexpr std::uint16_t kEthIpv4 = 0x0800;
inline constexpr std::uint16_t kEthIpv6 = 0x86DD;
inline constexpr std::uint16_t kEthArp = 0x0806;
inline constexpr std::uint16_t kEth8021Q = 0x8100;
inline constexpr std::uint16_t kEth8021AD = 0x88A8;

struct Ethernet {
  Mac dst = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};   // the test interface's MAC
  Mac src = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};   // the client's
  /// EtherType after the VLAN tags; default: from the L3 layer (IPv4, IPv6), else ARP.
  std::optional<std::uint16_t> type;
};

/// One 802.1Q (0x8100) or 802.1ad (0x88A8) tag; the first in Packet::vlans is the outer one.
struct Vlan {
  std::uint16_t tpid = kEth8021Q;
  std::uint16_t id = 0;     // 12 bits
  std::uint8_t pcp = 0;     // 3 bits, above the DEI bit
};

struct Ipv4 {
  std::string src = "192.168.1.3";
  std::string dst = "192.168.1.2";
  std::uint8_t ttl = 64;
  std::uint8_t tos = 0;
  std::uint16_t id = 0x1c46;
  bool dont_fragment = false;
  bool more_fragments = false;
  std::uint16_t fragment_offset = 0;            // in 8-byte units
  Bytes options;                                // padded with EOL (0) to a multiple of 4
  std::optional<std::uint8_t> protocol;         // default: from the L4 layer (253 when there is none)
  std::optional<std::uint8_t> ihl;              // written instead of the real header length / 4
  std::optional<std::uint16_t> total_length;    // written instead of header + L4 + payload
  std::optional<std::uint16_t> checksum;        // written instead of the correct checksum
};

/// An IPv6 extension header. Hop-by-hop, routing and destination options are padded (PadN) to
/// `size` bytes (a multiple of 8, at least 8); a fragment header is always 8 bytes.
struct Ipv6Extension {
  enum Type : std::uint8_t { hop_by_hop = 0, routing = 43, fragment = 44, destination = 60 };
  Type type = hop_by_hop;
  std::size_t size = 8;
  // fragment header only
  std::uint16_t fragment_offset = 0;            // in 8-byte units
  bool more_fragments = false;
  std::uint32_t identification = 0xdeadbeef;
};

struct Ipv6 {
  std::string src = "2001:db8::3";
  std::string dst = "2001:db8::2";
  std::uint8_t hop_limit = 64;
  std::uint8_t traffic_class = 0;
  std::uint32_t flow_label = 0x12345;
  std::vector<Ipv6Extension> extensions;        // in order, after the fixed header
  std::optional<std::uint8_t> next_header;      // of the last header; default: from the L4 layer
  std::optional<std::uint16_t> payload_length;  // written instead of the real one
};

inline constexpr std::uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08,
                              kTcpAck = 0x10, kTcpUrg = 0x20;

struct Tcp {
  std::uint16_t sport = 35668;
  std::uint16_t dport = 22;
  std::uint32_t seq = 0x01020304;
  std::uint32_t ack = 0;
  std::uint8_t flags = kTcpSyn;
  std::uint16_t window = 64240;
  Bytes options;                                // padded with EOL (0) to a multiple of 4
  std::optional<std::uint8_t> data_offset;      // written instead of the real header length / 4
};

struct Udp {
  std::uint16_t sport = 35668;
  std::uint16_t dport = 53;
  std::optional<std::uint16_t> length;          // written instead of header + payload
};

struct Icmp {
  std::uint8_t type = 8;                        // echo request
  std::uint8_t code = 0;
  std::uint16_t id = 0x4242;
  std::uint16_t seq = 1;
};

struct Icmpv6 {
  std::uint8_t type = 128;                      // echo request
  std::uint8_t code = 0;
  std::uint16_t id = 0x4242;
  std::uint16_t seq = 1;
};

/// A whole frame. `payload` follows the L4 header (or the L3 header when there is no L4 layer) and
/// is counted in the IP lengths; `trailer` is Ethernet padding after the datagram, not counted.
struct Packet {
  Ethernet eth;
  std::vector<Vlan> vlans;                                  // 0..2 (more are written too)
  std::variant<std::monostate, Ipv4, Ipv6> l3;
  std::variant<std::monostate, Tcp, Udp, Icmp, Icmpv6> l4;
  Bytes payload;
  Bytes trailer;
  std::optional<std::size_t> truncate_to;                   // cut the built frame to this many bytes
};

/// A built frame and where its layers start (before truncation).
struct Frame {
  Bytes bytes;
  std::size_t l3_off = 0;
  std::size_t l4_off = 0;        // first byte after the IP header and its options / extension headers
  std::size_t payload_off = 0;   // first byte after the L4 header
  std::size_t size() const { return bytes.size(); }
};

Frame build(const Packet& packet);

/// IPv4 options of `words` 32-bit words (IHL = 5 + words): a router alert, then a record-route option
/// with non-zero data (so that a checksum error would show), padded with NOP/EOL.
Bytes ipv4_options(std::size_t words);

/// `n` bytes of a recognisable pattern (0x00, 0x01, ...).
Bytes pattern(std::size_t n, std::uint8_t start = 0);

// ---- Checksums (RFC 1071, from scratch) -----------------------------------------------------------------

/// The one's-complement sum of `data` (odd length padded with a zero byte), folded to 16 bits, plus
/// `initial` (an already-folded partial sum).
std::uint16_t ones_complement_sum(std::span<const std::uint8_t> data, std::uint32_t initial = 0);
/// The checksum to write: ~sum. `data` must have its checksum field zeroed.
std::uint16_t internet_checksum(std::span<const std::uint8_t> data, std::uint32_t initial = 0);

/// The IPv4 header checksum at `l3_off` recomputed from scratch (IHL from the header), ignoring the
/// value in the field.
std::uint16_t ipv4_header_checksum(std::span<const std::uint8_t> frame, std::size_t l3_off);
/// True when the IPv4 header at `l3_off` sums to 0xFFFF (-0) with its checksum field included.
bool ipv4_checksum_valid(std::span<const std::uint8_t> frame, std::size_t l3_off);

// ---- Reading a frame back ------------------------------------------------------------------------------

std::uint8_t read_u8(std::span<const std::uint8_t> frame, std::size_t off);
std::uint16_t read_be16(std::span<const std::uint8_t> frame, std::size_t off);
std::uint32_t read_be32(std::span<const std::uint8_t> frame, std::size_t off);
Mac read_mac(std::span<const std::uint8_t> frame, std::size_t off);
Ipv4Address read_ipv4(std::span<const std::uint8_t> frame, std::size_t off);

/// Offsets of the fields the tests look at.
inline constexpr std::size_t kEthDst = 0, kEthSrc = 6;
inline constexpr std::size_t kIpv4Checksum = 10, kIpv4Saddr = 12, kIpv4Daddr = 16;

/// Indices of bytes where `a` and `b` differ (and every index past the shorter one).
std::vector<std::size_t> differing_bytes(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

/// Hex dump for failure messages.
std::string hex(std::span<const std::uint8_t> bytes);

}  // namespace xdpp::test
