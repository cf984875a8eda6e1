// The per-worker flow table (step 3 of the packet path): a fixed-capacity, 4-way
// set-associative hash table from a flow key to the backend that serves the flow. It never
// allocates after construction, so a worker can own one without locks.
#pragma once

#include <cstdint>
#include <algorithm>
#include <vector>

#include "sluice/flow_hash.h"

namespace sluice {

struct FlowTimeouts {
  uint64_t tcp_ns = 300'000'000'000;        // established TCP, idle
  uint64_t tcp_closing_ns = 10'000'000'000;  // after a FIN or RST
  uint64_t udp_ns = 30'000'000'000;          // UDP and other protocols, idle

  bool operator==(const FlowTimeouts&) const = default;
};

struct FlowEntry {
  sluice_flow_key key{};
  uint32_t hash = 0;
  uint32_t backend = 0;      // backend slot
  uint32_t backend_uid = 0;  // distinguishes a reused slot from the backend that had it before
  uint32_t flags = 0;        // kFlowClosing once a FIN or RST has been seen
  uint64_t expires_ns = 0;   // 0 marks a free entry
};

inline constexpr uint32_t kFlowClosing = 1;

struct FlowTableCounters {
  uint64_t entries = 0;    // entries in use, including expired ones not yet reclaimed
  uint64_t inserts = 0;
  uint64_t evictions = 0;  // live entries overwritten because their bucket was full
  uint64_t expired = 0;    // entries reclaimed after their timeout
};

class FlowTable {
 public:
  static constexpr uint32_t kWays = 4;

  // `capacity` is rounded up to a power of two, at least kWays.
  explicit FlowTable(uint32_t capacity);

  // Returns the live entry for `key`, or nullptr. An expired entry found on the way is freed.
  FlowEntry* find(const sluice_flow_key& key, uint32_t hash, uint64_t now_ns);

  // Writes `key`'s entry, reusing its existing entry, then a free way, else the way that
  // expires first (counted as an eviction if it had not expired). The caller fills in the
  // backend; flags are cleared.
  FlowEntry* insert(const sluice_flow_key& key, uint32_t hash, uint64_t expires_ns,
                    uint64_t now_ns);

  void erase(FlowEntry* entry);

  // Prefetches the bucket of `hash`, for a burst that looks up many flows.
  void prefetch(uint32_t hash) const { __builtin_prefetch(&entries_[bucket_index(hash)]); }

  uint32_t capacity() const { return static_cast<uint32_t>(entries_.size()); }
  const FlowTableCounters& counters() const { return counters_; }

 private:
  uint32_t bucket_index(uint32_t hash) const { return (hash & bucket_mask_) * kWays; }

  std::vector<FlowEntry> entries_;
  uint32_t bucket_mask_ = 0;
  FlowTableCounters counters_;
};

bool flow_keys_equal(const sluice_flow_key& a, const sluice_flow_key& b);

}  // namespace sluice
