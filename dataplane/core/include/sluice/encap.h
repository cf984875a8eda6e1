// Encapsulation (step 5 of the packet path): IP-in-IP (IPv4 in IPv4, RFC 2003; IPv6 in IPv6
// and IPv4 in IPv6, RFC 2473) and GUE variant 1 (the datagram in UDP) over IPv4 or IPv6.
#pragma once

#include <array>
#include <cstdint>

#include "sluice/dataplane_abi.h"
#include "sluice/ip_address.h"
#include "sluice/packet.h"

namespace sluice {

// A frame in a buffer with room in front of it, as a DPDK mbuf or an XDP frame has.
struct PacketBuffer {
  uint8_t* data = nullptr;
  uint32_t length = 0;
  uint32_t headroom = 0;  // bytes before `data` that the frame may grow into
};

// A backend's outer IP header, built once per snapshot by Snapshot::prepare. Each packet
// copies it and fills in its own fields: protocol, length, TOS and, for IPv4, ID, DF and
// checksum, or for IPv6 the flow label.
struct OuterHeader {
  std::array<uint8_t, 40> ip{};  // the fields that depend on the packet are zero
  uint8_t family = 0;  // 4 or 6; 0 when no outer source address of the backend's family is set
  // IPv4: the one's complement sum of the header's 32-bit words as the CPU loads them, not
  // yet folded. The packet's fields are added to it for the checksum.
  uint64_t ipv4_sum = 0;
};

// Builds the outer header from the load balancer's source address to a backend. The result's
// family is 0 when the two addresses' families differ or either is unset.
OuterHeader make_outer_header(const IpAddress& outer_source, const IpAddress& outer_destination);

// References, not copies: the pipeline builds one per packet from the snapshot and port.
struct EncapsulationParams {
  const MacAddress& source_mac;       // the egress port's
  const MacAddress& destination_mac;  // the next hop's
  const IpAddress& outer_source;      // the load balancer's address, same family as the backend
  const IpAddress& outer_destination;  // the backend
  uint32_t flow_hash = 0;      // IPv6 flow label and GUE source port
  uint32_t mtu = 1500;         // egress L3 MTU
  sluice_encapsulation encapsulation = SLUICE_ENCAP_IPIP;
  uint16_t gue_port = SLUICE_GUE_DEFAULT_PORT;  // GUE's outer UDP destination port
};

// The bytes that encapsulation adds in front of the datagram: the outer IP header of the
// backend's family, and GUE's UDP header.
uint32_t encapsulation_overhead(uint8_t outer_family, sluice_encapsulation encapsulation);

// Wraps the packet's IP datagram in place in an outer IP header addressed to the backend, and
// for GUE a UDP header. The Ethernet header and VLAN tags move forward into the headroom, their
// MAC addresses are rewritten, and Ethernet padding after the datagram is cut. The outer
// header copies the inner TOS or traffic class and, for IPv4 in IPv4, the DF bit; TTL or hop
// limit is SLUICE_OUTER_TTL. GUE's UDP checksum is 0, which IPv6 allows for tunnels
// (RFC 6935, RFC 6936) because the inner datagram carries its own checksums.
// Returns kNone on success, or why the packet cannot be sent: an IPv6 datagram cannot go to
// an IPv4 backend (kUnsupportedEncapsulation), and a datagram that would exceed the MTU
// gives kTooBigAfterEncapsulation, for the caller to reply to with write_too_big_reply.
DropReason encapsulate(PacketBuffer& packet, const ParsedPacket& parsed,
                       const EncapsulationParams& params);

// Encapsulates as above, with the backend's prepared outer header: the per-packet path.
DropReason encapsulate(PacketBuffer& packet, const ParsedPacket& parsed, const OuterHeader& outer,
                       sluice_encapsulation encapsulation, uint16_t gue_port,
                       const MacAddress& source_mac, const MacAddress& destination_mac,
                       uint32_t flow_hash, uint32_t mtu);

// The IPv4 header checksum (RFC 791) over `length` bytes, with the checksum field included
// as it is; returns the value to store, in network byte order.
uint16_t ipv4_header_checksum(const uint8_t* header, uint32_t length);

}  // namespace sluice
