// The control API: HTTP/1.1 with JSON, routed to the ControlPlane. Every request is
// validated; a rejected one names the field and the reason and changes nothing.
#pragma once

#include "http_server.h"
#include "sluice/control/control_plane.h"

namespace sluice::control {

// Returns the handler that serves the /v1 API for `control`.
HttpHandler make_api_handler(ControlPlane& control);

}  // namespace sluice::control
