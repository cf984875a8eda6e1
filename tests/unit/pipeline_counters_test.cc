// Pipeline counters: packets and bytes per VIP and per backend, drops by reason, packets for
// the kernel, and the totals that tie them together.
#include <cstdint>
#include <map>

#include <gtest/gtest.h>

#include "sluice/pipeline.h"
#include "test_frames.h"

namespace sluice::test {
namespace {

uint64_t drops(const Pipeline& pipeline, DropReason reason) {
  return pipeline.counters().drops[static_cast<int>(reason)].get();
}

uint64_t total_drops(const Pipeline& pipeline) {
  uint64_t total = 0;
  for (const Counter& counter : pipeline.counters().drops) total += counter.get();
  return total;
}

TEST(PipelineCounters, PacketsAndBytesPerVipAndBackend) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);

  struct Sent {
    uint64_t packets = 0;
    uint64_t bytes = 0;
  };
  std::map<uint32_t, Sent> per_vip;
  std::map<uint32_t, Sent> per_backend;

  // Frames of different sizes, padded and not, to both VIPs.
  for (uint16_t i = 0; i < 24; ++i) {
    const bool ipv6 = i % 3 == 0;
    const TcpSpec tcp{.source_port = static_cast<uint16_t>(30000 + i), .flags = kSyn,
                      .payload_size = i * 13u};
    const Bytes frame = ipv6 ? tcp6_frame(tcp)
                             : ethernet_frame(kEtherTypeIpv4, ipv4_packet({}, tcp_segment(tcp)),
                                              {}, 60);
    Bytes output;
    const Verdict verdict = run_frame(pipeline, snapshot, frame, kStartNs, &output);
    ASSERT_EQ(verdict.action, Action::kForward);

    Sent& vip = per_vip[ipv6 ? kVipSlot6 : kVipSlot4];
    ++vip.packets;
    vip.bytes += frame.size();  // as received, padding included
    Sent& backend = per_backend[verdict.backend];
    ++backend.packets;
    backend.bytes += output.size();  // as sent, after encapsulation
  }

  const PipelineCounters& counters = pipeline.counters();
  for (const auto& [slot, sent] : per_vip) {
    EXPECT_EQ(counters.vips[slot].packets.get(), sent.packets) << "VIP slot " << slot;
    EXPECT_EQ(counters.vips[slot].bytes.get(), sent.bytes) << "VIP slot " << slot;
  }
  EXPECT_GT(per_backend.size(), 2u) << "the flows must reach several backends";
  for (uint32_t slot = 0; slot < 6; ++slot) {
    const Sent sent = per_backend.count(slot) ? per_backend[slot] : Sent{};
    EXPECT_EQ(counters.backends[slot].packets.get(), sent.packets) << "backend slot " << slot;
    EXPECT_EQ(counters.backends[slot].bytes.get(), sent.bytes) << "backend slot " << slot;
    EXPECT_EQ(counters.backends[slot].new_flows.get(), sent.packets) << "every packet is a SYN";
  }
  EXPECT_EQ(counters.received.get(), 24u);
  EXPECT_EQ(counters.forwarded.get(), 24u);
  EXPECT_EQ(counters.to_kernel.get(), 0u);
  EXPECT_EQ(total_drops(pipeline), 0u);
}

TEST(PipelineCounters, DropsByReason) {
  Snapshot snapshot = make_snapshot();
  snapshot.vips[kVipSlot6].maglev.clear();  // the IPv6 VIP has no backend
  Pipeline pipeline(1024);

  Bytes cut_tcp = tcp4_frame({});
  cut_tcp.resize(14 + 20 + 10);
  store16(cut_tcp, 14 + 2, 30);  // total length: header and 10 bytes of TCP
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(run_frame(pipeline, snapshot, cut_tcp).drop, DropReason::kTruncatedTcp);
  }
  const Bytes three_tags =
      tcp4_frame({}, {}, {{kTpid8021ad, 3}, {kTpid8021ad, 2}, {kTpid8021Q, 1}});
  EXPECT_EQ(run_frame(pipeline, snapshot, three_tags).drop, DropReason::kTooManyVlanTags);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(run_frame(pipeline, snapshot, tcp6_frame({})).drop, DropReason::kNoBackend);
  }
  pipeline.count_drop(DropReason::kTxQueueFull);

  EXPECT_EQ(drops(pipeline, DropReason::kTruncatedTcp), 2u);
  EXPECT_EQ(drops(pipeline, DropReason::kTooManyVlanTags), 1u);
  EXPECT_EQ(drops(pipeline, DropReason::kNoBackend), 3u);
  EXPECT_EQ(drops(pipeline, DropReason::kTxQueueFull), 1u);
  EXPECT_EQ(drops(pipeline, DropReason::kNone), 0u);
  EXPECT_EQ(total_drops(pipeline), 7u);

  // A packet without a backend was still addressed to the VIP, so the VIP counts it.
  EXPECT_EQ(pipeline.counters().vips[kVipSlot6].packets.get(), 3u);
  EXPECT_EQ(pipeline.counters().vips[kVipSlot4].packets.get(), 0u)
      << "malformed packets are dropped before classification";
  EXPECT_EQ(pipeline.counters().received.get(), 6u);
  EXPECT_EQ(pipeline.counters().forwarded.get(), 0u);
}

TEST(PipelineCounters, ToKernel) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);

  EXPECT_EQ(run_frame(pipeline, snapshot, arp_request_frame()).action, Action::kToKernel);
  EXPECT_EQ(run_frame(pipeline, snapshot, tcp4_frame({}, {.destination = kNotVip4})).action,
            Action::kToKernel);
  EXPECT_EQ(run_frame(pipeline, snapshot, tcp6_frame({}, {.destination = kNotVip6})).action,
            Action::kToKernel);
  EXPECT_EQ(run_frame(pipeline, snapshot, tcp4_frame({.destination_port = 22})).action,
            Action::kToKernel);
  EXPECT_EQ(run_frame(pipeline, snapshot, tcp4_frame({})).action, Action::kForward);

  const PipelineCounters& counters = pipeline.counters();
  EXPECT_EQ(counters.to_kernel.get(), 4u);
  EXPECT_EQ(counters.forwarded.get(), 1u);
  EXPECT_EQ(counters.received.get(), 5u);
  EXPECT_EQ(counters.vips[kVipSlot4].packets.get(), 1u) << "kernel traffic is not VIP traffic";
  EXPECT_EQ(counters.vips[kVipSlot6].packets.get(), 0u);
  EXPECT_EQ(pipeline.flow_table().counters().entries, 1u);
}

TEST(PipelineCounters, TotalsAddUp) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  const Bytes frames[] = {
      tcp4_frame({}),
      tcp6_frame({.flags = kAck}),
      arp_request_frame(),
      Bytes(10, 0),
      tcp4_frame({.payload_size = 1600}),  // too big for a 1500-byte MTU
      tcp4_frame({}, {.more_fragments = true}),
  };
  for (const Bytes& frame : frames) run_frame(pipeline, snapshot, frame);

  const PipelineCounters& counters = pipeline.counters();
  EXPECT_EQ(counters.received.get(), 6u);
  EXPECT_EQ(counters.forwarded.get() + counters.to_kernel.get() + total_drops(pipeline),
            counters.received.get());
  EXPECT_EQ(counters.forwarded.get(), 3u);
  EXPECT_EQ(counters.to_kernel.get(), 1u);
  EXPECT_EQ(counters.fragments.get(), 1u);
  EXPECT_EQ(counters.non_syn_misses.get(), 1u);
  EXPECT_EQ(drops(pipeline, DropReason::kTruncatedEthernet), 1u);
  EXPECT_EQ(drops(pipeline, DropReason::kTooBigAfterEncapsulation), 1u);
}

TEST(PipelineCounters, CounterAddsAndReads) {
  Counter counter;
  EXPECT_EQ(counter.get(), 0u);
  counter.add(5);
  counter.add(1);
  EXPECT_EQ(counter.get(), 6u);
}

}  // namespace
}  // namespace sluice::test
