#include "api_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "http_server.h"

namespace sluice::ctl {
namespace {

using Clock = std::chrono::steady_clock;

// Far above the largest stats report sluiced can produce: SLUICE_MAX_BACKENDS (16384)
// backends at an estimated 150 bytes of JSON each is about 2.5 MB. A larger response means
// the peer is not sluiced.
constexpr size_t kMaxResponseBytes = 64 * 1024 * 1024;

// Connections tried for one request when sluiced closes them before reading any of it.
constexpr int kSendAttempts = 3;

// Closes the socket when the request ends, on every path.
class SocketFd {
 public:
  explicit SocketFd(int fd) : fd_(fd) {}
  ~SocketFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  SocketFd(const SocketFd&) = delete;
  SocketFd& operator=(const SocketFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits until `fd` is ready for `events` or the deadline passes; false on timeout or error.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd waiting{fd, events, 0};
    const int ready = ::poll(&waiting, 1, remaining_ms(deadline));
    if (ready > 0) return true;
    if (ready == 0) return false;
    if (errno != EINTR) return false;
  }
}

// Parses "HTTP/1.1 201 Created\r\nContent-Type: ...\r\n..." into `response`, without the body.
Status parse_head(const std::string& head, ApiResponse& response) {
  std::istringstream lines(head);
  std::string line;
  std::getline(lines, line);
  std::istringstream status_line(line);
  std::string version;
  if (!(status_line >> version >> response.status) || version.rfind("HTTP/1.", 0) != 0) {
    return Error{"invalid HTTP status line '" + line.substr(0, 80) + "'"};
  }
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    if (name == "content-type") response.content_type = value;
  }
  return {};
}

std::string content_length_of(const std::string& head) {
  std::string lowered = head;
  for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t at = lowered.find("\r\ncontent-length:");
  if (at == std::string::npos) return "";
  const size_t start = at + std::strlen("\r\ncontent-length:");
  const size_t end = lowered.find("\r\n", start);
  std::string value = lowered.substr(start, end - start);
  value.erase(0, value.find_first_not_of(" \t"));
  return value;
}

// The peer and the time limit of one request, for the messages of every step.
struct Exchange {
  std::string peer;  // "sluiced at /run/sluice/sluiced.sock"
  std::chrono::milliseconds timeout;
  Clock::time_point deadline;

  std::string timed_out(const std::string& step) const {
    return step + " " + peer + " timed out after " + std::to_string(timeout.count()) +
           " ms (is sluiced overloaded? Allow more time with --timeout SECONDS)";
  }
};

Status connect_unix(int fd, const std::string& path, const Exchange& exchange) {
  sockaddr_un address{};
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return Error{"socket path '" + path + "' is empty or longer than " +
                 std::to_string(sizeof(address.sun_path) - 1) + " characters"};
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size());

  // A blocking connect on a Unix socket waits for room in the listener's backlog for at most
  // SO_SNDTIMEO, and then fails with EAGAIN. sluiced serves one connection at a time, so
  // its backlog can be full.
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(exchange.timeout);
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(exchange.timeout - seconds);
  const timeval connect_timeout{static_cast<time_t>(seconds.count()),
                                static_cast<suseconds_t>(micros.count())};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &connect_timeout, sizeof(connect_timeout));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) return {};
  if (errno == EAGAIN || errno == EINPROGRESS) return Error{exchange.timed_out("connecting to")};
  return Error{"cannot connect to " + exchange.peer + ": " + std::strerror(errno)};
}

// Sends the whole request. On failure, `sent` is how many bytes the peer accepted and
// `error` the errno of the failed send, or 0 for a timeout.
Status send_all(int fd, const std::string& request, const Exchange& exchange, size_t& sent, int& error) {
  sent = 0;
  error = 0;
  while (sent < request.size()) {
    if (!wait_for(fd, POLLOUT, exchange.deadline)) {
      return Error{exchange.timed_out("sending the request to")};
    }
    const ssize_t n =
        ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) {
      error = n < 0 ? errno : EPIPE;
      return Error{"sending the request to " + exchange.peer + " failed: " + std::strerror(error)};
    }
    sent += static_cast<size_t>(n);
  }
  return {};
}

// Reads the response until the connection closes or Content-Length bytes of body arrived,
// so a slow close does not cost the timeout.
Result<ApiResponse> read_response(int fd, const Exchange& exchange) {
  std::string data;
  size_t head_end = std::string::npos;
  size_t expected_total = std::string::npos;
  char buffer[16 * 1024];
  while (expected_total == std::string::npos || data.size() < expected_total) {
    if (!wait_for(fd, POLLIN, exchange.deadline)) {
      return Error{exchange.timed_out("waiting for the response of")};
    }
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) {
      return Error{"reading the response of " + exchange.peer + " failed: " + std::strerror(errno)};
    }
    if (n == 0) break;
    data.append(buffer, static_cast<size_t>(n));
    if (data.size() > kMaxResponseBytes) {
      return Error{"the response of " + exchange.peer + " exceeds " +
                   std::to_string(kMaxResponseBytes) + " bytes (is that socket sluiced's API?)"};
    }
    if (head_end != std::string::npos) continue;
    head_end = data.find("\r\n\r\n");
    if (head_end == std::string::npos) continue;
    const std::string length = content_length_of(data.substr(0, head_end + 2));
    if (length.empty()) continue;
    try {
      expected_total = head_end + 4 + std::stoul(length);
    } catch (const std::exception&) {
      return Error{"invalid Content-Length '" + length + "' in the response of " + exchange.peer};
    }
  }

  if (head_end == std::string::npos) {
    return Error{"the connection to " + exchange.peer + " closed before a complete response"};
  }
  ApiResponse response;
  if (auto status = parse_head(data.substr(0, head_end + 2), response); !status) {
    return Error{"invalid response from " + exchange.peer + ": " + status.error()};
  }
  response.body = data.substr(head_end + 4);
  if (expected_total != std::string::npos) {
    const size_t expected_body = expected_total - head_end - 4;
    if (response.body.size() < expected_body) {
      return Error{"the connection to " + exchange.peer + " closed after " +
                   std::to_string(response.body.size()) + " of " +
                   std::to_string(expected_body) + " body bytes"};
    }
    response.body.resize(expected_body);
  }
  return response;
}

}  // namespace

std::string build_target(std::string_view path, const std::vector<QueryParameter>& query) {
  std::string target(path);
  char separator = '?';
  for (const auto& [name, value] : query) {
    target += separator;
    target += control::percent_encode(name) + "=" + control::percent_encode(value);
    separator = '&';
  }
  return target;
}

ApiClient::ApiClient(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

Result<ApiResponse> ApiClient::send(std::string_view method, std::string_view target,
                                    std::string_view body, std::string_view content_type) const {
  const auto deadline = Clock::now() + timeout_;
  const Exchange exchange{"sluiced at " + socket_path_, timeout_, deadline};

  std::string request = std::string(method) + " " + std::string(target) +
                        " HTTP/1.1\r\nHost: sluiced\r\nUser-Agent: sluicectl\r\n"
                        "Accept: application/json\r\nConnection: close\r\n";
  if (!body.empty()) request += "Content-Type: " + std::string(content_type) + "\r\n";
  request += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  request += body;

  for (int attempt = 1;; ++attempt) {
    SocketFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return Error{std::string("cannot create a Unix socket: ") + std::strerror(errno)};
    if (auto status = connect_unix(fd.get(), socket_path_, exchange); !status) {
      return Error{status.error() +
                   " (check that sluiced runs, or give its API socket with --socket PATH)"};
    }
    size_t sent = 0;
    int error = 0;
    const Status status = send_all(fd.get(), request, exchange, sent, error);
    if (status) return read_response(fd.get(), exchange);
    // sluiced closes a connection whose request has not arrived within its client timeout.
    // When not one byte went out, sluiced read nothing, so sending again cannot apply a
    // change twice.
    const bool unread = sent == 0 && (error == EPIPE || error == ECONNRESET);
    if (!unread || attempt == kSendAttempts || Clock::now() >= deadline) return Error{status.error()};
  }
}

}  // namespace sluice::ctl
