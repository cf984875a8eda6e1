// TEMPORARY: stands in until the XDP balancer library is part of the build.
#include "sluice/control/dataplane_driver.h"

namespace sluice::control {

Result<std::unique_ptr<DataplaneDriver>> create_xdp_driver(const Config&) {
  return Error{"this build has no XDP data plane"};
}

}  // namespace sluice::control
