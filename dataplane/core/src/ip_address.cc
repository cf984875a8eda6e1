#include "sluice/ip_address.h"

#include <arpa/inet.h>

#include <cstdio>
#include <string>

namespace sluice {

Result<IpAddress> IpAddress::parse(std::string_view text) {
  std::string buffer(text);
  IpAddress address;
  if (inet_pton(AF_INET, buffer.c_str(), address.bytes.data()) == 1) {
    address.family = 4;
    return address;
  }
  if (inet_pton(AF_INET6, buffer.c_str(), address.bytes.data()) == 1) {
    address.family = 6;
    return address;
  }
  return Error{"invalid IP address '" + buffer + "'"};
}

IpAddress IpAddress::v4(const uint8_t* network_order) {
  IpAddress address;
  std::memcpy(address.bytes.data(), network_order, 4);
  address.family = 4;
  return address;
}

IpAddress IpAddress::v6(const uint8_t* network_order) {
  IpAddress address;
  std::memcpy(address.bytes.data(), network_order, 16);
  address.family = 6;
  return address;
}

std::string IpAddress::to_string() const {
  char text[INET6_ADDRSTRLEN] = "";
  if (family == 4) {
    inet_ntop(AF_INET, bytes.data(), text, sizeof(text));
  } else if (family == 6) {
    inet_ntop(AF_INET6, bytes.data(), text, sizeof(text));
  } else {
    return "unset";
  }
  return text;
}

Result<MacAddress> MacAddress::parse(std::string_view text) {
  MacAddress mac;
  unsigned int parts[6];
  char trailing = 0;
  std::string buffer(text);
  if (std::sscanf(buffer.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &parts[0], &parts[1], &parts[2],
                  &parts[3], &parts[4], &parts[5], &trailing) != 6) {
    return Error{"invalid MAC address '" + buffer + "' (expected six hex bytes, aa:bb:cc:dd:ee:ff)"};
  }
  for (int i = 0; i < 6; ++i) mac.bytes[i] = static_cast<uint8_t>(parts[i]);
  return mac;
}

std::string MacAddress::to_string() const {
  char text[18];
  std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1],
                bytes[2], bytes[3], bytes[4], bytes[5]);
  return text;
}

}  // namespace sluice
