#include "sluice/flow_table.h"

#include <bit>

namespace sluice {

FlowTable::FlowTable(uint32_t capacity) {
  const uint32_t size = std::bit_ceil(std::max(capacity, kWays));
  buckets_ = HugePageArray<FlowBucket>(size / kWays);
  entries_ = HugePageArray<FlowEntry>(size);
  bucket_mask_ = size / kWays - 1;
}

FlowEntry* FlowTable::find(const sluice_flow_key& key, uint32_t hash, uint64_t now_ns) {
  const uint32_t index = hash & bucket_mask_;
  FlowBucket& bucket = buckets_[index];
  for (uint32_t way = 0; way < kWays; ++way) {
    if (bucket.expires_ns[way] == 0 || bucket.hashes[way] != hash) continue;
    FlowEntry& entry = entries_[index * kWays + way];
    if (!flow_keys_equal(entry.key, key)) continue;
    if (bucket.expires_ns[way] <= now_ns) {
      ++counters_.expired;
      erase(&entry);
      return nullptr;
    }
    return &entry;
  }
  return nullptr;
}

FlowEntry* FlowTable::insert(const sluice_flow_key& key, uint32_t hash, uint64_t expires_ns,
                             uint64_t now_ns) {
  const uint32_t index = hash & bucket_mask_;
  FlowBucket& bucket = buckets_[index];
  int target = -1;
  uint32_t soonest = 0;
  for (uint32_t way = 0; way < kWays; ++way) {
    const uint64_t expires = bucket.expires_ns[way];
    if (expires != 0 && bucket.hashes[way] == hash &&
        flow_keys_equal(entries_[index * kWays + way].key, key)) {
      target = static_cast<int>(way);  // the flow's own entry, live or expired
      break;
    }
    if (expires == 0 && target < 0) target = static_cast<int>(way);
    if (expires < bucket.expires_ns[soonest]) soonest = way;
  }

  if (target < 0) {
    target = static_cast<int>(soonest);
    if (bucket.expires_ns[soonest] <= now_ns) {
      ++counters_.expired;
    } else {
      ++counters_.evictions;
    }
  } else if (bucket.expires_ns[target] == 0) {
    ++counters_.entries;
  }

  ++counters_.inserts;
  FlowEntry& entry = entries_[index * kWays + static_cast<uint32_t>(target)];
  entry.key = key;
  entry.flags = 0;
  bucket.hashes[target] = hash;
  bucket.expires_ns[target] = expires_ns;
  return &entry;
}

void FlowTable::erase(FlowEntry* entry) {
  uint64_t& expires = bucket_of(entry).expires_ns[way_of(entry)];
  if (expires == 0) return;
  expires = 0;
  --counters_.entries;
}

}  // namespace sluice
