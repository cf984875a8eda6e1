// The health checker of sluiced: runs the checks of all backends on one background thread and
// reports every change of health.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/health/check_scheduler.h"
#include "sluice/health/check_spec.h"
#include "sluice/health/clock.h"
#include "sluice/health/health_state.h"
#include "sluice/ip_address.h"
#include "sluice/result.h"

namespace sluice::health {

struct HealthCheckTarget {
  std::string vip;  // the VIP key, such as 203.0.113.10:80/tcp
  IpAddress backend;
  uint16_t vip_port = 0;  // the port checked unless spec.port is set
  HealthCheckSpec spec;

  bool operator==(const HealthCheckTarget&) const = default;
};

struct BackendStatus {
  std::string vip;
  IpAddress backend;
  CheckKind kind = CheckKind::kNone;
  Health health = Health::kUnknown;
  uint32_t consecutive_passes = 0;
  uint32_t consecutive_failures = 0;
  std::string last_error;
  TimePoint last_transition;
  std::optional<TimePoint> last_check;
};

class HealthChecker {
 public:
  // Called on the checker thread for every transition. It may call snapshot() but must not
  // call set_targets() or stop(), and it delays the checks while it runs.
  using ChangeCallback = std::function<void(const Transition&)>;

  struct Options {
    const Clock* clock = nullptr;  // the steady clock when null; must outlive the checker
    // The interface every probe socket is bound to (SO_BINDTODEVICE); empty for none.
    std::string bind_device;
    uint64_t seed = std::random_device{}();  // seeds the jitter of the schedule
    // The maximum time the thread sleeps without reading the clock. A test that moves a fake
    // clock sets it low; with the steady clock the thread wakes when a check is due anyway.
    std::chrono::milliseconds max_wait{1000};
  };

  explicit HealthChecker(ChangeCallback on_change = {});
  HealthChecker(ChangeCallback on_change, Options options);
  ~HealthChecker();  // stops the thread
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Replaces the set of targets, keyed by VIP and backend. A new target starts as unknown, a
  // removed one is dropped with its running check, an unchanged one keeps its state, and one
  // whose spec or port changed keeps its health but counts from zero. Rejects the whole set,
  // changing nothing, when a target has an invalid spec, an unset backend or no port to check,
  // or when a key appears twice.
  Status set_targets(std::vector<HealthCheckTarget> targets);

  // Starts the checker thread. Calling start() on a running checker does nothing.
  Status start();
  // Stops the thread and closes the sockets of running checks. Returns without waiting for a
  // check timeout, because every socket is non-blocking.
  void stop();

  // The state of every target, ordered by VIP and backend.
  std::vector<BackendStatus> snapshot() const;

 private:
  struct Entry {
    HealthCheckTarget target;
    HealthState state;
    uint64_t generation = 0;  // grows when the spec changes; older results are dropped
    bool running = false;     // a check is in flight, so the target is off the schedule
  };
  struct RunningCheck;
  struct CheckResult;

  // The thread's loop: start the checks that are due, wait in poll() for their sockets, a
  // deadline or a wake-up, then record what ended and report the transitions.
  void run();
  void start_due_checks(std::map<uint64_t, RunningCheck>& running,
                        std::vector<CheckResult>& results);
  void wait_for_events(std::map<uint64_t, RunningCheck>& running,
                       std::vector<CheckResult>& results);
  void record_results(std::vector<CheckResult>& results);
  void wake();

  ChangeCallback on_change_;
  Options options_;
  SteadyClock steady_clock_;
  const Clock& clock_;

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, IpAddress>, uint64_t> ids_;  // guarded by mutex_
  std::map<uint64_t, Entry> entries_;                          // guarded by mutex_
  CheckScheduler scheduler_;                                   // guarded by mutex_
  std::vector<Transition> pending_transitions_;                // guarded by mutex_
  uint64_t next_id_ = 1;                                       // guarded by mutex_
  bool stopping_ = false;                                      // guarded by mutex_

  int wake_fd_ = -1;    // an eventfd that set_targets() and stop() write to
  int wake_errno_ = 0;  // why creating wake_fd_ failed
  std::thread thread_;
};

}  // namespace sluice::health
