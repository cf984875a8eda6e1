// The DPDK data plane: EAL, ports, queues, mempools, worker lcores, the exception path to
// the kernel and snapshot publication with rte_rcu_qsbr.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/pipeline.h"
#include "sluice/result.h"
#include "sluice/snapshot.h"

struct rte_mempool;
struct rte_rcu_qsbr;

namespace sluice::dpdk {

struct PortSettings {
  // A PCI address (0000:01:00.0) or a virtual device with arguments (net_af_packet0,iface=eth0).
  std::string device;
  std::optional<uint32_t> mtu;         // set on the device
  std::optional<uint32_t> egress_mtu;  // for the too-big check; the device's MTU when absent
};

struct Settings {
  uint32_t main_lcore = 0;
  std::vector<uint32_t> worker_lcores{1};
  // The CPU of each worker lcore, in the same order; empty: lcore N runs on CPU N. Several
  // workers may share a CPU, which only tests should do.
  std::vector<uint32_t> worker_cpus;
  std::vector<std::string> eal_args;
  std::vector<PortSettings> ports;
  // Name of the TAP interface that takes port 0's non-VIP traffic to the kernel; port N > 0
  // gets the name with N appended. Empty: non-VIP traffic is dropped and counted as to_kernel.
  std::string exception_interface;
  uint32_t mbufs_per_worker = 8192;
  uint16_t rx_descriptors = 1024;
  uint16_t tx_descriptors = 1024;
  uint32_t flow_table_size = 65536;
};

struct PortInfo {
  uint16_t port_id = 0;
  uint16_t exception_port_id = 0;
  bool has_exception = false;
  std::string name;
  MacAddress mac;
  uint32_t mtu = 1500;  // egress L3 MTU
};

class Dataplane;

// One worker lcore: its queue index on every port and its pipeline. Only the worker writes
// the pipeline; the control thread reads its counters.
struct Worker {
  Dataplane* owner = nullptr;
  uint32_t lcore = 0;
  uint16_t queue = 0;
  Pipeline pipeline;

  explicit Worker(uint32_t flow_table_size) : pipeline(flow_table_size) {}
};

class Dataplane {
 public:
  // Initialises the EAL and configures every port and queue. Workers start with start().
  static Result<std::unique_ptr<Dataplane>> create(const Settings& settings,
                                                   const std::string& program_name);
  ~Dataplane();

  Dataplane(const Dataplane&) = delete;
  Dataplane& operator=(const Dataplane&) = delete;

  Status start();

  // Publishes a snapshot to every worker, then frees the previous one once every worker has
  // passed a quiescent state (rte_rcu_qsbr_synchronize). Call from the control thread only.
  void publish(std::shared_ptr<const Snapshot> snapshot);

  // Stops the workers and waits for them; ports stay configured until destruction.
  void stop();

  PipelineTotals totals() const;

  // Mbufs taken from the workers' pools: in RX rings, in flight or leaked. A quiet data
  // plane returns to the figure it had right after start().
  uint64_t mbufs_in_use() const;
  uint64_t mbufs_in_use_at_start() const { return mbufs_in_use_at_start_; }
  const std::vector<PortInfo>& ports() const { return ports_; }
  size_t worker_count() const { return workers_.size(); }

 private:
  static int run_worker(void* argument);

  Dataplane() = default;
  Status init_eal(const Settings& settings, const std::string& program_name);
  Status init_ports(const Settings& settings);
  Status setup_port(uint16_t port_id, uint16_t queues, std::optional<uint32_t> mtu,
                    const Settings& settings);

  std::vector<PortInfo> ports_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<rte_mempool*> mempools_;
  rte_rcu_qsbr* qsbr_ = nullptr;
  std::atomic<const Snapshot*> current_{nullptr};
  std::shared_ptr<const Snapshot> owner_;  // keeps `current_` alive
  std::atomic<bool> stopping_{false};
  uint64_t mbufs_in_use_at_start_ = 0;
  bool eal_ready_ = false;
  bool running_ = false;
};

}  // namespace sluice::dpdk
