// The health checker end to end: its thread, real probes and servers on 127.0.0.1.
#include "sluice/health/health_checker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "loopback_servers.h"

namespace sluice::health {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using test_servers::HttpServer;
using test_servers::loopback;
using test_servers::TcpListener;
using ::testing::HasSubstr;

constexpr char kOk[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
constexpr milliseconds kWaitLimit(3000);

// Polls `condition` every 10 ms until it returns true or `limit` passes.
template <typename Condition>
bool eventually(Condition condition, milliseconds limit = kWaitLimit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return condition();
}

HealthCheckSpec fast_spec(CheckKind kind, uint32_t rise = 2, uint32_t fall = 3) {
  HealthCheckSpec spec;
  spec.kind = kind;
  spec.interval = milliseconds(100);
  spec.timeout = milliseconds(200);
  spec.rise = rise;
  spec.fall = fall;
  return spec;
}

HealthCheckTarget make_target(std::string vip, uint16_t port, HealthCheckSpec spec) {
  return HealthCheckTarget{.vip = std::move(vip),
                           .backend = loopback(AF_INET),
                           .vip_port = port,
                           .spec = std::move(spec)};
}

std::optional<BackendStatus> find_status(const std::vector<BackendStatus>& statuses,
                                         const std::string& vip) {
  for (const BackendStatus& status : statuses) {
    if (status.vip == vip) return status;
  }
  return std::nullopt;
}

// Stores each transition with the backend's status as the checker saw it at that moment.
class TransitionLog {
 public:
  struct Record {
    Transition transition;
    std::optional<BackendStatus> status;
  };

  HealthChecker::ChangeCallback callback() {
    return [this](const Transition& transition) {
      std::optional<BackendStatus> status;
      if (HealthChecker* checker = checker_.load()) {
        status = find_status(checker->snapshot(), transition.vip);
      }
      std::lock_guard lock(mutex_);
      records_.push_back({transition, status});
    };
  }

  // Sets the checker whose snapshot() each record stores; call before its start().
  void attach(HealthChecker& checker) { checker_.store(&checker); }

  std::vector<Record> records() const {
    std::lock_guard lock(mutex_);
    return records_;
  }
  size_t size() const { return records().size(); }
  size_t count_for(const std::string& vip) const {
    size_t count = 0;
    for (const Record& record : records()) count += record.transition.vip == vip ? 1 : 0;
    return count;
  }
  bool wait_for(size_t count) {
    return eventually([&] { return size() >= count; });
  }

 private:
  std::atomic<HealthChecker*> checker_{nullptr};
  mutable std::mutex mutex_;
  std::vector<Record> records_;
};

TEST(HealthChecker, DownAfterFallUpAfterRise) {
  auto server = std::make_unique<HttpServer>(kOk);
  const uint16_t port = server->port();
  TransitionLog log;
  HealthChecker checker(log.callback());
  log.attach(checker);
  ASSERT_TRUE(checker.set_targets({make_target("vip-a", port, fast_spec(CheckKind::kHttp))}).ok());
  ASSERT_TRUE(checker.start().ok());

  ASSERT_TRUE(log.wait_for(1)) << "never came up";
  Transition first = log.records()[0].transition;
  EXPECT_EQ(first.from, Health::kUnknown);
  EXPECT_EQ(first.to, Health::kUp);
  EXPECT_EQ(first.kind, CheckKind::kHttp);
  EXPECT_EQ(first.backend, loopback(AF_INET));

  server.reset();
  ASSERT_TRUE(log.wait_for(2)) << "never went down after the server stopped";
  const TransitionLog::Record down = log.records()[1];
  EXPECT_EQ(down.transition.from, Health::kUp);
  EXPECT_EQ(down.transition.to, Health::kDown);
  EXPECT_THAT(down.transition.error, HasSubstr("Connection refused"));
  ASSERT_TRUE(down.status.has_value());
  EXPECT_EQ(down.status->consecutive_failures, 3u) << "down after exactly fall failures";

  server = std::make_unique<HttpServer>(kOk, AF_INET, port);
  ASSERT_TRUE(log.wait_for(3)) << "never came back after the server restarted";
  const TransitionLog::Record up = log.records()[2];
  EXPECT_EQ(up.transition.from, Health::kDown);
  EXPECT_EQ(up.transition.to, Health::kUp);
  ASSERT_TRUE(up.status.has_value());
  EXPECT_EQ(up.status->consecutive_passes, 2u) << "up after exactly rise passes";

  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(log.size(), 3u) << "no transition without a change";
  const auto before_stop = std::chrono::steady_clock::now();
  checker.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before_stop, milliseconds(500));
}

TEST(HealthChecker, SetTargetsKeepsUnchangedDropsRemoved) {
  HttpServer server_a(kOk);
  HttpServer server_b(kOk);
  HttpServer server_c(kOk);
  TransitionLog log;
  HealthChecker checker(log.callback());
  log.attach(checker);
  const HealthCheckTarget a = make_target("vip-a", server_a.port(), fast_spec(CheckKind::kHttp));
  const HealthCheckTarget b = make_target("vip-b", server_b.port(), fast_spec(CheckKind::kTcp));
  const HealthCheckTarget c = make_target("vip-c", server_c.port(), fast_spec(CheckKind::kTcp));
  ASSERT_TRUE(checker.set_targets({a, b}).ok());
  ASSERT_TRUE(checker.start().ok());
  ASSERT_TRUE(log.wait_for(2));
  ASSERT_TRUE(eventually([&] {
    const std::optional<BackendStatus> status = find_status(checker.snapshot(), "vip-a");
    return status && status->consecutive_passes >= 3;
  }));
  const uint32_t passes_before = find_status(checker.snapshot(), "vip-a")->consecutive_passes;

  ASSERT_TRUE(checker.set_targets({a, c}).ok());

  const std::vector<BackendStatus> after = checker.snapshot();
  ASSERT_EQ(after.size(), 2u);
  const std::optional<BackendStatus> unchanged = find_status(after, "vip-a");
  ASSERT_TRUE(unchanged.has_value());
  EXPECT_EQ(unchanged->health, Health::kUp);
  EXPECT_GE(unchanged->consecutive_passes, passes_before) << "an unchanged target counts on";
  EXPECT_FALSE(find_status(after, "vip-b").has_value());
  const std::optional<BackendStatus> added = find_status(after, "vip-c");
  ASSERT_TRUE(added.has_value());
  EXPECT_EQ(added->health, Health::kUnknown);

  ASSERT_TRUE(eventually([&] { return log.count_for("vip-c") == 1; }));
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(log.count_for("vip-a"), 1u) << "the kept target reported a second transition";
  EXPECT_EQ(log.count_for("vip-b"), 1u) << "the removed target reported a transition";
  EXPECT_EQ(find_status(checker.snapshot(), "vip-c")->health, Health::kUp);
}

TEST(HealthChecker, ChangedSpecKeepsHealthRestartsCounting) {
  HttpServer server(kOk);
  TransitionLog log;
  HealthChecker checker(log.callback());
  log.attach(checker);
  HealthCheckTarget target = make_target("vip-a", server.port(), fast_spec(CheckKind::kHttp));
  ASSERT_TRUE(checker.set_targets({target}).ok());
  ASSERT_TRUE(checker.start().ok());
  ASSERT_TRUE(eventually([&] {
    const std::optional<BackendStatus> status = find_status(checker.snapshot(), "vip-a");
    return status && status->consecutive_passes >= 3;
  }));

  // The first check of the new spec falls anywhere in its 10 s interval, so at most one
  // check of it can have ended by the snapshot.
  target.spec.kind = CheckKind::kTcp;
  target.spec.interval = seconds(10);
  ASSERT_TRUE(checker.set_targets({target}).ok());

  const std::optional<BackendStatus> status = find_status(checker.snapshot(), "vip-a");
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->health, Health::kUp);
  EXPECT_EQ(status->kind, CheckKind::kTcp);
  EXPECT_LE(status->consecutive_passes, 1u);
  EXPECT_EQ(log.size(), 1u);
}

TEST(HealthChecker, RejectsInvalidTargets) {
  TcpListener listener;
  HealthChecker checker;
  const HealthCheckTarget good = make_target("vip-a", listener.port(), fast_spec(CheckKind::kTcp));
  ASSERT_TRUE(checker.set_targets({good}).ok());

  HealthCheckTarget invalid = make_target("vip-b", listener.port(), fast_spec(CheckKind::kTcp));
  invalid.spec.fall = 0;
  const Status invalid_status = checker.set_targets({good, invalid});
  ASSERT_FALSE(invalid_status.ok());
  EXPECT_THAT(invalid_status.error(),
              HasSubstr("vip vip-b backend 127.0.0.1: health check fall 0"));

  const Status twice = checker.set_targets({good, good});
  ASSERT_FALSE(twice.ok());
  EXPECT_THAT(twice.error(), HasSubstr("listed twice"));

  const Status no_port = checker.set_targets({make_target("vip-c", 0, fast_spec(CheckKind::kTcp))});
  ASSERT_FALSE(no_port.ok());
  EXPECT_THAT(no_port.error(), HasSubstr("no port to check"));

  const std::vector<BackendStatus> statuses = checker.snapshot();
  ASSERT_EQ(statuses.size(), 1u) << "a rejected set changes nothing";
  EXPECT_EQ(statuses[0].vip, "vip-a");
}

TEST(HealthChecker, PortOverrideChecked) {
  TcpListener listener;
  test_servers::ClosedTcpPort closed;
  TransitionLog log;
  HealthChecker checker(log.callback());
  log.attach(checker);
  HealthCheckSpec spec = fast_spec(CheckKind::kTcp);
  spec.port = listener.port();
  ASSERT_TRUE(checker.set_targets({make_target("vip-a", closed.port(), spec)}).ok());
  ASSERT_TRUE(checker.start().ok());

  ASSERT_TRUE(log.wait_for(1));
  EXPECT_EQ(log.records()[0].transition.to, Health::kUp) << "the VIP port was checked";
}

TEST(HealthChecker, KindNoneComesUp) {
  TransitionLog log;
  HealthChecker checker(log.callback());
  log.attach(checker);
  ASSERT_TRUE(checker.set_targets({make_target("vip-a", 0, fast_spec(CheckKind::kNone))}).ok());
  ASSERT_TRUE(checker.start().ok());

  ASSERT_TRUE(log.wait_for(1));
  EXPECT_EQ(log.records()[0].transition.to, Health::kUp);
  EXPECT_EQ(log.records()[0].transition.kind, CheckKind::kNone);
}

TEST(HealthChecker, StopDoesNotWaitForTimeout) {
  HttpServer silent(/*response=*/"");
  HealthChecker checker;
  HealthCheckSpec spec = fast_spec(CheckKind::kHttp);
  spec.timeout = seconds(5);
  ASSERT_TRUE(checker.set_targets({make_target("vip-a", silent.port(), spec)}).ok());
  ASSERT_TRUE(checker.start().ok());
  ASSERT_TRUE(eventually([&] { return silent.requests() >= 1; })) << "no check started";

  const auto before_stop = std::chrono::steady_clock::now();
  checker.stop();

  EXPECT_LT(std::chrono::steady_clock::now() - before_stop, milliseconds(500));
  EXPECT_EQ(checker.snapshot()[0].health, Health::kUnknown);
}

TEST(HealthChecker, RestartResumesDroppedCheck) {
  HttpServer silent(/*response=*/"");
  HealthChecker checker;
  HealthCheckSpec spec = fast_spec(CheckKind::kHttp);
  ASSERT_TRUE(checker.set_targets({make_target("vip-a", silent.port(), spec)}).ok());
  ASSERT_TRUE(checker.start().ok());
  ASSERT_TRUE(eventually([&] { return silent.requests() >= 1; })) << "no check started";
  checker.stop();
  ASSERT_EQ(checker.snapshot()[0].consecutive_failures, 0u) << "the check ran to its end";

  ASSERT_TRUE(checker.start().ok());

  ASSERT_TRUE(eventually([&] { return checker.snapshot()[0].consecutive_failures >= 1; }))
      << "the target whose check was dropped by stop() was never checked again";
  EXPECT_THAT(checker.snapshot()[0].last_error, HasSubstr("timed out after 200 ms"));
}

TEST(HealthChecker, FakeClockDrivesSchedule) {
  TcpListener listener;
  FakeClock clock;
  TransitionLog log;
  HealthChecker checker(log.callback(),
                        HealthChecker::Options{.clock = &clock, .max_wait = milliseconds(10)});
  log.attach(checker);
  HealthCheckSpec spec = fast_spec(CheckKind::kTcp);
  spec.interval = std::chrono::hours(1);
  ASSERT_TRUE(checker.set_targets({make_target("vip-a", listener.port(), spec)}).ok());
  ASSERT_TRUE(checker.start().ok());

  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_FALSE(checker.snapshot()[0].last_check.has_value()) << "checked before it was due";

  clock.advance(std::chrono::hours(1));

  ASSERT_TRUE(log.wait_for(1)) << "not checked after the fake clock passed the interval";
  EXPECT_EQ(log.records()[0].transition.to, Health::kUp);
  EXPECT_EQ(log.records()[0].transition.at, clock.now());
}

}  // namespace
}  // namespace sluice::health
