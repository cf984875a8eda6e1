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

// Turns a packet that would exceed the egress MTU after encapsulation into the error its
// client needs for path MTU discovery, in place: ICMP fragmentation needed (type 3, code 4;
// RFC 1191) for IPv4 with DF set, or ICMPv6 packet too big (type 2; RFC 8201) for IPv6. It
// reports `path_mtu`, the egress MTU minus the encapsulation overhead. The reply goes back
// to the router the packet came from, from `source_mac` and the VIP. It has TTL or hop limit
// 64, DSCP CS6 for IPv4, and quotes the first SLUICE_TOO_BIG_QUOTE_IPV4 or _IPV6 bytes of
// the packet. VLAN tags stay. Returns false, changing nothing, when no error may be
// sent about the packet (RFC 1812, 4.3.2.7; RFC 4443, 2.4) or it cannot be written. That is
// IPv4 without DF, an IPv4 fragment, an ICMP error, a source address that is not unicast, a
// packet shorter than the quote, or too little headroom.
bool write_too_big_reply(PacketBuffer& packet, const ParsedPacket& parsed, const MacAddress& source_mac,
                         uint32_t path_mtu);

}  // namespace sluice
