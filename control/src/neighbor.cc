#include "sluice/control/neighbor.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace sluice::control {

std::optional<MacAddress> find_ipv4_neighbor(const IpAddress& address,
                                             const std::string& interface) {
  // Columns: IP address, HW type, Flags, HW address, Mask, Device. Flag 0x2 is ATF_COM, a
  // complete entry.
  std::ifstream table("/proc/net/arp");
  std::string line;
  std::getline(table, line);
  const std::string expected_address = address.to_string();
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string ip, type, flags, mac, mask, device;
    if (!(fields >> ip >> type >> flags >> mac >> mask >> device)) continue;
    if (ip != expected_address || device != interface) continue;
    if ((std::stoul(flags, nullptr, 16) & 0x2) == 0) return std::nullopt;
    Result<MacAddress> parsed = MacAddress::parse(mac);
    if (!parsed || parsed->is_zero()) return std::nullopt;
    return *parsed;
  }
  return std::nullopt;
}

Status solicit_ipv4_neighbor(const IpAddress& address, const std::string& interface) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{std::string("cannot open a UDP socket: ") + std::strerror(errno)};
  Status status;
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, interface.c_str(),
                 static_cast<socklen_t>(interface.size())) != 0) {
    status = Error{"cannot bind to interface " + interface + ": " + std::strerror(errno)};
  } else {
    sockaddr_in destination{};
    destination.sin_family = AF_INET;
    destination.sin_port = htons(9);
    std::memcpy(&destination.sin_addr, address.bytes.data(), 4);
    if (sendto(fd, "", 0, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&destination),
               sizeof(destination)) < 0 && errno != EAGAIN) {
      status = Error{"cannot send to " + address.to_string() + " through " + interface + ": " +
                     std::strerror(errno)};
    }
  }
  close(fd);
  return status;
}

}  // namespace sluice::control
