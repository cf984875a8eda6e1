// sluiced: the Sluice daemon. Reads the config, runs the DPDK or XDP data plane, resolves
// the next hop, publishes snapshots and writes counters. SIGTERM or SIGINT stops it, SIGHUP
// re-reads the config, and SIGUSR1 writes the stats file at once.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sched.h>

#include <csignal>
#include <ctime>
#include <memory>
#include <optional>
#include <string>

#include "sluice/control/config.h"
#include "sluice/control/dataplane_driver.h"
#include "sluice/control/neighbor.h"
#include "sluice/control/snapshot_builder.h"
#include "sluice/control/stats_report.h"

namespace {

using sluice::MacAddress;
using sluice::control::Config;

constexpr int kExitConfigInvalid = 2;
constexpr int kExitDataplaneFailed = 1;

void log_warnings(const Config& config) {
  for (const std::string& warning : config.warnings) spdlog::warn("config: {}", warning);
}

// Checks that every CPU the lcores run on is one this process may use. An lcore runs on the
// CPU of its own id unless worker_cpus says otherwise. DPDK's own error for a missing CPU
// comes after a page of usage text.
sluice::Status check_lcores(const Config& config) {
  if (config.dataplane != "dpdk") return {};
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return {};
  std::string available;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &allowed)) available += (available.empty() ? "" : ",") + std::to_string(cpu);
  }
  auto check = [&](uint32_t cpu, const std::string& field) -> sluice::Status {
    if (cpu < CPU_SETSIZE && CPU_ISSET(cpu, &allowed)) return {};
    return sluice::Error{field + ": CPU " + std::to_string(cpu) +
                         " is not a CPU this process may use (available: " + available + ")"};
  };
  if (auto status = check(config.dpdk.main_lcore, "dataplane.dpdk.main_lcore"); !status) {
    return status;
  }
  const bool mapped = !config.dpdk.worker_cpus.empty();
  const auto& cpus = mapped ? config.dpdk.worker_cpus : config.dpdk.worker_lcores;
  for (size_t i = 0; i < cpus.size(); ++i) {
    const std::string field = std::string("dataplane.dpdk.") +
                              (mapped ? "worker_cpus[" : "worker_lcores[") + std::to_string(i) + "]";
    if (auto status = check(cpus[i], field); !status) return status;
  }
  return {};
}

// Owns the running state: the config in force, the snapshot builder and the data plane.
class Daemon {
 public:
  Daemon(Config config, std::string config_path, std::string stats_path,
         std::unique_ptr<sluice::control::DataplaneDriver> dataplane)
      : config_(std::move(config)),
        config_path_(std::move(config_path)),
        stats_path_(std::move(stats_path)),
        dataplane_(std::move(dataplane)) {
    if (config_.next_hop.mac) next_hop_ = *config_.next_hop.mac;
  }

  bool publish(const Config& config) {
    std::vector<sluice::control::VipBuildReport> report;
    auto snapshot = builder_.build(config, next_hop_, &report);
    if (!snapshot) {
      spdlog::error("snapshot build failed, the running state stays: {}", snapshot.error());
      return false;
    }
    if (auto status = dataplane_->publish(*snapshot); !status) {
      spdlog::error("publishing generation {} failed, the running state stays: {}",
                    (*snapshot)->generation, status.error());
      return false;
    }
    snapshot_ = *snapshot;
    for (const auto& vip : report) {
      std::string slots;
      for (const auto& [address, count] : vip.slots_per_backend) {
        slots += (slots.empty() ? "" : ", ") + address.to_string() + "=" + std::to_string(count);
      }
      spdlog::info("vip {}: generation {}, table size {}, {} slots changed, slots per backend: {}",
                   vip.key.to_string(), (*snapshot)->generation, vip.table_size,
                   vip.changed_slots, slots.empty() ? "none" : slots);
    }
    return true;
  }

  void reload() {
    spdlog::info("re-reading {}", config_path_);
    auto config = sluice::control::load_config_file(config_path_);
    if (!config) {
      spdlog::error("config rejected, the running state stays: {}", config.error());
      return;
    }
    // Ports, lcores, EAL arguments and the flow table size take effect only at start; a
    // reload applies VIPs, backends, addresses, seed and timeouts.
    if (config->dataplane != config_.dataplane || config->dpdk != config_.dpdk ||
        config->xdp != config_.xdp || config->flow_table_size != config_.flow_table_size) {
      spdlog::warn("the dataplane section or flow_table.size changed, but they apply only at "
                   "start; restart sluiced to use them");
    }
    log_warnings(*config);
    if (publish(*config)) config_ = std::move(*config);
  }

  // Resolves the next-hop MAC when the config names an address, and republishes on change.
  void refresh_next_hop() {
    if (config_.next_hop.mac) return;
    const std::string interface = dataplane_->neighbor_interface();
    auto mac = sluice::control::find_ipv4_neighbor(config_.next_hop.ipv4, interface);
    if (!mac) {
      if (auto status = sluice::control::solicit_ipv4_neighbor(config_.next_hop.ipv4, interface);
          !status && !solicit_failed_logged_) {
        spdlog::warn("next hop {}: {}", config_.next_hop.ipv4.to_string(), status.error());
        solicit_failed_logged_ = true;
      }
      return;
    }
    if (*mac == next_hop_) return;
    spdlog::info("next hop {} resolved to {} on {}", config_.next_hop.ipv4.to_string(),
                 mac->to_string(), interface);
    next_hop_ = *mac;
    publish(config_);
  }

  void write_stats() {
    if (stats_path_.empty() || !snapshot_) return;
    auto report = sluice::control::stats_report(*snapshot_, dataplane_->totals());
    report["dataplane"] = dataplane_->name();
    dataplane_->add_stats(report);
    if (auto status = sluice::control::write_stats_file(stats_path_, report); !status) {
      spdlog::warn("stats file: {}", status.error());
    }
  }

  // Publishes the first snapshot, then starts the workers, so no packet meets an empty one.
  sluice::Status start() {
    if (!publish(config_)) return sluice::Error{"the first snapshot could not be built"};
    return dataplane_->start();
  }

  void stop() { dataplane_->stop(); }
  bool next_hop_known() const { return !next_hop_.is_zero(); }
  const Config& config() const { return config_; }

 private:
  Config config_;
  std::string config_path_;
  std::string stats_path_;
  std::unique_ptr<sluice::control::DataplaneDriver> dataplane_;
  sluice::control::SnapshotBuilder builder_;
  std::shared_ptr<const sluice::Snapshot> snapshot_;
  MacAddress next_hop_;
  bool solicit_failed_logged_ = false;
};

int run(Daemon& daemon, const sigset_t& signals) {
  daemon.refresh_next_hop();

  int ticks = 0;
  for (;;) {
    timespec timeout{0, 500'000'000};
    const int signal = sigtimedwait(&signals, nullptr, &timeout);
    if (signal == SIGINT || signal == SIGTERM) {
      spdlog::info("received {}, stopping", signal == SIGINT ? "SIGINT" : "SIGTERM");
      break;
    }
    if (signal == SIGHUP) daemon.reload();
    if (signal == SIGUSR1) daemon.write_stats();

    ++ticks;
    // Until the next hop is known, ask every half second; afterwards, every 10 seconds.
    if (!daemon.next_hop_known() || ticks % 20 == 0) daemon.refresh_next_hop();
    if (ticks % 2 == 0) daemon.write_stats();
  }

  daemon.stop();
  daemon.write_stats();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluiced: the Sluice layer-4 load balancer daemon"};
  std::string config_path;
  std::string stats_path;
  std::string log_level = "info";
  bool check_only = false;
  app.add_option("-c,--config", config_path, "YAML config file")->required();
  app.add_option("--stats-file", stats_path,
                 "write counters as JSON to this file every second, on SIGUSR1 and at exit");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or critical")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical"}));
  app.add_flag("--check-config", check_only, "validate the config file and exit");
  CLI11_PARSE(app, argc, argv);

  spdlog::set_default_logger(spdlog::stderr_color_mt("sluiced"));
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");

  auto config = sluice::control::load_config_file(config_path);
  if (!config) {
    spdlog::error("invalid config: {}", config.error());
    return kExitConfigInvalid;
  }
  log_warnings(*config);
  if (auto status = check_lcores(*config); !status) {
    spdlog::error("invalid config: {}", status.error());
    return kExitConfigInvalid;
  }
  if (check_only) {
    spdlog::info("{}: valid, {} VIP(s)", config_path, config->vips.size());
    return 0;
  }

  // Signals are taken synchronously by the main thread; blocking them before the EAL starts
  // its threads keeps every other thread from receiving them.
  sigset_t signals;
  sigemptyset(&signals);
  for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&signals, signal);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  spdlog::info("starting the {} data plane with {} ({} VIP(s))", config->dataplane, config_path,
               config->vips.size());
  auto dataplane = sluice::control::create_dataplane_driver(*config, argv[0]);
  if (!dataplane) {
    spdlog::error("data plane start failed: {}", dataplane.error());
    return kExitDataplaneFailed;
  }

  int rc = 0;
  {
    Daemon daemon(std::move(*config), config_path, stats_path, std::move(*dataplane));
    if (auto status = daemon.start(); !status) {
      spdlog::error("data plane start failed: {}", status.error());
      return kExitDataplaneFailed;
    }
    rc = run(daemon, signals);
  }
  spdlog::info("stopped");
  return rc;
}
