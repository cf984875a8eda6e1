// Small servers on 127.0.0.1 and ::1 for the health tests. Each server thread polls in 20 ms
// steps, stops when its object is destroyed and in any case after kServerLifetime.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/ip_address.h"

namespace sluice::health::test_servers {

constexpr auto kServerLifetime = std::chrono::seconds(60);
constexpr int kPollStepMs = 20;

inline IpAddress loopback(int family) {
  return *IpAddress::parse(family == AF_INET6 ? "::1" : "127.0.0.1");
}

// An open socket file descriptor, closed on destruction.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&& other) noexcept {
    reset();
    fd_ = std::exchange(other.fd_, -1);
    return *this;
  }
  ~Socket() { reset(); }

  int fd() const { return fd_; }
  void reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Opens a socket bound to the loopback address of `family` at `port`, or at a free port when
// `port` is 0. Throws std::runtime_error on failure, which fails the test.
inline Socket bind_loopback(int family, int type, uint16_t port = 0) {
  Socket socket_fd(socket(family, type | SOCK_CLOEXEC, 0));
  if (socket_fd.fd() < 0) throw std::runtime_error(std::string("socket: ") + strerror(errno));
  const int enable = 1;
  setsockopt(socket_fd.fd(), SOL_SOCKET, SO_REUSEADDR, &enable, sizeof(enable));

  sockaddr_storage address{};
  socklen_t length;
  if (family == AF_INET6) {
    auto& v6 = reinterpret_cast<sockaddr_in6&>(address);
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    v6.sin6_addr = in6addr_loopback;
    length = sizeof(v6);
  } else {
    auto& v4 = reinterpret_cast<sockaddr_in&>(address);
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    length = sizeof(v4);
  }
  if (bind(socket_fd.fd(), reinterpret_cast<sockaddr*>(&address), length) != 0) {
    throw std::runtime_error("bind to loopback port " + std::to_string(port) + ": " +
                             strerror(errno));
  }
  return socket_fd;
}

inline uint16_t local_port(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return address.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6&>(address).sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in&>(address).sin_port);
}

// A TCP port with no listener: the socket keeps the port bound so that no one else takes it,
// and a connect to it gets a RST.
class ClosedTcpPort {
 public:
  explicit ClosedTcpPort(int family = AF_INET) : socket_(bind_loopback(family, SOCK_STREAM)) {}
  uint16_t port() const { return local_port(socket_.fd()); }

 private:
  Socket socket_;
};

// A UDP port with no receiver, so the kernel replies with an ICMP port unreachable. The socket
// keeps the port bound but is connected to port 9 of the loopback address, so the kernel does not
// deliver datagrams from any other source port to it.
class ClosedUdpPort {
 public:
  explicit ClosedUdpPort(int family = AF_INET) : socket_(bind_loopback(family, SOCK_DGRAM)) {
    Socket peer = bind_loopback(family, SOCK_DGRAM);
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    getsockname(peer.fd(), reinterpret_cast<sockaddr*>(&address), &length);
    if (connect(socket_.fd(), reinterpret_cast<sockaddr*>(&address), length) != 0) {
      throw std::runtime_error(std::string("connect: ") + strerror(errno));
    }
  }
  uint16_t port() const { return local_port(socket_.fd()); }

 private:
  Socket socket_;
};

// A TCP listener that never accepts.
class TcpListener {
 public:
  explicit TcpListener(int family = AF_INET, int backlog = 16)
      : socket_(bind_loopback(family, SOCK_STREAM)) {
    if (listen(socket_.fd(), backlog) != 0) {
      throw std::runtime_error(std::string("listen: ") + strerror(errno));
    }
  }
  uint16_t port() const { return local_port(socket_.fd()); }

 private:
  Socket socket_;
};

// Runs `step` every kPollStepMs on a thread until the object is destroyed or kServerLifetime
// has passed.
class ServerThread {
 public:
  template <typename Step>
  explicit ServerThread(Step step)
      : thread_([this, step]() mutable {
          const auto end = std::chrono::steady_clock::now() + kServerLifetime;
          while (!stopping_.load() && std::chrono::steady_clock::now() < end) step();
        }) {}
  ~ServerThread() { stop(); }
  void stop() {
    stopping_.store(true);
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// An HTTP server that reads each request up to the blank line and writes `response` as raw
// bytes, then closes the connection. With an empty `response` the server never replies and
// keeps the connections open until it stops. With kCloseWithoutResponse it closes the
// connection after the request without writing anything.
class HttpServer {
 public:
  static constexpr char kCloseWithoutResponse[] = "\x01close";

  explicit HttpServer(std::string response, int family = AF_INET, uint16_t port = 0)
      : response_(std::move(response)), listener_(bind_loopback(family, SOCK_STREAM, port)) {
    if (listen(listener_.fd(), 64) != 0) {
      throw std::runtime_error(std::string("listen: ") + strerror(errno));
    }
    thread_ = std::make_unique<ServerThread>([this] { serve_step(); });
  }
  ~HttpServer() { thread_.reset(); }

  uint16_t port() const { return local_port(listener_.fd()); }
  int requests() const { return requests_.load(); }
  std::string last_request() const {
    std::lock_guard lock(mutex_);
    return last_request_;
  }

 private:
  struct Client {
    Socket socket;
    std::string request;
  };

  void serve_step() {
    std::vector<pollfd> fds{{listener_.fd(), POLLIN, 0}};
    for (const Client& client : clients_) fds.push_back({client.socket.fd(), POLLIN, 0});
    if (poll(fds.data(), fds.size(), kPollStepMs) <= 0) return;

    if (fds[0].revents & POLLIN) {
      const int fd = accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0) clients_.push_back({Socket(fd), {}});
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents != 0) read_request(clients_[i - 1]);
    }
    std::erase_if(clients_, [](const Client& client) { return client.socket.fd() < 0; });
  }

  void read_request(Client& client) {
    char buffer[1024];
    const ssize_t count = recv(client.socket.fd(), buffer, sizeof(buffer), 0);
    if (count <= 0) {
      client.socket.reset();
      return;
    }
    client.request.append(buffer, static_cast<size_t>(count));
    if (client.request.find("\r\n\r\n") == std::string::npos) return;

    ++requests_;
    {
      std::lock_guard lock(mutex_);
      last_request_ = client.request;
    }
    if (response_.empty()) return;
    if (response_ != kCloseWithoutResponse) {
      send(client.socket.fd(), response_.data(), response_.size(), MSG_NOSIGNAL);
    }
    client.socket.reset();
  }

  std::string response_;
  Socket listener_;
  std::vector<Client> clients_;  // used by the server thread only
  std::atomic<int> requests_{0};
  mutable std::mutex mutex_;
  std::string last_request_;
  std::unique_ptr<ServerThread> thread_;  // last, so it stops before the members it uses go
};

// A UDP server that replies to each datagram with `reply`, or with the datagram itself when
// `reply` is empty. With `silent` set it receives and never replies.
class UdpServer {
 public:
  explicit UdpServer(std::string reply = {}, int family = AF_INET, bool silent = false)
      : reply_(std::move(reply)), silent_(silent), socket_(bind_loopback(family, SOCK_DGRAM)) {
    thread_ = std::make_unique<ServerThread>([this] { serve_step(); });
  }
  ~UdpServer() { thread_.reset(); }

  uint16_t port() const { return local_port(socket_.fd()); }
  int datagrams() const { return datagrams_.load(); }

 private:
  void serve_step() {
    pollfd entry{socket_.fd(), POLLIN, 0};
    if (poll(&entry, 1, kPollStepMs) <= 0) return;
    char buffer[2048];
    sockaddr_storage peer{};
    socklen_t length = sizeof(peer);
    const ssize_t count = recvfrom(socket_.fd(), buffer, sizeof(buffer), MSG_DONTWAIT,
                                   reinterpret_cast<sockaddr*>(&peer), &length);
    if (count < 0) return;
    ++datagrams_;
    if (silent_) return;
    const std::string answer = reply_.empty() ? std::string(buffer, count) : reply_;
    sendto(socket_.fd(), answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&peer),
           length);
  }

  std::string reply_;
  bool silent_;
  Socket socket_;
  std::atomic<int> datagrams_{0};
  std::unique_ptr<ServerThread> thread_;
};

}  // namespace sluice::health::test_servers
