// Session persistence per VIP: with client persistence every connection of a client reaches
// one backend; with connection persistence (the default) a client's connections spread.
#include <gtest/gtest.h>

#include <set>

#include "sluice/flow_hash.h"
#include "sluice/pipeline.h"
#include "test_frames.h"

namespace sluice::test {
namespace {

// The outer destination of a forwarded IPv4 frame: the backend's address.
Ipv4 backend_of(const Bytes& frame) {
  Ipv4 address{};
  std::copy(frame.begin() + 14 + 16, frame.begin() + 14 + 20, address.begin());
  return address;
}

Snapshot snapshot_with(sluice_persistence persistence) {
  Snapshot snapshot = make_snapshot();
  for (Vip& vip : snapshot.vips) vip.persistence = persistence;
  snapshot.prepare();
  return snapshot;
}

// The backends that SYNs from `clients` client addresses, each on `ports` source ports, reach.
std::set<Ipv4> backends_reached(const Snapshot& snapshot, int clients, int ports) {
  Pipeline pipeline(4096);
  std::set<Ipv4> backends;
  for (int client = 0; client < clients; ++client) {
    for (int port = 0; port < ports; ++port) {
      const Ipv4 source{192, 0, 2, static_cast<uint8_t>(1 + client)};
      Bytes output;
      const Verdict verdict = run_frame(pipeline, snapshot,
                                        tcp4_frame({.source_port = static_cast<uint16_t>(40000 + port)},
                                                   {.source = source}),
                                        kStartNs, &output);
      EXPECT_EQ(verdict.action, Action::kForward);
      backends.insert(backend_of(output));
    }
  }
  return backends;
}

TEST(Persistence, ClientHashIgnoresPortsAndDestination) {
  sluice_flow_key a = flow_key4(kClient4, kVip4, kNextTcp, 40000, 80);
  sluice_flow_key b = flow_key4(kClient4, kNotVip4, kNextUdp, 50000, 53);
  EXPECT_EQ(sluice_client_hash(&a, 7), sluice_client_hash(&b, 7));
  sluice_flow_key other = flow_key4(Ipv4{192, 0, 2, 2}, kVip4, kNextTcp, 40000, 80);
  EXPECT_NE(sluice_client_hash(&a, 7), sluice_client_hash(&other, 7));
  EXPECT_NE(sluice_client_hash(&a, 7), sluice_client_hash(&a, 8)) << "the seed matters";
}

TEST(Persistence, ClientKeepsOneBackend) {
  const Snapshot snapshot = snapshot_with(SLUICE_PERSISTENCE_CLIENT);
  EXPECT_EQ(backends_reached(snapshot, 1, 64).size(), 1u);
}

TEST(Persistence, ClientsStillSpread) {
  const Snapshot snapshot = snapshot_with(SLUICE_PERSISTENCE_CLIENT);
  EXPECT_EQ(backends_reached(snapshot, 60, 1).size(), 3u);
}

TEST(Persistence, ConnectionSpreadsOneClient) {
  const Snapshot snapshot = snapshot_with(SLUICE_PERSISTENCE_CONNECTION);
  EXPECT_EQ(backends_reached(snapshot, 1, 64).size(), 3u);
}

}  // namespace
}  // namespace sluice::test
