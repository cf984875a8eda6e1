#include "sluice/health/check_spec.h"

#include <string>

namespace sluice::health {

std::string_view to_string(CheckKind kind) {
  switch (kind) {
    case CheckKind::kNone:
      return "none";
    case CheckKind::kTcp:
      return "tcp";
    case CheckKind::kHttp:
      return "http";
    case CheckKind::kUdp:
      return "udp";
  }
  return "invalid";
}

namespace {

// Characters that would end the request line or a header early.
bool breaks_request_line(std::string_view text) {
  return text.find_first_of(" \r\n") != std::string_view::npos;
}

Status validate_http(const HttpCheck& http) {
  if (http.path.empty() || http.path.front() != '/' || breaks_request_line(http.path)) {
    return Error{"health check http.path '" + http.path +
                 "' is invalid (expected an origin-form path such as /healthz, without spaces)"};
  }
  if (http.host.find_first_of("\r\n") != std::string::npos) {
    return Error{"health check http.host contains a line break"};
  }
  if (http.expected_statuses.empty()) {
    return Error{"health check http.expected_statuses is empty (list at least one, such as 200)"};
  }
  for (const int status : http.expected_statuses) {
    if (status < 100 || status > 599) {
      return Error{"health check http.expected_statuses contains " + std::to_string(status) +
                   " (expected HTTP status codes from 100 to 599)"};
    }
  }
  return {};
}

}  // namespace

Status validate(const HealthCheckSpec& spec) {
  if (spec.interval.count() <= 0) {
    return Error{"health check interval " + std::to_string(spec.interval.count()) +
                 " ms is invalid (expected more than 0 ms)"};
  }
  if (spec.timeout.count() <= 0) {
    return Error{"health check timeout " + std::to_string(spec.timeout.count()) +
                 " ms is invalid (expected more than 0 ms)"};
  }
  if (spec.rise == 0) return Error{"health check rise 0 is invalid (expected 1 or more)"};
  if (spec.fall == 0) return Error{"health check fall 0 is invalid (expected 1 or more)"};
  if (spec.port && *spec.port == 0) {
    return Error{
        "health check port 0 is invalid (expected 1 to 65535, or no port to use the "
        "VIP's port)"};
  }
  if (spec.kind == CheckKind::kHttp) return validate_http(spec.http);
  return {};
}

}  // namespace sluice::health
