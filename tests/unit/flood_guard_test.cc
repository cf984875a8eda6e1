// The flood guard: beyond the new-flow limit of a second, new flows are forwarded without a
// flow entry, so established flows keep theirs.
#include <gtest/gtest.h>

#include "sluice/pipeline.h"
#include "test_frames.h"

namespace sluice::test {
namespace {

Bytes syn(int flow) { return tcp4_frame({.source_port = static_cast<uint16_t>(41000 + flow)}); }

TEST(FloodGuard, LimitsNewEntriesPerSecond) {
  Snapshot snapshot = make_snapshot();
  snapshot.new_flow_limit = 3;
  Pipeline pipeline(1024);
  for (int flow = 0; flow < 10; ++flow) {
    EXPECT_EQ(run_frame(pipeline, snapshot, syn(flow), kStartNs + flow).action, Action::kForward)
        << "every new flow is still forwarded";
  }
  EXPECT_EQ(pipeline.flow_table().counters().entries, 3u);
  EXPECT_EQ(pipeline.counters().new_flows_limited.get(), 7u);

  // A second later the limit admits three more.
  for (int flow = 10; flow < 15; ++flow) run_frame(pipeline, snapshot, syn(flow), kStartNs + 1'000'000'000 + flow);
  EXPECT_EQ(pipeline.flow_table().counters().entries, 6u);
  EXPECT_EQ(pipeline.counters().new_flows_limited.get(), 9u);
}

TEST(FloodGuard, EstablishedFlowsKeepTheirEntries) {
  Snapshot snapshot = make_snapshot();
  snapshot.new_flow_limit = 2;
  Pipeline pipeline(1024);
  run_frame(pipeline, snapshot, syn(0), kStartNs);
  for (int flow = 1; flow < 50; ++flow) run_frame(pipeline, snapshot, syn(flow), kStartNs + 1);
  // The first flow's ACK finds its entry: no miss.
  run_frame(pipeline, snapshot, tcp4_frame({.source_port = 41000, .flags = kAck}), kStartNs + 2);
  EXPECT_EQ(pipeline.counters().non_syn_misses.get(), 0u);
  EXPECT_EQ(pipeline.counters().new_flows_limited.get(), 48u);
}

TEST(FloodGuard, ZeroMeansNoLimit) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  for (int flow = 0; flow < 100; ++flow) run_frame(pipeline, snapshot, syn(flow), kStartNs);
  EXPECT_EQ(pipeline.flow_table().counters().entries, 100u);
  EXPECT_EQ(pipeline.counters().new_flows_limited.get(), 0u);
}

}  // namespace
}  // namespace sluice::test
