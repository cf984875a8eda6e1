#include "http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

namespace sluice::control {
namespace {

std::string reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    default: return "Status";
  }
}

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool send_all(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

void send_response(int fd, const HttpResponse& response) {
  std::string head = "HTTP/1.1 " + std::to_string(response.status) + " " +
                     reason_phrase(response.status) + "\r\nContent-Type: " +
                     response.content_type + "\r\nContent-Length: " +
                     std::to_string(response.body.size()) + "\r\nConnection: close\r\n\r\n";
  (void)(send_all(fd, head) && send_all(fd, response.body));
}

// Logs why a connection closes before its whole request arrived. The server serves one
// connection at a time, so a client that stays silent delays every other one until then.
void log_unread_request(int error) {
  if (error == EAGAIN || error == EWOULDBLOCK) {
    spdlog::warn("api: timed out after {} s without a complete request; closing the connection",
                 kClientTimeoutSeconds);
  } else {
    spdlog::warn("api: reading a request failed: {}; closing the connection", std::strerror(error));
  }
}

HttpResponse error_response(int status, const std::string& message) {
  std::string escaped;
  for (char c : message) {
    if (c == '"' || c == '\\') escaped += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) escaped += c;
  }
  return {status, "application/json", "{\"error\": \"" + escaped + "\"}\n"};
}

}  // namespace

std::string percent_decode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() &&
        std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string percent_encode(std::string_view text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

Result<HttpRequest> parse_http_request(const std::string& head, std::string body) {
  HttpRequest request;
  std::istringstream lines(head);
  std::string line;
  if (!std::getline(lines, line)) return Error{"400 empty request"};
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::istringstream request_line(line);
  std::string target, version;
  if (!(request_line >> request.method >> target >> version) || version.rfind("HTTP/1.", 0) != 0) {
    return Error{"400 invalid request line '" + line + "'"};
  }
  const size_t question = target.find('?');
  request.path = percent_decode(target.substr(0, question));
  if (question != std::string::npos) {
    std::istringstream pairs(target.substr(question + 1));
    std::string pair;
    while (std::getline(pairs, pair, '&')) {
      const size_t equals = pair.find('=');
      request.query[percent_decode(pair.substr(0, equals))] =
          equals == std::string::npos ? "" : percent_decode(pair.substr(equals + 1));
    }
  }
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) return Error{"400 invalid header line '" + line + "'"};
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    request.headers[lower(line.substr(0, colon))] = value;
  }
  request.body = std::move(body);
  return request;
}

HttpServer::HttpServer(int fd, std::string endpoint, std::string unix_path)
    : fd_(fd), endpoint_(std::move(endpoint)), unix_path_(std::move(unix_path)) {}

HttpServer::~HttpServer() { stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::listen_unix(const std::string& path,
                                                            unsigned mode) {
  sockaddr_un address{};
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return Error{"API socket path '" + path + "' is empty or longer than " +
                 std::to_string(sizeof(address.sun_path) - 1) + " characters"};
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{std::string("cannot create a Unix socket: ") + std::strerror(errno)};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size());

  // A socket file left by a process that died is stale only if nothing accepts on it.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    ::close(fd);
    return Error{"API socket " + path + " is in use by another process (is sluiced running?)"};
  }
  ::unlink(path.c_str());
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ::close(fd);
  if (listener < 0) return Error{std::string("cannot create a Unix socket: ") + std::strerror(errno)};
  if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::chmod(path.c_str(), mode) != 0 || ::listen(listener, 16) != 0) {
    const std::string error = std::strerror(errno);
    ::close(listener);
    return Error{"cannot listen on API socket " + path + ": " + error};
  }
  return std::unique_ptr<HttpServer>(new HttpServer(listener, "unix:" + path, path));
}

Result<std::unique_ptr<HttpServer>> HttpServer::listen_tcp(const std::string& address,
                                                           uint16_t port) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_INET;
  if (auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
      inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof(sockaddr_in);
  } else if (auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
             inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof(sockaddr_in6);
    family = AF_INET6;
  } else {
    return Error{"'" + address + "' is not an IPv4 or IPv6 address to listen on"};
  }
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{std::string("cannot create a TCP socket: ") + std::strerror(errno)};
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0 || ::listen(fd, 16) != 0) {
    const std::string error = std::strerror(errno);
    ::close(fd);
    return Error{"cannot listen on " + address + ":" + std::to_string(port) + ": " + error};
  }
  return std::unique_ptr<HttpServer>(
      new HttpServer(fd, address + ":" + std::to_string(port), ""));
}

void HttpServer::start(HttpHandler handler) {
  handler_ = std::move(handler);
  thread_ = std::thread([this] { serve(); });
}

void HttpServer::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
  }
}

void HttpServer::serve() {
  while (!stopping_) {
    pollfd waiting{fd_, POLLIN, 0};
    if (::poll(&waiting, 1, 200) <= 0) continue;
    const int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    const timeval timeout{kClientTimeoutSeconds, 0};
    ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    handle_connection(client);
    ::close(client);
  }
}

void HttpServer::handle_connection(int fd) {
  std::string data;
  size_t head_end = std::string::npos;
  char buffer[4096];
  while (head_end == std::string::npos) {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      log_unread_request(errno);
      return;
    }
    if (n == 0) return;  // the client closed the connection without a request
    data.append(buffer, static_cast<size_t>(n));
    head_end = data.find("\r\n\r\n");
    if (head_end == std::string::npos && data.size() > kMaxHeaderBytes) {
      send_response(fd, error_response(431, "request head larger than " +
                                                std::to_string(kMaxHeaderBytes) + " bytes"));
      return;
    }
  }
  const std::string head = data.substr(0, head_end + 2);
  std::string body = data.substr(head_end + 4);

  auto request = parse_http_request(head, "");
  if (!request) {
    send_response(fd, error_response(400, request.error().substr(4)));
    return;
  }
  size_t content_length = 0;
  if (auto it = request->headers.find("content-length"); it != request->headers.end()) {
    try {
      content_length = std::stoul(it->second);
    } catch (const std::exception&) {
      send_response(fd, error_response(400, "invalid Content-Length '" + it->second + "'"));
      return;
    }
  }
  if (content_length > kMaxBodyBytes) {
    send_response(fd, error_response(413, "body larger than " + std::to_string(kMaxBodyBytes) + " bytes"));
    return;
  }
  while (body.size() < content_length) {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) log_unread_request(errno);
    if (n <= 0) return;
    body.append(buffer, static_cast<size_t>(n));
  }
  body.resize(content_length);
  request->body = std::move(body);

  HttpResponse response;
  try {
    response = handler_(*request);
  } catch (const std::exception& error) {
    spdlog::error("api: {} {} failed: {}", request->method, request->path, error.what());
    response = error_response(500, std::string("internal error: ") + error.what());
  }
  send_response(fd, response);
}

}  // namespace sluice::control
