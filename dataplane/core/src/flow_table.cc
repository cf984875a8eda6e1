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
                             uint64_t now_ns, Overwrite overwrite) {
  const uint32_t index = hash & bucket_mask_;
  FlowBucket& bucket = buckets_[index];
  uint32_t target = kWays;
  for (uint32_t way = 0; way < kWays; ++way) {
    if (tag_matches(bucket.ways[way], hash) && flow_keys_equal(entries_[index * kWays + way].key, key)) {
      target = way;  // the flow's own entry, live or expired
      break;
    }
  }

  if (target == kWays) {
    target = insert_way(bucket, now_ns);
    const uint64_t word = bucket.ways[target];
    if (is_free(word)) {
      ++counters_.entries;
    } else if (time_left(word, now_ns) <= 0) {
      ++counters_.expired;
    } else if (overwrite == Overwrite::kExpiredOnly) {
      return nullptr;
    } else {
      ++counters_.evictions;
    }
  }

  ++counters_.inserts;
  FlowEntry& entry = entries_[index * kWays + target];
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
