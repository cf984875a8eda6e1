// Flow table: connection tracking through Pipeline::process with a fake clock (now_ns), and
// the FlowTable container on its own.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/flow_table.h"
#include "sluice/pipeline.h"
#include "test_frames.h"

namespace sluice::test {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;

// Sends one TCP segment of the flow from 192.0.2.1:`port` to the IPv4 VIP and returns the
// backend slot, or Verdict::kNoSlot when the pipeline did not forward it.
uint32_t send_tcp(Pipeline& pipeline, const Snapshot& snapshot, uint8_t flags, uint64_t now_ns,
                  uint16_t port = 40000) {
  const Verdict verdict =
      run_frame(pipeline, snapshot, tcp4_frame({.source_port = port, .flags = flags}), now_ns);
  EXPECT_EQ(verdict.action, Action::kForward) << drop_reason_name(verdict.drop);
  return verdict.backend;
}

uint32_t send_udp(Pipeline& pipeline, const Snapshot& snapshot, uint64_t now_ns) {
  const Bytes frame = ethernet_frame(
      kEtherTypeIpv4, ipv4_packet({.protocol = kNextUdp}, udp_datagram(5353, 53, 32)));
  const Verdict verdict = run_frame(pipeline, snapshot, frame, now_ns);
  EXPECT_EQ(verdict.action, Action::kForward) << drop_reason_name(verdict.drop);
  return verdict.backend;
}

// An IPv4 backend slot other than `slot`.
uint32_t other_backend(uint32_t slot) { return (slot + 1) % 3; }

uint64_t new_flows(const Pipeline& pipeline, uint32_t slot) {
  return pipeline.counters().backends[slot].new_flows.get();
}

// ---- Through the pipeline ---------------------------------------------------------------

TEST(FlowTracking, SynTakesCurrentTable) {
  Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  const uint32_t first = send_tcp(pipeline, snapshot, kSyn, kStartNs);
  ASSERT_LT(first, 3u);

  const uint32_t second_choice = other_backend(first);
  snapshot.vips[kVipSlot4].maglev = maglev_all_to(second_choice);
  EXPECT_EQ(send_tcp(pipeline, snapshot, kSyn, kStartNs + 1), second_choice)
      << "a SYN with an existing entry still follows the table";
  EXPECT_EQ(send_tcp(pipeline, snapshot, kAck, kStartNs + 2), second_choice)
      << "the SYN overwrote the entry";

  EXPECT_EQ(new_flows(pipeline, first), 1u);
  EXPECT_EQ(new_flows(pipeline, second_choice), 1u);
  EXPECT_EQ(pipeline.flow_table().counters().entries, 1u);
  EXPECT_EQ(pipeline.counters().non_syn_misses.get(), 0u);
}

TEST(FlowTracking, NonSynHitKeepsBackend) {
  Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  const uint32_t backend = send_tcp(pipeline, snapshot, kSyn, kStartNs);

  snapshot.vips[kVipSlot4].maglev = maglev_all_to(other_backend(backend));
  EXPECT_EQ(send_tcp(pipeline, snapshot, kAck, kStartNs + kSecond), backend);
  EXPECT_EQ(send_tcp(pipeline, snapshot, kAck | kFin, kStartNs + 2 * kSecond), backend);
  EXPECT_EQ(pipeline.counters().non_syn_misses.get(), 0u);
  EXPECT_EQ(new_flows(pipeline, backend), 1u);
}

TEST(FlowTracking, NonSynMissServedFromTable) {
  Snapshot snapshot = make_snapshot();
  snapshot.vips[kVipSlot4].maglev = maglev_all_to(2);
  Pipeline pipeline(1024);

  EXPECT_EQ(send_tcp(pipeline, snapshot, kAck, kStartNs), 2u);
  EXPECT_EQ(pipeline.counters().non_syn_misses.get(), 1u);
  EXPECT_EQ(pipeline.flow_table().counters().entries, 1u) << "the miss creates an entry";
  EXPECT_EQ(new_flows(pipeline, 2), 0u) << "only SYNs count as new TCP flows";

  snapshot.vips[kVipSlot4].maglev = maglev_all_to(1);
  EXPECT_EQ(send_tcp(pipeline, snapshot, kAck, kStartNs + kSecond), 2u);
  EXPECT_EQ(pipeline.counters().non_syn_misses.get(), 1u);
}

// Checks that after a segment with `closing_flags` the flow lives tcp_closing_ns, not tcp_ns.
void expect_closing_lifetime(uint8_t closing_flags) {
  Snapshot snapshot = make_snapshot();
  const uint64_t closing_ns = snapshot.timeouts.tcp_closing_ns;
  ASSERT_LT(2 * closing_ns, snapshot.timeouts.tcp_ns);
  Pipeline pipeline(1024);

  const uint32_t backend = send_tcp(pipeline, snapshot, kSyn, kStartNs);
  const uint64_t closed_at = kStartNs + kSecond;
  EXPECT_EQ(send_tcp(pipeline, snapshot, closing_flags, closed_at), backend);
  const uint32_t moved_to = other_backend(backend);
  snapshot.vips[kVipSlot4].maglev = maglev_all_to(moved_to);

  // Still live one nanosecond before the closing timeout, and that ACK restarts the timeout.
  const uint64_t last_hit = closed_at + closing_ns - 1;
  EXPECT_EQ(send_tcp(pipeline, snapshot, kAck, last_hit), backend);
  EXPECT_EQ(pipeline.counters().non_syn_misses.get(), 0u);

  // The flow stays closing, so the entry expires tcp_closing_ns after the last packet.
  EXPECT_EQ(send_tcp(pipeline, snapshot, kAck, last_hit + closing_ns), moved_to);
  EXPECT_EQ(pipeline.counters().non_syn_misses.get(), 1u);
  EXPECT_EQ(pipeline.flow_table().counters().expired, 1u);

  // A flow without FIN or RST outlives the same gap.
  const uint32_t open_backend = send_tcp(pipeline, snapshot, kSyn, kStartNs, 40001);
  snapshot.vips[kVipSlot4].maglev = maglev_all_to(other_backend(open_backend));
  EXPECT_EQ(send_tcp(pipeline, snapshot, kAck, kStartNs + 3 * closing_ns, 40001), open_backend);
}

TEST(FlowTracking, FinShortensLifetime) { expect_closing_lifetime(kFin | kAck); }

TEST(FlowTracking, RstShortensLifetime) { expect_closing_lifetime(kRst); }

TEST(FlowTracking, SynReopensClosingFlow) {
  Snapshot snapshot = make_snapshot();
  const uint64_t closing_ns = snapshot.timeouts.tcp_closing_ns;
  Pipeline pipeline(1024);

  const uint32_t backend = send_tcp(pipeline, snapshot, kSyn, kStartNs);
  send_tcp(pipeline, snapshot, kRst, kStartNs + 1);
  EXPECT_EQ(send_tcp(pipeline, snapshot, kSyn, kStartNs + 2), backend);
  EXPECT_EQ(new_flows(pipeline, backend), 2u) << "a SYN after RST starts a new connection";

  snapshot.vips[kVipSlot4].maglev = maglev_all_to(other_backend(backend));
  EXPECT_EQ(send_tcp(pipeline, snapshot, kAck, kStartNs + 2 + 2 * closing_ns), backend)
      << "the new connection has the established timeout";
}

TEST(FlowTracking, TcpIdleTimeout) {
  Snapshot snapshot = make_snapshot();
  const uint64_t idle_ns = snapshot.timeouts.tcp_ns;
  Pipeline pipeline(1024);

  const uint32_t backend = send_tcp(pipeline, snapshot, kSyn, kStartNs);
  const uint32_t moved_to = other_backend(backend);
  snapshot.vips[kVipSlot4].maglev = maglev_all_to(moved_to);
  EXPECT_EQ(send_tcp(pipeline, snapshot, kAck, kStartNs + idle_ns - 1), backend);
  EXPECT_EQ(send_tcp(pipeline, snapshot, kAck, kStartNs + 2 * idle_ns - 1), moved_to);
  EXPECT_EQ(pipeline.counters().non_syn_misses.get(), 1u);
}

TEST(FlowTracking, UdpExpiresAfterUdpTimeout) {
  Snapshot snapshot = make_snapshot();
  Vip udp_vip;
  udp_vip.key = {address4(kVip4), 53, kProtocolUdp};
  udp_vip.slot = 2;
  udp_vip.maglev = maglev_for(snapshot, {0, 1, 2});
  snapshot.vips.push_back(udp_vip);
  snapshot.prepare();
  Vip& vip = snapshot.vips.back();
  const uint64_t udp_ns = snapshot.timeouts.udp_ns;
  Pipeline pipeline(1024);

  const uint32_t backend = send_udp(pipeline, snapshot, kStartNs);
  ASSERT_LT(backend, 3u);
  EXPECT_EQ(new_flows(pipeline, backend), 1u);
  const uint32_t moved_to = other_backend(backend);
  vip.maglev = maglev_all_to(moved_to);

  const uint64_t last_hit = kStartNs + udp_ns - 1;
  EXPECT_EQ(send_udp(pipeline, snapshot, last_hit), backend);
  EXPECT_EQ(new_flows(pipeline, backend), 1u);
  EXPECT_EQ(send_udp(pipeline, snapshot, last_hit + udp_ns), moved_to);
  EXPECT_EQ(new_flows(pipeline, moved_to), 1u);
  EXPECT_EQ(pipeline.flow_table().counters().expired, 1u);
  EXPECT_EQ(pipeline.flow_table().counters().entries, 1u);
}

// Sends a SYN, applies `change` to the flow's backend slot, points the table at another
// backend and returns the backend of the next ACK, with the number of non-SYN misses.
struct AfterChange {
  uint32_t original;
  uint32_t backend;
  uint64_t non_syn_misses;
};

template <typename Change>
AfterChange ack_after_change(Change change, bool keep_in_table = false) {
  Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  const uint32_t original = send_tcp(pipeline, snapshot, kSyn, kStartNs);
  change(snapshot.backends[original]);
  if (!keep_in_table) snapshot.vips[kVipSlot4].maglev = maglev_all_to(other_backend(original));
  const uint32_t backend = send_tcp(pipeline, snapshot, kAck, kStartNs + kSecond);
  return {original, backend, pipeline.counters().non_syn_misses.get()};
}

TEST(FlowTracking, ReusedSlotInvalidatesFlow) {
  // The slot went to another backend (new uid) and the table still lists that slot, so only
  // the uid distinguishes the old flow entry.
  const AfterChange result = ack_after_change(
      [](BackendSlot& slot) {
        slot.uid += 1000;
        slot.address = address4({198, 51, 100, 200});
      },
      /*keep_in_table=*/true);
  EXPECT_EQ(result.non_syn_misses, 1u);
  EXPECT_EQ(result.backend, result.original) << "the table still maps the flow to this slot";

  const AfterChange moved = ack_after_change([](BackendSlot& slot) { slot.uid += 1000; });
  EXPECT_NE(moved.backend, moved.original);
  EXPECT_EQ(moved.non_syn_misses, 1u);
}

TEST(FlowTracking, RemovedBackendInvalidatesFlow) {
  const AfterChange result =
      ack_after_change([](BackendSlot& slot) { slot.state = BackendState::kRemoved; });
  EXPECT_NE(result.backend, result.original);
  EXPECT_EQ(result.non_syn_misses, 1u);
}

TEST(FlowTracking, DownBackendInvalidatesFlow) {
  const AfterChange result =
      ack_after_change([](BackendSlot& slot) { slot.state = BackendState::kDown; });
  EXPECT_NE(result.backend, result.original);
  EXPECT_EQ(result.non_syn_misses, 1u);
}

TEST(FlowTracking, DrainedBackendKeepsFlows) {
  Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  const uint32_t drained = send_tcp(pipeline, snapshot, kSyn, kStartNs);
  snapshot.backends[drained].state = BackendState::kDrained;
  const uint32_t other = other_backend(drained);
  const uint32_t third = other_backend(other);
  snapshot.vips[kVipSlot4].maglev = maglev_for(snapshot, {other, third});

  EXPECT_EQ(send_tcp(pipeline, snapshot, kAck, kStartNs + kSecond), drained);
  EXPECT_EQ(pipeline.counters().non_syn_misses.get(), 0u);

  const uint32_t reconnected = send_tcp(pipeline, snapshot, kSyn, kStartNs + 2 * kSecond);
  EXPECT_NE(reconnected, drained) << "a new connection does not go to a drained backend";
}

TEST(FlowTracking, RetransmittedSynNotNewFlow) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  const uint32_t backend = send_tcp(pipeline, snapshot, kSyn, kStartNs);
  EXPECT_EQ(send_tcp(pipeline, snapshot, kSyn, kStartNs + kSecond), backend);
  EXPECT_EQ(send_tcp(pipeline, snapshot, kSyn, kStartNs + 3 * kSecond), backend);

  EXPECT_EQ(new_flows(pipeline, backend), 1u);
  EXPECT_EQ(pipeline.flow_table().counters().entries, 1u);
  EXPECT_EQ(pipeline.counters().backends[backend].packets.get(), 3u);
}

TEST(FlowTracking, EvictionAtCapacity) {
  Snapshot snapshot = make_snapshot();
  Pipeline pipeline(FlowTable::kWays);  // one bucket of eight ways
  ASSERT_EQ(pipeline.flow_table().capacity(), 8u);

  // Flow i starts at kStartNs + i, so flow 0 expires first and is the one evicted.
  std::vector<uint32_t> backends;
  for (uint16_t i = 0; i < 9; ++i) {
    backends.push_back(send_tcp(pipeline, snapshot, kSyn, kStartNs + i, 40000 + i));
  }
  const FlowTableCounters& counters = pipeline.flow_table().counters();
  EXPECT_EQ(counters.evictions, 1u);
  EXPECT_EQ(counters.entries, 8u);
  EXPECT_EQ(counters.inserts, 9u);

  snapshot.vips[kVipSlot4].maglev = maglev_all_to(kMaglevEmpty);
  for (uint16_t i = 1; i < 9; ++i) {
    EXPECT_EQ(send_tcp(pipeline, snapshot, kAck, kStartNs + kSecond, 40000 + i), backends[i])
        << "flow " << i;
  }
  EXPECT_EQ(pipeline.counters().non_syn_misses.get(), 0u);

  // Flow 0 lost its entry: it misses, and with an empty table it has no backend.
  const Verdict verdict = run_frame(
      pipeline, snapshot, tcp4_frame({.source_port = 40000, .flags = kAck}), kStartNs + kSecond);
  EXPECT_EQ(verdict.action, Action::kDrop);
  EXPECT_EQ(verdict.drop, DropReason::kNoBackend);
  EXPECT_EQ(pipeline.counters().non_syn_misses.get(), 1u);
}

TEST(FlowTracking, NonSynMissKeepsLiveEntries) {
  // Eight flows fill the one bucket. A ninth flow that arrives without a SYN is served from
  // the Maglev table but takes no entry, so the eight keep theirs.
  Snapshot snapshot = make_snapshot();
  Pipeline pipeline(FlowTable::kWays);
  std::vector<uint32_t> backends;
  for (uint16_t i = 0; i < 8; ++i) {
    backends.push_back(send_tcp(pipeline, snapshot, kSyn, kStartNs + i, 40000 + i));
  }
  const uint32_t maglev_choice = send_tcp(pipeline, snapshot, kAck, kStartNs + kSecond, 40008);
  EXPECT_EQ(pipeline.counters().non_syn_misses.get(), 1u);
  EXPECT_EQ(pipeline.flow_table().counters().evictions, 0u);
  EXPECT_EQ(pipeline.flow_table().counters().entries, 8u);

  snapshot.vips[kVipSlot4].maglev = maglev_all_to(other_backend(maglev_choice));
  for (uint16_t i = 0; i < 8; ++i) {
    EXPECT_EQ(send_tcp(pipeline, snapshot, kAck, kStartNs + 2 * kSecond, 40000 + i), backends[i])
        << "flow " << i;
  }
  EXPECT_EQ(pipeline.counters().non_syn_misses.get(), 1u);
  EXPECT_EQ(send_tcp(pipeline, snapshot, kAck, kStartNs + 2 * kSecond, 40008),
            other_backend(maglev_choice))
      << "the flow without an entry follows the current table";
}

TEST(FlowTracking, OccupancyCountsFlows) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1 << 16);
  for (uint16_t i = 0; i < 1000; ++i) send_tcp(pipeline, snapshot, kSyn, kStartNs, 20000 + i);
  const FlowTableCounters& counters = pipeline.flow_table().counters();
  EXPECT_EQ(counters.entries, 1000u);
  EXPECT_EQ(counters.inserts, 1000u);
  EXPECT_EQ(counters.evictions, 0u);
}

// ---- FlowTable on its own -----------------------------------------------------------------

sluice_flow_key key_for_port(uint16_t port) {
  return flow_key4(kClient4, kVip4, kNextTcp, port, 80);
}

TEST(FlowTable, CapacityRoundsUp) {
  EXPECT_EQ(FlowTable(0).capacity(), 8u);
  EXPECT_EQ(FlowTable(1).capacity(), 8u);
  EXPECT_EQ(FlowTable(9).capacity(), 16u);
  EXPECT_EQ(FlowTable(1000).capacity(), 1024u);
  EXPECT_EQ(FlowTable(1024).capacity(), 1024u);
}

TEST(FlowTable, FindExpiresEntry) {
  FlowTable table(16);
  const sluice_flow_key key = key_for_port(1);
  FlowEntry* entry = table.insert(key, 7, 100, 0);
  ASSERT_NE(entry, nullptr);
  entry->backend = 2;

  EXPECT_EQ(table.find(key, 7, 99), entry);
  EXPECT_EQ(table.counters().entries, 1u);
  EXPECT_EQ(table.find(key, 7, 100), nullptr) << "an entry expires at expires_ns";
  EXPECT_EQ(table.counters().expired, 1u);
  EXPECT_EQ(table.counters().entries, 0u);
}

TEST(FlowTable, FindMatchesHashAndKey) {
  FlowTable table(16);
  const sluice_flow_key key = key_for_port(1);
  table.insert(key, 7, 100, 0);
  EXPECT_EQ(table.find(key, 7 + (1u << 16), 0), nullptr) << "another hash tag in the same bucket";
  EXPECT_EQ(table.find(key_for_port(2), 7, 0), nullptr) << "another key with the same hash";
  EXPECT_NE(table.find(key, 7, 0), nullptr);
}

TEST(FlowTable, FindHintNeedsMatchingKey) {
  // Keys 1 and 2 share the hash, so both tags match in ways 0 and 1. A hint is where
  // prefetch_entry() saw the tag, and find() must still return the key's own entry, or nothing.
  FlowTable table(FlowTable::kWays);
  const sluice_flow_key key1 = key_for_port(1);
  const sluice_flow_key key2 = key_for_port(2);
  FlowEntry* first = table.insert(key1, 7, 100, 0);
  FlowEntry* second = table.insert(key2, 7, 100, 0);
  ASSERT_NE(first, second);
  EXPECT_EQ(table.prefetch_entry(7, 0), 0u) << "the first way with the tag";
  EXPECT_EQ(table.prefetch_entry(7 + (1u << 16), 0), FlowTable::kWays) << "no way has this tag";

  EXPECT_EQ(table.find(key1, 7, 0, 0), first);
  EXPECT_EQ(table.find(key2, 7, 0, 0), second) << "the hinted way holds another key";
  EXPECT_EQ(table.find(key1, 7, 0, 1), first) << "the hinted way holds another key";
  EXPECT_EQ(table.find(key2, 7, 0, 5), second) << "the hinted way is free";
  EXPECT_EQ(table.find(key2, 7, 0, FlowTable::kWays), second) << "no hint";
  EXPECT_EQ(table.find(key_for_port(3), 7, 0, 0), nullptr) << "a key without an entry";

  table.erase(first);
  EXPECT_EQ(table.find(key1, 7, 0, 0), nullptr) << "a stale hint to an erased entry";
  EXPECT_EQ(table.find(key2, 7, 100, 1), nullptr) << "a hinted entry still expires";
  EXPECT_EQ(table.counters().expired, 1u);
  EXPECT_EQ(table.counters().entries, 0u);
}

TEST(FlowTable, EraseFreesEntry) {
  FlowTable table(16);
  const sluice_flow_key key = key_for_port(1);
  FlowEntry* entry = table.insert(key, 7, 100, 0);
  table.erase(entry);
  EXPECT_EQ(table.counters().entries, 0u);
  table.erase(entry);
  EXPECT_EQ(table.counters().entries, 0u) << "erasing a free entry changes nothing";
  EXPECT_EQ(table.find(key, 7, 0), nullptr);
}

TEST(FlowTable, ReinsertReusesEntry) {
  FlowTable table(16);
  const sluice_flow_key key = key_for_port(1);
  FlowEntry* entry = table.insert(key, 7, 100, 0);
  entry->flags = kFlowClosing;
  FlowEntry* again = table.insert(key, 7, 200, 50);
  EXPECT_EQ(again, entry);
  EXPECT_EQ(again->flags, 0u) << "insert clears the flags";
  EXPECT_EQ(table.expires_of(again), 200u);
  EXPECT_EQ(table.counters().entries, 1u);
  EXPECT_EQ(table.counters().inserts, 2u);
}

TEST(FlowTable, ReinsertSkipsEarlierFreeWay) {
  // Way 0 is free and the key's entry sits in way 1: the insert must reuse way 1, or the key
  // would have two entries.
  FlowTable table(FlowTable::kWays);
  FlowEntry* first = table.insert(key_for_port(1), 3, 100, 0);
  FlowEntry* second = table.insert(key_for_port(2), 3, 100, 0);
  table.erase(first);
  EXPECT_EQ(table.insert(key_for_port(2), 3, 300, 0), second);
  EXPECT_EQ(table.counters().entries, 1u);
}

TEST(FlowTable, EvictsSoonestExpiry) {
  FlowTable table(16);  // two buckets: even hashes share bucket 0
  const uint64_t expiries[8] = {500, 100, 300, 400, 800, 700, 900, 600};
  for (uint16_t i = 0; i < 8; ++i) table.insert(key_for_port(i), i * 2u, expiries[i], 0);
  EXPECT_EQ(table.counters().entries, 8u);

  table.insert(key_for_port(8), 16, 1000, 0);
  EXPECT_EQ(table.counters().evictions, 1u);
  EXPECT_EQ(table.counters().expired, 0u);
  EXPECT_EQ(table.counters().entries, 8u);
  EXPECT_EQ(table.find(key_for_port(1), 2, 0), nullptr) << "the soonest expiry is evicted";
  for (uint16_t i : {0, 2, 3, 4, 5, 6, 7}) EXPECT_NE(table.find(key_for_port(i), i * 2u, 0), nullptr);
  EXPECT_NE(table.find(key_for_port(8), 16, 0), nullptr);

  table.insert(key_for_port(9), 1, 600, 0);  // bucket 1
  EXPECT_EQ(table.counters().entries, 9u);
  EXPECT_EQ(table.counters().evictions, 1u);
}

TEST(FlowTable, ExpiredWayReusedNotEvicted) {
  FlowTable table(FlowTable::kWays);
  const uint64_t expiries[8] = {500, 100, 300, 400, 800, 700, 900, 600};
  for (uint16_t i = 0; i < 8; ++i) table.insert(key_for_port(i), i, expiries[i], 0);

  table.insert(key_for_port(9), 9, 1000, 150);  // the entry that expired at 100 makes room
  EXPECT_EQ(table.counters().evictions, 0u);
  EXPECT_EQ(table.counters().expired, 1u);
  EXPECT_EQ(table.counters().entries, 8u);
  EXPECT_EQ(table.find(key_for_port(1), 1, 150), nullptr);
}

TEST(FlowTable, ExpiredOnlyRejectsLiveWays) {
  FlowTable table(FlowTable::kWays);
  for (uint16_t i = 0; i < 8; ++i) table.insert(key_for_port(i), i, 1000, 0);

  EXPECT_EQ(table.insert(key_for_port(9), 9, 2000, 500, FlowTable::Overwrite::kExpiredOnly), nullptr);
  EXPECT_EQ(table.counters().inserts, 8u) << "a rejected insert changes nothing";
  EXPECT_EQ(table.counters().evictions, 0u);
  EXPECT_EQ(table.counters().entries, 8u);
  for (uint16_t i = 0; i < 8; ++i) EXPECT_NE(table.find(key_for_port(i), i, 500), nullptr);
  EXPECT_EQ(table.find(key_for_port(9), 9, 500), nullptr);
}

TEST(FlowTable, ExpiredOnlyTakesExpiredOrOwnWay) {
  FlowTable table(FlowTable::kWays);
  const uint64_t expiries[8] = {500, 100, 300, 400, 800, 700, 900, 600};
  for (uint16_t i = 0; i < 8; ++i) table.insert(key_for_port(i), i, expiries[i], 0);

  FlowEntry* own = table.insert(key_for_port(3), 3, 2000, 50, FlowTable::Overwrite::kExpiredOnly);
  EXPECT_NE(own, nullptr) << "a key's own entry is always reused";
  EXPECT_EQ(table.expires_of(own), 2000u);

  EXPECT_NE(table.insert(key_for_port(9), 9, 2000, 150, FlowTable::Overwrite::kExpiredOnly), nullptr);
  EXPECT_EQ(table.counters().expired, 1u);
  EXPECT_EQ(table.counters().evictions, 0u);
  EXPECT_EQ(table.find(key_for_port(1), 1, 150), nullptr) << "the expired entry made room";
}

TEST(FlowTable, ExpiryAcrossTheClockWrap) {
  // Expiries keep 48 bits: an entry made just before the clock passes 2^48 ns still lives
  // after it, and expires on time.
  FlowTable table(16);
  const uint64_t wrap = uint64_t{1} << 48;
  const sluice_flow_key key = key_for_port(1);
  table.insert(key, 7, wrap + 100, wrap - 50);
  EXPECT_NE(table.find(key, 7, wrap - 1), nullptr);
  EXPECT_NE(table.find(key, 7, wrap + 99), nullptr);
  EXPECT_EQ(table.find(key, 7, wrap + 100), nullptr);
  EXPECT_EQ(table.counters().expired, 1u);

  // An expiry whose low 48 bits are 0 does not read as a free way.
  FlowEntry* entry = table.insert(key, 7, 2 * wrap, wrap - 10);
  EXPECT_EQ(table.counters().entries, 1u);
  EXPECT_EQ(table.find(key, 7, 2 * wrap - 1), entry);
}

}  // namespace
}  // namespace sluice::test
