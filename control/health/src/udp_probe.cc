#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "quote.h"
#include "sluice/health/probe.h"

namespace sluice::health {
namespace {

// The largest UDP payload: 65535 bytes minus the 8-byte UDP header over IPv6 without
// jumbograms; IPv4 allows 20 bytes less.
constexpr size_t kMaxDatagram = 65527;

}  // namespace

UdpProbe::UdpProbe(ProbeTarget target, UdpCheck check)
    : Probe(std::move(target)), check_(std::move(check)) {}

int UdpProbe::socket_type() const { return SOCK_DGRAM; }

void UdpProbe::on_connected() {
  ssize_t written;
  do {
    written = send(fd(), check_.payload.data(), check_.payload.size(), MSG_NOSIGNAL);
  } while (written < 0 && errno == EINTR);
  if (written < 0) {
    fail_errno("send", errno);
    return;
  }
  wait_for(POLLIN);
}

void UdpProbe::on_ready(short) {
  std::string reply(kMaxDatagram, '\0');
  ssize_t count;
  do {
    count = recv(fd(), reply.data(), reply.size(), 0);
  } while (count < 0 && errno == EINTR);
  if (count < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    if (errno == ECONNREFUSED) {
      fail(endpoint() + ": recv failed: Connection refused (an ICMP port unreachable: no " +
           "UDP service on the port)");
      return;
    }
    fail_errno("recv", errno);
    return;
  }
  reply.resize(static_cast<size_t>(count));

  if (reply.find(check_.expected_reply) == std::string::npos) {
    fail(endpoint() + ": the UDP reply " + quote(reply) + " does not contain " +
         quote(check_.expected_reply));
    return;
  }
  pass();
}

std::string UdpProbe::waiting_for() const { return "a UDP reply"; }

}  // namespace sluice::health
