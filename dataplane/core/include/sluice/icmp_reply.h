// Replies the load balancer writes itself, in place of the packet that asked for them.
#pragma once

#include "sluice/encap.h"
#include "sluice/ip_address.h"
#include "sluice/packet.h"

namespace sluice {

// Turns an ICMP or ICMPv6 echo request into its echo reply, in place. The frame goes back to
// the router it came from, from `source_mac`, with the IP addresses swapped, TTL or hop limit
// 64, and type 0 or 129. The checksums are updated incrementally (RFC 1624), and the payload
// and VLAN tags stay. Returns false, changing nothing, for IPv4 with options or IPv6 with
// extension headers.
bool write_echo_reply(PacketBuffer& packet, const ParsedPacket& parsed, const MacAddress& source_mac);

}  // namespace sluice
