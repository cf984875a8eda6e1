// Health probes: one non-blocking socket each, driven step by step so that one thread can run
// many of them with poll(). `run()` drives a single probe to its end for callers that block.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "sluice/health/check_spec.h"
#include "sluice/ip_address.h"
#include "sluice/result.h"

namespace sluice::health {

struct ProbeTarget {
  IpAddress address;  // IPv4 or IPv6
  uint16_t port = 0;
  // The interface the probe's socket is bound to with SO_BINDTODEVICE, such as the exception
  // TAP of a DPDK host; empty lets the routing table choose. Binding may need CAP_NET_RAW.
  std::string bind_device;
};

// Formats `address` and `port` as 192.0.2.1:80 or [2001:db8::1]:80.
std::string format_endpoint(const IpAddress& address, uint16_t port);

// One check of one backend. Call start() once, then resume() each time poll() reports one of
// events() on fd(), until done(). A caller that enforces a deadline calls time_out() instead.
class Probe {
 public:
  explicit Probe(ProbeTarget target);
  virtual ~Probe();
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;

  // Opens the socket and starts connecting. The check can end here, for example when the
  // socket cannot be bound to the device or the kernel rejects the connection at once.
  void start();
  // Continues the check after poll() reported `revents` on fd().
  void resume(short revents);
  // Ends an unfinished check as failed because `timeout` passed.
  void time_out(std::chrono::milliseconds timeout);

  // Runs the whole check, waiting in poll() for at most `timeout` in all.
  Status run(std::chrono::milliseconds timeout);

  bool done() const { return done_; }
  int fd() const { return fd_; }
  short events() const { return events_; }  // the poll() events the check waits for
  const Status& result() const { return result_; }
  const ProbeTarget& target() const { return target_; }

 protected:
  virtual int socket_type() const = 0;  // SOCK_STREAM or SOCK_DGRAM
  // Called once connect() has completed.
  virtual void on_connected() = 0;
  // Called after connect() with the events that poll() reported.
  virtual void on_ready(short revents) = 0;
  // What the check waits for at this step, for timeout messages ("the HTTP status line").
  virtual std::string waiting_for() const = 0;

  void pass();
  void fail(std::string error);
  void wait_for(short events) { events_ = events; }
  // Fails the check with the call that failed, the endpoint and strerror(`error_number`).
  void fail_errno(std::string_view call, int error_number);
  std::string endpoint() const { return format_endpoint(target_.address, target_.port); }

 private:
  void finish_connect();

  ProbeTarget target_;
  int fd_ = -1;
  short events_ = 0;
  bool connected_ = false;
  bool done_ = false;
  Status result_;
};

// Passes when a TCP connection to the target completes.
class TcpProbe final : public Probe {
 public:
  explicit TcpProbe(ProbeTarget target) : Probe(std::move(target)) {}

 protected:
  int socket_type() const override;
  void on_connected() override;
  void on_ready(short revents) override;
  std::string waiting_for() const override;
};

// Sends `GET <path> HTTP/1.1` with a Host header and `Connection: close`, and passes when the
// status code of the response is one of `check.expected_statuses`. Reads the status line only.
class HttpProbe final : public Probe {
 public:
  HttpProbe(ProbeTarget target, HttpCheck check);

 protected:
  int socket_type() const override;
  void on_connected() override;
  void on_ready(short revents) override;
  std::string waiting_for() const override;

 private:
  void send_request();
  void read_status_line();
  void check_status_line(std::string_view line);

  HttpCheck check_;
  std::string request_;
  size_t sent_ = 0;
  std::string received_;
};

// Sends `check.payload` in one datagram on a connected UDP socket and passes on a reply that
// contains `check.expected_reply`. An ICMP port unreachable fails the check at once, because
// Linux reports it as ECONNREFUSED on a connected socket.
class UdpProbe final : public Probe {
 public:
  UdpProbe(ProbeTarget target, UdpCheck check);

 protected:
  int socket_type() const override;
  void on_connected() override;
  void on_ready(short revents) override;
  std::string waiting_for() const override;

 private:
  UdpCheck check_;
};

// Returns the probe for `kind`, or nullptr for CheckKind::kNone.
std::unique_ptr<Probe> make_probe(const HealthCheckSpec& spec, ProbeTarget target);

}  // namespace sluice::health
