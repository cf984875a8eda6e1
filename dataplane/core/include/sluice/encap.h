// Encapsulation (step 5 of the packet path): IPv4-in-IPv4 (RFC 2003) and IPv6-in-IPv6
// (RFC 2473). GUE joins here as another case of sluice_encapsulation.
#pragma once

#include <cstdint>

#include "sluice/ip_address.h"
#include "sluice/packet.h"

namespace sluice {

// A frame in a buffer with room in front of it, as a DPDK mbuf or an XDP frame has.
struct PacketBuffer {
  uint8_t* data = nullptr;
  uint32_t length = 0;
  uint32_t headroom = 0;  // bytes before `data` that the frame may grow into
};

// References, not copies: the pipeline builds one per packet from the snapshot and port.
struct EncapsulationParams {
  const MacAddress& source_mac;       // the egress port's
  const MacAddress& destination_mac;  // the next hop's
  const IpAddress& outer_source;      // the load balancer's address, same family as the backend
  const IpAddress& outer_destination;  // the backend
  uint32_t flow_hash = 0;      // IPv6 flow label and IPv4 ID source
  uint32_t mtu = 1500;         // egress L3 MTU
};

// Wraps the packet's IP datagram in an outer IP header addressed to the backend, in place:
// the Ethernet header and VLAN tags move forward into the headroom, their MAC addresses are
// rewritten, and Ethernet padding after the datagram is cut. The outer header copies the
// inner TOS or traffic class and, for IPv4 in IPv4, the DF bit; TTL or hop limit is
// SLUICE_OUTER_TTL. Returns kNone on success, or why the packet cannot be sent. Only
// same-family encapsulation is supported so far (kUnsupportedEncapsulation otherwise).
DropReason encapsulate_ipip(PacketBuffer& packet, const ParsedPacket& parsed,
                            const EncapsulationParams& params);

// The IPv4 header checksum (RFC 791) over `length` bytes, with the checksum field included
// as it is; returns the value to store, in network byte order.
uint16_t ipv4_header_checksum(const uint8_t* header, uint32_t length);

}  // namespace sluice
