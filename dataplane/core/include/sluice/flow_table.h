// The per-worker flow table (step 3 of the packet path): a fixed-capacity, 4-way
// set-associative hash table from a flow key to the backend that serves the flow. It never
// allocates after construction, so a worker can own one without locks.
#pragma once

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <utility>

#include "sluice/flow_hash.h"
#include "sluice/huge_page_array.h"

namespace sluice {

struct FlowTimeouts {
  uint64_t tcp_ns = 300'000'000'000;        // established TCP, idle
  uint64_t tcp_closing_ns = 10'000'000'000;  // after a FIN or RST
  uint64_t udp_ns = 30'000'000'000;          // UDP and other protocols, idle

  bool operator==(const FlowTimeouts&) const = default;
};

// One flow's entry: its key and backend, in one cache line. Its hash and expiry live in the
// bucket's line (FlowBucket), so a lookup reads the key only of a way whose hash matches.
struct alignas(64) FlowEntry {
  sluice_flow_key key{};
  uint32_t backend = 0;      // backend slot
  uint32_t backend_uid = 0;  // distinguishes a reused slot from the backend that had it before
  uint32_t flags = 0;        // kFlowClosing once a FIN or RST has been seen
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

  // Sets when a live entry expires.
  void refresh(FlowEntry* entry, uint64_t expires_ns) { bucket_of(entry).expires_ns[way_of(entry)] = expires_ns; }
  uint64_t expires_of(const FlowEntry* entry) const {
    return buckets_[index_of(entry) / kWays].expires_ns[way_of(entry)];
  }

  // The two steps of a lookup's memory access, for a burst that looks up many flows: first
  // prefetch the bucket line of every packet, then (once it has arrived) the entry whose hash
  // matches. Returns false when no way of the bucket has the hash: the flow is new.
  void prefetch_bucket(uint32_t hash) const { __builtin_prefetch(&buckets_[hash & bucket_mask_]); }
  bool prefetch_entry(uint32_t hash) const {
    const FlowBucket& bucket = buckets_[hash & bucket_mask_];
    for (uint32_t way = 0; way < kWays; ++way) {
      if (bucket.expires_ns[way] != 0 && bucket.hashes[way] == hash) {
        __builtin_prefetch(&entries_[(hash & bucket_mask_) * kWays + way]);
        return true;
      }
    }
    return false;
  }

  uint32_t capacity() const { return static_cast<uint32_t>(entries_.size()); }
  const FlowTableCounters& counters() const { return counters_; }

 private:
  // The hot line of a bucket: each way's expiry (0 marks a free way) and hash.
  struct alignas(64) FlowBucket {
    uint64_t expires_ns[kWays] = {};
    uint32_t hashes[kWays] = {};
  };

  size_t index_of(const FlowEntry* entry) const { return static_cast<size_t>(entry - entries_.data()); }
  uint32_t way_of(const FlowEntry* entry) const { return static_cast<uint32_t>(index_of(entry) % kWays); }
  FlowBucket& bucket_of(const FlowEntry* entry) { return buckets_[index_of(entry) / kWays]; }

  HugePageArray<FlowBucket> buckets_;
  HugePageArray<FlowEntry> entries_;  // kWays per bucket, in bucket order
  uint32_t bucket_mask_ = 0;
  FlowTableCounters counters_;
};

// Compares two keys as five 64-bit words: the parser zeroes the padding, so this is exact.
inline bool flow_keys_equal(const sluice_flow_key& a, const sluice_flow_key& b) {
  static_assert(sizeof(sluice_flow_key) == 40);
  uint64_t x[5];
  uint64_t y[5];
  std::memcpy(x, &a, sizeof(x));
  std::memcpy(y, &b, sizeof(y));
  return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

}  // namespace sluice
