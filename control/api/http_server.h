// A small HTTP/1.1 server for the control API (on a Unix socket) and the Prometheus metrics
// endpoint (on TCP). One request per connection, handled in order on one thread: both serve
// a few requests a second from local clients. Debian 12's cpp-httplib (0.11) has no Unix
// socket support, which is why this exists.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "sluice/result.h"

namespace sluice::control {

struct HttpRequest {
  std::string method;
  std::string path;                           // without the query string, percent-decoded
  std::map<std::string, std::string> query;  // percent-decoded
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Limits that keep a broken or hostile client from holding the server.
inline constexpr size_t kMaxHeaderBytes = 16 * 1024;
inline constexpr size_t kMaxBodyBytes = 8 * 1024 * 1024;
inline constexpr int kClientTimeoutSeconds = 5;

class HttpServer {
 public:
  // Listens on a Unix socket at `path` with file mode `mode`, replacing a stale socket file.
  static Result<std::unique_ptr<HttpServer>> listen_unix(const std::string& path, unsigned mode);
  // Listens on TCP `address` (IPv4 or IPv6 literal) and `port`.
  static Result<std::unique_ptr<HttpServer>> listen_tcp(const std::string& address, uint16_t port);

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves requests with `handler` on a thread of its own until stop() or destruction.
  void start(HttpHandler handler);
  void stop();

  const std::string& endpoint() const { return endpoint_; }

 private:
  HttpServer(int fd, std::string endpoint, std::string unix_path);
  void serve();
  void handle_connection(int fd);

  int fd_ = -1;
  std::string endpoint_;
  std::string unix_path_;  // removed on stop
  HttpHandler handler_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

// Parses the request line and headers in `head` and attaches `body`. An error message starts
// with the HTTP status to send back (400), then the reason.
Result<HttpRequest> parse_http_request(const std::string& head, std::string body);

std::string percent_decode(std::string_view text);
std::string percent_encode(std::string_view text);

}  // namespace sluice::control
