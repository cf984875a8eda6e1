#include "sluice/control/snapshot_builder.h"

#include <set>
#include <string>

#include "sluice/maglev.h"

namespace sluice::control {
namespace {

// Allocates the lowest slot below a limit that is neither used nor resting. Slots are
// allocated in rising order, so one cursor finds each in amortised constant time. When every
// other slot is taken, a resting slot is allocated and stops resting.
class SlotAllocator {
 public:
  SlotAllocator(std::set<uint32_t> used, std::set<uint32_t> resting, uint32_t limit, const char* what)
      : used_(std::move(used)), resting_(std::move(resting)), limit_(limit), what_(what) {}

  Result<uint32_t> take() {
    while (next_ < limit_ && (used_.contains(next_) || resting_.contains(next_))) ++next_;
    if (next_ < limit_) {
      used_.insert(next_);
      return next_++;
    }
    if (resting_.empty()) {
      return Error{std::string("no free ") + what_ + " slot (the limit is " + std::to_string(limit_) + ")"};
    }
    const uint32_t slot = *resting_.begin();
    resting_.erase(resting_.begin());
    used_.insert(slot);
    return slot;
  }

  const std::set<uint32_t>& resting() const { return resting_; }

 private:
  std::set<uint32_t> used_;
  std::set<uint32_t> resting_;
  uint32_t limit_;
  const char* what_;
  uint32_t next_ = 0;  // every slot below is used or resting
};

BackendState state_for(const BackendConfig& backend, bool down) {
  if (backend.weight == 0) return BackendState::kDrained;
  return down ? BackendState::kDown : BackendState::kLive;
}

}  // namespace

Result<std::shared_ptr<const Snapshot>> SnapshotBuilder::build(
    const Config& config, const MacAddress& next_hop, std::vector<VipBuildReport>* report,
    const DownBackends& down) {
  State next;
  next.next_uid = state_.next_uid;
  next.generation = state_.generation + 1;

  // VIPs and backends that stay keep their slots, so counters and flow entries keep pointing
  // at the same thing. New ones get the lowest free slots.
  std::set<uint32_t> used_vip_slots;
  std::set<uint32_t> used_backend_slots;
  for (const VipConfig& vip : config.vips) {
    if (auto it = state_.vip_slots.find(vip.key); it != state_.vip_slots.end()) {
      next.vip_slots[vip.key] = it->second;
      used_vip_slots.insert(it->second);
    }
    for (const BackendConfig& backend : vip.backends) {
      const auto key = std::make_pair(vip.key, backend.address);
      if (auto it = state_.backend_slots.find(key); it != state_.backend_slots.end()) {
        next.backend_slots[key] = it->second;
        used_backend_slots.insert(it->second.slot);
      }
    }
  }

  // Slots that this build frees rest until the next build: a new VIP or backend gets one only
  // when no other slot is left. The XDP data plane writes backend slots before it swaps the
  // Maglev tables, so for a moment the old tables are in force with the new slots. Had a
  // freed slot gone to a backend of another VIP, packets and new flow entries of the old
  // VIP would reach that backend. The next build finds the old tables gone.
  std::set<uint32_t> resting_vip_slots;
  for (const auto& [key, slot] : state_.vip_slots) {
    if (!next.vip_slots.contains(key)) resting_vip_slots.insert(slot);
  }
  std::map<uint32_t, std::pair<VipKey, IpAddress>> removed_backends;  // slot -> its last owner
  std::set<uint32_t> resting_backend_slots;
  for (const auto& [key, allocation] : state_.backend_slots) {
    if (next.backend_slots.contains(key)) continue;
    removed_backends[allocation.slot] = key;
    resting_backend_slots.insert(allocation.slot);
  }
  SlotAllocator vip_slots(std::move(used_vip_slots), std::move(resting_vip_slots),
                          SLUICE_MAX_VIPS, "VIP");
  SlotAllocator backend_slots(std::move(used_backend_slots), std::move(resting_backend_slots),
                              SLUICE_MAX_BACKENDS, "backend");

  auto snapshot = std::make_shared<Snapshot>();
  snapshot->generation = next.generation;
  snapshot->seed = config.seed;
  snapshot->source_ipv4 = config.source_ipv4;
  snapshot->source_ipv6 = config.source_ipv6;
  snapshot->gue_port = config.gue_port;
  snapshot->next_hop_mac = next_hop;
  snapshot->timeouts = config.timeouts;
  snapshot->new_flow_limit = config.new_flow_limit;

  for (const VipConfig& vip_config : config.vips) {
    if (!next.vip_slots.contains(vip_config.key)) {
      Result<uint32_t> slot = vip_slots.take();
      if (!slot) return Error{"vip " + vip_config.key.to_string() + ": " + slot.error()};
      next.vip_slots[vip_config.key] = *slot;
    }
    Vip vip;
    vip.key = vip_config.key;
    vip.slot = next.vip_slots[vip_config.key];
    vip.encapsulation = vip_config.encapsulation;
    vip.persistence = vip_config.persistence;

    // When every weighted backend is down, all of them stay in the table.
    bool all_down = false;
    for (const BackendConfig& backend : vip_config.backends) {
      if (backend.weight == 0) continue;
      if (!down.contains({vip_config.key, backend.address})) {
        all_down = false;
        break;
      }
      all_down = true;
    }

    std::vector<MaglevBackend> maglev_backends;
    for (const BackendConfig& backend : vip_config.backends) {
      const auto key = std::make_pair(vip_config.key, backend.address);
      if (!next.backend_slots.contains(key)) {
        Result<uint32_t> slot = backend_slots.take();
        if (!slot) return Error{"vip " + vip_config.key.to_string() + ": " + slot.error()};
        next.backend_slots[key] = {*slot, next.next_uid++};
      }
      const BackendAllocation& allocation = next.backend_slots[key];
      if (snapshot->backends.size() <= allocation.slot) snapshot->backends.resize(allocation.slot + 1);
      const bool forward_to_all = all_down && vip_config.all_down == AllDownPolicy::kForwardToAll;
      const bool is_down = !forward_to_all && down.contains(key);
      const BackendState state = state_for(backend, is_down);
      snapshot->backends[allocation.slot] = {allocation.uid, state, backend.address,
                                             backend.weight, vip.slot};
      const uint32_t weight = state == BackendState::kLive ? backend.weight : 0;
      maglev_backends.push_back({backend.address, weight, allocation.slot});
    }

    std::vector<uint32_t> previous;
    if (auto it = state_.tables.find(vip.key); it != state_.tables.end()) previous = it->second;
    Result<MaglevTable> table = build_maglev_table(maglev_backends, vip_config.table_size, previous);
    if (!table) return Error{"vip " + vip.key.to_string() + ": " + table.error()};

    if (report != nullptr) {
      VipBuildReport entry{vip.key, {}, table->changed_slots, vip_config.table_size, all_down};
      for (const MaglevSlotCount& count : table->slot_counts) {
        entry.slots_per_backend.emplace_back(snapshot->backends[count.id].address, count.slots);
      }
      report->push_back(std::move(entry));
    }
    next.tables[vip.key] = table->entries;
    vip.maglev = std::move(table->entries);
    snapshot->vips.push_back(std::move(vip));
  }

  // A resting backend slot keeps the removed backend's address, in state kRemoved, so that a
  // packet that an old XDP table still sends there reaches the backend that the table meant,
  // not the zero address. Flow entries that point at it are invalid.
  for (uint32_t slot : backend_slots.resting()) {
    const auto& key = removed_backends[slot];
    if (snapshot->backends.size() <= slot) snapshot->backends.resize(slot + 1);
    snapshot->backends[slot] = {state_.backend_slots.at(key).uid, BackendState::kRemoved,
                                key.second, 0, state_.vip_slots.at(key.first)};
  }

  snapshot->prepare();
  state_ = std::move(next);
  return std::shared_ptr<const Snapshot>(std::move(snapshot));
}

}  // namespace sluice::control
