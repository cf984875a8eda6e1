#include "sluice/health/check_scheduler.h"

#include <algorithm>

namespace sluice::health {

void CheckScheduler::add(uint64_t id, TimePoint now, Duration interval) {
  insert(id, now + random_duration(Duration::zero(), interval));
}

void CheckScheduler::reschedule(uint64_t id, TimePoint started, TimePoint finished,
                                Duration interval) {
  const Duration jitter = interval / 10;
  const TimePoint due = started + interval + random_duration(-jitter, jitter);
  insert(id, std::max(due, finished));
}

void CheckScheduler::remove(uint64_t id) {
  const auto found = due_.find(id);
  if (found == due_.end()) return;
  queue_.erase({found->second, id});
  due_.erase(found);
}

std::vector<uint64_t> CheckScheduler::take_due(TimePoint now) {
  std::vector<uint64_t> ids;
  while (!queue_.empty() && queue_.begin()->first <= now) {
    const uint64_t id = queue_.begin()->second;
    queue_.erase(queue_.begin());
    due_.erase(id);
    ids.push_back(id);
  }
  return ids;
}

std::optional<TimePoint> CheckScheduler::next_due() const {
  if (queue_.empty()) return std::nullopt;
  return queue_.begin()->first;
}

void CheckScheduler::insert(uint64_t id, TimePoint due) {
  remove(id);
  queue_.emplace(due, id);
  due_.emplace(id, due);
}

// Returns a duration in [low, high), or `low` when the range is empty.
Duration CheckScheduler::random_duration(Duration low, Duration high) {
  if (high <= low) return low;
  std::uniform_int_distribution<Duration::rep> distribution(low.count(), high.count() - 1);
  return Duration(distribution(random_));
}

}  // namespace sluice::health
