#include "sluice/packet.h"

#include <bit>
#include <cstddef>
#include <cstring>

#include "byte_order.h"

namespace sluice {
namespace {

constexpr uint16_t kEtherTypeVlan = 0x8100;  // 802.1Q
constexpr uint16_t kEtherTypeQinQ = 0x88a8;  // 802.1ad
constexpr uint32_t kEthernetHeaderSize = 14;
constexpr uint32_t kVlanTagSize = 4;
constexpr int kMaxVlanTags = 2;

constexpr uint8_t kIpv6HopByHop = 0;
constexpr uint8_t kIpv6Routing = 43;
constexpr uint8_t kIpv6Fragment = 44;
constexpr uint8_t kIpv6Ah = 51;
constexpr uint8_t kIpv6DestinationOptions = 60;

constexpr uint8_t kIcmpDestinationUnreachable = 3;  // includes fragmentation needed (code 4)
constexpr uint8_t kIcmpTimeExceeded = 11;
constexpr uint8_t kIcmpEchoRequest = 8;
constexpr uint8_t kIcmpv6EchoRequest = 128;
constexpr uint8_t kIcmpv6DestinationUnreachable = 1;
constexpr uint8_t kIcmpv6PacketTooBig = 2;
constexpr uint8_t kIcmpv6TimeExceeded = 3;

// A read-only cursor over the frame. Every header read goes through has(), so no step can
// read past the end of the frame (or of the IP datagram, once `limit` shrinks to it).
struct Cursor {
  const uint8_t* frame;
  uint32_t limit;

  bool has(uint32_t offset, uint32_t size) const {
    return offset <= limit && size <= limit - offset;
  }
};

DropReason parse_ethernet(Cursor& cursor, ParsedPacket& out, uint16_t& ether_type) {
  if (!cursor.has(0, kEthernetHeaderSize)) return DropReason::kTruncatedEthernet;
  uint32_t offset = 12;
  ether_type = load_be16(cursor.frame + offset);
  offset += 2;

  while (ether_type == kEtherTypeVlan || ether_type == kEtherTypeQinQ) {
    if (out.vlan_tags == kMaxVlanTags) return DropReason::kTooManyVlanTags;
    if (!cursor.has(offset, kVlanTagSize)) return DropReason::kTruncatedVlan;
    ether_type = load_be16(cursor.frame + offset + 2);
    offset += kVlanTagSize;
    ++out.vlan_tags;
  }
  out.l3_offset = static_cast<uint16_t>(offset);
  return DropReason::kNone;
}

DropReason parse_ipv4(Cursor& cursor, ParsedPacket& out) {
  const uint32_t l3 = out.l3_offset;
  if (!cursor.has(l3, kIpv4HeaderSize)) return DropReason::kTruncatedIpv4;
  const uint8_t* ip = cursor.frame + l3;
  if ((ip[0] >> 4) != 4) return DropReason::kIpv4BadVersion;

  const uint32_t header_length = (ip[0] & 0x0f) * 4u;
  const uint32_t total_length = load_be16(ip + 2);
  if (header_length < kIpv4HeaderSize) return DropReason::kIpv4HeaderTooShort;
  if (header_length > total_length) return DropReason::kIpv4HeaderPastTotalLength;
  if (!cursor.has(l3, total_length)) return DropReason::kIpv4TotalLengthPastFrame;

  // From here on, nothing past the datagram counts: Ethernet padding is not L4 data.
  cursor.limit = l3 + total_length;
  const uint16_t fragment_field = load_be16(ip + 6);
  out.family = 4;
  out.traffic_class = ip[1];
  out.dont_fragment = (fragment_field & 0x4000) != 0;
  out.fragment = (fragment_field & 0x3fff) != 0;  // MF or a non-zero offset
  out.protocol = ip[9];
  out.l3_length = static_cast<uint16_t>(total_length);
  out.l4_offset = static_cast<uint16_t>(l3 + header_length);
  out.key.family = 4;
  out.key.protocol = ip[9];
  std::memcpy(&out.key.src[0], ip + 12, 4);
  std::memcpy(&out.key.dst[0], ip + 16, 4);
  return DropReason::kNone;
}

// Walks IPv6 extension headers up to the upper-layer header. Hop-by-Hop, Routing and
// Destination Options give their length in 8-byte units not counting the first 8 (RFC 8200
// section 4); AH in 4-byte units not counting the first 8 (RFC 4302 section 2.2); the
// Fragment header is always 8 bytes.
DropReason parse_ipv6_extensions(Cursor& cursor, ParsedPacket& out, uint8_t next_header) {
  uint32_t offset = out.l3_offset + kIpv6HeaderSize;
  const auto upper_layer = [&out](uint8_t protocol, uint32_t l4_offset) {
    out.protocol = protocol;
    out.key.protocol = protocol;
    out.l4_offset = static_cast<uint16_t>(l4_offset);
    return DropReason::kNone;
  };
  // One pass per extension header, plus one for the upper-layer header after the last.
  for (int i = 0; i <= kMaxIpv6ExtensionHeaders; ++i) {
    switch (next_header) {
      case kIpv6HopByHop:
      case kIpv6Routing:
      case kIpv6DestinationOptions:
      case kIpv6Ah: {
        if (i == kMaxIpv6ExtensionHeaders) return DropReason::kTooManyIpv6ExtensionHeaders;
        if (!cursor.has(offset, 8)) return DropReason::kTruncatedIpv6ExtensionHeader;
        const uint8_t* header = cursor.frame + offset;
        const uint32_t length = next_header == kIpv6Ah ? (header[1] + 2u) * 4u
                                                       : (header[1] + 1u) * 8u;
        if (!cursor.has(offset, length)) return DropReason::kTruncatedIpv6ExtensionHeader;
        next_header = header[0];
        offset += length;
        break;
      }
      case kIpv6Fragment: {
        if (i == kMaxIpv6ExtensionHeaders) return DropReason::kTooManyIpv6ExtensionHeaders;
        if (!cursor.has(offset, 8)) return DropReason::kTruncatedIpv6ExtensionHeader;
        const uint8_t* header = cursor.frame + offset;
        const uint16_t offset_and_flags = load_be16(header + 2);
        out.fragment = (offset_and_flags & 0xfff9) != 0;  // offset (13 bits) or M flag
        next_header = header[0];
        offset += 8;
        // In a later fragment the bytes after this header are data, not headers (RFC 8200
        // section 4.5), so every fragment of a datagram stops here and classifies on the same
        // Next Header. NOTE: a datagram whose fragmentable part starts with another extension
        // header therefore matches no TCP or UDP VIP and goes to the kernel.
        if (out.fragment) return upper_layer(next_header, offset);
        break;
      }
      default:
        return upper_layer(next_header, offset);
    }
  }
  return DropReason::kTooManyIpv6ExtensionHeaders;  // not reached, because the last pass returns
}

DropReason parse_ipv6(Cursor& cursor, ParsedPacket& out) {
  const uint32_t l3 = out.l3_offset;
  if (!cursor.has(l3, kIpv6HeaderSize)) return DropReason::kTruncatedIpv6;
  const uint8_t* ip = cursor.frame + l3;
  if ((ip[0] >> 4) != 6) return DropReason::kIpv6BadVersion;

  const uint32_t payload_length = load_be16(ip + 4);
  if (!cursor.has(l3 + kIpv6HeaderSize, payload_length)) {
    return DropReason::kIpv6PayloadLengthPastFrame;
  }
  cursor.limit = l3 + kIpv6HeaderSize + payload_length;
  out.family = 6;
  out.traffic_class = static_cast<uint8_t>(((ip[0] & 0x0f) << 4) | (ip[1] >> 4));
  out.l3_length = static_cast<uint16_t>(kIpv6HeaderSize + payload_length);
  out.key.family = 6;
  std::memcpy(out.key.src, ip + 8, 16);
  std::memcpy(out.key.dst, ip + 24, 16);
  return parse_ipv6_extensions(cursor, out, ip[6]);
}

// ICMP errors quote the datagram that caused them: its IP header and at least 8 bytes of its
// payload (RFC 792; RFC 4443 section 2.4 for ICMPv6). An error about a VIP flow quotes a
// packet that a backend sent from the VIP to the client, so the reversed quote is the flow's
// own key. Anything else, including a quote too short for ports, stays plain ICMP.
void parse_icmp_error(const Cursor& cursor, ParsedPacket& out) {
  const uint32_t l4 = out.l4_offset;
  if (!cursor.has(l4, kIcmpHeaderSize)) return;
  const uint8_t type = cursor.frame[l4];
  const uint8_t code = cursor.frame[l4 + 1];
  if (type == (out.family == 4 ? kIcmpEchoRequest : kIcmpv6EchoRequest) && code == 0) {
    out.icmp_echo_request = true;
    return;
  }
  const bool error = out.family == 4 ? (type == kIcmpDestinationUnreachable || type == kIcmpTimeExceeded)
                                     : (type == kIcmpv6DestinationUnreachable ||
                                        type == kIcmpv6PacketTooBig || type == kIcmpv6TimeExceeded);
  if (!error) return;

  const uint32_t quote = l4 + kIcmpHeaderSize;
  sluice_flow_key quoted{};
  uint32_t quoted_l4 = 0;
  if (out.family == 4) {
    if (!cursor.has(quote, kIpv4HeaderSize)) return;
    const uint8_t* ip = cursor.frame + quote;
    const uint32_t header_length = (ip[0] & 0x0f) * 4u;
    if ((ip[0] >> 4) != 4 || header_length < kIpv4HeaderSize) return;
    if ((load_be16(ip + 6) & 0x1fff) != 0) return;  // a later fragment quotes no ports
    quoted.protocol = ip[9];
    std::memcpy(&quoted.src[0], ip + 12, 4);
    std::memcpy(&quoted.dst[0], ip + 16, 4);
    quoted_l4 = quote + header_length;
  } else {
    // NOTE: a quoted IPv6 datagram with extension headers is not followed; such an error
    // goes to the kernel.
    if (!cursor.has(quote, kIpv6HeaderSize)) return;
    const uint8_t* ip = cursor.frame + quote;
    if ((ip[0] >> 4) != 6) return;
    quoted.protocol = ip[6];
    std::memcpy(quoted.src, ip + 8, 16);
    std::memcpy(quoted.dst, ip + 24, 16);
    quoted_l4 = quote + kIpv6HeaderSize;
  }
  if (quoted.protocol != kProtocolTcp && quoted.protocol != kProtocolUdp) return;
  if (!cursor.has(quoted_l4, 8)) return;

  const uint8_t* ports = cursor.frame + quoted_l4;
  out.key.protocol = quoted.protocol;
  std::memcpy(out.key.src, quoted.dst, 16);
  std::memcpy(out.key.dst, quoted.src, 16);
  std::memcpy(&out.key.src_port, ports + 2, 2);
  std::memcpy(&out.key.dst_port, ports, 2);
  out.icmp_error = true;
}

DropReason parse_transport(const Cursor& cursor, ParsedPacket& out) {
  const uint32_t l4 = out.l4_offset;
  const uint8_t* header = cursor.frame + l4;
  switch (out.protocol) {
    case kProtocolTcp: {
      if (!cursor.has(l4, 20)) return DropReason::kTruncatedTcp;
      const uint32_t data_offset = (header[12] >> 4) * 4u;
      if (data_offset < 20) return DropReason::kTcpBadDataOffset;
      if (!cursor.has(l4, data_offset)) return DropReason::kTruncatedTcp;
      out.tcp_flags = header[13];
      break;
    }
    case kProtocolUdp:
      if (!cursor.has(l4, 8)) return DropReason::kTruncatedUdp;
      break;
    case kProtocolIcmp:
    case kProtocolIcmpv6:
      if ((out.protocol == kProtocolIcmp) == (out.family == 4)) parse_icmp_error(cursor, out);
      return DropReason::kNone;
    default:
      return DropReason::kNone;  // the rest carry no ports
  }
  std::memcpy(&out.key.src_port, header, 2);
  std::memcpy(&out.key.dst_port, header + 2, 2);
  out.has_ports = true;
  return DropReason::kNone;
}

}  // namespace

std::string_view drop_reason_name(DropReason reason) {
  switch (reason) {
    case DropReason::kNone:
      return "none";
#define SLUICE_DROP_NAME_CASE(suffix, name) \
  case DropReason::k##suffix:               \
    return name;
      SLUICE_DROP_REASONS(SLUICE_DROP_NAME_CASE)
#undef SLUICE_DROP_NAME_CASE
  }
  return "unknown";
}

namespace {

// The word layout that parse_ipv4_fast writes.
static_assert(sizeof(ParsedPacket) == 56 && offsetof(ParsedPacket, l3_offset) == 40 &&
              offsetof(ParsedPacket, l4_offset) == 42 && offsetof(ParsedPacket, l3_length) == 44 &&
              offsetof(ParsedPacket, vlan_tags) == 46 && offsetof(ParsedPacket, family) == 47 &&
              offsetof(ParsedPacket, protocol) == 48 && offsetof(ParsedPacket, tcp_flags) == 49 &&
              offsetof(ParsedPacket, traffic_class) == 50 && offsetof(ParsedPacket, dont_fragment) == 51 &&
              offsetof(ParsedPacket, fragment) == 52 && offsetof(ParsedPacket, has_ports) == 53 &&
              offsetof(ParsedPacket, icmp_error) == 54 && offsetof(ParsedPacket, icmp_echo_request) == 55);
static_assert(offsetof(sluice_flow_key, src_port) == 32 && offsetof(sluice_flow_key, dst_port) == 34 &&
              offsetof(sluice_flow_key, protocol) == 36 && offsetof(sluice_flow_key, family) == 37);

// The common case in one pass: an untagged IPv4 datagram without options that is not a
// fragment and carries a whole TCP or UDP header. Returns false for anything else, and the
// general parser then starts over. Where this accepts a frame, the general parser gives the
// same result; the unit tests and the fuzzer compare the two.
bool parse_ipv4_fast(std::span<const uint8_t> frame, ParsedPacket& out) {
  constexpr uint32_t kL3 = kEthernetHeaderSize;
  constexpr uint32_t kL4 = kL3 + kIpv4HeaderSize;
  if (frame.size() < kL4 + kUdpHeaderSize) return false;
  const uint8_t* ip = frame.data() + kL3;
  if (load_be16(frame.data() + 12) != kEtherTypeIpv4 || ip[0] != 0x45) return false;
  const uint32_t total_length = load_be16(ip + 2);
  const uint16_t fragment_field = load_be16(ip + 6);
  if (total_length > frame.size() - kL3 || (fragment_field & 0x3fff) != 0) return false;
  const uint8_t* l4 = ip + kIpv4HeaderSize;
  const uint8_t protocol = ip[9];
  uint8_t tcp_flags = 0;
  if (protocol == kProtocolTcp) {
    // The length first: a shorter datagram's frame may end before the data offset byte.
    if (total_length < kIpv4HeaderSize + 20) return false;
    const uint32_t data_offset = (l4[12] >> 4) * 4u;
    if (data_offset < 20 || data_offset > total_length - kIpv4HeaderSize) return false;
    tcp_flags = l4[13];
  } else if (protocol != kProtocolUdp || total_length < kIpv4HeaderSize + kUdpHeaderSize) {
    return false;
  }

  // The result is written as seven 64-bit words, because the VIP index and the flow table
  // load the key as 64-bit words. A load that spans several recent narrower stores cannot
  // take its bytes from them, so it would wait until they reach the cache.
  if constexpr (std::endian::native == std::endian::little) {
    uint32_t source;
    uint32_t destination;
    uint32_t ports;
    std::memcpy(&source, ip + 12, 4);
    std::memcpy(&destination, ip + 16, 4);
    std::memcpy(&ports, l4, 4);
    auto* bytes = reinterpret_cast<uint8_t*>(&out);
    const auto store = [bytes](size_t word, uint64_t value) { std::memcpy(bytes + 8 * word, &value, 8); };
    store(0, source);
    store(1, 0);
    store(2, destination);
    store(3, 0);
    store(4, ports | uint64_t{protocol} << 32 | uint64_t{4} << 40);  // ports, protocol, family
    store(5, kL3 | uint64_t{kL4} << 16 | uint64_t{total_length} << 32 | uint64_t{4} << 56);  // no VLAN tags
    store(6, protocol | uint64_t{tcp_flags} << 8 | uint64_t{ip[1]} << 16 |
                 uint64_t{(fragment_field & 0x4000) != 0} << 24 | uint64_t{1} << 40);  // has_ports
  } else {
    out = ParsedPacket{};
    std::memcpy(&out.key.src[0], ip + 12, 4);
    std::memcpy(&out.key.dst[0], ip + 16, 4);
    std::memcpy(&out.key.src_port, l4, 2);
    std::memcpy(&out.key.dst_port, l4 + 2, 2);
    out.key.protocol = protocol;
    out.key.family = 4;
    out.l3_offset = kL3;
    out.l4_offset = kL4;
    out.l3_length = static_cast<uint16_t>(total_length);
    out.family = 4;
    out.protocol = protocol;
    out.tcp_flags = tcp_flags;
    out.traffic_class = ip[1];
    out.dont_fragment = (fragment_field & 0x4000) != 0;
    out.has_ports = true;
  }
  return true;
}

}  // namespace

DropReason parse_packet(std::span<const uint8_t> frame, ParsedPacket& out) {
  if (parse_ipv4_fast(frame, out)) return DropReason::kNone;
  return parse_packet_general(frame, out);
}

DropReason parse_packet_general(std::span<const uint8_t> frame, ParsedPacket& out) {
  out = ParsedPacket{};
  Cursor cursor{frame.data(), static_cast<uint32_t>(frame.size())};

  uint16_t ether_type = 0;
  DropReason drop = parse_ethernet(cursor, out, ether_type);
  if (drop != DropReason::kNone) return drop;

  if (ether_type == kEtherTypeIpv4) {
    drop = parse_ipv4(cursor, out);
  } else if (ether_type == kEtherTypeIpv6) {
    drop = parse_ipv6(cursor, out);
  } else {
    return DropReason::kNone;  // ARP, LLDP and the rest: family 0, for the kernel
  }
  if (drop != DropReason::kNone) return drop;

  // A fragment's transport header is in the first fragment only, so fragments are hashed
  // on (source, destination, protocol) and their ports are never read.
  if (out.fragment) return DropReason::kNone;

  return parse_transport(cursor, out);
}

ParseResult parse_packet(std::span<const uint8_t> frame) {
  ParseResult result;
  result.drop = parse_packet(frame, result.packet);
  return result;
}

}  // namespace sluice
