// The DPDK data plane behind the DataplaneDriver interface.
#include "sluice/control/dataplane_driver.h"
#include "sluice/dpdk/dataplane.h"

namespace sluice::control {
namespace {

dpdk::Settings dpdk_settings(const Config& config) {
  dpdk::Settings settings;
  settings.main_lcore = config.dpdk.main_lcore;
  settings.worker_lcores = config.dpdk.worker_lcores;
  settings.worker_cpus = config.dpdk.worker_cpus;
  settings.eal_args = config.dpdk.eal_args;
  for (const auto& port : config.dpdk.ports) {
    settings.ports.push_back({port.device, port.mtu, port.egress_mtu});
  }
  settings.exception_interface = config.dpdk.exception_interface;
  settings.mbufs_per_worker = config.dpdk.mbufs_per_worker;
  settings.rx_descriptors = config.dpdk.rx_descriptors;
  settings.tx_descriptors = config.dpdk.tx_descriptors;
  settings.flow_table_size = config.flow_table_size;
  return settings;
}

class DpdkDriver final : public DataplaneDriver {
 public:
  DpdkDriver(std::unique_ptr<dpdk::Dataplane> dataplane, std::string exception_interface)
      : dataplane_(std::move(dataplane)), exception_interface_(std::move(exception_interface)) {}

  std::string_view name() const override { return "dpdk"; }

  Status publish(std::shared_ptr<const Snapshot> snapshot) override {
    dataplane_->publish(std::move(snapshot));
    return {};
  }

  Status start() override { return dataplane_->start(); }
  void stop() override { dataplane_->stop(); }
  PipelineTotals totals() const override { return dataplane_->totals(); }

  void add_stats(nlohmann::json& report) const override {
    report["mbufs"] = {{"in_use", dataplane_->mbufs_in_use()},
                       {"in_use_at_start", dataplane_->mbufs_in_use_at_start()}};
  }

  std::string neighbor_interface() const override { return exception_interface_; }

 private:
  std::unique_ptr<dpdk::Dataplane> dataplane_;
  std::string exception_interface_;
};

}  // namespace

Result<std::unique_ptr<DataplaneDriver>> create_dpdk_driver(const Config& config,
                                                            const std::string& program_name) {
  auto dataplane = dpdk::Dataplane::create(dpdk_settings(config), program_name);
  if (!dataplane) return Error{dataplane.error()};
  return std::unique_ptr<DataplaneDriver>(
      new DpdkDriver(std::move(*dataplane), config.dpdk.exception_interface));
}

}  // namespace sluice::control
