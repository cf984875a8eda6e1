// SnapshotBuilder: stable slots across builds, and a failed build that leaves the builder's
// state as it was.
#include "sluice/control/snapshot_builder.h"

#include <gtest/gtest.h>

#include "sluice/packet.h"

namespace sluice::control {
namespace {

IpAddress address(const char* text) { return *IpAddress::parse(text); }

Config config_with_backends(std::initializer_list<const char*> backends, uint32_t table_size = 65537) {
  Config config;
  config.source_ipv4 = address("198.51.100.2");
  VipConfig vip;
  vip.key = {address("203.0.113.10"), 80, kProtocolTcp};
  vip.table_size = table_size;
  for (const char* backend : backends) vip.backends.push_back({address(backend), 1});
  config.vips.push_back(vip);
  return config;
}

const MacAddress kNextHop{{0x02, 0, 0, 0, 0, 0x01}};

// Returns the slot of the backend at `text`, or -1. A slot in state kRemoved does not count.
int slot_of(const Snapshot& snapshot, const char* text) {
  for (size_t i = 0; i < snapshot.backends.size(); ++i) {
    if (snapshot.backends[i].state != BackendState::kRemoved &&
        snapshot.backends[i].address == address(text)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

TEST(SnapshotBuilder, FirstBuildFillsTable) {
  SnapshotBuilder builder;
  std::vector<VipBuildReport> report;
  auto snapshot = builder.build(config_with_backends({"198.51.100.130", "198.51.100.131"}),
                                kNextHop, &report);
  ASSERT_TRUE(snapshot.ok()) << snapshot.error();
  EXPECT_EQ((*snapshot)->generation, 1u);
  ASSERT_EQ((*snapshot)->vips.size(), 1u);
  EXPECT_EQ((*snapshot)->vips[0].maglev.size(), 65537u);
  ASSERT_EQ(report.size(), 1u);
  EXPECT_EQ(report[0].changed_slots, 65537u);
  EXPECT_EQ(report[0].slots_per_backend.size(), 2u);
}

TEST(SnapshotBuilder, KeepsSlotsOfRemainingBackends) {
  SnapshotBuilder builder;
  auto first = builder.build(config_with_backends({"198.51.100.130", "198.51.100.131"}), kNextHop);
  ASSERT_TRUE(first.ok()) << first.error();
  auto second = builder.build(
      config_with_backends({"198.51.100.131", "198.51.100.132"}), kNextHop);
  ASSERT_TRUE(second.ok()) << second.error();

  const int before = slot_of(**first, "198.51.100.131");
  ASSERT_GE(before, 0);
  EXPECT_EQ(slot_of(**second, "198.51.100.131"), before);
  EXPECT_EQ((*first)->backends[before].uid, (*second)->backends[before].uid);
  EXPECT_EQ(slot_of(**second, "198.51.100.130"), -1);
}

TEST(SnapshotBuilder, ReusedSlotGetsNewUid) {
  SnapshotBuilder builder;
  auto first = builder.build(config_with_backends({"198.51.100.130"}), kNextHop);
  ASSERT_TRUE(first.ok());
  // The slot that 198.51.100.130 frees rests for one build, then 198.51.100.141 takes it.
  ASSERT_TRUE(builder.build(config_with_backends({"198.51.100.140"}), kNextHop).ok());
  auto third = builder.build(config_with_backends({"198.51.100.140", "198.51.100.141"}), kNextHop);
  ASSERT_TRUE(third.ok());
  const uint32_t slot = (*first)->vips[0].maglev[0];
  EXPECT_EQ((*third)->backends[slot].address, address("198.51.100.141"));
  EXPECT_NE((*first)->backends[slot].uid, (*third)->backends[slot].uid);
  EXPECT_FALSE((*third)->backend_accepts_flow(slot, (*first)->backends[slot].uid));
}

// Two VIPs: 203.0.113.10:80/tcp with `first`, 203.0.113.11:80/tcp with `second`.
Config config_with_two_vips(std::initializer_list<const char*> first,
                            std::initializer_list<const char*> second) {
  Config config = config_with_backends(first, 1021);
  VipConfig vip;
  vip.key = {address("203.0.113.11"), 80, kProtocolTcp};
  vip.table_size = 1021;
  for (const char* backend : second) vip.backends.push_back({address(backend), 1});
  config.vips.push_back(vip);
  return config;
}

TEST(SnapshotBuilder, FreedSlotRestsForOneBuild) {
  SnapshotBuilder builder;
  auto first = builder.build(config_with_two_vips({"198.51.100.130", "198.51.100.131"},
                                                  {"198.51.100.140"}), kNextHop);
  ASSERT_TRUE(first.ok()) << first.error();
  const int freed = slot_of(**first, "198.51.100.130");
  ASSERT_GE(freed, 0);
  const BackendSlot removed = (*first)->backends[freed];

  // One change moves a backend from the first VIP to the second. An XDP table of the first
  // VIP may still name the freed slot while this snapshot is written, so the new backend of
  // the second VIP must not get it.
  auto second = builder.build(config_with_two_vips({"198.51.100.131"},
                                                   {"198.51.100.140", "198.51.100.141"}), kNextHop);
  ASSERT_TRUE(second.ok()) << second.error();
  EXPECT_NE(slot_of(**second, "198.51.100.141"), freed);
  const BackendSlot& resting = (*second)->backends[freed];
  EXPECT_EQ(resting.state, BackendState::kRemoved);
  EXPECT_EQ(resting.address, address("198.51.100.130"));
  EXPECT_EQ(resting.uid, removed.uid);
  EXPECT_EQ(resting.vip_slot, removed.vip_slot);
  EXPECT_FALSE((*second)->backend_accepts_flow(static_cast<uint32_t>(freed), removed.uid));
  for (uint32_t slot : (*second)->vips[0].maglev) EXPECT_NE(slot, static_cast<uint32_t>(freed));

  // The build after that may give it away.
  auto third = builder.build(config_with_two_vips({"198.51.100.131"},
                                                  {"198.51.100.140", "198.51.100.141", "198.51.100.142"}),
                             kNextHop);
  ASSERT_TRUE(third.ok()) << third.error();
  EXPECT_EQ(slot_of(**third, "198.51.100.142"), freed);
  EXPECT_NE((*third)->backends[freed].uid, removed.uid);
}

TEST(SnapshotBuilder, FreedVipSlotRestsForOneBuild) {
  SnapshotBuilder builder;
  auto first = builder.build(config_with_backends({"198.51.100.130"}), kNextHop);
  ASSERT_TRUE(first.ok()) << first.error();
  Config replaced = config_with_backends({"198.51.100.130"});
  replaced.vips[0].key.address = address("203.0.113.12");
  auto second = builder.build(replaced, kNextHop);
  ASSERT_TRUE(second.ok()) << second.error();
  EXPECT_NE((*second)->vips[0].slot, (*first)->vips[0].slot);
}

TEST(SnapshotBuilder, FullSlotsTakeRestingSlots) {
  // Every backend slot in use, then every backend replaced in one build: without a free
  // slot, the new backends take the slots that rest. 64 VIPs of 256 backends each fill the
  // SLUICE_MAX_BACKENDS slots with small Maglev tables.
  constexpr uint32_t kVips = 64;
  constexpr uint32_t kBackendsPerVip = SLUICE_MAX_BACKENDS / kVips;
  const auto config_of = [](uint32_t first_backend) {
    Config config;
    config.source_ipv6 = address("2001:db8:100::2");
    for (uint32_t v = 0; v < kVips; ++v) {
      VipConfig vip;
      vip.key = {address("2001:db8::10"), static_cast<uint16_t>(1000 + v), kProtocolTcp};
      vip.table_size = 257;  // the smallest prime above kBackendsPerVip
      for (uint32_t i = 0; i < kBackendsPerVip; ++i) {
        IpAddress backend = address("2001:db8:1::");
        const uint32_t number = first_backend + v * kBackendsPerVip + i;
        backend.bytes[13] = static_cast<uint8_t>(number >> 16);
        backend.bytes[14] = static_cast<uint8_t>(number >> 8);
        backend.bytes[15] = static_cast<uint8_t>(number);
        vip.backends.push_back({backend, 1});
      }
      config.vips.push_back(vip);
    }
    return config;
  };

  SnapshotBuilder builder;
  auto full = builder.build(config_of(0), kNextHop);
  ASSERT_TRUE(full.ok()) << full.error();
  ASSERT_EQ((*full)->backends.size(), static_cast<size_t>(SLUICE_MAX_BACKENDS));

  auto replaced = builder.build(config_of(SLUICE_MAX_BACKENDS), kNextHop);
  ASSERT_TRUE(replaced.ok()) << replaced.error();
  EXPECT_EQ((*replaced)->backends.size(), static_cast<size_t>(SLUICE_MAX_BACKENDS));
}

TEST(SnapshotBuilder, RejectedBuildKeepsPreviousState) {
  SnapshotBuilder builder;
  const Config good = config_with_backends({"198.51.100.130", "198.51.100.131"});
  auto first = builder.build(good, kNextHop);
  ASSERT_TRUE(first.ok()) << first.error();

  auto rejected = builder.build(config_with_backends({"198.51.100.130"}, 65536), kNextHop);
  ASSERT_FALSE(rejected.ok());
  EXPECT_NE(rejected.error().find("65536"), std::string::npos) << rejected.error();

  // The same config as the first build: the previous table is still the reference, so no
  // slot changes and the generation moves on by one.
  std::vector<VipBuildReport> report;
  auto again = builder.build(good, kNextHop, &report);
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ((*again)->generation, 2u);
  ASSERT_EQ(report.size(), 1u);
  EXPECT_EQ(report[0].changed_slots, 0u);
  EXPECT_EQ((*again)->vips[0].maglev, (*first)->vips[0].maglev);
}

TEST(SnapshotBuilder, DrainedBackendKeepsFlows) {
  SnapshotBuilder builder;
  Config config = config_with_backends({"198.51.100.130", "198.51.100.131"});
  config.vips[0].backends[1].weight = 0;
  std::vector<VipBuildReport> report;
  auto snapshot = builder.build(config, kNextHop, &report);
  ASSERT_TRUE(snapshot.ok());
  for (const auto& [backend, slots] : report[0].slots_per_backend) {
    if (backend == address("198.51.100.131")) {
      EXPECT_EQ(slots, 0u);
    } else {
      EXPECT_EQ(slots, 65537u);
    }
  }
  for (size_t slot = 0; slot < (*snapshot)->backends.size(); ++slot) {
    const BackendSlot& backend = (*snapshot)->backends[slot];
    if (backend.address == address("198.51.100.131")) {
      EXPECT_EQ(backend.state, BackendState::kDrained);
      EXPECT_TRUE((*snapshot)->backend_accepts_flow(static_cast<uint32_t>(slot), backend.uid));
    }
  }
}

}  // namespace
}  // namespace sluice::control
