// When each target is checked next. Pure: time comes in as arguments.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/health/clock.h"

namespace sluice::health {

// A target leaves the schedule while its check runs and comes back through reschedule(), so
// a target never has two checks at a time.
class CheckScheduler {
 public:
  explicit CheckScheduler(uint64_t seed) : random_(seed) {}

  // Schedules the first check of a target at a random point within one interval of `now`,
  // so that targets added together are not checked in a burst.
  void add(uint64_t id, TimePoint now, Duration interval);
  // Schedules the next check one interval after `started`, moved by up to a tenth of the
  // interval either way so that targets do not fall into step. Never earlier than `finished`.
  void reschedule(uint64_t id, TimePoint started, TimePoint finished, Duration interval);
  void remove(uint64_t id);

  // Removes the targets due at `now` from the schedule and returns them, earliest first.
  std::vector<uint64_t> take_due(TimePoint now);
  std::optional<TimePoint> next_due() const;
  bool contains(uint64_t id) const { return due_.contains(id); }
  size_t size() const { return due_.size(); }

 private:
  void insert(uint64_t id, TimePoint due);
  Duration random_duration(Duration low, Duration high);

  std::set<std::pair<TimePoint, uint64_t>> queue_;
  std::unordered_map<uint64_t, TimePoint> due_;
  std::mt19937_64 random_;
};

}  // namespace sluice::health
