#include "sluice/icmp_reply.h"

#include <cstring>

#include "byte_order.h"

namespace sluice {
namespace {

constexpr uint8_t kReplyTtl = 64;
constexpr uint8_t kIcmpEchoReply = 0;
constexpr uint8_t kIcmpv6EchoReply = 129;
constexpr uint8_t kIcmpDestinationUnreachable = 3;
constexpr uint8_t kIcmpFragmentationNeeded = 4;  // the code, with type 3
constexpr uint8_t kIcmpv6PacketTooBig = 2;
constexpr uint8_t kDscpCs6 = 0xc0;  // network control, as routers mark their ICMP errors

// Updates the checksum at `checksum` for one 16-bit word that changes from `old_word` to
// `new_word`: HC' = ~(~HC + ~m + m'), RFC 1624 equation 3.
void update_checksum(uint8_t* checksum, uint16_t old_word, uint16_t new_word) {
  uint32_t sum = static_cast<uint16_t>(~load_be16(checksum)) + static_cast<uint16_t>(~old_word) +
                 uint32_t{new_word};
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  store_be16(checksum, static_cast<uint16_t>(~sum));
}

void swap_bytes(uint8_t* a, uint8_t* b, uint32_t size) {
  uint8_t temporary[16];
  std::memcpy(temporary, a, size);
  std::memcpy(a, b, size);
  std::memcpy(b, temporary, size);
}

// Returns the one's complement sum of `length` bytes plus `sum`, folded to 16 bits. Words are
// added as the CPU loads them, because the folded sum in memory order does not depend on the
// byte order (RFC 1071, section 2). A trailing odd byte is the first byte of a word.
uint16_t ones_complement_sum(const uint8_t* bytes, uint32_t length, uint64_t sum) {
  uint32_t i = 0;
  for (; i + 4 <= length; i += 4) {
    uint32_t word;
    std::memcpy(&word, bytes + i, 4);
    sum += word;
  }
  for (; i + 2 <= length; i += 2) {
    uint16_t half;
    std::memcpy(&half, bytes + i, 2);
    sum += half;
  }
  if (i < length) {
    const uint8_t last[2] = {bytes[i], 0};
    uint16_t half;
    std::memcpy(&half, last, 2);
    sum += half;
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// Returns whether an ICMP error may go to this source address: unicast, so not 0.0.0.0 or
// ::, not multicast, and for IPv4 not class E or broadcast.
bool is_unicast_source(const uint8_t* address, bool v4) {
  if (v4) {
    if (address[0] >= 224) return false;
    return (address[0] | address[1] | address[2] | address[3]) != 0;
  }
  if (address[0] == 0xff) return false;
  uint8_t any = 0;
  for (int i = 0; i < 16; ++i) any |= address[i];
  return any != 0;
}

}  // namespace

bool write_too_big_reply(PacketBuffer& packet, const ParsedPacket& parsed, const MacAddress& source_mac,
                         uint32_t path_mtu) {
  const bool v4 = parsed.family == 4;
  if (parsed.family != 4 && parsed.family != 6) return false;
  if (v4 && (!parsed.dont_fragment || parsed.fragment)) return false;
  if (parsed.icmp_error) return false;
  const uint32_t ip_size = v4 ? kIpv4HeaderSize : kIpv6HeaderSize;
  const uint32_t quote = v4 ? SLUICE_TOO_BIG_QUOTE_IPV4 : SLUICE_TOO_BIG_QUOTE_IPV6;
  const uint32_t prepend = ip_size + kIcmpHeaderSize;
  if (parsed.l3_length < quote || packet.headroom < prepend) return false;
  const uint8_t* old_ip = packet.data + parsed.l3_offset;
  const uint8_t* client = old_ip + (v4 ? 12 : 8);
  const uint8_t* vip = old_ip + (v4 ? 16 : 24);
  if (!is_unicast_source(client, v4)) return false;

  // The quote stays where it is, and the new headers go in front of it, as in encapsulation:
  // back to the router the packet came from, then the VLAN tags and EtherType as they were.
  uint8_t* frame = packet.data - prepend;
  std::memcpy(frame, packet.data + 6, 6);
  std::memcpy(frame + 6, source_mac.bytes.data(), 6);
  for (uint32_t i = 12; i < parsed.l3_offset; ++i) frame[i] = packet.data[i];
  uint8_t* ip = frame + parsed.l3_offset;
  uint8_t* icmp = ip + ip_size;
  // The addresses are copied before anything overwrites them: the new IP header ends where
  // the quoted one starts, so they do not overlap, but the copies keep that obvious.
  uint8_t client_address[16];
  uint8_t vip_address[16];
  std::memcpy(client_address, client, v4 ? 4 : 16);
  std::memcpy(vip_address, vip, v4 ? 4 : 16);

  const uint16_t message_length = static_cast<uint16_t>(kIcmpHeaderSize + quote);
  if (v4) {
    ip[0] = 0x45;
    ip[1] = kDscpCs6;
    store_be16(ip + 2, static_cast<uint16_t>(kIpv4HeaderSize + message_length));
    store_be16(ip + 4, 0);  // ID
    store_be16(ip + 6, 0);  // flags and fragment offset
    ip[8] = kReplyTtl;
    ip[9] = kProtocolIcmp;
    store_be16(ip + 10, 0);
    std::memcpy(ip + 12, vip_address, 4);
    std::memcpy(ip + 16, client_address, 4);
    const uint16_t header_checksum = static_cast<uint16_t>(~ones_complement_sum(ip, kIpv4HeaderSize, 0));
    std::memcpy(ip + 10, &header_checksum, 2);

    icmp[0] = kIcmpDestinationUnreachable;
    icmp[1] = kIcmpFragmentationNeeded;
    store_be16(icmp + 2, 0);
    store_be16(icmp + 4, 0);  // unused
    store_be16(icmp + 6, static_cast<uint16_t>(path_mtu));  // next-hop MTU
    const uint16_t checksum = static_cast<uint16_t>(~ones_complement_sum(icmp, message_length, 0));
    std::memcpy(icmp + 2, &checksum, 2);
  } else {
    ip[0] = 0x60;
    ip[1] = 0;
    store_be16(ip + 2, 0);  // traffic class 0, flow label 0
    store_be16(ip + 4, message_length);
    ip[6] = kProtocolIcmpv6;
    ip[7] = kReplyTtl;
    std::memcpy(ip + 8, vip_address, 16);
    std::memcpy(ip + 24, client_address, 16);

    icmp[0] = kIcmpv6PacketTooBig;
    icmp[1] = 0;
    store_be16(icmp + 2, 0);
    store_be16(icmp + 4, static_cast<uint16_t>(path_mtu >> 16));
    store_be16(icmp + 6, static_cast<uint16_t>(path_mtu));
    // The pseudo-header (RFC 8200, section 8.1): both addresses, the upper-layer length and
    // the next header, as 32-bit fields.
    uint8_t pseudo[8] = {0, 0, 0, 0, 0, 0, 0, kProtocolIcmpv6};
    store_be16(pseudo + 2, message_length);
    const uint16_t pseudo_sum = ones_complement_sum(ip + 8, 32, ones_complement_sum(pseudo, 8, 0));
    const uint16_t checksum = static_cast<uint16_t>(~ones_complement_sum(icmp, message_length, pseudo_sum));
    std::memcpy(icmp + 2, &checksum, 2);
  }

  packet.data = frame;
  packet.headroom -= prepend;
  packet.length = parsed.l3_offset + prepend + quote;
  return true;
}

bool write_echo_reply(PacketBuffer& packet, const ParsedPacket& parsed, const MacAddress& source_mac) {
  uint8_t* frame = packet.data;
  uint8_t* ip = frame + parsed.l3_offset;
  uint8_t* icmp = frame + parsed.l4_offset;
  const bool v4 = parsed.family == 4;
  if (parsed.l4_offset != parsed.l3_offset + (v4 ? kIpv4HeaderSize : kIpv6HeaderSize)) return false;

  // Back to the router the request came from.
  std::memcpy(frame, frame + 6, 6);
  std::memcpy(frame + 6, source_mac.bytes.data(), 6);

  // Swapping source and destination leaves every checksum as it was, because each sums
  // both addresses (the IPv4 header, and the ICMPv6 pseudo-header).
  if (v4) {
    swap_bytes(ip + 12, ip + 16, 4);
    const uint16_t old_ttl_word = load_be16(ip + 8);
    ip[8] = kReplyTtl;
    update_checksum(ip + 10, old_ttl_word, load_be16(ip + 8));
  } else {
    swap_bytes(ip + 8, ip + 24, 16);
    ip[7] = kReplyTtl;  // the hop limit is in no checksum
  }
  const uint16_t old_type_word = load_be16(icmp);
  icmp[0] = v4 ? kIcmpEchoReply : kIcmpv6EchoReply;
  update_checksum(icmp + 2, old_type_word, load_be16(icmp));
  return true;
}

}  // namespace sluice
