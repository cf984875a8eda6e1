// The health of one backend as a pure state machine over check results: no sockets, no
// sleeping, time comes in with each result.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "sluice/health/check_spec.h"
#include "sluice/health/clock.h"
#include "sluice/ip_address.h"
#include "sluice/result.h"

namespace sluice::health {

enum class Health : uint8_t {
  kUnknown,  // no check has passed yet; not serving
  kUp,
  kDown,
};

std::string_view to_string(Health health);

struct Transition {
  std::string vip;
  IpAddress backend;
  CheckKind kind = CheckKind::kNone;
  Health from = Health::kUnknown;
  Health to = Health::kUnknown;
  std::string error;  // the failure that caused a move to kDown; empty on a move to kUp
  TimePoint at;
};

// Transitions:
//   unknown -> up    on the first passing check
//   unknown -> down  after `fall` consecutive failures, so a backend that never passed is
//                    reported as down
//   up -> down       after `fall` consecutive failures
//   down -> up       after `rise` consecutive passes
class HealthState {
 public:
  using TransitionCallback = std::function<void(const Transition&)>;

  HealthState(std::string vip, IpAddress backend, CheckKind kind, uint32_t rise, uint32_t fall,
              TimePoint now, TransitionCallback on_transition = {});

  // Records the result of one check that ended at `now`, and calls the transition callback
  // when the health changes.
  void record(const Status& result, TimePoint now);

  // Keeps the health but counts from zero again, for a target whose check spec changed.
  void restart_counting(CheckKind kind, uint32_t rise, uint32_t fall);

  const std::string& vip() const { return vip_; }
  const IpAddress& backend() const { return backend_; }
  CheckKind kind() const { return kind_; }
  Health health() const { return health_; }
  bool serving() const { return health_ == Health::kUp; }
  uint32_t consecutive_passes() const { return consecutive_passes_; }
  uint32_t consecutive_failures() const { return consecutive_failures_; }
  // The most recent failure, kept after the backend comes back up; empty before any.
  const std::string& last_error() const { return last_error_; }
  // The time of the last change of health, or of construction when there was none.
  TimePoint last_transition() const { return last_transition_; }
  std::optional<TimePoint> last_check() const { return last_check_; }

 private:
  void move_to(Health next, TimePoint now);

  std::string vip_;
  IpAddress backend_;
  CheckKind kind_;
  uint32_t rise_;
  uint32_t fall_;
  TransitionCallback on_transition_;

  Health health_ = Health::kUnknown;
  uint32_t consecutive_passes_ = 0;
  uint32_t consecutive_failures_ = 0;
  std::string last_error_;
  TimePoint last_transition_;
  std::optional<TimePoint> last_check_;
};

// Returns true when no backend of a VIP is up, counting unknown as down because it is not
// serving. An empty list returns true. What to do then, such as failing open, is the
// caller's policy.
bool all_backends_down(std::span<const Health> backends);

}  // namespace sluice::health
