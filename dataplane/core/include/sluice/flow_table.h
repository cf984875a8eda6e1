// The per-worker flow table (step 3 of the packet path): a fixed-capacity, 8-way
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

// One flow's entry: its key and backend, in one cache line. Its hash tag and expiry live in
// the bucket's line (FlowBucket), so a lookup reads the key only of a way whose tag matches.
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
  // Eight ways keep evictions rare at the load the table is sized for (half full): with four,
  // about 4% of flows were lost to full buckets while the table filled.
  static constexpr uint32_t kWays = 8;

  // `capacity` is rounded up to a power of two, at least kWays.
  explicit FlowTable(uint32_t capacity);

  // Returns the live entry for `key`, or nullptr. An expired entry found on the way is freed.
  // `way` is where prefetch_entry() found the key's tag: that way is checked first, so a burst
  // does not scan the bucket twice. Any other value, kWays included, only costs the scan.
  FlowEntry* find(const sluice_flow_key& key, uint32_t hash, uint64_t now_ns, uint32_t way = kWays);

  // The ways that insert() may overwrite for a key without an entry when its bucket is full.
  enum class Overwrite {
    kAny,          // the way that expires first, live or expired
    kExpiredOnly,  // an expired way only: insert() returns nullptr if every way is live
  };

  // Writes `key`'s entry, reusing its existing entry, then the first free way, else the way
  // that expires first (counted as an eviction if it had not expired). The caller fills in the
  // backend; flags are cleared. Returns nullptr, changing nothing, only when `overwrite` is
  // kExpiredOnly and the bucket is full of live entries of other keys.
  FlowEntry* insert(const sluice_flow_key& key, uint32_t hash, uint64_t expires_ns,
                    uint64_t now_ns, Overwrite overwrite = Overwrite::kAny);

  void erase(FlowEntry* entry);

  // Sets when a live entry expires.
  void refresh(FlowEntry* entry, uint64_t expires_ns) {
    uint64_t& way = bucket_of(entry).ways[way_of(entry)];
    way = make_way(expires_ns, way & kTagMask);
  }
  // Returns when a live entry expires, modulo 2^48 ns (about 78 hours).
  uint64_t expires_of(const FlowEntry* entry) const {
    return buckets_[index_of(entry) / kWays].ways[way_of(entry)] >> kTagBits;
  }

  // The two steps of a lookup's memory access, for a burst that looks up many flows: first
  // prefetch the bucket line of every packet, then (once it has arrived) the entry whose tag
  // matches. Returns that entry's way, for find(). Returns kWays when no way of the bucket
  // has the tag: the flow is new, and the entry that insert() would overwrite is prefetched
  // for writing instead, since a new flow usually gets an entry.
  void prefetch_bucket(uint32_t hash) const { __builtin_prefetch(&buckets_[hash & bucket_mask_]); }
  uint32_t prefetch_entry(uint32_t hash, uint64_t now_ns) const {
    const uint32_t index = hash & bucket_mask_;
    const FlowBucket& bucket = buckets_[index];
    for (uint32_t way = 0; way < kWays; ++way) {
      if (tag_matches(bucket.ways[way], hash)) {
        __builtin_prefetch(&entries_[index * kWays + way]);
        return way;
      }
    }
    __builtin_prefetch(&entries_[index * kWays + insert_way(bucket, now_ns)], 1);
    return kWays;
  }

  uint32_t capacity() const { return static_cast<uint32_t>(entries_.size()); }
  const FlowTableCounters& counters() const { return counters_; }

 private:
  // The hot line of a bucket: one word per way, the expiry's low 48 bits (0 marks a free way)
  // above a 16-bit tag, the top of the flow hash. The bucket index takes the hash's low bits,
  // so the tag rules out most other flows of the bucket before their entry is read.
  struct alignas(64) FlowBucket {
    uint64_t ways[kWays] = {};
  };
  static_assert(sizeof(FlowBucket) == 64);

  static constexpr uint32_t kTagBits = 16;
  static constexpr uint64_t kTagMask = (uint64_t{1} << kTagBits) - 1;
  static constexpr uint64_t kExpiryMask = (uint64_t{1} << 48) - 1;

  static uint64_t tag_of(uint32_t hash) { return hash >> kTagBits; }
  static bool is_free(uint64_t way) { return (way >> kTagBits) == 0; }
  static bool tag_matches(uint64_t way, uint32_t hash) { return !is_free(way) && (way & kTagMask) == tag_of(hash); }
  // A way that expires at `expires_ns`: an expiry whose low 48 bits are 0 moves 1 ns later,
  // so that it does not read as free.
  static uint64_t make_way(uint64_t expires_ns, uint64_t tag) {
    const uint64_t expiry = (expires_ns & kExpiryMask) == 0 ? 1 : (expires_ns & kExpiryMask);
    return (expiry << kTagBits) | tag;
  }
  // The time left before a way expires, from the low 48 bits of both times as a signed 48-bit
  // difference, so the clock passing 2^48 ns changes nothing. 0 or less: expired.
  static int64_t time_left(uint64_t way, uint64_t now_ns) {
    const uint64_t difference = (way >> kTagBits) - (now_ns & kExpiryMask);
    return static_cast<int64_t>(difference << 16) >> 16;
  }

  // Returns the way that insert() takes for a key without an entry: the first free way, else
  // the way that expires first.
  static uint32_t insert_way(const FlowBucket& bucket, uint64_t now_ns) {
    uint32_t soonest = 0;
    int64_t soonest_left = INT64_MAX;
    for (uint32_t way = 0; way < kWays; ++way) {
      const uint64_t word = bucket.ways[way];
      if (is_free(word)) return way;
      const int64_t left = time_left(word, now_ns);
      if (left < soonest_left) {
        soonest_left = left;
        soonest = way;
      }
    }
    return soonest;
  }

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

// Inline, because the per-packet path calls it once per packet.
inline FlowEntry* FlowTable::find(const sluice_flow_key& key, uint32_t hash, uint64_t now_ns,
                                  uint32_t way) {
  const uint32_t index = hash & bucket_mask_;
  FlowBucket& bucket = buckets_[index];
  // A key has at most one way in its bucket, so a match at the hinted way is the key's entry.
  // The hint may be stale, since an earlier packet of the burst may have changed the bucket.
  if (way >= kWays || !tag_matches(bucket.ways[way], hash) ||
      !flow_keys_equal(entries_[index * kWays + way].key, key)) {
    for (way = 0; way < kWays; ++way) {
      if (!tag_matches(bucket.ways[way], hash)) continue;
      if (flow_keys_equal(entries_[index * kWays + way].key, key)) break;
    }
    if (way == kWays) return nullptr;
  }
  FlowEntry& entry = entries_[index * kWays + way];
  if (time_left(bucket.ways[way], now_ns) <= 0) {
    ++counters_.expired;
    erase(&entry);
    return nullptr;
  }
  return &entry;
}

}  // namespace sluice
