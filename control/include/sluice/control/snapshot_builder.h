// Turns a validated config into a data plane snapshot: stable VIP and backend slots, Maglev
// tables, and a report of what each build changed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "sluice/control/config.h"
#include "sluice/result.h"
#include "sluice/snapshot.h"

namespace sluice::control {

struct VipBuildReport {
  VipKey key;
  std::vector<std::pair<IpAddress, uint32_t>> slots_per_backend;
  uint32_t changed_slots = 0;
  uint32_t table_size = 0;
  // Every backend with a weight above 0 failed its health checks. With the forward_to_all
  // policy all of them stay in the table, because a backend that may be alive beats dropping
  // every new flow. With drop, none does.
  bool all_down = false;
};

// Backends that failed their health checks, by VIP.
using DownBackends = std::set<std::pair<VipKey, IpAddress>>;

class SnapshotBuilder {
 public:
  // Builds the next snapshot. On failure the builder's slots and tables stay as they were,
  // so the running snapshot remains the reference for the next build.
  Result<std::shared_ptr<const Snapshot>> build(const Config& config, const MacAddress& next_hop,
                                                std::vector<VipBuildReport>* report = nullptr,
                                                const DownBackends& down = {});

  // Reserves the backend uids that `attempt`, a copy of this builder, gave out in a build that
  // the data plane then rejected. A data plane may apply part of a snapshot before it fails
  // (XDP writes its maps one by one), and flow entries made meanwhile keep that snapshot's
  // uids. The slots stay free for the next build, but its backends get uids of their own.
  void reserve_uids(const SnapshotBuilder& attempt) {
    state_.next_uid = std::max(state_.next_uid, attempt.state_.next_uid);
  }

 private:
  struct BackendAllocation {
    uint32_t slot = 0;
    uint32_t uid = 0;
  };
  struct State {
    std::map<VipKey, uint32_t> vip_slots;
    std::map<std::pair<VipKey, IpAddress>, BackendAllocation> backend_slots;
    std::map<VipKey, std::vector<uint32_t>> tables;
    uint32_t next_uid = 1;
    uint64_t generation = 0;
  };

  State state_;
};

}  // namespace sluice::control
