// sluiced: the Sluice daemon. Reads the config, runs the DPDK or XDP data plane, resolves
// the next hop, publishes snapshots and writes counters. SIGTERM or SIGINT stops it, SIGHUP
// re-reads the config, and SIGUSR1 writes the stats file at once.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sched.h>
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <ctime>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "sluice/control/bgp_announcer.h"
#include "sluice/control/config.h"
#include "sluice/control/control_plane.h"
#include "sluice/control/dataplane_driver.h"
#include "sluice/control/stats_report.h"
#include "api_routes.h"
#include "http_server.h"
#include "metrics.h"
#include "sluice/health/health_checker.h"

namespace {

using sluice::control::Config;

constexpr int kExitConfigInvalid = 2;
constexpr int kExitDataplaneFailed = 1;

void log_warnings(const Config& config) {
  for (const std::string& warning : config.warnings) spdlog::warn("config: {}", warning);
}

// Checks that every CPU the lcores run on is one this process may use. An lcore runs on the
// CPU of its own id unless worker_cpus maps it elsewhere. DPDK's own error for a missing CPU
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

// Returns the health check targets of `config`: one per backend of each VIP with a check.
std::vector<sluice::health::HealthCheckTarget> health_targets(const Config& config) {
  std::vector<sluice::health::HealthCheckTarget> targets;
  for (const sluice::control::VipConfig& vip : config.vips) {
    if (!vip.health_check || vip.health_check->kind == sluice::health::CheckKind::kNone) continue;
    for (const sluice::control::BackendConfig& backend : vip.backends) {
      targets.push_back({vip.key.to_string(), backend.address, vip.key.port, vip.check_for(backend)});
    }
  }
  return targets;
}

void write_stats(const sluice::control::ControlPlane& control, const std::string& path,
                 const sluice::control::BgpAnnouncer* bgp) {
  if (path.empty()) return;
  nlohmann::json report = control.stats();
  if (bgp != nullptr) report["bgp"] = bgp->status();
  if (auto status = sluice::control::write_stats_file(path, report); !status) {
    spdlog::warn("stats file: {}", status.error());
  }
}

// Announces the VIPs that can serve now and withdraws the others. Until the next hop's MAC
// address is known, nothing can be forwarded, so nothing is announced.
//
// A VIP's table must be the one that the other load balancers of the fleet have, or a flow
// that the router moves here changes backend. So a VIP waits until each of its backends has
// a first result. While one of them is down, it also waits until bgp.settle_time_s after the
// start. Checks fail while the host's own network comes up, because the exception interface
// gets its address after sluiced starts, and such failures would leave healthy backends out
// of the table.
//
// An error is logged when it differs from the last one, so a BIRD that stays away does not
// flood the log.
void update_announcements(const sluice::control::ControlPlane& control,
                          const sluice::health::HealthChecker& checker,
                          std::chrono::steady_clock::time_point settled_at,
                          sluice::control::BgpAnnouncer& bgp, std::string& last_error) {
  bgp.restart_if_exited();
  const bool settled = std::chrono::steady_clock::now() >= settled_at;
  std::set<std::string> unchecked;
  for (const sluice::health::BackendStatus& backend : checker.snapshot()) {
    if (backend.health == sluice::health::Health::kUnknown ||
        (backend.health == sluice::health::Health::kDown && !settled)) {
      unchecked.insert(backend.vip);
    }
  }
  std::vector<sluice::control::VipStatus> vips = control.vips();
  std::erase_if(vips, [&](const sluice::control::VipStatus& vip) {
    return unchecked.contains(vip.key.to_string());
  });
  std::set<sluice::IpAddress> serving;
  if (control.next_hop_known()) serving = sluice::control::serving_vip_addresses(vips);
  auto status = bgp.announce(serving);
  if (status) {
    last_error.clear();
  } else if (status.error() != last_error) {
    spdlog::error("bgp: announcing failed, will try again: {}", status.error());
    last_error = status.error();
  }
}

int run(sluice::control::ControlPlane& control, const sluice::health::HealthChecker& checker,
        const sigset_t& signals, const std::string& stats_path,
        sluice::control::BgpAnnouncer* bgp) {
  control.refresh_next_hop();

  int ticks = 0;
  std::string bgp_error;
  const auto settled_at = std::chrono::steady_clock::now() +
                          std::chrono::seconds(control.config().bgp.settle_time_s);
  if (bgp != nullptr) update_announcements(control, checker, settled_at, *bgp, bgp_error);
  for (;;) {
    timespec timeout{0, 500'000'000};
    const int signal = sigtimedwait(&signals, nullptr, &timeout);
    if (signal == SIGINT || signal == SIGTERM) {
      spdlog::info("received {}, stopping", signal == SIGINT ? "SIGINT" : "SIGTERM");
      break;
    }
    if (signal == SIGHUP) (void)control.reload();
    if (signal == SIGUSR1) write_stats(control, stats_path, bgp);

    ++ticks;
    // Until the next hop is known, ask every half second; afterwards, every 10 seconds.
    if (!control.next_hop_known() || ticks % 20 == 0) control.refresh_next_hop();
    if (bgp != nullptr) update_announcements(control, checker, settled_at, *bgp, bgp_error);
    if (ticks % 2 == 0) write_stats(control, stats_path, bgp);
  }
  return 0;
}

// A graceful stop with BGP: withdraw every VIP, then keep forwarding for bgp.drain_time_s, so
// that the peers move the traffic to other load balancers before this one stops. A second
// SIGTERM or SIGINT ends the drain early.
void withdraw_and_drain(const sluice::control::ControlPlane& control, const sigset_t& signals,
                        const std::string& stats_path, sluice::control::BgpAnnouncer& bgp,
                        uint32_t drain_time_s) {
  if (auto status = bgp.announce({}); !status) {
    spdlog::error("bgp: withdrawing the VIPs failed, stopping BIRD closes its sessions instead: {}",
                  status.error());
    return;
  }
  spdlog::info("bgp: withdrew every VIP; forwarding for {} s before stopping (drain_time_s)",
               drain_time_s);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(drain_time_s);
  while (std::chrono::steady_clock::now() < deadline) {
    timespec timeout{0, 500'000'000};
    const int signal = sigtimedwait(&signals, nullptr, &timeout);
    if (signal == SIGINT || signal == SIGTERM) {
      spdlog::info("received a second stop signal, ending the drain early");
      break;
    }
    write_stats(control, stats_path, &bgp);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluiced: the Sluice layer-4 load balancer daemon"};
  std::string config_path;
  std::string stats_path;
  std::string log_level = "info";
  std::string api_socket = "/run/sluice/sluiced.sock";
  std::string metrics_listen = "127.0.0.1:9810";
  bool check_only = false;
  app.add_option("-c,--config", config_path, "YAML config file")->required();
  app.add_option("--stats-file", stats_path,
                 "write counters as JSON to this file every second, on SIGUSR1 and at exit");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or critical")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical"}));
  app.add_option("--api-socket", api_socket,
                 "Unix socket of the HTTP API that sluicectl uses (mode 0660)")
      ->capture_default_str();
  app.add_option("--metrics-listen", metrics_listen,
                 "ADDRESS:PORT of the Prometheus metrics endpoint (GET /metrics), or none")
      ->capture_default_str();
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
    sluice::control::ControlPlane control(std::move(*config), config_path, std::move(*dataplane));
    if (auto status = control.start(); !status) {
      spdlog::error("data plane start failed: {}", status.error());
      return kExitDataplaneFailed;
    }

    // Health checks leave through the kernel's routes: on a DPDK host they reach the network
    // through the exception interface. NOTE: binding the probes to that TAP interface with
    // SO_BINDTODEVICE made their handshakes time out on the test bed, so they are not bound.
    sluice::health::HealthChecker::Options health_options;
    sluice::health::HealthChecker checker(
        [&control](const sluice::health::Transition& transition) {
          auto key = sluice::control::parse_vip_key(transition.vip);
          if (!key) return;
          control.set_backend_healthy(*key, transition.backend,
                                      transition.to == sluice::health::Health::kUp);
        },
        health_options);
    if (auto status = checker.set_targets(health_targets(control.config())); !status) {
      spdlog::error("health checks: {}", status.error());
    }
    control.set_config_listener([&checker](const Config& config) {
      if (auto status = checker.set_targets(health_targets(config)); !status) {
        spdlog::error("health checks: {}", status.error());
      }
    });
    if (auto status = checker.start(); !status) {
      spdlog::error("health checker start failed: {}", status.error());
      control.stop();
      return kExitDataplaneFailed;
    }

    const std::string socket_directory = api_socket.substr(0, api_socket.rfind('/'));
    if (!socket_directory.empty()) ::mkdir(socket_directory.c_str(), 0755);
    auto api = sluice::control::HttpServer::listen_unix(api_socket, 0660);
    if (!api) {
      spdlog::error("API start failed: {}", api.error());
      control.stop();
      return kExitDataplaneFailed;
    }
    (*api)->start(sluice::control::make_api_handler(control, &checker));
    spdlog::info("API listening on {}", (*api)->endpoint());

    std::unique_ptr<sluice::control::HttpServer> metrics;
    if (metrics_listen != "none") {
      const size_t colon = metrics_listen.rfind(':');
      std::string host = metrics_listen.substr(0, colon);
      if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
      uint16_t port = 0;
      try {
        port = static_cast<uint16_t>(std::stoul(metrics_listen.substr(colon + 1)));
      } catch (const std::exception&) {
        port = 0;
      }
      auto server = colon == std::string::npos || port == 0
                        ? sluice::Result<std::unique_ptr<sluice::control::HttpServer>>(sluice::Error{
                              "--metrics-listen '" + metrics_listen + "' is not ADDRESS:PORT or none"})
                        : sluice::control::HttpServer::listen_tcp(host, port);
      if (!server) {
        spdlog::error("metrics start failed: {}", server.error());
        (*api)->stop();
        checker.stop();
        control.stop();
        return kExitDataplaneFailed;
      }
      metrics = std::move(*server);
      metrics->start([&control, &checker](const sluice::control::HttpRequest& request) {
        if (request.path != "/metrics") return sluice::control::HttpResponse{404, "text/plain", "see /metrics\n"};
        return sluice::control::HttpResponse{200, "text/plain; version=0.0.4",
                                             sluice::control::render_metrics(control, &checker)};
      });
      spdlog::info("metrics on http://{}/metrics", metrics->endpoint());
    }

    // BIRD is a child of this thread, which lives until sluiced exits (see bgp_announcer.h).
    std::unique_ptr<sluice::control::BgpAnnouncer> bgp;
    const sluice::control::BgpConfig bgp_config = control.config().bgp;
    if (bgp_config.enabled) {
      bgp = std::make_unique<sluice::control::BgpAnnouncer>(bgp_config);
      if (auto status = bgp->start(); !status) {
        spdlog::error("bgp start failed: {}", status.error());
        if (metrics) metrics->stop();
        (*api)->stop();
        checker.stop();
        control.stop();
        return kExitDataplaneFailed;
      }
    }

    rc = run(control, checker, signals, stats_path, bgp.get());
    if (bgp) {
      withdraw_and_drain(control, signals, stats_path, *bgp, bgp_config.drain_time_s);
      bgp->stop();
    }
    if (metrics) metrics->stop();
    (*api)->stop();
    control.set_config_listener({});
    checker.stop();
    control.stop();
    write_stats(control, stats_path, bgp.get());
  }
  spdlog::info("stopped");
  return rc;
}
