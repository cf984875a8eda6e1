#include "sluice/health/probe.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace sluice::health {
namespace {

socklen_t to_sockaddr(const IpAddress& address, uint16_t port, sockaddr_storage& storage) {
  storage = {};
  if (address.is_v6()) {
    auto& v6 = reinterpret_cast<sockaddr_in6&>(storage);
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    std::memcpy(&v6.sin6_addr, address.bytes.data(), 16);
    return sizeof(v6);
  }
  auto& v4 = reinterpret_cast<sockaddr_in&>(storage);
  v4.sin_family = AF_INET;
  v4.sin_port = htons(port);
  std::memcpy(&v4.sin_addr, address.bytes.data(), 4);
  return sizeof(v4);
}

}  // namespace

std::string format_endpoint(const IpAddress& address, uint16_t port) {
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(port);
}

Probe::Probe(ProbeTarget target) : target_(std::move(target)) {}

Probe::~Probe() {
  if (fd_ >= 0) close(fd_);
}

void Probe::start() {
  if (!target_.address.is_set()) {
    fail("the backend address is unset");
    return;
  }

  const int family = target_.address.is_v6() ? AF_INET6 : AF_INET;
  fd_ = socket(family, socket_type() | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    fail_errno("socket", errno);
    return;
  }

  const std::string& device = target_.bind_device;
  if (!device.empty() && setsockopt(fd_, SOL_SOCKET, SO_BINDTODEVICE, device.c_str(),
                                    static_cast<socklen_t>(device.size())) != 0) {
    fail(endpoint() + ": binding the probe socket to interface '" + device +
         "' failed: " + std::strerror(errno));
    return;
  }

  sockaddr_storage address;
  const socklen_t length = to_sockaddr(target_.address, target_.port, address);
  if (connect(fd_, reinterpret_cast<const sockaddr*>(&address), length) == 0) {
    connected_ = true;
    on_connected();
    return;
  }
  if (errno != EINPROGRESS) {
    fail_errno("connect", errno);
    return;
  }
  wait_for(POLLOUT);
}

void Probe::resume(short revents) {
  if (done_) return;
  if (!connected_) {
    finish_connect();
    return;
  }
  on_ready(revents);
}

void Probe::finish_connect() {
  // poll() reports POLLOUT, or POLLERR and POLLHUP, once a non-blocking connect has ended;
  // SO_ERROR contains the outcome.
  int error = 0;
  socklen_t length = sizeof(error);
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
  if (error != 0) {
    fail_errno("connect", error);
    return;
  }
  connected_ = true;
  on_connected();
}

void Probe::time_out(std::chrono::milliseconds timeout) {
  if (done_) return;
  const std::string awaited = connected_ ? waiting_for() : "the TCP handshake";
  fail(endpoint() + ": timed out after " + std::to_string(timeout.count()) + " ms waiting for " +
       awaited);
}

Status Probe::run(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  start();
  while (!done_) {
    const auto remaining =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (remaining.count() <= 0) {
      time_out(timeout);
      break;
    }
    pollfd entry{.fd = fd_, .events = events_, .revents = 0};
    const int ready = poll(&entry, 1, static_cast<int>(remaining.count()));
    if (ready < 0 && errno != EINTR) {
      fail_errno("poll", errno);
      break;
    }
    if (ready > 0) resume(entry.revents);
  }
  return result_;
}

void Probe::pass() {
  done_ = true;
  result_ = Status();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void Probe::fail(std::string error) {
  done_ = true;
  result_ = Error{std::move(error)};
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void Probe::fail_errno(std::string_view call, int error_number) {
  fail(endpoint() + ": " + std::string(call) + " failed: " + std::strerror(error_number));
}

int TcpProbe::socket_type() const { return SOCK_STREAM; }

void TcpProbe::on_connected() { pass(); }

// Not reached: the check passes as soon as the connection is made.
void TcpProbe::on_ready(short) {}

std::string TcpProbe::waiting_for() const { return "the TCP handshake"; }

std::unique_ptr<Probe> make_probe(const HealthCheckSpec& spec, ProbeTarget target) {
  switch (spec.kind) {
    case CheckKind::kNone:
      return nullptr;
    case CheckKind::kTcp:
      return std::make_unique<TcpProbe>(std::move(target));
    case CheckKind::kHttp:
      return std::make_unique<HttpProbe>(std::move(target), spec.http);
    case CheckKind::kUdp:
      return std::make_unique<UdpProbe>(std::move(target), spec.udp);
  }
  return nullptr;
}

}  // namespace sluice::health
