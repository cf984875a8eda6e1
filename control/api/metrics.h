// The Prometheus text exposition (format 0.0.4) of sluiced's counters, health and tables.
#pragma once

#include <string>

#include "sluice/control/control_plane.h"
#include "sluice/health/health_checker.h"

namespace sluice::control {

// Renders every metric; `health` may be null when no checker runs.
std::string render_metrics(const ControlPlane& control, const health::HealthChecker* health);

}  // namespace sluice::control
