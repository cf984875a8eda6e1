#include "sluice/dpdk/dataplane.h"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pdump.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace sluice::dpdk {
namespace {

constexpr uint32_t kMempoolCache = 256;

std::shared_ptr<spdlog::logger> logger() {
  static auto instance = [] {
    auto existing = spdlog::get("dpdk");
    return existing ? existing : spdlog::default_logger()->clone("dpdk");
  }();
  return instance;
}

bool is_pci_address(const std::string& device) {
  // Domain:bus:device.function (0000:01:00.0) or bus:device.function (01:00.0).
  const std::string name = device.substr(0, device.find(','));
  return std::count(name.begin(), name.end(), ':') >= 1 && name.find('.') != std::string::npos &&
         name.rfind("net_", 0) != 0;
}

std::string device_name(const std::string& device) { return device.substr(0, device.find(',')); }

std::string dpdk_error(int code) { return rte_strerror(code < 0 ? -code : code); }

}  // namespace

Result<std::unique_ptr<Dataplane>> Dataplane::create(const Settings& settings,
                                                     const std::string& program_name) {
  std::unique_ptr<Dataplane> dataplane(new Dataplane());
  if (Status status = dataplane->init_eal(settings, program_name); !status) {
    return Error{status.error()};
  }
  if (Status status = dataplane->init_ports(settings); !status) return Error{status.error()};
  return dataplane;
}

Status Dataplane::init_eal(const Settings& settings, const std::string& program_name) {
  std::vector<std::string> args{program_name};
  // --lcores maps each lcore to a CPU: LCORE@CPU.
  std::string lcores = std::to_string(settings.main_lcore) + "@" + std::to_string(settings.main_lcore);
  for (size_t i = 0; i < settings.worker_lcores.size(); ++i) {
    const uint32_t cpu = settings.worker_cpus.empty() ? settings.worker_lcores[i] : settings.worker_cpus[i];
    lcores += "," + std::to_string(settings.worker_lcores[i]) + "@" + std::to_string(cpu);
  }
  args.insert(args.end(), {"--lcores", lcores, "--main-lcore", std::to_string(settings.main_lcore)});

  for (size_t i = 0; i < settings.ports.size(); ++i) {
    const std::string& device = settings.ports[i].device;
    args.push_back(is_pci_address(device) ? "-a" : "--vdev");
    args.push_back(device);
    if (!settings.exception_interface.empty()) {
      const std::string name = settings.exception_interface + (i == 0 ? "" : std::to_string(i));
      args.push_back("--vdev");
      args.push_back("net_tap_sluice" + std::to_string(i) + ",iface=" + name);
    }
  }

  // Without hugepages, or in memory, DPDK leaves no hugepage files. Otherwise ask it to
  // unlink them once mapped, so that a crash leaves nothing behind either.
  bool unlinks = false;
  for (const std::string& arg : settings.eal_args) {
    unlinks = unlinks || arg == "--no-huge" || arg == "--in-memory" || arg.rfind("--huge-unlink", 0) == 0;
  }
  args.insert(args.end(), settings.eal_args.begin(), settings.eal_args.end());
  if (!unlinks) args.push_back("--huge-unlink");

  std::string line;
  for (const std::string& arg : args) line += " " + arg;
  logger()->info("initialising the EAL:{}", line);

  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(args.size()), argv.data()) < 0) {
    return Error{"EAL initialisation failed: " + dpdk_error(rte_errno) +
                 " (check eal_args, the lcores and the devices in the config)"};
  }
  eal_ready_ = true;

  // dpdk-dumpcap captures through the pdump library, as a secondary process. That needs the
  // shared config and hugepages: with --no-shconf, --in-memory or --no-huge there are none,
  // and capture is off while everything else works.
  bool shared = true;
  for (const std::string& arg : settings.eal_args) {
    shared = shared && arg != "--no-huge" && arg != "--no-shconf" && arg != "--in-memory";
  }
  if (!shared) {
    logger()->info("packet capture with dpdk-dumpcap is off: the EAL runs with --no-huge, "
                   "--no-shconf or --in-memory, which leave a secondary process nothing to "
                   "attach to");
  } else if (rte_pdump_init() == 0) {
    logger()->info("pdump is ready: dpdk-dumpcap can attach to this process");
  } else {
    logger()->info("packet capture with dpdk-dumpcap is off: {} (it needs hugepages and the "
                   "shared config, so no --no-huge, --no-shconf or --in-memory)",
                   dpdk_error(rte_errno));
  }
  return {};
}

Status Dataplane::init_ports(const Settings& settings) {
  const uint16_t queues = static_cast<uint16_t>(settings.worker_lcores.size());
  for (size_t i = 0; i < settings.worker_lcores.size(); ++i) {
    const uint32_t lcore = settings.worker_lcores[i];
    const std::string name = "sluice_mbufs_" + std::to_string(i);
    rte_mempool* pool = rte_pktmbuf_pool_create(name.c_str(), settings.mbufs_per_worker,
                                                kMempoolCache, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                                rte_lcore_to_socket_id(lcore));
    if (pool == nullptr) {
      return Error{"cannot create mbuf pool " + name + " with " +
                   std::to_string(settings.mbufs_per_worker) + " mbufs: " + dpdk_error(rte_errno) +
                   " (give the EAL more memory with -m, or lower mbufs_per_worker)"};
    }
    mempools_.push_back(pool);
    auto worker = std::make_unique<Worker>(settings.flow_table_size);
    worker->owner = this;
    worker->lcore = lcore;
    worker->queue = static_cast<uint16_t>(i);
    workers_.push_back(std::move(worker));
  }

  for (size_t i = 0; i < settings.ports.size(); ++i) {
    PortInfo port;
    port.name = device_name(settings.ports[i].device);
    if (rte_eth_dev_get_port_by_name(port.name.c_str(), &port.port_id) != 0) {
      return Error{"port " + port.name + " was not found after EAL initialisation (is the device "
                   "name right, and is its driver available?)"};
    }
    if (Status status = setup_port(port.port_id, queues, settings.ports[i].mtu, settings); !status) {
      return Error{"port " + port.name + ": " + status.error()};
    }
    rte_ether_addr mac;
    rte_eth_macaddr_get(port.port_id, &mac);
    std::memcpy(port.mac.bytes.data(), mac.addr_bytes, 6);
    uint16_t device_mtu = 1500;
    rte_eth_dev_get_mtu(port.port_id, &device_mtu);
    port.mtu = settings.ports[i].egress_mtu.value_or(device_mtu);

    if (!settings.exception_interface.empty()) {
      const std::string tap = "net_tap_sluice" + std::to_string(i);
      if (rte_eth_dev_get_port_by_name(tap.c_str(), &port.exception_port_id) != 0) {
        return Error{"exception interface " + tap + " was not created (does /dev/net/tun exist?)"};
      }
      // The kernel replies to ARP and neighbour discovery for the port, so its TAP interface
      // carries the port's MAC.
      int rc = rte_eth_dev_default_mac_addr_set(port.exception_port_id, &mac);
      if (rc != 0) return Error{"cannot set the exception interface's MAC: " + dpdk_error(rc)};
      if (Status status = setup_port(port.exception_port_id, queues, device_mtu, settings); !status) {
        return Error{"exception interface of " + port.name + ": " + status.error()};
      }
      port.has_exception = true;
    }
    logger()->info("port {} (id {}): MAC {}, MTU {}, egress MTU {}, {} queue(s){}", port.name,
                   port.port_id, port.mac.to_string(), device_mtu, port.mtu, queues,
                   port.has_exception ? ", exception path through a TAP interface" : "");
    ports_.push_back(port);
  }

  const size_t size = rte_rcu_qsbr_get_memsize(static_cast<uint32_t>(workers_.size()));
  qsbr_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("sluice_qsbr", size, RTE_CACHE_LINE_SIZE));
  if (qsbr_ == nullptr || rte_rcu_qsbr_init(qsbr_, static_cast<uint32_t>(workers_.size())) != 0) {
    return Error{"cannot set up the RCU state for snapshot publication"};
  }
  return {};
}

Status Dataplane::setup_port(uint16_t port_id, uint16_t queues, std::optional<uint32_t> mtu,
                             const Settings& settings) {
  rte_eth_dev_info info;
  int rc = rte_eth_dev_info_get(port_id, &info);
  if (rc != 0) return Error{"cannot read device info: " + dpdk_error(rc)};
  if (queues > info.max_rx_queues || queues > info.max_tx_queues) {
    return Error{std::to_string(queues) + " workers need as many queues, but the device has " +
                 std::to_string(info.max_rx_queues) + " RX and " +
                 std::to_string(info.max_tx_queues) + " TX queues"};
  }

  rte_eth_conf conf{};
  if (queues > 1) {
    // RSS on addresses and L4 ports spreads flows over the workers' queues.
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf =
        (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
  }
  rc = rte_eth_dev_configure(port_id, queues, queues, &conf);
  if (rc != 0) return Error{"cannot configure the device: " + dpdk_error(rc)};
  if (mtu) {
    rc = rte_eth_dev_set_mtu(port_id, static_cast<uint16_t>(*mtu));
    if (rc != 0) return Error{"cannot set MTU " + std::to_string(*mtu) + ": " + dpdk_error(rc)};
  }

  uint16_t rx_descriptors = settings.rx_descriptors;
  uint16_t tx_descriptors = settings.tx_descriptors;
  rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rx_descriptors, &tx_descriptors);
  const int socket = rte_eth_dev_socket_id(port_id);
  for (uint16_t queue = 0; queue < queues; ++queue) {
    rc = rte_eth_rx_queue_setup(port_id, queue, rx_descriptors, socket, nullptr, mempools_[queue]);
    if (rc != 0) return Error{"cannot set up RX queue " + std::to_string(queue) + ": " + dpdk_error(rc)};
    rc = rte_eth_tx_queue_setup(port_id, queue, tx_descriptors, socket, nullptr);
    if (rc != 0) return Error{"cannot set up TX queue " + std::to_string(queue) + ": " + dpdk_error(rc)};
  }
  rc = rte_eth_dev_start(port_id);
  if (rc != 0) return Error{"cannot start the device: " + dpdk_error(rc)};
  return {};
}

Status Dataplane::start() {
  // Counted before any worker receives, so the figure holds only what the ports' RX rings
  // took when they started.
  mbufs_in_use_at_start_ = mbufs_in_use();
  for (auto& worker : workers_) {
    const int rc = rte_eal_remote_launch(&Dataplane::run_worker, worker.get(), worker->lcore);
    if (rc != 0) {
      stop();
      return Error{"cannot launch the worker on lcore " + std::to_string(worker->lcore) + ": " +
                   dpdk_error(rc)};
    }
  }
  running_ = true;
  logger()->info("{} worker(s) running, {} mbufs in use", workers_.size(), mbufs_in_use_at_start_);
  return {};
}

void Dataplane::publish(std::shared_ptr<const Snapshot> snapshot) {
  current_.store(snapshot.get(), std::memory_order_release);
  // Once every worker has reported a quiescent state after the store, no worker still reads
  // the old snapshot, and dropping `owner_`'s reference may free it.
  if (qsbr_ != nullptr) rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
  owner_ = std::move(snapshot);
}

void Dataplane::stop() {
  stopping_.store(true, std::memory_order_relaxed);
  if (running_) {
    rte_eal_mp_wait_lcore();
    running_ = false;
    logger()->info("workers stopped");
  }
}

Dataplane::~Dataplane() {
  stop();
  for (const PortInfo& port : ports_) {
    rte_eth_dev_stop(port.port_id);
    rte_eth_dev_close(port.port_id);
    if (port.has_exception) {
      rte_eth_dev_stop(port.exception_port_id);
      rte_eth_dev_close(port.exception_port_id);
    }
  }
  ports_.clear();
  workers_.clear();
  for (rte_mempool* pool : mempools_) rte_mempool_free(pool);
  mempools_.clear();
  rte_free(qsbr_);
  if (eal_ready_) {
    rte_pdump_uninit();
    rte_eal_cleanup();
  }
}

uint64_t Dataplane::mbufs_in_use() const {
  uint64_t in_use = 0;
  for (const rte_mempool* pool : mempools_) in_use += rte_mempool_in_use_count(pool);
  return in_use;
}

PipelineTotals Dataplane::totals() const {
  PipelineTotals totals;
  for (const auto& worker : workers_) worker->pipeline.add_to(totals);
  return totals;
}

}  // namespace sluice::dpdk
