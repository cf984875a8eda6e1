#include "sluice/encap.h"

#include <cstring>

#include "byte_order.h"
#include "sluice/dataplane_abi.h"

namespace sluice {
namespace {

void write_outer_ipv4(uint8_t* outer, const uint8_t* inner, const ParsedPacket& parsed,
                      const EncapsulationParams& params, uint8_t protocol, uint16_t total_length) {
  // The header is written as five 32-bit words in memory order. Its checksum (RFC 791) is
  // the one's complement sum of those words as the CPU loads them, because that sum does
  // not depend on byte order (RFC 1071, section 2). So nothing is byte-swapped, and the
  // header is never read back, which would stall on the stores just made.
  const uint8_t first[4] = {0x45, parsed.traffic_class, static_cast<uint8_t>(total_length >> 8),
                            static_cast<uint8_t>(total_length)};  // version 4, IHL 5: no options
  // The inner datagram's ID changes per packet, as RFC 6864 requires of datagrams that may be
  // fragmented, and it is the same on every data plane for the same packet.
  const uint8_t second[4] = {inner[4], inner[5], static_cast<uint8_t>(parsed.dont_fragment ? 0x40 : 0), 0};
  const uint8_t third[4] = {SLUICE_OUTER_TTL, protocol, 0, 0};  // checksum 0 while summing
  uint32_t words[5];
  std::memcpy(&words[0], first, 4);
  std::memcpy(&words[1], second, 4);
  std::memcpy(&words[2], third, 4);
  std::memcpy(&words[3], params.outer_source.bytes.data(), 4);
  std::memcpy(&words[4], params.outer_destination.bytes.data(), 4);

  uint64_t sum = uint64_t{words[0]} + words[1] + words[2] + words[3] + words[4];
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  const uint16_t checksum = static_cast<uint16_t>(~sum);
  std::memcpy(&words[2], third, 2);
  std::memcpy(reinterpret_cast<uint8_t*>(&words[2]) + 2, &checksum, 2);
  std::memcpy(outer, words, kIpv4HeaderSize);
}

void write_outer_ipv6(uint8_t* outer, const ParsedPacket& parsed, const EncapsulationParams& params,
                      uint8_t next_header, uint16_t payload_length) {
  // The flow label spreads flows over ECMP paths and receive queues (RFC 6438). It is the
  // low 20 bits of the flow hash, so one flow keeps one label.
  const uint32_t flow_label = params.flow_hash & 0xfffff;
  outer[0] = static_cast<uint8_t>(0x60 | (parsed.traffic_class >> 4));
  outer[1] = static_cast<uint8_t>((parsed.traffic_class << 4) | (flow_label >> 16));
  store_be16(outer + 2, static_cast<uint16_t>(flow_label));
  store_be16(outer + 4, payload_length);
  outer[6] = next_header;
  outer[7] = SLUICE_OUTER_TTL;
  std::memcpy(outer + 8, params.outer_source.bytes.data(), 16);
  std::memcpy(outer + 24, params.outer_destination.bytes.data(), 16);
}

void write_gue_udp(uint8_t* udp, const ParsedPacket& parsed, const EncapsulationParams& params) {
  store_be16(udp, sluice_gue_source_port(params.flow_hash));
  store_be16(udp + 2, params.gue_port);
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

DropReason encapsulate(PacketBuffer& packet, const ParsedPacket& parsed,
                       const EncapsulationParams& params) {
  // The outer family is the backend's. An IPv4 datagram travels in either family. An IPv6
  // datagram travels only in IPv6, because a router may not fragment it (RFC 8200, section 5).
  const uint8_t outer_family = params.outer_destination.family;
  if ((outer_family != 4 && outer_family != 6) || params.outer_source.family != outer_family ||
      (parsed.family == 6 && outer_family == 4)) {
    return DropReason::kUnsupportedEncapsulation;
  }
  const bool gue = params.encapsulation == SLUICE_ENCAP_GUE;
  const uint32_t ip_size = outer_family == 4 ? kIpv4HeaderSize : kIpv6HeaderSize;
  const uint32_t overhead = gue ? ip_size + kUdpHeaderSize : ip_size;
  if (parsed.l3_length + overhead > params.mtu) return DropReason::kTooBigAfterEncapsulation;
  if (packet.headroom < overhead) return DropReason::kNoHeadroom;

  // The new frame starts `overhead` bytes earlier: fresh MACs, then the original VLAN tags
  // and EtherType (at most 10 bytes, moved forward by at least 20, so they never overlap).
  // IPv4 in IPv6 changes the EtherType.
  uint8_t* frame = packet.data - overhead;
  for (uint32_t i = 12; i < parsed.l3_offset; ++i) frame[i] = packet.data[i];
  std::memcpy(frame, params.destination_mac.bytes.data(), 6);
  std::memcpy(frame + 6, params.source_mac.bytes.data(), 6);
  if (outer_family != parsed.family) store_be16(frame + parsed.l3_offset - 2, kEtherTypeIpv6);

  uint8_t* outer = frame + parsed.l3_offset;
  const uint8_t inner_protocol = parsed.family == 4 ? kProtocolIpip : kProtocolIpv6;
  const uint8_t protocol = gue ? kProtocolUdp : inner_protocol;
  const uint16_t payload_length = static_cast<uint16_t>(overhead - ip_size + parsed.l3_length);
  if (outer_family == 4) {
    write_outer_ipv4(outer, outer + overhead, parsed, params, protocol,
                     static_cast<uint16_t>(ip_size + payload_length));
  } else {
    write_outer_ipv6(outer, parsed, params, protocol, payload_length);
  }
  if (gue) write_gue_udp(outer + ip_size, parsed, params);

  packet.data = frame;
  packet.headroom -= overhead;
  packet.length = parsed.l3_offset + overhead + parsed.l3_length;
  return DropReason::kNone;
}

}  // namespace sluice
