#include "sluice/encap.h"

#include <cstring>

#include "byte_order.h"
#include "sluice/dataplane_abi.h"

namespace sluice {
namespace {

// The 32-bit word that four bytes make in memory, as the CPU loads it. The one's complement
// sum of an IPv4 header does not depend on byte order (RFC 1071, section 2), so the checksum
// adds such words, and nothing is byte-swapped.
uint32_t word_of(uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3) {
  const uint8_t bytes[4] = {b0, b1, b2, b3};
  uint32_t word;
  std::memcpy(&word, bytes, 4);
  return word;
}

uint16_t fold_checksum(uint64_t sum) {
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

void write_outer_ipv4(uint8_t* ip, const uint8_t* inner, const ParsedPacket& parsed,
                      const OuterHeader& outer, uint8_t protocol, uint16_t total_length) {
  // Only the first three words change per packet. The prepared header's bytes there are
  // 0x45 and the TTL; the packet adds the rest. The inner datagram's
  // ID changes per packet, as RFC 6864 requires of datagrams that may be fragmented, and it is
  // the same on every data plane for the same packet. The header is never read back, which
  // would stall on the stores just made.
  const uint32_t first = word_of(0, parsed.traffic_class, static_cast<uint8_t>(total_length >> 8),
                                 static_cast<uint8_t>(total_length));
  const uint32_t second =
      word_of(inner[4], inner[5], static_cast<uint8_t>(parsed.dont_fragment ? 0x40 : 0), 0);
  const uint32_t third = word_of(0, protocol, 0, 0);
  const uint16_t checksum = fold_checksum(outer.ipv4_sum + first + second + third);
  uint8_t checksum_bytes[2];
  std::memcpy(checksum_bytes, &checksum, 2);

  uint32_t words[3];
  std::memcpy(words, outer.ip.data(), 12);
  words[0] |= first;
  words[1] = second;
  words[2] |= third | word_of(0, 0, checksum_bytes[0], checksum_bytes[1]);
  std::memcpy(ip, words, 12);
  std::memcpy(ip + 12, outer.ip.data() + 12, 8);
}

void write_outer_ipv6(uint8_t* ip, const ParsedPacket& parsed, const OuterHeader& outer,
                      uint8_t next_header, uint32_t flow_hash, uint16_t payload_length) {
  // The flow label spreads flows over ECMP paths and receive queues (RFC 6438). It is the
  // low 20 bits of the flow hash, so one flow keeps one label.
  const uint32_t flow_label = flow_hash & 0xfffff;
  std::memcpy(ip, outer.ip.data(), kIpv6HeaderSize);
  ip[0] = static_cast<uint8_t>(0x60 | (parsed.traffic_class >> 4));
  ip[1] = static_cast<uint8_t>((parsed.traffic_class << 4) | (flow_label >> 16));
  store_be16(ip + 2, static_cast<uint16_t>(flow_label));
  store_be16(ip + 4, payload_length);
  ip[6] = next_header;
}

void write_gue_udp(uint8_t* udp, const ParsedPacket& parsed, uint16_t gue_port, uint32_t flow_hash) {
  store_be16(udp, sluice_gue_source_port(flow_hash));
  store_be16(udp + 2, gue_port);
  store_be16(udp + 4, static_cast<uint16_t>(kUdpHeaderSize + parsed.l3_length));
  store_be16(udp + 6, 0);  // no checksum: see encapsulate()
}

}  // namespace

uint16_t ipv4_header_checksum(const uint8_t* header, uint32_t length) {
  // The one's complement sum does not depend on byte order (RFC 1071, section 2), so it
  // adds 32-bit words as the CPU loads them, and the folded result is already in network
  // order once stored the same way.
  uint64_t sum = 0;
  uint32_t i = 0;
  for (; i + 4 <= length; i += 4) {
    uint32_t word;
    std::memcpy(&word, header + i, 4);
    sum += word;
  }
  if (i + 2 <= length) {
    uint16_t half;
    std::memcpy(&half, header + i, 2);
    sum += half;
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

uint32_t encapsulation_overhead(uint8_t outer_family, sluice_encapsulation encapsulation) {
  const uint32_t ip = outer_family == 4 ? kIpv4HeaderSize : kIpv6HeaderSize;
  return encapsulation == SLUICE_ENCAP_GUE ? ip + kUdpHeaderSize : ip;
}

OuterHeader make_outer_header(const IpAddress& outer_source, const IpAddress& outer_destination) {
  OuterHeader outer;
  const uint8_t family = outer_destination.family;
  if ((family != 4 && family != 6) || outer_source.family != family) return outer;
  outer.family = family;
  uint8_t* ip = outer.ip.data();
  if (family == 4) {
    ip[0] = 0x45;  // version 4, IHL 5: no options
    ip[8] = SLUICE_OUTER_TTL;
    std::memcpy(ip + 12, outer_source.bytes.data(), 4);
    std::memcpy(ip + 16, outer_destination.bytes.data(), 4);
    uint32_t words[5];
    std::memcpy(words, ip, kIpv4HeaderSize);
    outer.ipv4_sum = uint64_t{words[0]} + words[1] + words[2] + words[3] + words[4];
  } else {
    ip[0] = 0x60;
    ip[7] = SLUICE_OUTER_TTL;
    std::memcpy(ip + 8, outer_source.bytes.data(), 16);
    std::memcpy(ip + 24, outer_destination.bytes.data(), 16);
  }
  return outer;
}

DropReason encapsulate(PacketBuffer& packet, const ParsedPacket& parsed,
                       const EncapsulationParams& params) {
  return encapsulate(packet, parsed, make_outer_header(params.outer_source, params.outer_destination),
                     params.encapsulation, params.gue_port, params.source_mac,
                     params.destination_mac, params.flow_hash, params.mtu);
}

DropReason encapsulate(PacketBuffer& packet, const ParsedPacket& parsed, const OuterHeader& outer,
                       sluice_encapsulation encapsulation, uint16_t gue_port,
                       const MacAddress& source_mac, const MacAddress& destination_mac,
                       uint32_t flow_hash, uint32_t mtu) {
  // The outer family is the backend's. An IPv4 datagram travels in either family. An IPv6
  // datagram travels only in IPv6, because a router may not fragment it (RFC 8200, section 5).
  if (outer.family == 0 || (parsed.family == 6 && outer.family == 4)) {
    return DropReason::kUnsupportedEncapsulation;
  }
  const bool gue = encapsulation == SLUICE_ENCAP_GUE;
  const uint32_t ip_size = outer.family == 4 ? kIpv4HeaderSize : kIpv6HeaderSize;
  const uint32_t overhead = encapsulation_overhead(outer.family, encapsulation);
  if (parsed.l3_length + overhead > mtu) return DropReason::kTooBigAfterEncapsulation;
  if (packet.headroom < overhead) return DropReason::kNoHeadroom;

  // The new frame starts `overhead` bytes earlier: fresh MACs, then the original VLAN tags
  // and EtherType (at most 10 bytes, moved forward by at least 20, so they never overlap).
  // IPv4 in IPv6 changes the EtherType.
  uint8_t* frame = packet.data - overhead;
  if (parsed.vlan_tags == 0) {
    std::memcpy(frame + 12, packet.data + 12, 2);
  } else {
    for (uint32_t i = 12; i < parsed.l3_offset; ++i) frame[i] = packet.data[i];
  }
  std::memcpy(frame, destination_mac.bytes.data(), 6);
  std::memcpy(frame + 6, source_mac.bytes.data(), 6);
  if (outer.family != parsed.family) store_be16(frame + parsed.l3_offset - 2, kEtherTypeIpv6);

  uint8_t* ip = frame + parsed.l3_offset;
  const uint8_t protocol = gue ? kProtocolUdp : (parsed.family == 4 ? kProtocolIpip : kProtocolIpv6);
  if (outer.family == 4) {
    write_outer_ipv4(ip, ip + overhead, parsed, outer, protocol,
                     static_cast<uint16_t>(overhead + parsed.l3_length));
  } else {
    write_outer_ipv6(ip, parsed, outer, protocol, flow_hash,
                     static_cast<uint16_t>(overhead - ip_size + parsed.l3_length));
  }
  if (gue) write_gue_udp(ip + ip_size, parsed, gue_port, flow_hash);

  packet.data = frame;
  packet.headroom -= overhead;
  packet.length = parsed.l3_offset + overhead + parsed.l3_length;
  return DropReason::kNone;
}

}  // namespace sluice
