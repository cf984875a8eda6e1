// Writes a Config back as the YAML that parse_config reads.
#pragma once

#include <string>

#include "sluice/control/config.h"

namespace sluice::control {

std::string config_to_yaml(const Config& config);

}  // namespace sluice::control
