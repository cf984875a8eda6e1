// The health state machine, the check scheduler and spec validation, all on a fake clock.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <vector>

#include "sluice/health/check_scheduler.h"
#include "sluice/health/check_spec.h"
#include "sluice/health/clock.h"
#include "sluice/health/health_state.h"

namespace sluice::health {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const Status kPass;
const Status kRefused = Error{"192.0.2.10:80: connect failed: Connection refused"};

// A state with rise 2 and fall 3 that appends each transition to `transitions`.
class HealthStateTest : public ::testing::Test {
 protected:
  HealthState make_state(uint32_t rise = 2, uint32_t fall = 3) {
    return HealthState("192.0.2.1:80/tcp", *IpAddress::parse("192.0.2.10"), CheckKind::kTcp, rise,
                       fall, clock.now(),
                       [this](const Transition& transition) { transitions.push_back(transition); });
  }

  // Records `result` one second after the previous one.
  void check(HealthState& state, const Status& result) {
    clock.advance(seconds(1));
    state.record(result, clock.now());
  }

  FakeClock clock;
  std::vector<Transition> transitions;
};

TEST_F(HealthStateTest, StartsUnknownAndNotServing) {
  const HealthState state = make_state();

  EXPECT_EQ(state.health(), Health::kUnknown);
  EXPECT_FALSE(state.serving());
  EXPECT_EQ(state.last_transition(), clock.now());
  EXPECT_FALSE(state.last_check().has_value());
  EXPECT_TRUE(transitions.empty());
}

TEST_F(HealthStateTest, UnknownToUpOnFirstPass) {
  HealthState state = make_state(/*rise=*/3);

  check(state, kPass);

  EXPECT_EQ(state.health(), Health::kUp);
  EXPECT_TRUE(state.serving());
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_EQ(transitions[0].from, Health::kUnknown);
  EXPECT_EQ(transitions[0].to, Health::kUp);
  EXPECT_EQ(transitions[0].vip, "192.0.2.1:80/tcp");
  EXPECT_EQ(transitions[0].backend.to_string(), "192.0.2.10");
  EXPECT_EQ(transitions[0].kind, CheckKind::kTcp);
  EXPECT_EQ(transitions[0].error, "");
  EXPECT_EQ(transitions[0].at, clock.now());
  EXPECT_EQ(state.last_transition(), clock.now());
}

TEST_F(HealthStateTest, UpToDownExactlyAfterFall) {
  HealthState state = make_state(/*rise=*/2, /*fall=*/3);
  check(state, kPass);
  transitions.clear();

  check(state, kRefused);
  check(state, kRefused);
  EXPECT_EQ(state.health(), Health::kUp) << "down after 2 failures, fall is 3";
  EXPECT_EQ(state.consecutive_failures(), 2u);
  EXPECT_TRUE(transitions.empty());

  check(state, kRefused);
  EXPECT_EQ(state.health(), Health::kDown);
  EXPECT_EQ(state.consecutive_failures(), 3u);
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_EQ(transitions[0].from, Health::kUp);
  EXPECT_EQ(transitions[0].to, Health::kDown);
  EXPECT_EQ(transitions[0].error, kRefused.error());
  EXPECT_EQ(transitions[0].at, clock.now());
}

TEST_F(HealthStateTest, DownToUpExactlyAfterRise) {
  HealthState state = make_state(/*rise=*/2, /*fall=*/1);
  check(state, kPass);
  check(state, kRefused);
  ASSERT_EQ(state.health(), Health::kDown);
  transitions.clear();

  check(state, kPass);
  EXPECT_EQ(state.health(), Health::kDown) << "up after 1 pass, rise is 2";
  EXPECT_EQ(state.consecutive_passes(), 1u);
  EXPECT_TRUE(transitions.empty());

  check(state, kPass);
  EXPECT_EQ(state.health(), Health::kUp);
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_EQ(transitions[0].from, Health::kDown);
  EXPECT_EQ(transitions[0].to, Health::kUp);
  EXPECT_EQ(transitions[0].error, "");
}

TEST_F(HealthStateTest, AlternatingResultsNeverFlip) {
  HealthState up = make_state();
  check(up, kPass);
  HealthState down = make_state(/*rise=*/2, /*fall=*/1);
  check(down, kPass);
  check(down, kRefused);
  transitions.clear();

  for (int i = 0; i < 20; ++i) {
    const Status& result = i % 2 == 0 ? kRefused : kPass;
    check(up, result);
    check(down, result);
  }

  EXPECT_EQ(up.health(), Health::kUp);
  EXPECT_EQ(down.health(), Health::kDown);
  EXPECT_TRUE(transitions.empty());
}

TEST_F(HealthStateTest, UnknownToDownAfterFall) {
  HealthState state = make_state(/*rise=*/2, /*fall=*/2);

  check(state, kRefused);
  EXPECT_EQ(state.health(), Health::kUnknown);
  check(state, kRefused);
  EXPECT_EQ(state.health(), Health::kDown);
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_EQ(transitions[0].from, Health::kUnknown);
  EXPECT_EQ(transitions[0].error, kRefused.error());

  check(state, kPass);
  EXPECT_EQ(state.health(), Health::kDown) << "a down backend needs rise passes, not one";
}

TEST_F(HealthStateTest, TransitionReportedOnce) {
  HealthState state = make_state(/*rise=*/2, /*fall=*/2);
  check(state, kPass);
  for (int i = 0; i < 10; ++i) check(state, kRefused);
  for (int i = 0; i < 10; ++i) check(state, kPass);

  ASSERT_EQ(transitions.size(), 3u);
  EXPECT_EQ(transitions[0].to, Health::kUp);
  EXPECT_EQ(transitions[1].to, Health::kDown);
  EXPECT_EQ(transitions[2].to, Health::kUp);
  EXPECT_EQ(state.consecutive_passes(), 10u);
  EXPECT_EQ(state.consecutive_failures(), 0u);
}

TEST_F(HealthStateTest, KeepsLastErrorAfterRecovery) {
  HealthState state = make_state(/*rise=*/1, /*fall=*/1);
  check(state, kPass);
  check(state, Error{"first"});
  check(state, Error{"second"});
  check(state, kPass);

  EXPECT_EQ(state.health(), Health::kUp);
  EXPECT_EQ(state.last_error(), "second");
  EXPECT_EQ(state.last_check(), clock.now());
}

TEST_F(HealthStateTest, RestartCountingKeepsHealth) {
  HealthState state = make_state(/*rise=*/2, /*fall=*/3);
  check(state, kPass);
  check(state, kRefused);
  check(state, kRefused);

  state.restart_counting(CheckKind::kHttp, 2, 3);
  EXPECT_EQ(state.health(), Health::kUp);
  EXPECT_EQ(state.consecutive_failures(), 0u);
  EXPECT_EQ(state.kind(), CheckKind::kHttp);

  check(state, kRefused);
  EXPECT_EQ(state.health(), Health::kUp) << "the two failures before the restart must not count";
  check(state, kRefused);
  check(state, kRefused);
  EXPECT_EQ(state.health(), Health::kDown);
  EXPECT_EQ(transitions.back().kind, CheckKind::kHttp);
}

TEST(AllBackendsDown, CountsOnlyUpAsServing) {
  const std::vector<Health> one_up{Health::kDown, Health::kUp, Health::kUnknown};
  const std::vector<Health> none_up{Health::kDown, Health::kUnknown, Health::kDown};

  EXPECT_FALSE(all_backends_down(one_up));
  EXPECT_TRUE(all_backends_down(none_up));
  EXPECT_TRUE(all_backends_down(std::vector<Health>{}));
}

TEST(CheckScheduler, SpreadsFirstChecksOverInterval) {
  const TimePoint now = FakeClock().now();
  const milliseconds interval(1000);
  CheckScheduler scheduler(/*seed=*/7);
  for (uint64_t id = 1; id <= 100; ++id) scheduler.add(id, now, interval);

  EXPECT_TRUE(scheduler.take_due(now - milliseconds(1)).empty());
  // 100 checks spread over 1 s fall into the first and the last tenth alike.
  const size_t first_tenth = scheduler.take_due(now + milliseconds(100)).size();
  EXPECT_GT(first_tenth, 0u);
  EXPECT_LT(first_tenth, 30u);
  const std::vector<uint64_t> rest = scheduler.take_due(now + interval - milliseconds(1));
  EXPECT_EQ(first_tenth + rest.size(), 100u) << "every first check is due within the interval";
  EXPECT_EQ(scheduler.size(), 0u);
}

TEST(CheckScheduler, ReschedulesWithinJitter) {
  const TimePoint started = FakeClock().now();
  const milliseconds interval(1000);
  CheckScheduler scheduler(/*seed=*/11);

  std::set<TimePoint> due_times;
  for (int i = 0; i < 50; ++i) {
    scheduler.reschedule(1, started, started + milliseconds(5), interval);
    const std::optional<TimePoint> due = scheduler.next_due();
    ASSERT_TRUE(due.has_value());
    EXPECT_GE(*due, started + milliseconds(900));
    EXPECT_LT(*due, started + milliseconds(1100));
    due_times.insert(*due);
    EXPECT_EQ(scheduler.size(), 1u) << "rescheduling replaces the entry";
  }
  EXPECT_GT(due_times.size(), 1u) << "no jitter";
}

TEST(CheckScheduler, NeverBeforeFinish) {
  const TimePoint started = FakeClock().now();
  CheckScheduler scheduler(/*seed=*/3);

  // A check that took longer than its interval is followed at once, not in the past.
  scheduler.reschedule(1, started, started + seconds(5), milliseconds(1000));

  EXPECT_EQ(scheduler.next_due(), started + seconds(5));
}

TEST(CheckScheduler, TakenTargetLeavesSchedule) {
  const TimePoint now = FakeClock().now();
  CheckScheduler scheduler(/*seed=*/5);
  scheduler.add(1, now, milliseconds(10));
  scheduler.add(2, now, milliseconds(10));

  const std::vector<uint64_t> due = scheduler.take_due(now + milliseconds(10));
  EXPECT_EQ(due.size(), 2u);
  EXPECT_FALSE(scheduler.contains(1));
  EXPECT_FALSE(scheduler.next_due().has_value());
  EXPECT_TRUE(scheduler.take_due(now + seconds(10)).empty());

  scheduler.add(3, now, milliseconds(10));
  scheduler.remove(3);
  EXPECT_EQ(scheduler.size(), 0u);
}

TEST(HealthCheckSpec, DefaultsAreValid) {
  const HealthCheckSpec spec;

  EXPECT_EQ(spec.interval, seconds(2));
  EXPECT_EQ(spec.timeout, seconds(1));
  EXPECT_EQ(spec.rise, 2u);
  EXPECT_EQ(spec.fall, 3u);
  EXPECT_EQ(spec.http.expected_statuses, std::set<int>{200});
  EXPECT_FALSE(spec.port.has_value());
  EXPECT_TRUE(validate(spec).ok()) << validate(spec).error();
}

TEST(HealthCheckSpec, RejectsInvalidFields) {
  struct Case {
    const char* name;
    void (*change)(HealthCheckSpec&);
    const char* expected_text;
  };
  const Case cases[] = {
      {"zero interval", [](HealthCheckSpec& s) { s.interval = milliseconds(0); }, "interval 0"},
      {"negative timeout", [](HealthCheckSpec& s) { s.timeout = milliseconds(-1); }, "timeout -1"},
      {"zero rise", [](HealthCheckSpec& s) { s.rise = 0; }, "rise 0"},
      {"zero fall", [](HealthCheckSpec& s) { s.fall = 0; }, "fall 0"},
      {"zero port", [](HealthCheckSpec& s) { s.port = 0; }, "port 0"},
      {"relative path",
       [](HealthCheckSpec& s) {
         s.kind = CheckKind::kHttp;
         s.http.path = "healthz";
       },
       "http.path 'healthz'"},
      {"path with space",
       [](HealthCheckSpec& s) {
         s.kind = CheckKind::kHttp;
         s.http.path = "/a b";
       },
       "http.path '/a b'"},
      {"no statuses",
       [](HealthCheckSpec& s) {
         s.kind = CheckKind::kHttp;
         s.http.expected_statuses.clear();
       },
       "expected_statuses is empty"},
      {"status 600",
       [](HealthCheckSpec& s) {
         s.kind = CheckKind::kHttp;
         s.http.expected_statuses = {200, 600};
       },
       "contains 600"},
  };
  for (const Case& c : cases) {
    HealthCheckSpec spec;
    c.change(spec);
    const Status status = validate(spec);
    EXPECT_FALSE(status.ok()) << c.name;
    EXPECT_NE(status.error().find(c.expected_text), std::string::npos)
        << c.name << ": " << status.error();
  }
}

}  // namespace
}  // namespace sluice::health
