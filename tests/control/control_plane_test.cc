// ControlPlane with a data plane fake: every change is all or nothing, and what it publishes
// is what the pipeline then does.
#include "sluice/control/control_plane.h"

#include <gtest/gtest.h>

#include "sluice/maglev.h"
#include "sluice/packet.h"
#include "sluice/pipeline.h"

namespace sluice::control {
namespace {

IpAddress address(const char* text) { return *IpAddress::parse(text); }

// A data plane fake that records every published snapshot, and rejects them while `reject`
// is set.
class FakeDriver final : public DataplaneDriver {
 public:
  std::string_view name() const override { return "fake"; }
  Status publish(std::shared_ptr<const Snapshot> snapshot) override {
    if (reject) {
      rejected.push_back(std::move(snapshot));
      return Error{"rejected by the fake"};
    }
    published.push_back(std::move(snapshot));
    return {};
  }
  Status start() override { return {}; }
  void stop() override {}
  PipelineTotals totals() const override { return {}; }
  std::string neighbor_interface() const override { return "lo"; }

  bool reject = false;
  std::vector<std::shared_ptr<const Snapshot>> published;
  std::vector<std::shared_ptr<const Snapshot>> rejected;
};

Config base_config() {
  Config config;
  config.source_ipv4 = address("198.51.100.2");
  config.next_hop.mac = MacAddress{{0x02, 0, 0, 0, 0, 0x01}};
  VipConfig vip;
  vip.key = *parse_vip_key("203.0.113.10:80/tcp");
  vip.table_size = 251;
  vip.backends = {{address("198.51.100.130"), 1}, {address("198.51.100.131"), 1}};
  vip.health_check = health::HealthCheckSpec{};  // TCP to port 80
  config.vips.push_back(vip);
  return config;
}

struct Fixture : ::testing::Test {
  void SetUp() override {
    auto owned = std::make_unique<FakeDriver>();
    driver = owned.get();
    control = std::make_unique<ControlPlane>(base_config(), "/nonexistent.yaml", std::move(owned));
    ASSERT_TRUE(control->start().ok());
    control->set_backend_healthy(vip, address("198.51.100.130"), true);
    control->set_backend_healthy(vip, address("198.51.100.131"), true);
  }

  const Snapshot& last() const { return *driver->published.back(); }

  FakeDriver* driver = nullptr;
  std::unique_ptr<ControlPlane> control;
  const VipKey vip = *parse_vip_key("203.0.113.10:80/tcp");
};

TEST_F(Fixture, IdenticalApplyKeepsGeneration) {
  const uint64_t generation = control->generation();
  const size_t published = driver->published.size();
  auto result = control->apply(base_config());
  ASSERT_TRUE(result.ok()) << result.error();
  EXPECT_FALSE(result->changed);
  EXPECT_EQ(result->generation, generation);
  EXPECT_EQ(driver->published.size(), published);
}

TEST_F(Fixture, NewBackendServesAfterPassing) {
  ASSERT_TRUE(control->add_backend(vip, {address("198.51.100.132"), 1}).ok());
  for (uint32_t slot : last().vips[0].maglev) {
    EXPECT_NE(last().backends[slot].address, address("198.51.100.132"));
  }
  control->set_backend_healthy(vip, address("198.51.100.132"), true);
  bool serving = false;
  for (uint32_t slot : last().vips[0].maglev) {
    serving = serving || last().backends[slot].address == address("198.51.100.132");
  }
  EXPECT_TRUE(serving);
}

TEST_F(Fixture, DownBackendStaysDownAcrossReload) {
  control->set_backend_healthy(vip, address("198.51.100.130"), false);
  Config changed = base_config();
  changed.seed = 7;
  ASSERT_TRUE(control->apply(changed).ok());
  for (uint32_t slot : last().vips[0].maglev) {
    EXPECT_EQ(last().backends[slot].address, address("198.51.100.131"));
  }
}

TEST_F(Fixture, AllDownDropPolicyDrops) {
  Config changed = base_config();
  changed.vips[0].all_down = AllDownPolicy::kDrop;
  ASSERT_TRUE(control->apply(changed).ok());
  control->set_backend_healthy(vip, address("198.51.100.130"), false);
  control->set_backend_healthy(vip, address("198.51.100.131"), false);
  for (uint32_t slot : last().vips[0].maglev) EXPECT_EQ(slot, kMaglevEmpty);
  EXPECT_EQ(control->stats()["alerts"]["all_backends_down"], 1);
}

TEST_F(Fixture, ConfigListenerSeesChange) {
  std::vector<Config> seen;
  control->set_config_listener([&seen](const Config& config) { seen.push_back(config); });
  ASSERT_TRUE(control->set_weight(vip, address("198.51.100.130"), 3).ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].vips[0].backends[0].weight, 3u);
  ASSERT_FALSE(control->set_weight(vip, address("198.51.100.199"), 3).ok());
  EXPECT_EQ(seen.size(), 1u);
}

TEST_F(Fixture, InvalidChangeKeepsState) {
  const uint64_t generation = control->generation();
  const size_t published = driver->published.size();
  Config broken = base_config();
  broken.vips.push_back(broken.vips[0]);
  ASSERT_FALSE(control->apply(broken).ok());
  EXPECT_EQ(control->config(), base_config());
  EXPECT_EQ(control->generation(), generation);
  EXPECT_EQ(driver->published.size(), published);
}

TEST_F(Fixture, DryRunPublishesNothing) {
  const size_t published = driver->published.size();
  Config changed = base_config();
  changed.vips[0].backends.pop_back();
  auto result = control->apply(changed, true);
  ASSERT_TRUE(result.ok()) << result.error();
  EXPECT_TRUE(result->changed);
  EXPECT_EQ(driver->published.size(), published);
  EXPECT_EQ(control->config(), base_config());
  auto same = control->apply(base_config(), true);
  ASSERT_TRUE(same.ok()) << same.error();
  EXPECT_FALSE(same->changed);
}

TEST_F(Fixture, RejectedPublishKeepsState) {
  driver->reject = true;
  auto result = control->set_weight(vip, address("198.51.100.130"), 5);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().find("rejected by the fake"), std::string::npos);
  EXPECT_EQ(control->config(), base_config());
}

TEST_F(Fixture, RejectedPublishKeepsBuilderState) {
  // The rejected snapshot must not advance the generation or take backend slots: the next
  // accepted change follows the running snapshot directly.
  const uint64_t generation = control->generation();
  const uint32_t backend_slots = static_cast<uint32_t>(last().backends.size());
  driver->reject = true;
  ASSERT_FALSE(control->add_backend(vip, {address("198.51.100.140"), 1}).ok());
  driver->reject = false;
  ASSERT_TRUE(control->add_backend(vip, {address("198.51.100.141"), 1}).ok());
  EXPECT_EQ(last().generation, generation + 1);
  EXPECT_EQ(last().backends.size(), backend_slots + 1) << "the rejected backend's slot stays free";
}

TEST_F(Fixture, RejectedPublishUidsNotReused) {
  // A data plane may have applied part of a snapshot before it rejected it, and flow entries
  // made meanwhile name its slots and uids. The next snapshot may reuse the slot, but a
  // backend there needs a uid of its own, or those entries would accept it.
  driver->reject = true;
  ASSERT_FALSE(control->add_backend(vip, {address("198.51.100.140"), 1}).ok());
  driver->reject = false;
  ASSERT_TRUE(control->add_backend(vip, {address("198.51.100.141"), 1}).ok());
  ASSERT_EQ(driver->rejected.size(), 1u);
  const Snapshot& rejected = *driver->rejected.back();
  const Snapshot& accepted = last();
  ASSERT_EQ(rejected.backends.size(), accepted.backends.size()) << "the same slot is reused";
  const size_t slot = accepted.backends.size() - 1;
  EXPECT_EQ(rejected.backends[slot].address, address("198.51.100.140"));
  EXPECT_EQ(accepted.backends[slot].address, address("198.51.100.141"));
  EXPECT_NE(accepted.backends[slot].uid, rejected.backends[slot].uid);
  for (size_t other = 0; other < slot; ++other) {
    EXPECT_EQ(accepted.backends[other].uid, rejected.backends[other].uid) << "slot " << other;
  }
}

TEST_F(Fixture, AddVipTwiceRejected) {
  VipConfig again = base_config().vips[0];
  auto result = control->add_vip(again);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().find("already exists"), std::string::npos) << result.error();
}

TEST_F(Fixture, BackendAddAndRemove) {
  ASSERT_TRUE(control->add_backend(vip, {address("198.51.100.132"), 1}).ok());
  EXPECT_EQ(control->config().vips[0].backends.size(), 3u);
  EXPECT_FALSE(control->add_backend(vip, {address("198.51.100.132"), 1}).ok());
  EXPECT_FALSE(control->add_backend(vip, {address("2001:db8::1"), 1}).ok());
  ASSERT_TRUE(control->remove_backend(vip, address("198.51.100.132")).ok());
  EXPECT_EQ(control->config(), base_config());
  auto missing = control->remove_backend(vip, address("198.51.100.199"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("not found"), std::string::npos);
}

TEST_F(Fixture, DrainedBackendLeavesTable) {
  ASSERT_TRUE(control->set_weight(vip, address("198.51.100.131"), 0).ok());
  for (const VipStatus& status : control->vips()) {
    for (const BackendStatus& backend : status.backends) {
      if (backend.address == address("198.51.100.131")) {
        EXPECT_EQ(backend.state, "drained");
        EXPECT_EQ(backend.slots, 0u);
      }
    }
  }
}

TEST_F(Fixture, DownBackendLeavesTable) {
  control->set_backend_healthy(vip, address("198.51.100.130"), false);
  for (uint32_t slot : last().vips[0].maglev) {
    EXPECT_EQ(last().backends[slot].address, address("198.51.100.131"));
  }
  control->set_backend_healthy(vip, address("198.51.100.130"), true);
  bool back = false;
  for (uint32_t slot : last().vips[0].maglev) back = back || last().backends[slot].address == address("198.51.100.130");
  EXPECT_TRUE(back);
}

TEST_F(Fixture, AllDownKeepsForwarding) {
  control->set_backend_healthy(vip, address("198.51.100.130"), false);
  control->set_backend_healthy(vip, address("198.51.100.131"), false);
  int first = 0;
  for (uint32_t slot : last().vips[0].maglev) first += last().backends[slot].address == address("198.51.100.130");
  EXPECT_GT(first, 0);
  EXPECT_LT(first, 251);
}

// Checks that lookup() names the backend the pipeline picks for SYNs from 192.0.2.7.
void expect_lookup_matches_pipeline(ControlPlane& control, const Snapshot& snapshot, const VipKey& vip) {
  Pipeline pipeline(1024);
  for (uint16_t port = 40000; port < 40032; ++port) {
    // A TCP SYN from 192.0.2.7:port to the VIP, built byte by byte.
    uint8_t frame[128 + 54] = {};
    uint8_t* p = frame + 128;
    p[12] = 0x08;
    p[14] = 0x45;
    p[17] = 40;
    p[22] = 64;
    p[23] = kProtocolTcp;
    const uint8_t client[4] = {192, 0, 2, 7};
    std::memcpy(p + 26, client, 4);
    std::memcpy(p + 30, vip.address.bytes.data(), 4);
    p[34] = static_cast<uint8_t>(port >> 8);
    p[35] = static_cast<uint8_t>(port);
    p[37] = 80;
    p[46] = 0x50;
    p[47] = kTcpSyn;
    PacketBuffer packet{p, 54, 128};
    const Verdict verdict = pipeline.process(snapshot, packet, EgressPort{}, 1);
    ASSERT_EQ(verdict.action, Action::kForward);
    auto expected = control.lookup(vip, address("192.0.2.7"), port);
    ASSERT_TRUE(expected.ok()) << expected.error();
    EXPECT_EQ(snapshot.backends[verdict.backend].address, *expected) << "port " << port;
  }
}

TEST_F(Fixture, LookupMatchesPipeline) { expect_lookup_matches_pipeline(*control, last(), vip); }

TEST_F(Fixture, LookupMatchesPipelineWithClientPersistence) {
  Config config = base_config();
  config.vips[0].persistence = SLUICE_PERSISTENCE_CLIENT;
  ASSERT_TRUE(control->apply(config).ok());
  EXPECT_EQ(last().vips[0].persistence, SLUICE_PERSISTENCE_CLIENT);
  expect_lookup_matches_pipeline(*control, last(), vip);
}

}  // namespace
}  // namespace sluice::control

namespace sluice::control {
namespace {

TEST_F(Fixture, ReaddedVipRaisesNoAlert) {
  ASSERT_TRUE(control->remove_vip(vip).ok());
  ASSERT_TRUE(control->add_vip(base_config().vips[0]).ok());
  EXPECT_EQ(control->stats()["alerts"]["all_backends_down"], 0);
}

}  // namespace
}  // namespace sluice::control

namespace sluice::control {
namespace {

TEST_F(Fixture, StartOnlyChangeWarnsAndKeepsRunning) {
  Config changed = base_config();
  changed.flow_table_size = 4096;
  changed.seed = 99;
  auto result = control->apply(changed);
  ASSERT_TRUE(result.ok()) << result.error();
  ASSERT_EQ(result->warnings.size(), 1u);
  EXPECT_NE(result->warnings[0].find("apply only at start"), std::string::npos);
  EXPECT_EQ(control->config().flow_table_size, base_config().flow_table_size);
  EXPECT_EQ(control->config().seed, 99u);
}

}  // namespace
}  // namespace sluice::control
