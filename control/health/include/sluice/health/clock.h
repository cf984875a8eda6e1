// The time source of the health checker: the steady clock in the daemon, a fake one in tests.
#pragma once

#include <atomic>
#include <chrono>

namespace sluice::health {

using Duration = std::chrono::steady_clock::duration;
using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

class SteadyClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
};

// A clock that moves only when a test moves it. Safe to read and move from different threads.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start = TimePoint{} + std::chrono::hours(1))
      : ticks_(start.time_since_epoch().count()) {}

  TimePoint now() const override { return TimePoint(Duration(ticks_.load())); }
  void advance(Duration step) { ticks_.fetch_add(step.count()); }

 private:
  std::atomic<Duration::rep> ticks_;
};

}  // namespace sluice::health
