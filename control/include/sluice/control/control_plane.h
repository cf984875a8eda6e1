// The control plane's running state: the config in force, backend health, the snapshot
// builder and the data plane. Every change validates the whole resulting config, builds a
// snapshot and publishes it; when any step fails, nothing changes. Safe to call from the API
// thread, the health checker's thread and the main thread at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "sluice/control/config.h"
#include "sluice/control/dataplane_driver.h"
#include "sluice/control/snapshot_builder.h"
#include "sluice/result.h"

namespace sluice::control {

struct BackendStatus {
  IpAddress address;
  uint32_t weight = 0;
  std::string state;  // "live", "drained" or "down"
  uint32_t slots = 0;
};

struct VipStatus {
  VipKey key;
  uint32_t table_size = 0;
  uint32_t changed_slots = 0;  // in the last build
  std::vector<BackendStatus> backends;
  sluice_persistence persistence = SLUICE_PERSISTENCE_CONNECTION;
  sluice_encapsulation encapsulation = SLUICE_ENCAP_IPIP;
  // Every backend with a weight above 0 failed its checks. Under all_down: forward_to_all they
  // stay in the table and their state stays "live".
  bool all_backends_down = false;
};

// The outcome of a change: the generation it published, or that nothing changed.
struct ChangeResult {
  uint64_t generation = 0;
  bool changed = false;
  std::vector<std::string> warnings;  // parts of the change that did not take effect
};

class ControlPlane {
 public:
  ControlPlane(Config config, std::string config_path, std::unique_ptr<DataplaneDriver> driver);

  // Publishes the first snapshot, then starts the data plane.
  Status start();
  void stop();

  // Replaces the whole config. An identical config changes nothing and keeps the generation.
  // With dry_run, only validates and builds.
  Result<ChangeResult> apply(Config config, bool dry_run = false);
  // Re-reads the config file given at construction.
  Result<ChangeResult> reload();

  Result<ChangeResult> add_vip(VipConfig vip);
  Result<ChangeResult> remove_vip(const VipKey& key);
  Result<ChangeResult> add_backend(const VipKey& key, BackendConfig backend);
  Result<ChangeResult> remove_backend(const VipKey& key, const IpAddress& address);
  Result<ChangeResult> set_weight(const VipKey& key, const IpAddress& address, uint32_t weight);

  // Records a health check result that changed a backend's health, and republishes. A backend
  // of a VIP with a health check serves only while its last transition was to up.
  void set_backend_healthy(const VipKey& key, const IpAddress& address, bool healthy);

  // Called after every change that took effect, with the new config, outside the lock: the
  // daemon points the health checker at the new set of backends from here.
  void set_config_listener(std::function<void(const Config&)> listener);

  // Resolves the next-hop MAC when the config names an address, and republishes on change.
  void refresh_next_hop();
  bool next_hop_known() const;

  Config config() const;
  std::vector<VipStatus> vips() const;
  uint64_t generation() const;

  // The backend that a new connection from client:port to `key` reaches now.
  Result<IpAddress> lookup(const VipKey& key, const IpAddress& client, uint16_t port) const;

  // Digests of the published Maglev tables, to compare load balancers of a fleet: equal
  // digests mean that both send every new flow to the same backend. Covers the seed, and per
  // VIP its key, table size, persistence and the backend address of every slot (not slot
  // indices, which depend on the order of changes). FNV-1a, 64 bits: made to detect
  // differences, not to resist forgery.
  nlohmann::json table_digest() const;

  // The counters report (see stats_report.h), with the data plane's own figures.
  nlohmann::json stats() const;

 private:
  Result<ChangeResult> change(const char* what, Config candidate, bool dry_run = false);
  Result<ChangeResult> publish_locked(Config& candidate, bool dry_run);

  mutable std::mutex mutex_;
  Config config_;
  std::string config_path_;
  std::unique_ptr<DataplaneDriver> driver_;
  SnapshotBuilder builder_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::vector<VipBuildReport> last_report_;
  DownBackends unhealthy(const Config& config) const;

  std::set<std::pair<VipKey, IpAddress>> healthy_;  // passed their checks, by VIP
  std::set<std::pair<VipKey, IpAddress>> ever_healthy_;  // passed at least once
  std::set<VipKey> all_down_vips_;
  uint64_t all_down_alerts_ = 0;
  std::function<void(const Config&)> config_listener_;
  MacAddress next_hop_;
  bool solicit_failed_logged_ = false;
};

}  // namespace sluice::control
