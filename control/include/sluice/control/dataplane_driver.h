// The interface through which the control plane runs a data plane: DPDK, XDP, or a fake in
// tests. Every implementation takes the same snapshots and reports the same counters.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "sluice/control/config.h"
#include "sluice/pipeline.h"
#include "sluice/result.h"
#include "sluice/snapshot.h"

namespace sluice::control {

class DataplaneDriver {
 public:
  virtual ~DataplaneDriver() = default;

  virtual std::string_view name() const = 0;  // "dpdk" or "xdp", as in the config

  // Makes `snapshot` the one that every packet from now on is processed with. The first call comes before
  // start(). On error, the previous snapshot keeps serving.
  virtual Status publish(std::shared_ptr<const Snapshot> snapshot) = 0;

  // Starts receiving packets.
  virtual Status start() = 0;

  // Stops receiving packets; counters stay readable.
  virtual void stop() = 0;

  virtual PipelineTotals totals() const = 0;

  // Adds figures that only this data plane has (mbufs in use, say) to the stats report.
  virtual void add_stats(nlohmann::json& report) const { (void)report; }

  // Returns the interface whose kernel neighbour table contains the next hop's MAC.
  virtual std::string neighbor_interface() const = 0;
};

// Creates the data plane that config.dataplane names, ready for its first publish().
Result<std::unique_ptr<DataplaneDriver>> create_dataplane_driver(const Config& config,
                                                                 const std::string& program_name);

}  // namespace sluice::control
