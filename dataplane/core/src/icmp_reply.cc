#include "sluice/icmp_reply.h"

#include <cstring>

#include "byte_order.h"

namespace sluice {
namespace {

constexpr uint8_t kReplyTtl = 64;
constexpr uint8_t kIcmpEchoReply = 0;
constexpr uint8_t kIcmpv6EchoReply = 129;

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

}  // namespace

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
