#include "sluice/flow_table.h"

#include <bit>
#include <cstdint>

namespace sluice {

FlowTable::FlowTable(uint32_t capacity) {
  const uint32_t size = std::bit_ceil(std::max(capacity, kWays));
  buckets_ = HugePageArray<FlowBucket>(size / kWays);
  entries_ = HugePageArray<FlowEntry>(size);
  bucket_mask_ = size / kWays - 1;
}

FlowEntry* FlowTable::insert(const sluice_flow_key& key, uint32_t hash, uint64_t expires_ns,
                             uint64_t now_ns) {
  const uint32_t index = hash & bucket_mask_;
  FlowBucket& bucket = buckets_[index];
  int target = -1;
  uint32_t soonest = 0;
  int64_t soonest_left = INT64_MAX;
  for (uint32_t way = 0; way < kWays; ++way) {
    const uint64_t word = bucket.ways[way];
    if (is_free(word)) {
      if (target < 0) target = static_cast<int>(way);
      continue;
    }
    if (tag_matches(word, hash) && flow_keys_equal(entries_[index * kWays + way].key, key)) {
      target = static_cast<int>(way);  // the flow's own entry, live or expired
      break;
    }
    const int64_t left = time_left(word, now_ns);
    if (left < soonest_left) {
      soonest_left = left;
      soonest = way;
    }
  }

  if (target < 0) {
    target = static_cast<int>(soonest);
    if (soonest_left <= 0) {
      ++counters_.expired;
    } else {
      ++counters_.evictions;
    }
  } else if (is_free(bucket.ways[target])) {
    ++counters_.entries;
  }

  ++counters_.inserts;
  FlowEntry& entry = entries_[index * kWays + static_cast<uint32_t>(target)];
  entry.key = key;
  entry.flags = 0;
  bucket.ways[target] = make_way(expires_ns, tag_of(hash));
  return &entry;
}

void FlowTable::erase(FlowEntry* entry) {
  uint64_t& way = bucket_of(entry).ways[way_of(entry)];
  if (is_free(way)) return;
  way = 0;
  --counters_.entries;
}

}  // namespace sluice
