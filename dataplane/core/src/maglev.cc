#include "sluice/maglev.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "sluice/dataplane_abi.h"
#include "sluice/flow_hash.h"

namespace sluice {
namespace {

// A live backend's place in its permutation. Each permutation step is computed when it is
// needed, so a build keeps O(N) state instead of the N x M permutation array of the Maglev paper
// (Eisenbud et al., NSDI 2016, section 3.4).
struct Cursor {
  uint32_t id;
  uint64_t weight;
  uint32_t position;  // the next permutation entry to try: (offset + j * skip) mod M
  uint32_t skip;
  uint64_t next_turn;  // the backend takes a turn once iteration * weight reaches this
  uint32_t slots;
};

void hash_identity(const IpAddress& address, uint32_t words[4]) {
  std::memcpy(words, address.bytes.data(), 16);
}

}  // namespace

bool is_valid_maglev_size(uint64_t size) {
  if (size < SLUICE_MAGLEV_MIN_SIZE || size > SLUICE_MAGLEV_MAX_SIZE) return false;
  if (size % 2 == 0) return false;
  for (uint64_t divisor = 3; divisor * divisor <= size; divisor += 2) {
    if (size % divisor == 0) return false;
  }
  return true;
}

Result<MaglevTable> build_maglev_table(std::span<const MaglevBackend> backends, uint32_t size,
                                       std::span<const uint32_t> previous) {
  if (!is_valid_maglev_size(size)) {
    return Error{"table size " + std::to_string(size) + " is not a prime between " +
                 std::to_string(SLUICE_MAGLEV_MIN_SIZE) + " and " +
                 std::to_string(SLUICE_MAGLEV_MAX_SIZE) + " (the default is 65537)"};
  }
  if (backends.size() > size) {
    return Error{std::to_string(backends.size()) + " backends do not fit a table of " +
                 std::to_string(size) + " slots (use a larger prime table size)"};
  }

  // Sorting by identity makes the table independent of the order backends were added in, so
  // every load balancer with the same backends builds the same table.
  std::vector<MaglevBackend> sorted(backends.begin(), backends.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const MaglevBackend& a, const MaglevBackend& b) { return a.address < b.address; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i].address == sorted[i - 1].address) {
      return Error{"backend " + sorted[i].address.to_string() + " is listed twice"};
    }
  }

  MaglevTable table;
  table.entries.assign(size, kMaglevEmpty);
  std::vector<Cursor> cursors;
  uint64_t max_weight = 0;
  for (const MaglevBackend& backend : sorted) {
    table.slot_counts.push_back({backend.id, 0});
    if (backend.weight == 0) continue;

    uint32_t words[4];
    hash_identity(backend.address, words);
    const uint32_t h1 = sluice_hash_words4(words, SLUICE_MAGLEV_OFFSET_SEED + backend.address.family);
    const uint32_t h2 = sluice_hash_words4(words, SLUICE_MAGLEV_SKIP_SEED + backend.address.family);
    cursors.push_back({backend.id, backend.weight, h1 % size, h2 % (size - 1) + 1, 0, 0});
    max_weight = std::max<uint64_t>(max_weight, backend.weight);
  }

  // Weighted turns: in iteration i, a backend of weight w takes a turn once i * w has caught
  // up with its next turn, which then moves on by the largest weight. The heaviest backend
  // takes a turn every iteration, and a backend of weight w one per max/w iterations, so
  // slot counts follow the weights with no normalisation by the user. Every turn fills
  // exactly one slot.
  uint32_t filled = 0;
  for (uint64_t iteration = 1; filled < size && !cursors.empty(); ++iteration) {
    for (Cursor& cursor : cursors) {
      if (iteration * cursor.weight < cursor.next_turn) continue;
      cursor.next_turn += max_weight;

      uint32_t position = cursor.position;
      while (table.entries[position] != kMaglevEmpty) {
        position += cursor.skip;
        if (position >= size) position -= size;
      }
      table.entries[position] = cursor.id;
      ++cursor.slots;
      position += cursor.skip;
      if (position >= size) position -= size;
      cursor.position = position;

      if (++filled == size) break;
    }
  }

  size_t live = 0;
  for (MaglevSlotCount& count : table.slot_counts) {
    if (live < cursors.size() && cursors[live].id == count.id) {
      count.slots = cursors[live++].slots;
    }
  }

  if (previous.size() == size) {
    for (uint32_t i = 0; i < size; ++i) {
      if (table.entries[i] != previous[i]) ++table.changed_slots;
    }
  } else {
    table.changed_slots = size;
  }
  return table;
}

}  // namespace sluice
