#include "arguments.h"

#include <cctype>

#include "sluice/control/config.h"
#include "sluice/dataplane_abi.h"
#include "sluice/maglev.h"

namespace sluice::ctl {
namespace {

// The largest weight the API accepts (PUT /v1/backends/weight and the config's weight).
constexpr uint64_t kMaxWeight = 65535;

Result<IpAddress> parse_address(const std::string& text) {
  const bool bracketed = text.size() >= 2 && text.front() == '[' && text.back() == ']';
  Result<IpAddress> address = IpAddress::parse(bracketed ? text.substr(1, text.size() - 2) : text);
  if (!address || (bracketed && !address->is_v6())) {
    return Error{"'" + text + "' is not an IPv4 or IPv6 address"};
  }
  return address;
}

// Returns the error for a text that is not a whole number in [min, max], or an empty string.
std::string check_range(const std::string& text, uint64_t min, uint64_t max) {
  const std::string range = std::to_string(min) + " to " + std::to_string(max);
  const bool digits = !text.empty() && text.size() <= 19 &&
                      text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits) return "'" + text + "' is not a whole number from " + range;
  const uint64_t value = std::stoull(text);
  if (value < min || value > max) return text + " is out of range (use " + range + ")";
  return "";
}

}  // namespace

std::string check_vip(const std::string& text) {
  Result<VipKey> key = control::parse_vip_key(text);
  return key ? "" : key.error();
}

VipKey vip_of(const std::string& text) { return *control::parse_vip_key(text); }

std::string check_address(const std::string& text) {
  Result<IpAddress> address = parse_address(text);
  return address ? "" : address.error();
}

IpAddress address_of(const std::string& text) { return *parse_address(text); }

std::string check_client(const std::string& text) {
  // The API parses the client the same way: as a VIP key with a protocol appended.
  if (text.find('/') == std::string::npos && control::parse_vip_key(text + "/tcp")) return "";
  return "'" + text + "' is not ADDRESS:PORT (for example 192.0.2.2:40000 or "
         "[2001:db8::2]:40000)";
}

std::string check_weight(const std::string& text) { return check_range(text, 0, kMaxWeight); }

std::string check_table_size(const std::string& text) {
  if (std::string error = check_range(text, SLUICE_MAGLEV_MIN_SIZE, SLUICE_MAGLEV_MAX_SIZE);
      !error.empty()) {
    return error;
  }
  if (!is_valid_maglev_size(std::stoull(text))) {
    return text + " is not prime (Maglev needs a prime table size; use " +
           std::to_string(SLUICE_MAGLEV_DEFAULT_SIZE) + ")";
  }
  return "";
}

uint32_t number_of(const std::string& text) { return static_cast<uint32_t>(std::stoul(text)); }

std::string check_health_check(const std::string& text) {
  if (text == "tcp" || text == "udp" || text == "none") return "";
  const std::string usage = " (use tcp, udp, none or http:PATH, for example http:/healthz)";
  if (text.rfind("http:", 0) != 0) return "'" + text + "' is not a health check" + usage;
  const std::string path = text.substr(5);
  if (path.empty() || path.front() != '/') {
    return "'" + text + "': the HTTP path must start with '/'" + usage;
  }
  for (unsigned char c : path) {
    if (std::iscntrl(c) || std::isspace(c)) {
      return "'" + text + "': the HTTP path contains a space or control character" + usage;
    }
  }
  return "";
}

}  // namespace sluice::ctl
