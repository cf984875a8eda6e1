#include "sluice/control/control_plane.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "sluice/control/neighbor.h"
#include "sluice/control/stats_report.h"
#include "sluice/flow_hash.h"
#include "sluice/maglev.h"

namespace sluice::control {
namespace {

std::string state_name(BackendState state) {
  switch (state) {
    case BackendState::kLive:
      return "live";
    case BackendState::kDrained:
      return "drained";
    case BackendState::kDown:
      return "down";
    case BackendState::kRemoved:
      break;
  }
  return "removed";
}

VipConfig* find_vip(Config& config, const VipKey& key) {
  auto it = std::find_if(config.vips.begin(), config.vips.end(),
                         [&](const VipConfig& vip) { return vip.key == key; });
  return it == config.vips.end() ? nullptr : &*it;
}

}  // namespace

ControlPlane::ControlPlane(Config config, std::string config_path,
                           std::unique_ptr<DataplaneDriver> driver)
    : config_(std::move(config)), config_path_(std::move(config_path)), driver_(std::move(driver)) {
  if (config_.next_hop.mac) next_hop_ = *config_.next_hop.mac;
}

Status ControlPlane::start() {
  {
    std::lock_guard lock(mutex_);
    Config initial = config_;
    auto published = publish_locked(initial, false);
    if (!published) return Error{"the first snapshot could not be published: " + published.error()};
  }
  return driver_->start();
}

void ControlPlane::stop() { driver_->stop(); }

Result<ChangeResult> ControlPlane::publish_locked(Config& candidate, bool dry_run) {
  if (Status status = validate_config(candidate); !status) return Error{status.error()};

  // The build runs on a copy of the builder, which replaces the real one only once the data
  // plane has taken the snapshot. So after a dry run or a rejection, the builder keeps the
  // slots, tables and generation that the running snapshot was built from. After a rejection
  // it keeps only the copy's uid counter, so that no uid the rejected snapshot used returns.
  SnapshotBuilder builder = builder_;
  std::vector<VipBuildReport> report;
  auto snapshot = builder.build(candidate, next_hop_, &report, unhealthy(candidate));
  if (!snapshot) return Error{snapshot.error()};
  if (dry_run) return ChangeResult{snapshot_ ? snapshot_->generation : 0, candidate != config_};

  if (Status status = driver_->publish(*snapshot); !status) {
    builder_.reserve_uids(builder);
    return Error{"the data plane rejected generation " + std::to_string((*snapshot)->generation) +
                 ": " + status.error()};
  }
  builder_ = std::move(builder);
  snapshot_ = *snapshot;
  last_report_ = report;
  for (const std::string& warning : candidate.warnings) spdlog::warn("config: {}", warning);
  for (const VipBuildReport& vip : report) {
    std::string slots;
    for (const auto& [address, count] : vip.slots_per_backend) {
      slots += (slots.empty() ? "" : ", ") + address.to_string() + "=" + std::to_string(count);
    }
    spdlog::info("vip {}: generation {}, table size {}, {} slots changed, slots per backend: {}",
                 vip.key.to_string(), snapshot_->generation, vip.table_size, vip.changed_slots,
                 slots.empty() ? "none" : slots);
  }
  std::set<VipKey> all_down;
  for (const VipBuildReport& vip : report) {
    if (!vip.all_down) continue;
    all_down.insert(vip.key);
    if (all_down_vips_.contains(vip.key)) continue;
    const VipConfig* config = nullptr;
    for (const VipConfig& candidate_vip : candidate.vips) {
      if (candidate_vip.key == vip.key) config = &candidate_vip;
    }
    const bool forward = config == nullptr || config->all_down == AllDownPolicy::kForwardToAll;
    const char* action = forward ? "forwarding to all of them until one passes its checks "
                                   "(all_down: forward_to_all)"
                                 : "dropping new flows (all_down: drop)";
    // Right after a start or a new VIP, no backend has been checked yet: that is no outage.
    const bool was_serving = std::any_of(ever_healthy_.begin(), ever_healthy_.end(),
                                         [&](const auto& entry) { return entry.first == vip.key; });
    if (was_serving) {
      ++all_down_alerts_;
      spdlog::error("vip {}: every backend is down; {}", vip.key.to_string(), action);
    } else {
      spdlog::info("vip {}: no backend has passed its first check yet; {}", vip.key.to_string(),
                   action);
    }
  }
  all_down_vips_ = std::move(all_down);
  return ChangeResult{snapshot_->generation, true};
}

DownBackends ControlPlane::unhealthy(const Config& config) const {
  DownBackends down;
  for (const VipConfig& vip : config.vips) {
    if (!vip.health_check || vip.health_check->kind == health::CheckKind::kNone) continue;
    for (const BackendConfig& backend : vip.backends) {
      const auto key = std::make_pair(vip.key, backend.address);
      if (!healthy_.contains(key)) down.insert(key);
    }
  }
  return down;
}

void ControlPlane::set_config_listener(std::function<void(const Config&)> listener) {
  std::lock_guard lock(mutex_);
  config_listener_ = std::move(listener);
}

Result<ChangeResult> ControlPlane::change(const char* what, Config candidate, bool dry_run) {
  std::function<void(const Config&)> listener;
  Config applied;
  Result<ChangeResult> result = ChangeResult{};
  {
    std::lock_guard lock(mutex_);
    // The data plane section and the flow table size take effect only at start. The running
    // ones stay in force and in the stored config, so the config read back is what runs.
    std::vector<std::string> warnings;
    if (candidate.dataplane != config_.dataplane || candidate.dpdk != config_.dpdk ||
        candidate.xdp != config_.xdp || candidate.flow_table_size != config_.flow_table_size) {
      warnings.push_back("the dataplane section and flow_table.size apply only at start; the "
                         "running ones stay until sluiced restarts with the new file");
      candidate.dataplane = config_.dataplane;
      candidate.dpdk = config_.dpdk;
      candidate.xdp = config_.xdp;
      candidate.flow_table_size = config_.flow_table_size;
    }
    // The BGP speaker runs with the settings it started with (see bgp_announcer.h).
    if (candidate.bgp != config_.bgp) {
      warnings.push_back("the bgp section applies only at start; the running one stays until "
                         "sluiced restarts with the new file");
      candidate.bgp = config_.bgp;
    }
    if (!dry_run && candidate == config_) {
      return ChangeResult{snapshot_ ? snapshot_->generation : 0, false, warnings};
    }
    result = publish_locked(candidate, dry_run);
    if (!result) {
      spdlog::error("{} rejected, the running state stays: {}", what, result.error());
      return result;
    }
    result->warnings = warnings;
    for (const std::string& warning : warnings) spdlog::warn("{}: {}", what, warning);
    if (dry_run) return result;
    config_ = std::move(candidate);
    // A backend that leaves the config loses its health record. Added again, it must pass
    // again, and until then its VIP counts as new rather than failed.
    const auto gone = [this](const auto& entry) {
      for (const VipConfig& vip : config_.vips) {
        if (vip.key != entry.first) continue;
        for (const BackendConfig& backend : vip.backends) {
          if (backend.address == entry.second) return false;
        }
      }
      return true;
    };
    std::erase_if(healthy_, gone);
    std::erase_if(ever_healthy_, gone);
    spdlog::info("{} applied: generation {}", what, result->generation);
    listener = config_listener_;
    applied = config_;
  }
  if (listener) listener(applied);
  return result;
}

Result<ChangeResult> ControlPlane::apply(Config config, bool dry_run) {
  return change("config", std::move(config), dry_run);
}

Result<ChangeResult> ControlPlane::reload() {
  spdlog::info("re-reading {}", config_path_);
  auto config = load_config_file(config_path_);
  if (!config) {
    spdlog::error("config rejected, the running state stays: {}", config.error());
    return Error{config.error()};
  }
  return change("config file", std::move(*config));
}

Result<ChangeResult> ControlPlane::add_vip(VipConfig vip) {
  Config candidate = config();
  if (find_vip(candidate, vip.key) != nullptr) {
    return Error{"vip " + vip.key.to_string() + " already exists (delete it first, or add backends)"};
  }
  const std::string what = "adding vip " + vip.key.to_string();
  candidate.vips.push_back(std::move(vip));
  return change(what.c_str(), std::move(candidate));
}

Result<ChangeResult> ControlPlane::remove_vip(const VipKey& key) {
  Config candidate = config();
  VipConfig* vip = find_vip(candidate, key);
  if (vip == nullptr) return Error{"vip " + key.to_string() + " not found"};
  candidate.vips.erase(candidate.vips.begin() + (vip - candidate.vips.data()));
  const std::string what = "removing vip " + key.to_string();
  return change(what.c_str(), std::move(candidate));
}

Result<ChangeResult> ControlPlane::add_backend(const VipKey& key, BackendConfig backend) {
  Config candidate = config();
  VipConfig* vip = find_vip(candidate, key);
  if (vip == nullptr) return Error{"vip " + key.to_string() + " not found"};
  for (const BackendConfig& existing : vip->backends) {
    if (existing.address == backend.address) {
      return Error{"backend " + backend.address.to_string() + " already exists in vip " +
                   key.to_string() + " (use backend weight to change it)"};
    }
  }
  const std::string what = "adding backend " + backend.address.to_string() + " to vip " + key.to_string();
  vip->backends.push_back(backend);
  return change(what.c_str(), std::move(candidate));
}

Result<ChangeResult> ControlPlane::remove_backend(const VipKey& key, const IpAddress& address) {
  Config candidate = config();
  VipConfig* vip = find_vip(candidate, key);
  if (vip == nullptr) return Error{"vip " + key.to_string() + " not found"};
  auto it = std::find_if(vip->backends.begin(), vip->backends.end(),
                         [&](const BackendConfig& backend) { return backend.address == address; });
  if (it == vip->backends.end()) {
    return Error{"backend " + address.to_string() + " not found in vip " + key.to_string()};
  }
  vip->backends.erase(it);
  const std::string what = "removing backend " + address.to_string() + " from vip " + key.to_string();
  return change(what.c_str(), std::move(candidate));
}

Result<ChangeResult> ControlPlane::set_weight(const VipKey& key, const IpAddress& address,
                                              uint32_t weight) {
  Config candidate = config();
  VipConfig* vip = find_vip(candidate, key);
  if (vip == nullptr) return Error{"vip " + key.to_string() + " not found"};
  auto it = std::find_if(vip->backends.begin(), vip->backends.end(),
                         [&](const BackendConfig& backend) { return backend.address == address; });
  if (it == vip->backends.end()) {
    return Error{"backend " + address.to_string() + " not found in vip " + key.to_string()};
  }
  it->weight = weight;
  const std::string what = "setting weight " + std::to_string(weight) + " on backend " +
                           address.to_string() + " of vip " + key.to_string();
  return change(what.c_str(), std::move(candidate));
}

void ControlPlane::set_backend_healthy(const VipKey& key, const IpAddress& address,
                                       bool healthy) {
  std::lock_guard lock(mutex_);
  const auto entry = std::make_pair(key, address);
  const bool changed = healthy ? healthy_.insert(entry).second : healthy_.erase(entry) > 0;
  if (!changed) return;
  if (healthy) ever_healthy_.insert(entry);
  Config current = config_;
  if (auto result = publish_locked(current, false); !result) {
    spdlog::error("vip {}: backend {} is {}, but the snapshot was not published: {}",
                  key.to_string(), address.to_string(), healthy ? "up" : "down", result.error());
  }
}

void ControlPlane::refresh_next_hop() {
  std::lock_guard lock(mutex_);
  if (config_.next_hop.mac) return;
  const std::string interface = driver_->neighbor_interface();
  auto mac = find_ipv4_neighbor(config_.next_hop.ipv4, interface);
  if (!mac) {
    if (auto status = solicit_ipv4_neighbor(config_.next_hop.ipv4, interface);
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
  Config current = config_;
  if (auto result = publish_locked(current, false); !result) {
    spdlog::error("next hop changed, but the snapshot was not published: {}", result.error());
  }
}

bool ControlPlane::next_hop_known() const {
  std::lock_guard lock(mutex_);
  return !next_hop_.is_zero();
}

Config ControlPlane::config() const {
  std::lock_guard lock(mutex_);
  return config_;
}

uint64_t ControlPlane::generation() const {
  std::lock_guard lock(mutex_);
  return snapshot_ ? snapshot_->generation : 0;
}

std::vector<VipStatus> ControlPlane::vips() const {
  std::lock_guard lock(mutex_);
  std::vector<VipStatus> result;
  if (!snapshot_) return result;
  for (const VipBuildReport& report : last_report_) {
    VipStatus vip{report.key, report.table_size, report.changed_slots, {}};
    vip.all_backends_down = report.all_down;
    for (const VipConfig& configured : config_.vips) {
      if (configured.key == report.key) {
        vip.persistence = configured.persistence;
        vip.encapsulation = configured.encapsulation;
      }
    }
    for (const auto& [address, slots] : report.slots_per_backend) {
      BackendStatus backend{address, 0, "removed", slots};
      for (const BackendSlot& slot : snapshot_->backends) {
        const Vip* owner = nullptr;
        for (const Vip& candidate : snapshot_->vips) {
          if (candidate.key == report.key) owner = &candidate;
        }
        if (owner != nullptr && slot.vip_slot == owner->slot && slot.address == address &&
            slot.state != BackendState::kRemoved) {
          backend.weight = slot.weight;
          backend.state = state_name(slot.state);
        }
      }
      vip.backends.push_back(backend);
    }
    result.push_back(std::move(vip));
  }
  return result;
}

Result<IpAddress> ControlPlane::lookup(const VipKey& key, const IpAddress& client,
                                       uint16_t port) const {
  std::lock_guard lock(mutex_);
  if (!snapshot_) return Error{"no snapshot is published yet"};
  if (client.family != key.address.family) {
    return Error{"client " + client.to_string() + " is not of the VIP's address family"};
  }
  const Vip* vip = nullptr;
  for (const Vip& candidate : snapshot_->vips) {
    if (candidate.key == key) vip = &candidate;
  }
  if (vip == nullptr) return Error{"vip " + key.to_string() + " not found"};

  // The same key a TCP SYN or UDP datagram from the client builds in the parser.
  // NOTE: for a port-0 VIP the real destination port is unknown here, so the result is for
  // packets to port 0. A packet to another port may hash elsewhere.
  sluice_flow_key flow{};
  std::memcpy(flow.src, client.bytes.data(), 16);
  std::memcpy(flow.dst, key.address.bytes.data(), 16);
  flow.src_port = static_cast<uint16_t>((port >> 8) | (port << 8));
  const uint16_t vip_port = key.port;
  flow.dst_port = static_cast<uint16_t>((vip_port >> 8) | (vip_port << 8));
  flow.protocol = key.protocol;
  flow.family = key.address.family;
  // The hash the data planes pick a new flow's backend with (Pipeline::classify).
  const uint32_t hash = vip->persistence == SLUICE_PERSISTENCE_CLIENT
                            ? sluice_client_hash(&flow, snapshot_->seed)
                            : sluice_flow_hash(&flow, snapshot_->seed);
  const uint32_t slot = vip->maglev[sluice_maglev_slot(hash, static_cast<uint32_t>(vip->maglev.size()))];
  if (slot == kMaglevEmpty) return Error{"vip " + key.to_string() + " has no live backend"};
  return snapshot_->backends[slot].address;
}

namespace {

// FNV-1a, 64 bits (Fowler, Noll, Vo; the offset basis and prime of its 64-bit variant).
class Fnv1a64 {
 public:
  void add(const void* data, size_t size) {
    const auto* bytes = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < size; ++i) {
      hash_ ^= bytes[i];
      hash_ *= 0x100000001b3ull;
    }
  }
  void add(const std::string& text) { add(text.data(), text.size() + 1); }
  void add_u32(uint32_t value) { add(&value, sizeof(value)); }
  std::string hex() const { return fmt::format("{:016x}", hash_); }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ull;
};

}  // namespace

nlohmann::json ControlPlane::table_digest() const {
  std::lock_guard lock(mutex_);
  if (!snapshot_) return nlohmann::json::object();
  std::vector<const Vip*> vips;
  for (const Vip& vip : snapshot_->vips) vips.push_back(&vip);
  std::sort(vips.begin(), vips.end(), [](const Vip* a, const Vip* b) { return a->key < b->key; });

  Fnv1a64 whole;
  whole.add_u32(snapshot_->seed);
  nlohmann::json per_vip = nlohmann::json::array();
  for (const Vip* vip : vips) {
    Fnv1a64 table;
    table.add(vip->key.to_string());
    table.add_u32(static_cast<uint32_t>(vip->maglev.size()));
    table.add_u32(vip->persistence);
    uint32_t empty = 0;
    for (uint32_t slot : vip->maglev) {
      if (slot == kMaglevEmpty) {
        ++empty;
        table.add_u32(0);
        continue;
      }
      const IpAddress& address = snapshot_->backends[slot].address;
      table.add(address.bytes.data(), address.is_v4() ? 4 : 16);
    }
    whole.add(table.hex());
    per_vip.push_back({{"vip", vip->key.to_string()},
                       {"table_size", vip->maglev.size()},
                       {"empty_slots", empty},
                       {"digest", table.hex()}});
  }
  return {{"seed", snapshot_->seed},
          {"generation", snapshot_->generation},
          {"digest", whole.hex()},
          {"vips", per_vip}};
}

nlohmann::json ControlPlane::stats() const {
  std::lock_guard lock(mutex_);
  if (!snapshot_) return nlohmann::json::object();
  nlohmann::json report = stats_report(*snapshot_, driver_->totals());
  report["dataplane"] = driver_->name();
  report["alerts"] = {{"all_backends_down", all_down_alerts_},
                      {"vips_with_all_backends_down", all_down_vips_.size()}};
  driver_->add_stats(report);
  return report;
}

}  // namespace sluice::control
