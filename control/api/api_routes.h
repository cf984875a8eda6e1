// The control API: HTTP/1.1 with JSON, routed to the ControlPlane. Every request is
// validated; a rejected one names the field and the reason and changes nothing.
#pragma once

#include "http_server.h"
#include "sluice/control/control_plane.h"
#include "sluice/health/health_checker.h"

namespace sluice::control {

// Returns the handler that serves the /v1 API for `control`. `health` may be null when no
// checker runs; /v1/health then lists nothing.
HttpHandler make_api_handler(ControlPlane& control, const health::HealthChecker* health);

}  // namespace sluice::control
