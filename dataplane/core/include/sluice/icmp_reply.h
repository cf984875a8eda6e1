// Replies the load balancer writes itself, in place of the packet that asked for them.
#pragma once

#include "sluice/encap.h"
#include "sluice/ip_address.h"
#include "sluice/packet.h"

namespace sluice {

// Turns an ICMP or ICMPv6 echo request into its echo reply, in place: the MACs and IP
// addresses swapped (the frame goes back to the router it came from, from `source_mac`), TTL
// or hop limit 64, type 0 or 129, and the checksums updated incrementally (RFC 1624). The
// payload and VLAN tags stay. Returns false, changing nothing, for a request this does not
// answer: IPv4 with options or IPv6 with extension headers.
bool write_echo_reply(PacketBuffer& packet, const ParsedPacket& parsed, const MacAddress& source_mac);

}  // namespace sluice
