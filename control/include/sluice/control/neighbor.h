// Next-hop MAC resolution through the kernel's neighbour table on the exception interface.
#pragma once

#include <optional>
#include <string>

#include "sluice/ip_address.h"
#include "sluice/result.h"

namespace sluice::control {

// Returns the MAC of a complete IPv4 neighbour entry of `interface`, from /proc/net/arp.
std::optional<MacAddress> find_ipv4_neighbor(const IpAddress& address, const std::string& interface);

// Makes the kernel resolve `address` on `interface` by sending it one empty UDP datagram to
// the discard port (9): the kernel sends an ARP request first.
Status solicit_ipv4_neighbor(const IpAddress& address, const std::string& interface);

}  // namespace sluice::control
