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

  const auto slot_of = [](const Snapshot& snapshot, const char* text) -> int {
    for (size_t i = 0; i < snapshot.backends.size(); ++i) {
      if (snapshot.backends[i].state != BackendState::kRemoved &&
          snapshot.backends[i].address == address(text)) {
        return static_cast<int>(i);
      }
    }
    return -1;
  };
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
  auto second = builder.build(config_with_backends({"198.51.100.140"}), kNextHop);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ((*first)->vips[0].maglev[0], (*second)->vips[0].maglev[0]);
  const uint32_t slot = (*first)->vips[0].maglev[0];
  EXPECT_NE((*first)->backends[slot].uid, (*second)->backends[slot].uid);
  EXPECT_FALSE((*second)->backend_accepts_flow(slot, (*first)->backends[slot].uid));
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
