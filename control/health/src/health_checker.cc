#include "sluice/health/health_checker.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <set>
#include <system_error>

#include "sluice/health/probe.h"

namespace sluice::health {
namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto instance = [] {
    auto existing = spdlog::get("health");
    return existing ? existing : spdlog::default_logger()->clone("health");
  }();
  return instance;
}

uint16_t checked_port(const HealthCheckTarget& target) {
  return target.spec.port.value_or(target.vip_port);
}

std::string describe(const HealthCheckTarget& target) {
  return "vip " + target.vip + " backend " + target.backend.to_string();
}

void log_transition(const Transition& transition) {
  if (transition.to == Health::kDown) {
    logger()->warn("vip {} backend {}: {} -> down after a failed {} check: {}", transition.vip,
                   transition.backend.to_string(), to_string(transition.from),
                   to_string(transition.kind), transition.error);
  } else {
    logger()->info("vip {} backend {}: {} -> {} ({} check)", transition.vip,
                   transition.backend.to_string(), to_string(transition.from),
                   to_string(transition.to), to_string(transition.kind));
  }
}

}  // namespace

struct HealthChecker::RunningCheck {
  std::unique_ptr<Probe> probe;
  uint64_t generation = 0;
  TimePoint started;
  TimePoint deadline;
  std::chrono::milliseconds timeout{0};
};

struct HealthChecker::CheckResult {
  uint64_t id = 0;
  uint64_t generation = 0;
  TimePoint started;
  Status result;
};

HealthChecker::HealthChecker(ChangeCallback on_change)
    : HealthChecker(std::move(on_change), Options{}) {}

HealthChecker::HealthChecker(ChangeCallback on_change, Options options)
    : on_change_(std::move(on_change)),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : steady_clock_),
      scheduler_(options_.seed),
      wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      wake_errno_(wake_fd_ < 0 ? errno : 0) {}

HealthChecker::~HealthChecker() {
  stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

Status HealthChecker::set_targets(std::vector<HealthCheckTarget> targets) {
  std::set<std::pair<std::string, IpAddress>> keys;
  for (const HealthCheckTarget& target : targets) {
    if (!target.backend.is_set()) return Error{describe(target) + ": the backend address is unset"};
    if (Status valid = validate(target.spec); !valid) {
      return Error{describe(target) + ": " + valid.error()};
    }
    if (target.spec.kind != CheckKind::kNone && checked_port(target) == 0) {
      return Error{describe(target) + ": no port to check (set the VIP port or the check's port)"};
    }
    if (!keys.emplace(target.vip, target.backend).second) {
      return Error{describe(target) +
                   ": listed twice (each VIP and backend pair needs one "
                   "target)"};
    }
  }

  size_t added = 0;
  size_t removed = 0;
  size_t changed = 0;
  {
    std::lock_guard lock(mutex_);
    const TimePoint now = clock_.now();

    for (auto it = ids_.begin(); it != ids_.end();) {
      if (keys.contains(it->first)) {
        ++it;
        continue;
      }
      // A check still running for this id finds no entry when it ends, and is dropped.
      scheduler_.remove(it->second);
      entries_.erase(it->second);
      it = ids_.erase(it);
      ++removed;
    }

    for (HealthCheckTarget& target : targets) {
      const auto key = std::make_pair(target.vip, target.backend);
      const auto found = ids_.find(key);
      if (found == ids_.end()) {
        const uint64_t id = next_id_++;
        const Duration interval = target.spec.interval;
        HealthState state(
            target.vip, target.backend, target.spec.kind, target.spec.rise, target.spec.fall, now,
            [this](const Transition& transition) { pending_transitions_.push_back(transition); });
        entries_.emplace(id, Entry{.target = std::move(target), .state = std::move(state)});
        ids_.emplace(key, id);
        scheduler_.add(id, now, interval);
        ++added;
        continue;
      }

      Entry& entry = entries_.at(found->second);
      if (entry.target == target) continue;
      const HealthCheckSpec& spec = target.spec;
      entry.state.restart_counting(spec.kind, spec.rise, spec.fall);
      entry.target = std::move(target);
      ++entry.generation;
      if (!entry.running) {
        scheduler_.remove(found->second);
        scheduler_.add(found->second, now, entry.target.spec.interval);
      }
      ++changed;
    }
  }

  logger()->info("targets updated: {} added, {} removed, {} changed, {} in all", added, removed,
                 changed, keys.size());
  wake();
  return {};
}

Status HealthChecker::start() {
  if (wake_fd_ < 0) {
    return Error{std::string("cannot start the health checker: eventfd failed: ") +
                 std::strerror(wake_errno_)};
  }
  if (thread_.joinable()) return {};

  {
    std::lock_guard lock(mutex_);
    stopping_ = false;
  }
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& error) {
    return Error{std::string("cannot start the health checker thread: ") + error.what()};
  }
  return {};
}

void HealthChecker::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake();
  thread_.join();

  // The thread dropped its running checks: put those targets back on the schedule, so that a
  // later start() checks them again.
  std::lock_guard lock(mutex_);
  const TimePoint now = clock_.now();
  for (auto& [id, entry] : entries_) {
    if (!entry.running) continue;
    entry.running = false;
    scheduler_.add(id, now, entry.target.spec.interval);
  }
}

std::vector<BackendStatus> HealthChecker::snapshot() const {
  std::lock_guard lock(mutex_);
  std::vector<BackendStatus> statuses;
  statuses.reserve(ids_.size());
  for (const auto& [key, id] : ids_) {
    const HealthState& state = entries_.at(id).state;
    statuses.push_back(BackendStatus{
        .vip = state.vip(),
        .backend = state.backend(),
        .kind = state.kind(),
        .health = state.health(),
        .consecutive_passes = state.consecutive_passes(),
        .consecutive_failures = state.consecutive_failures(),
        .last_error = state.last_error(),
        .last_transition = state.last_transition(),
        .last_check = state.last_check(),
    });
  }
  return statuses;
}

void HealthChecker::run() {
  logger()->info("started{}", options_.bind_device.empty()
                                  ? std::string()
                                  : ", probes bound to interface " + options_.bind_device);
  std::map<uint64_t, RunningCheck> running;
  std::vector<CheckResult> results;
  while (true) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) break;
    }
    start_due_checks(running, results);
    wait_for_events(running, results);
    record_results(results);
  }
  logger()->info("stopped, {} running check(s) dropped", running.size());
}

void HealthChecker::start_due_checks(std::map<uint64_t, RunningCheck>& running,
                                     std::vector<CheckResult>& results) {
  struct DueCheck {
    uint64_t id;
    uint64_t generation;
    HealthCheckTarget target;
  };
  std::vector<DueCheck> due;
  {
    std::lock_guard lock(mutex_);
    for (const uint64_t id : scheduler_.take_due(clock_.now())) {
      Entry& entry = entries_.at(id);
      entry.running = true;
      due.push_back({id, entry.generation, entry.target});
    }
  }

  // Sockets are opened outside the lock, so set_targets() and snapshot() do not wait for them.
  for (DueCheck& check : due) {
    const TimePoint started = clock_.now();
    const HealthCheckSpec& spec = check.target.spec;
    std::unique_ptr<Probe> probe = make_probe(
        spec, ProbeTarget{check.target.backend, checked_port(check.target), options_.bind_device});
    if (!probe) {
      results.push_back({check.id, check.generation, started, Status()});
      continue;
    }

    probe->start();
    if (probe->done()) {
      results.push_back({check.id, check.generation, started, probe->result()});
      continue;
    }
    running.emplace(check.id, RunningCheck{std::move(probe), check.generation, started,
                                           started + spec.timeout, spec.timeout});
  }
}

void HealthChecker::wait_for_events(std::map<uint64_t, RunningCheck>& running,
                                    std::vector<CheckResult>& results) {
  std::vector<pollfd> fds{{.fd = wake_fd_, .events = POLLIN, .revents = 0}};
  std::optional<TimePoint> wake_at;
  {
    std::lock_guard lock(mutex_);
    wake_at = scheduler_.next_due();
  }
  for (const auto& [id, check] : running) {
    fds.push_back({.fd = check.probe->fd(), .events = check.probe->events(), .revents = 0});
    wake_at = wake_at ? std::min(*wake_at, check.deadline) : check.deadline;
  }

  auto wait = options_.max_wait;
  if (wake_at) {
    const auto until_due = std::chrono::ceil<std::chrono::milliseconds>(*wake_at - clock_.now());
    wait = std::clamp(until_due, std::chrono::milliseconds(0), options_.max_wait);
  }
  const int ready = poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
  const bool poll_failed = ready < 0 && errno != EINTR;
  const std::string poll_error = poll_failed ? std::strerror(errno) : "";
  if (poll_failed) {
    logger()->error("poll failed: {}; failing the {} running check(s)", poll_error, running.size());
  }

  if (fds[0].revents != 0) {
    uint64_t count;
    [[maybe_unused]] const ssize_t drained = read(wake_fd_, &count, sizeof(count));
  }

  // fds[1 + i] belongs to the i-th running check, in the map's order.
  size_t index = 1;
  const TimePoint now = clock_.now();
  for (auto it = running.begin(); it != running.end(); ++index) {
    RunningCheck& check = it->second;
    if (poll_failed) {
      results.push_back({it->first, check.generation, check.started,
                         Error{"the checker's poll() failed: " + poll_error}});
      it = running.erase(it);
      continue;
    }

    if (fds[index].revents != 0) check.probe->resume(fds[index].revents);
    if (!check.probe->done() && now >= check.deadline) check.probe->time_out(check.timeout);

    if (!check.probe->done()) {
      ++it;
      continue;
    }
    results.push_back({it->first, check.generation, check.started, check.probe->result()});
    it = running.erase(it);
  }
}

void HealthChecker::record_results(std::vector<CheckResult>& results) {
  std::vector<Transition> transitions;
  {
    std::lock_guard lock(mutex_);
    const TimePoint now = clock_.now();
    for (CheckResult& result : results) {
      const auto found = entries_.find(result.id);
      if (found == entries_.end()) continue;  // the target was removed while its check ran
      Entry& entry = found->second;
      entry.running = false;
      // A result of the spec before the last set_targets() does not count.
      if (result.generation == entry.generation) entry.state.record(result.result, now);
      scheduler_.reschedule(result.id, result.started, now, entry.target.spec.interval);
    }
    transitions.swap(pending_transitions_);
  }
  results.clear();

  for (const Transition& transition : transitions) {
    log_transition(transition);
    if (!on_change_) continue;
    try {
      on_change_(transition);
    } catch (const std::exception& error) {
      logger()->error("vip {} backend {}: the change callback threw: {}", transition.vip,
                      transition.backend.to_string(), error.what());
    }
  }
}

void HealthChecker::wake() {
  if (wake_fd_ < 0) return;
  const uint64_t increment = 1;
  [[maybe_unused]] const ssize_t written = write(wake_fd_, &increment, sizeof(increment));
}

}  // namespace sluice::health
