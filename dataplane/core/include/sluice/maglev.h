// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
// Load Balancer", NSDI 2016, section 3.4), with integer weights.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sluice/ip_address.h"
#include "sluice/result.h"

namespace sluice {

struct MaglevBackend {
  IpAddress address;    // the identity that the permutation is hashed from
  uint32_t weight = 1;  // 0 takes no slots
  uint32_t id = 0;      // the value written into the table (a backend slot)
};

struct MaglevSlotCount {
  uint32_t id = 0;
  uint32_t slots = 0;
};

struct MaglevTable {
  std::vector<uint32_t> entries;             // size M; kMaglevEmpty when no backend has weight
  std::vector<MaglevSlotCount> slot_counts;  // one per input backend, in identity order
  uint32_t changed_slots = 0;                // entries that differ from the previous table
};

inline constexpr uint32_t kMaglevEmpty = UINT32_MAX;

// Returns whether `size` is a table size the builder accepts (a prime in range).
bool is_valid_maglev_size(uint64_t size);

// Builds a table of `size` entries. Backends are sorted by address first, so the result does
// not depend on the input order, and two load balancers with the same backends build the same
// table. `previous` (empty for a first build) only feeds `changed_slots`. Fails when the size is
// not a prime in [SLUICE_MAGLEV_MIN_SIZE, SLUICE_MAGLEV_MAX_SIZE], when there are more backends
// than slots, or when two backends share an address.
Result<MaglevTable> build_maglev_table(std::span<const MaglevBackend> backends, uint32_t size,
                                       std::span<const uint32_t> previous = {});

}  // namespace sluice
