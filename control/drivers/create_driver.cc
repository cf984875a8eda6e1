#include "sluice/control/dataplane_driver.h"

namespace sluice::control {

Result<std::unique_ptr<DataplaneDriver>> create_dpdk_driver(const Config& config,
                                                            const std::string& program_name);
Result<std::unique_ptr<DataplaneDriver>> create_xdp_driver(const Config& config);

Result<std::unique_ptr<DataplaneDriver>> create_dataplane_driver(const Config& config,
                                                                 const std::string& program_name) {
  if (config.dataplane == "xdp") return create_xdp_driver(config);
  return create_dpdk_driver(config, program_name);
}

}  // namespace sluice::control
