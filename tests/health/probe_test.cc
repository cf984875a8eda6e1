// TCP, HTTP and UDP probes against servers on 127.0.0.1 and ::1 that each test starts.
#include "sluice/health/probe.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "loopback_servers.h"

namespace sluice::health {
namespace {

using std::chrono::milliseconds;
using test_servers::ClosedTcpPort;
using test_servers::ClosedUdpPort;
using test_servers::HttpServer;
using test_servers::loopback;
using test_servers::TcpListener;
using test_servers::UdpServer;
using ::testing::HasSubstr;

constexpr milliseconds kTimeout(300);
// Slack for a timed-out check on a loaded machine; the probe itself stops at kTimeout.
constexpr milliseconds kTimeoutMargin(700);

ProbeTarget target(int family, uint16_t port) {
  return ProbeTarget{.address = loopback(family), .port = port, .bind_device = {}};
}

HttpCheck http_check(std::string path = "/healthz", std::set<int> expected = {200}) {
  return HttpCheck{.path = std::move(path), .expected_statuses = std::move(expected), .host = {}};
}

// Runs `probe` and returns its result and how long it took.
std::pair<Status, milliseconds> timed_run(Probe& probe, milliseconds timeout = kTimeout) {
  const auto start = std::chrono::steady_clock::now();
  Status status = probe.run(timeout);
  const auto elapsed =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
  return {std::move(status), elapsed};
}

// --- TCP -------------------------------------------------------------------------------------

TEST(TcpProbe, PassesOnListener) {
  TcpListener listener;
  TcpProbe probe(target(AF_INET, listener.port()));

  const Status status = probe.run(kTimeout);

  EXPECT_TRUE(status.ok()) << status.error();
  EXPECT_TRUE(probe.done());
  EXPECT_EQ(probe.fd(), -1) << "the socket is closed once the check ends";
}

TEST(TcpProbe, ClosedPortRefused) {
  ClosedTcpPort closed;
  TcpProbe probe(target(AF_INET, closed.port()));

  const auto [status, elapsed] = timed_run(probe);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("Connection refused"));
  EXPECT_THAT(status.error(), HasSubstr("127.0.0.1:" + std::to_string(closed.port())));
  EXPECT_LT(elapsed, kTimeout) << "a refused connection fails at once";
}

TEST(TcpProbe, FullBacklogTimesOut) {
  // Linux drops a SYN while the accept queue of the listener is full, so a connect neither
  // completes nor fails. Fill the queue of a listener that never accepts.
  TcpListener listener(AF_INET, /*backlog=*/0);
  bool full = false;
  for (int i = 0; i < 8 && !full; ++i) {
    TcpProbe filler(target(AF_INET, listener.port()));
    full = !filler.run(milliseconds(200)).ok();
  }
  ASSERT_TRUE(full) << "the accept queue never filled up";

  TcpProbe probe(target(AF_INET, listener.port()));
  const auto [status, elapsed] = timed_run(probe);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("timed out after 300 ms waiting for the TCP handshake"));
  EXPECT_GE(elapsed, kTimeout);
  EXPECT_LT(elapsed, kTimeout + kTimeoutMargin);
}

TEST(TcpProbe, Ipv6PassesOnListener) {
  TcpListener listener(AF_INET6);
  TcpProbe probe(target(AF_INET6, listener.port()));

  const Status status = probe.run(kTimeout);

  EXPECT_TRUE(status.ok()) << status.error();
}

TEST(TcpProbe, Ipv6ClosedPortRefused) {
  ClosedTcpPort closed(AF_INET6);
  TcpProbe probe(target(AF_INET6, closed.port()));

  const Status status = probe.run(kTimeout);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("Connection refused"));
  EXPECT_THAT(status.error(), HasSubstr("[::1]:" + std::to_string(closed.port())));
}

TEST(TcpProbe, BindsToLoopbackDevice) {
  TcpListener listener;
  ProbeTarget bound = target(AF_INET, listener.port());
  bound.bind_device = "lo";
  TcpProbe probe(bound);

  const Status status = probe.run(kTimeout);

  EXPECT_TRUE(status.ok()) << status.error();
}

TEST(TcpProbe, MissingDeviceFails) {
  TcpListener listener;
  ProbeTarget bound = target(AF_INET, listener.port());
  bound.bind_device = "sluice-none0";
  TcpProbe probe(bound);

  const Status status = probe.run(kTimeout);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("interface 'sluice-none0'"));
  EXPECT_THAT(status.error(), HasSubstr("No such device"));
}

TEST(TcpProbe, UnsetAddressFails) {
  TcpProbe probe(ProbeTarget{.address = {}, .port = 80, .bind_device = {}});

  const Status status = probe.run(kTimeout);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("unset"));
}

// --- HTTP ------------------------------------------------------------------------------------

TEST(HttpProbe, Status200Passes) {
  HttpServer server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  HttpProbe probe(target(AF_INET, server.port()), http_check());

  const Status status = probe.run(kTimeout);

  EXPECT_TRUE(status.ok()) << status.error();
  const std::string request = server.last_request();
  EXPECT_THAT(request, HasSubstr("GET /healthz HTTP/1.1\r\n"));
  EXPECT_THAT(request, HasSubstr("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"));
  EXPECT_THAT(request, HasSubstr("\r\nConnection: close\r\n"));
}

TEST(HttpProbe, Status503Fails) {
  HttpServer server("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
  HttpProbe probe(target(AF_INET, server.port()), http_check());

  const Status status = probe.run(kTimeout);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("HTTP status 503 'Service Unavailable'"));
  EXPECT_THAT(status.error(), HasSubstr("expected 200"));
}

TEST(HttpProbe, ExpectedSetAccepts204) {
  HttpServer server("HTTP/1.1 204 No Content\r\n\r\n");
  HttpProbe probe(target(AF_INET, server.port()), http_check("/", {200, 204}));

  const Status status = probe.run(kTimeout);

  EXPECT_TRUE(status.ok()) << status.error();
}

TEST(HttpProbe, UnexpectedStatusListsExpected) {
  HttpServer server("HTTP/1.1 200 OK\r\n\r\n");
  HttpProbe probe(target(AF_INET, server.port()), http_check("/", {204, 301}));

  const Status status = probe.run(kTimeout);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("HTTP status 200 'OK' for /, expected 204, 301"));
}

TEST(HttpProbe, SilentServerTimesOut) {
  HttpServer server(/*response=*/"");
  HttpProbe probe(target(AF_INET, server.port()), http_check());

  const auto [status, elapsed] = timed_run(probe);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("timed out after 300 ms waiting for the HTTP status line"));
  EXPECT_GE(elapsed, kTimeout);
  EXPECT_LT(elapsed, kTimeout + kTimeoutMargin);
  EXPECT_EQ(server.requests(), 1) << "the request reached the server";
}

TEST(HttpProbe, GarbageResponseFails) {
  HttpServer server("SSH-2.0-OpenSSH_9.2\r\n");
  HttpProbe probe(target(AF_INET, server.port()), http_check());

  const Status status = probe.run(kTimeout);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("malformed HTTP status line 'SSH-2.0-OpenSSH_9.2'"));
}

TEST(HttpProbe, MalformedStatusLinesFail) {
  const std::vector<std::string> responses{
      "HTTP/1.1 20 OK\r\n\r\n",       // two-digit status
      "HTTP/1.1 2000 OK\r\n\r\n",     // four-digit status
      "HTTP/1.1200 OK\r\n\r\n",       // no space after the version
      "HTTP/x.1 200 OK\r\n\r\n",      // version not a digit
      "\x01\x02\xff binary\r\n\r\n",  // not text
  };
  for (const std::string& response : responses) {
    HttpServer server(response);
    HttpProbe probe(target(AF_INET, server.port()), http_check());

    const Status status = probe.run(kTimeout);

    ASSERT_FALSE(status.ok()) << response;
    EXPECT_THAT(status.error(), HasSubstr("malformed HTTP status line")) << response;
  }
}

TEST(HttpProbe, EndlessStatusLineFails) {
  HttpServer server("HTTP/1.1 200 " + std::string(4000, 'x'));
  HttpProbe probe(target(AF_INET, server.port()), http_check());

  const Status status = probe.run(kTimeout);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("no status line in the first 1024 bytes"));
}

TEST(HttpProbe, BareLineFeedAccepted) {
  HttpServer server("HTTP/1.0 200 OK\n\n");
  HttpProbe probe(target(AF_INET, server.port()), http_check());

  const Status status = probe.run(kTimeout);

  EXPECT_TRUE(status.ok()) << status.error();
}

TEST(HttpProbe, StatusWithoutReasonPasses) {
  HttpServer server("HTTP/1.1 200\r\n\r\n");
  HttpProbe probe(target(AF_INET, server.port()), http_check());

  const Status status = probe.run(kTimeout);

  EXPECT_TRUE(status.ok()) << status.error();
}

TEST(HttpProbe, ClosedWithoutResponseFails) {
  HttpServer server(HttpServer::kCloseWithoutResponse);
  HttpProbe probe(target(AF_INET, server.port()), http_check());

  const Status status = probe.run(kTimeout);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("the server closed the connection without a response"));
  EXPECT_EQ(server.requests(), 1);
}

TEST(HttpProbe, TruncatedStatusLineFails) {
  HttpServer server("H");
  HttpProbe probe(target(AF_INET, server.port()), http_check());

  const Status status = probe.run(kTimeout);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("the response ended inside the status line 'H'"));
}

TEST(HttpProbe, ClosedPortRefused) {
  ClosedTcpPort closed;
  HttpProbe probe(target(AF_INET, closed.port()), http_check());

  const Status status = probe.run(kTimeout);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("Connection refused"));
}

TEST(HttpProbe, Ipv6HostHeaderInBrackets) {
  HttpServer server("HTTP/1.1 200 OK\r\n\r\n", AF_INET6);
  HttpProbe probe(target(AF_INET6, server.port()), http_check());

  const Status status = probe.run(kTimeout);

  EXPECT_TRUE(status.ok()) << status.error();
  EXPECT_THAT(server.last_request(),
              HasSubstr("\r\nHost: [::1]:" + std::to_string(server.port()) + "\r\n"));
}

TEST(HttpProbe, CustomHostHeader) {
  HttpServer server("HTTP/1.1 200 OK\r\n\r\n");
  HttpCheck check = http_check();
  check.host = "app.example";
  HttpProbe probe(target(AF_INET, server.port()), check);

  const Status status = probe.run(kTimeout);

  EXPECT_TRUE(status.ok()) << status.error();
  EXPECT_THAT(server.last_request(), HasSubstr("\r\nHost: app.example\r\n"));
}

// --- UDP -------------------------------------------------------------------------------------

TEST(UdpProbe, EchoPasses) {
  UdpServer server;
  UdpProbe probe(target(AF_INET, server.port()), UdpCheck{.payload = "ping", .expected_reply = {}});

  const Status status = probe.run(kTimeout);

  EXPECT_TRUE(status.ok()) << status.error();
  EXPECT_EQ(server.datagrams(), 1);
}

TEST(UdpProbe, ExpectedSubstringPasses) {
  UdpServer server("+PONG ready");
  UdpProbe probe(target(AF_INET, server.port()),
                 UdpCheck{.payload = "PING", .expected_reply = "PONG"});

  const Status status = probe.run(kTimeout);

  EXPECT_TRUE(status.ok()) << status.error();
}

TEST(UdpProbe, UnexpectedReplyFails) {
  UdpServer server("-ERR busy");
  UdpProbe probe(target(AF_INET, server.port()),
                 UdpCheck{.payload = "PING", .expected_reply = "PONG"});

  const auto [status, elapsed] = timed_run(probe);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("the UDP reply '-ERR busy' does not contain 'PONG'"));
  EXPECT_LT(elapsed, kTimeout) << "a wrong reply fails without waiting for another";
}

TEST(UdpProbe, ClosedPortRefusedFast) {
  ClosedUdpPort closed;
  UdpProbe probe(target(AF_INET, closed.port()), UdpCheck{.payload = "ping", .expected_reply = {}});

  const auto [status, elapsed] = timed_run(probe);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("Connection refused"));
  EXPECT_THAT(status.error(), HasSubstr("ICMP port unreachable"));
  EXPECT_LT(elapsed, kTimeout) << "the ICMP error ends the check before the timeout";
}

TEST(UdpProbe, SilentServerTimesOut) {
  UdpServer server(/*reply=*/{}, AF_INET, /*silent=*/true);
  UdpProbe probe(target(AF_INET, server.port()), UdpCheck{.payload = "ping", .expected_reply = {}});

  const auto [status, elapsed] = timed_run(probe);

  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error(), HasSubstr("timed out after 300 ms waiting for a UDP reply"));
  EXPECT_GE(elapsed, kTimeout);
  EXPECT_LT(elapsed, kTimeout + kTimeoutMargin);
}

TEST(UdpProbe, Ipv6EchoPasses) {
  UdpServer server({}, AF_INET6);
  UdpProbe probe(target(AF_INET6, server.port()),
                 UdpCheck{.payload = "ping", .expected_reply = {}});

  const Status status = probe.run(kTimeout);

  EXPECT_TRUE(status.ok()) << status.error();
}

// --- make_probe ------------------------------------------------------------------------------

TEST(MakeProbe, ReturnsProbeOfKind) {
  HealthCheckSpec spec;
  spec.kind = CheckKind::kNone;
  EXPECT_EQ(make_probe(spec, target(AF_INET, 80)), nullptr);

  spec.kind = CheckKind::kTcp;
  EXPECT_NE(dynamic_cast<TcpProbe*>(make_probe(spec, target(AF_INET, 80)).get()), nullptr);
  spec.kind = CheckKind::kHttp;
  EXPECT_NE(dynamic_cast<HttpProbe*>(make_probe(spec, target(AF_INET, 80)).get()), nullptr);
  spec.kind = CheckKind::kUdp;
  EXPECT_NE(dynamic_cast<UdpProbe*>(make_probe(spec, target(AF_INET, 80)).get()), nullptr);
}

}  // namespace
}  // namespace sluice::health
