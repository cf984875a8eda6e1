#include "sluice/health/health_state.h"

#include <algorithm>
#include <utility>

namespace sluice::health {

std::string_view to_string(Health health) {
  switch (health) {
    case Health::kUnknown:
      return "unknown";
    case Health::kUp:
      return "up";
    case Health::kDown:
      return "down";
  }
  return "invalid";
}

HealthState::HealthState(std::string vip, IpAddress backend, CheckKind kind, uint32_t rise,
                         uint32_t fall, TimePoint now, TransitionCallback on_transition)
    : vip_(std::move(vip)),
      backend_(backend),
      kind_(kind),
      rise_(rise),
      fall_(fall),
      on_transition_(std::move(on_transition)),
      last_transition_(now) {}

void HealthState::record(const Status& result, TimePoint now) {
  last_check_ = now;

  if (result.ok()) {
    ++consecutive_passes_;
    consecutive_failures_ = 0;
    if (health_ == Health::kUnknown || (health_ == Health::kDown && consecutive_passes_ >= rise_)) {
      move_to(Health::kUp, now);
    }
    return;
  }

  ++consecutive_failures_;
  consecutive_passes_ = 0;
  last_error_ = result.error();
  if (health_ != Health::kDown && consecutive_failures_ >= fall_) move_to(Health::kDown, now);
}

void HealthState::restart_counting(CheckKind kind, uint32_t rise, uint32_t fall) {
  kind_ = kind;
  rise_ = rise;
  fall_ = fall;
  consecutive_passes_ = 0;
  consecutive_failures_ = 0;
}

void HealthState::move_to(Health next, TimePoint now) {
  Transition transition{
      .vip = vip_,
      .backend = backend_,
      .kind = kind_,
      .from = health_,
      .to = next,
      .error = next == Health::kDown ? last_error_ : std::string(),
      .at = now,
  };
  health_ = next;
  last_transition_ = now;
  if (on_transition_) on_transition_(transition);
}

bool all_backends_down(std::span<const Health> backends) {
  return std::none_of(backends.begin(), backends.end(),
                      [](Health health) { return health == Health::kUp; });
}

}  // namespace sluice::health
