// How one backend is checked: the kind of check, its timing and its pass criteria.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "sluice/result.h"

namespace sluice::health {

enum class CheckKind : uint8_t {
  kNone,  // no check: the backend counts as up from its first scheduled turn
  kTcp,   // a TCP connect that completes
  kHttp,  // an HTTP/1.1 GET whose status is one of the expected codes
  kUdp,   // a UDP datagram that gets a reply
};

std::string_view to_string(CheckKind kind);

struct HttpCheck {
  std::string path = "/";
  std::set<int> expected_statuses{200};
  // The Host header; the backend's address and port when empty.
  std::string host;

  bool operator==(const HttpCheck&) const = default;
};

struct UdpCheck {
  std::string payload;
  // A substring the reply must contain; any reply passes when empty.
  std::string expected_reply;

  bool operator==(const UdpCheck&) const = default;
};

struct HealthCheckSpec {
  CheckKind kind = CheckKind::kTcp;
  std::chrono::milliseconds interval{2000};  // from the start of one check to the next
  std::chrono::milliseconds timeout{1000};   // per check, from socket() to the result
  uint32_t rise = 2;                         // consecutive passes that bring a down backend up
  uint32_t fall = 3;                         // consecutive failures that take an up backend down
  std::optional<uint16_t> port;              // the VIP's port when absent
  HttpCheck http;                            // used when kind is kHttp
  UdpCheck udp;                              // used when kind is kUdp

  bool operator==(const HealthCheckSpec&) const = default;
};

// Checks the ranges and the fields of the spec's kind. The error names the field, the value
// and the accepted range.
Status validate(const HealthCheckSpec& spec);

}  // namespace sluice::health
