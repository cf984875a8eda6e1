#include "sluice/flow_table.h"

#include <bit>
#include <cstring>

namespace sluice {

bool flow_keys_equal(const sluice_flow_key& a, const sluice_flow_key& b) {
  // The padding bytes are always zero in keys built by the parser, so a byte comparison of
  // the whole key is exact.
  return std::memcmp(&a, &b, sizeof(sluice_flow_key)) == 0;
}

FlowTable::FlowTable(uint32_t capacity) {
  const uint32_t size = std::bit_ceil(std::max(capacity, kWays));
  entries_.resize(size);
  bucket_mask_ = size / kWays - 1;
}

FlowEntry* FlowTable::find(const sluice_flow_key& key, uint32_t hash, uint64_t now_ns) {
  FlowEntry* bucket = &entries_[bucket_index(hash)];
  for (uint32_t way = 0; way < kWays; ++way) {
    FlowEntry& entry = bucket[way];
    if (entry.expires_ns == 0 || entry.hash != hash || !flow_keys_equal(entry.key, key)) continue;
    if (entry.expires_ns <= now_ns) {
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
  FlowEntry* bucket = &entries_[bucket_index(hash)];
  FlowEntry* target = nullptr;
  FlowEntry* soonest = &bucket[0];
  for (uint32_t way = 0; way < kWays; ++way) {
    FlowEntry& entry = bucket[way];
    if (entry.expires_ns != 0 && entry.hash == hash && flow_keys_equal(entry.key, key)) {
      target = &entry;  // the flow's own entry, live or expired
      break;
    }
    if (entry.expires_ns == 0 && target == nullptr) target = &entry;
    if (entry.expires_ns < soonest->expires_ns) soonest = &entry;
  }

  if (target == nullptr) {
    target = soonest;
    if (target->expires_ns <= now_ns) {
      ++counters_.expired;
    } else {
      ++counters_.evictions;
    }
  } else if (target->expires_ns == 0) {
    ++counters_.entries;
  }

  ++counters_.inserts;
  target->key = key;
  target->hash = hash;
  target->expires_ns = expires_ns;
  target->flags = 0;
  return target;
}

void FlowTable::erase(FlowEntry* entry) {
  if (entry->expires_ns == 0) return;
  entry->expires_ns = 0;
  --counters_.entries;
}

}  // namespace sluice
