// Checks of sluicectl's argument values, so that a bad value fails before any request with a
// message naming it. Each check returns an error message, or an empty string for a valid
// value. Each *_of function parses a value that its check accepted.
#pragma once

#include <cstdint>
#include <string>

#include "sluice/ip_address.h"
#include "sluice/snapshot.h"

namespace sluice::ctl {

// A VIP written as 203.0.113.10:80/tcp or [2001:db8::10]:443/udp.
std::string check_vip(const std::string& text);
VipKey vip_of(const std::string& text);

// A backend address: an IPv4 or IPv6 address, the latter with or without brackets.
std::string check_address(const std::string& text);
IpAddress address_of(const std::string& text);

// A client as ADDRESS:PORT, written like a VIP without the protocol.
std::string check_client(const std::string& text);

// A backend weight from 0 to 65535, the range the API accepts.
std::string check_weight(const std::string& text);
// A Maglev table size: a prime from SLUICE_MAGLEV_MIN_SIZE to SLUICE_MAGLEV_MAX_SIZE.
std::string check_table_size(const std::string& text);
uint32_t number_of(const std::string& text);

// A health check: tcp, udp, none, or http: followed by an absolute path such as /healthz.
std::string check_health_check(const std::string& text);

}  // namespace sluice::ctl
