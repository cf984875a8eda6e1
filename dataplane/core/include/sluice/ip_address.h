// IPv4 and IPv6 addresses and MAC addresses as the data plane stores them.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "sluice/result.h"

namespace sluice {

// An IPv4 or IPv6 address in network byte order. IPv4 fills bytes 0 to 3 and leaves the
// rest zero, the layout of `struct sluice_flow_key`.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  uint8_t family = 0;  // 4 or 6; 0 for an unset address

  static Result<IpAddress> parse(std::string_view text);
  static IpAddress v4(const uint8_t* network_order);
  static IpAddress v6(const uint8_t* network_order);

  bool is_set() const { return family != 0; }
  bool is_v4() const { return family == 4; }
  bool is_v6() const { return family == 6; }
  std::string to_string() const;

  auto operator<=>(const IpAddress&) const = default;
};

struct MacAddress {
  std::array<uint8_t, 6> bytes{};

  static Result<MacAddress> parse(std::string_view text);
  std::string to_string() const;
  bool is_zero() const {
    return (bytes[0] | bytes[1] | bytes[2] | bytes[3] | bytes[4] | bytes[5]) == 0;
  }

  auto operator<=>(const MacAddress&) const = default;
};

}  // namespace sluice
