// A minimal HTTP/1.1 client for sluiced's control API on a Unix socket: one request per
// connection, as the server closes each connection after its response.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/result.h"

namespace sluice::ctl {

struct ApiResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

// A query parameter, percent-encoded by build_target.
using QueryParameter = std::pair<std::string, std::string>;

// Returns `path` followed by the percent-encoded query, for example
// /v1/backends?vip=203.0.113.10%3A80%2Ftcp&address=198.51.100.130.
std::string build_target(std::string_view path, const std::vector<QueryParameter>& query = {});

class ApiClient {
 public:
  ApiClient(std::string socket_path, std::chrono::milliseconds timeout);

  // Sends one request and reads the whole response. The timeout covers the connect, the
  // request and the response together. Errors name the socket and what to check. An HTTP
  // error status is a response, not an error.
  Result<ApiResponse> send(std::string_view method, std::string_view target,
                           std::string_view body = {},
                           std::string_view content_type = "application/json") const;

  const std::string& socket_path() const { return socket_path_; }

 private:
  std::string socket_path_;
  std::chrono::milliseconds timeout_;
};

}  // namespace sluice::ctl
