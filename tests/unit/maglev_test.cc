// Maglev table builder: balance, disruption on removal, independence from input order,
// weights and the input checks.
#include <algorithm>
#include <cstring>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/maglev.h"
#include "test_frames.h"

namespace sluice::test {
namespace {

constexpr uint32_t kSize = SLUICE_MAGLEV_DEFAULT_SIZE;  // 65537

// Backend i is 2001:db8:1::(i + 1) with id i. IPv6 gives room for thousands of backends
// inside the documentation prefix.
IpAddress backend_address(uint32_t i) {
  const uint32_t host = i + 1;
  Ipv6 bytes{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0,
             static_cast<uint8_t>(host >> 24), static_cast<uint8_t>(host >> 16),
             static_cast<uint8_t>(host >> 8), static_cast<uint8_t>(host)};
  return address6(bytes);
}

std::vector<MaglevBackend> equal_backends(uint32_t count) {
  std::vector<MaglevBackend> backends;
  for (uint32_t i = 0; i < count; ++i) backends.push_back({backend_address(i), 1, i});
  return backends;
}

MaglevTable build_or_fail(std::span<const MaglevBackend> backends, uint32_t size,
                          std::span<const uint32_t> previous = {}) {
  Result<MaglevTable> table = build_maglev_table(backends, size, previous);
  EXPECT_TRUE(table.ok()) << table.error();
  return table.ok() ? std::move(table).value() : MaglevTable{};
}

// Counts the table entries that hold each id in [0, ids).
std::vector<uint32_t> count_entries(const MaglevTable& table, uint32_t ids) {
  std::vector<uint32_t> counts(ids, 0);
  for (uint32_t entry : table.entries) {
    if (entry < ids) ++counts[entry];
  }
  return counts;
}

uint32_t slots_of(const MaglevTable& table, uint32_t id) {
  for (const MaglevSlotCount& count : table.slot_counts) {
    if (count.id == id) return count.slots;
  }
  ADD_FAILURE() << "no slot count for id " << id;
  return 0;
}

TEST(Maglev, BalanceThousandBackends) {
  const uint32_t count = 1000;
  const MaglevTable table = build_or_fail(equal_backends(count), kSize);
  ASSERT_EQ(table.entries.size(), kSize);

  const double mean = static_cast<double>(kSize) / count;
  const std::vector<uint32_t> counts = count_entries(table, count);
  for (uint32_t id = 0; id < count; ++id) {
    EXPECT_NEAR(counts[id], mean, mean * 0.01) << "backend " << id;
  }
  EXPECT_EQ(std::count(table.entries.begin(), table.entries.end(), kMaglevEmpty), 0);
}

TEST(Maglev, RemovalDisruptsFewOtherSlots) {
  const uint32_t count = 100;
  const std::vector<MaglevBackend> all = equal_backends(count);
  const MaglevTable before = build_or_fail(all, kSize);

  for (uint32_t removed : {0u, 37u, 99u}) {
    std::vector<MaglevBackend> remaining;
    for (const MaglevBackend& backend : all) {
      if (backend.id != removed) remaining.push_back(backend);
    }
    const MaglevTable after = build_or_fail(remaining, kSize, before.entries);

    uint32_t moved_from_others = 0;
    for (uint32_t slot = 0; slot < kSize; ++slot) {
      if (before.entries[slot] != removed && after.entries[slot] != before.entries[slot]) {
        ++moved_from_others;
      }
      EXPECT_NE(after.entries[slot], removed) << "slot " << slot;
    }
    // Maglev promises only a small disruption, not zero: refilling the removed backend's
    // ~655 slots shifts where later turns land. Over 60 removals from other backend sets the
    // measured count was 369 on average and at most 415 (0.63% of M). A table indexed by
    // hash % N or by input position moves most of the 65537 slots, far above this bound.
    EXPECT_LE(moved_from_others, kSize / 100) << "removed backend " << removed;
  }
}

TEST(Maglev, InputOrderDoesNotMatter) {
  std::vector<MaglevBackend> backends = equal_backends(300);
  backends[5].weight = 3;
  backends[17].weight = 0;
  const MaglevTable reference = build_or_fail(backends, kSize);

  std::mt19937 random(12345);
  for (int round = 0; round < 5; ++round) {
    std::shuffle(backends.begin(), backends.end(), random);
    const MaglevTable shuffled = build_or_fail(backends, kSize);
    ASSERT_EQ(shuffled.entries.size(), reference.entries.size());
    EXPECT_EQ(0, std::memcmp(shuffled.entries.data(), reference.entries.data(),
                             reference.entries.size() * sizeof(uint32_t)))
        << "round " << round;
    ASSERT_EQ(shuffled.slot_counts.size(), reference.slot_counts.size());
    for (size_t i = 0; i < reference.slot_counts.size(); ++i) {
      EXPECT_EQ(shuffled.slot_counts[i].id, reference.slot_counts[i].id) << "round " << round;
      EXPECT_EQ(shuffled.slot_counts[i].slots, reference.slot_counts[i].slots);
    }
  }
}

TEST(Maglev, WeightRatioOneToTen) {
  const std::vector<MaglevBackend> pair{{backend_address(0), 1, 0}, {backend_address(1), 10, 1}};
  const MaglevTable table = build_or_fail(pair, kSize);
  const double ratio = static_cast<double>(slots_of(table, 1)) / slots_of(table, 0);
  EXPECT_NEAR(ratio, 10.0, 0.1);
}

TEST(Maglev, WeightRatioManyBackends) {
  // 50 backends of weight 1 and 50 of weight 10.
  std::vector<MaglevBackend> backends = equal_backends(100);
  for (uint32_t i = 50; i < 100; ++i) backends[i].weight = 10;
  const MaglevTable table = build_or_fail(backends, kSize);

  const std::vector<uint32_t> counts = count_entries(table, 100);
  const uint64_t light = std::accumulate(counts.begin(), counts.begin() + 50, uint64_t{0});
  const uint64_t heavy = std::accumulate(counts.begin() + 50, counts.end(), uint64_t{0});
  EXPECT_NEAR(static_cast<double>(heavy) / light, 10.0, 0.1);

  // Backends of one weight differ by at most one slot.
  const auto [light_min, light_max] = std::minmax_element(counts.begin(), counts.begin() + 50);
  const auto [heavy_min, heavy_max] = std::minmax_element(counts.begin() + 50, counts.end());
  EXPECT_LE(*light_max - *light_min, 1u);
  EXPECT_LE(*heavy_max - *heavy_min, 1u);
}

TEST(Maglev, ZeroWeightGetsNoSlots) {
  std::vector<MaglevBackend> backends = equal_backends(10);
  backends[4].weight = 0;
  const MaglevTable table = build_or_fail(backends, kSize);

  EXPECT_EQ(std::count(table.entries.begin(), table.entries.end(), 4u), 0);
  EXPECT_EQ(slots_of(table, 4), 0u);
  EXPECT_EQ(table.slot_counts.size(), 10u);
  EXPECT_EQ(std::count(table.entries.begin(), table.entries.end(), kMaglevEmpty), 0);
}

TEST(Maglev, AllZeroWeightsLeaveTableEmpty) {
  std::vector<MaglevBackend> backends = equal_backends(3);
  for (MaglevBackend& backend : backends) backend.weight = 0;
  const MaglevTable table = build_or_fail(backends, 7);
  EXPECT_EQ(table.entries, std::vector<uint32_t>(7, kMaglevEmpty));

  const MaglevTable no_backends = build_or_fail({}, 7);
  EXPECT_EQ(no_backends.entries, std::vector<uint32_t>(7, kMaglevEmpty));
  EXPECT_TRUE(no_backends.slot_counts.empty());
}

TEST(Maglev, RejectsSize65536) {
  const Result<MaglevTable> table = build_maglev_table(equal_backends(3), 65536);
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.error().find("65536"), std::string::npos) << table.error();
}

TEST(Maglev, ValidSizes) {
  EXPECT_TRUE(is_valid_maglev_size(7));
  EXPECT_TRUE(is_valid_maglev_size(65537));
  EXPECT_TRUE(is_valid_maglev_size(655373));
  EXPECT_TRUE(is_valid_maglev_size(SLUICE_MAGLEV_MAX_SIZE));
  EXPECT_FALSE(is_valid_maglev_size(0));
  EXPECT_FALSE(is_valid_maglev_size(2));
  EXPECT_FALSE(is_valid_maglev_size(5));  // prime, but below the minimum
  EXPECT_FALSE(is_valid_maglev_size(49));
  EXPECT_FALSE(is_valid_maglev_size(65535));
  EXPECT_FALSE(is_valid_maglev_size(65536));
  EXPECT_FALSE(is_valid_maglev_size(16777259));  // prime, but above the maximum
}

TEST(Maglev, RejectsMoreBackendsThanSlots) {
  const Result<MaglevTable> table = build_maglev_table(equal_backends(8), 7);
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.error().find("8 backends"), std::string::npos) << table.error();

  const MaglevTable full = build_or_fail(equal_backends(7), 7);
  EXPECT_EQ(count_entries(full, 7), std::vector<uint32_t>(7, 1));
}

TEST(Maglev, RejectsDuplicateAddress) {
  std::vector<MaglevBackend> backends = equal_backends(3);
  backends[2].address = backends[0].address;
  const Result<MaglevTable> table = build_maglev_table(backends, 7);
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.error().find(backends[0].address.to_string()), std::string::npos)
      << table.error();
}

TEST(Maglev, ChangedSlotsMatchesDiff) {
  std::vector<MaglevBackend> backends = equal_backends(100);
  const MaglevTable before = build_or_fail(backends, kSize);
  EXPECT_EQ(before.changed_slots, kSize) << "a first build changes every slot";

  backends.erase(backends.begin() + 42);
  backends[10].weight = 4;
  const MaglevTable after = build_or_fail(backends, kSize, before.entries);
  uint32_t differing = 0;
  for (uint32_t slot = 0; slot < kSize; ++slot) {
    if (before.entries[slot] != after.entries[slot]) ++differing;
  }
  EXPECT_EQ(after.changed_slots, differing);
  EXPECT_GT(differing, 0u);

  const MaglevTable same = build_or_fail(backends, kSize, after.entries);
  EXPECT_EQ(same.changed_slots, 0u);

  const std::vector<uint32_t> other_size(7, 0);
  const MaglevTable resized = build_or_fail(backends, kSize, other_size);
  EXPECT_EQ(resized.changed_slots, kSize);
}

TEST(Maglev, SlotCountsSumToSize) {
  std::vector<MaglevBackend> backends = equal_backends(37);
  backends[3].weight = 5;
  backends[9].weight = 0;
  backends[20].weight = 2;
  for (uint32_t size : {kSize, 655373u}) {
    const MaglevTable table = build_or_fail(backends, size);
    uint64_t sum = 0;
    for (const MaglevSlotCount& count : table.slot_counts) sum += count.slots;
    EXPECT_EQ(sum, size);

    const std::vector<uint32_t> counts = count_entries(table, 37);
    for (const MaglevSlotCount& count : table.slot_counts) {
      EXPECT_EQ(count.slots, counts[count.id]) << "backend " << count.id;
    }
  }
}

}  // namespace
}  // namespace sluice::test
