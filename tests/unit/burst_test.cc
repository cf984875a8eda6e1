// Bursts: Pipeline::process_burst against Pipeline::process on the same frames one at a time.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "parser_cases.h"
#include "sluice/pipeline.h"
#include "test_frames.h"

namespace sluice::test {
namespace {

struct Outcome {
  Verdict verdict;
  Bytes output;
};

// Returns the frames of the parser's table, well-formed and malformed, then frames that reach
// the flow table. These are SYNs, ACKs and FINs of several flows in both families, an echo
// request to each VIP, an ICMP error about a VIP flow and an ARP request.
std::vector<Bytes> mixed_frames() {
  std::vector<Bytes> frames;
  for (const ParseCase& test_case : all_cases()) frames.push_back(test_case.frame);
  for (uint16_t port = 40000; port < 40012; ++port) {
    frames.push_back(tcp4_frame({.source_port = port, .flags = kSyn}));
    frames.push_back(tcp6_frame({.source_port = port, .flags = kSyn}));
  }
  for (uint16_t port = 40000; port < 40016; ++port) {
    frames.push_back(tcp4_frame({.source_port = port, .flags = kAck}));
    frames.push_back(tcp6_frame({.source_port = port, .flags = static_cast<uint8_t>(port % 3 == 0 ? kAck | kFin : kAck)}));
  }
  frames.push_back(echo4_frame(kVip4));
  frames.push_back(echo6_frame(kVip6));
  frames.push_back(icmp4_error_frame(3, 4, tcp_segment({.source_port = 80, .destination_port = 40001})));
  frames.push_back(arp_request_frame());
  return frames;
}

std::vector<Outcome> run_one_at_a_time(const Snapshot& snapshot, const std::vector<Bytes>& frames,
                                       Pipeline& pipeline) {
  std::vector<Outcome> outcomes;
  for (const Bytes& frame : frames) {
    Outcome outcome;
    outcome.verdict = run_frame(pipeline, snapshot, frame, kStartNs, &outcome.output);
    outcomes.push_back(outcome);
  }
  return outcomes;
}

void expect_same(const std::vector<Outcome>& expected, const std::vector<Outcome>& actual) {
  ASSERT_EQ(expected.size(), actual.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(actual[i].verdict.action, expected[i].verdict.action) << "frame " << i;
    EXPECT_EQ(actual[i].verdict.drop, expected[i].verdict.drop) << "frame " << i;
    EXPECT_EQ(actual[i].verdict.backend, expected[i].verdict.backend) << "frame " << i;
    EXPECT_EQ(actual[i].output, expected[i].output) << "frame " << i;
  }
}

void expect_same_counters(const Pipeline& expected, const Pipeline& actual) {
  PipelineTotals want;
  PipelineTotals got;
  expected.add_to(want);
  actual.add_to(got);
  EXPECT_EQ(got.received, want.received);
  EXPECT_EQ(got.forwarded, want.forwarded);
  EXPECT_EQ(got.to_kernel, want.to_kernel);
  EXPECT_EQ(got.non_syn_misses, want.non_syn_misses);
  EXPECT_EQ(got.icmp_errors, want.icmp_errors);
  EXPECT_EQ(got.icmp_echo_replies, want.icmp_echo_replies);
  EXPECT_EQ(got.flow_entries, want.flow_entries);
  for (int reason = 0; reason < kDropReasonCount; ++reason) {
    EXPECT_EQ(got.drops[reason], want.drops[reason]) << drop_reason_name(static_cast<DropReason>(reason));
  }
  for (size_t slot = 0; slot < 8; ++slot) {
    EXPECT_EQ(got.backends[slot].packets, want.backends[slot].packets) << "backend " << slot;
    EXPECT_EQ(got.backends[slot].new_flows, want.backends[slot].new_flows) << "backend " << slot;
  }
  for (size_t slot = 0; slot < 2; ++slot) {
    EXPECT_EQ(got.vips[slot].packets, want.vips[slot].packets) << "VIP " << slot;
    EXPECT_EQ(got.vips[slot].bytes, want.vips[slot].bytes) << "VIP " << slot;
  }
}

// process_burst reads each bucket some packets after it prefetches it, so bursts shorter and
// longer than that lag take different paths through it.
class BurstSize : public ::testing::TestWithParam<size_t> {};

TEST_P(BurstSize, ProcessBurstMatchesProcess) {
  const size_t burst = GetParam();
  const Snapshot snapshot = make_snapshot();
  const std::vector<Bytes> frames = mixed_frames();
  Pipeline reference(1024);
  const std::vector<Outcome> expected = run_one_at_a_time(snapshot, frames, reference);

  Pipeline pipeline(1024);
  std::vector<Outcome> actual;
  for (size_t first = 0; first < frames.size(); first += burst) {
    const size_t count = std::min(burst, frames.size() - first);
    std::vector<FrameBuffer> buffers;
    buffers.reserve(count);
    std::vector<PacketBuffer> packets;
    for (size_t i = 0; i < count; ++i) {
      buffers.emplace_back(frames[first + i]);
      packets.push_back(buffers.back().packet());
    }
    Verdict verdicts[Pipeline::kMaxBurst];
    pipeline.process_burst(snapshot, packets, kEgress, kStartNs, verdicts);
    for (size_t i = 0; i < count; ++i) {
      actual.push_back({verdicts[i], Bytes(packets[i].data, packets[i].data + packets[i].length)});
    }
  }
  expect_same(expected, actual);
  expect_same_counters(reference, pipeline);
}

INSTANTIATE_TEST_SUITE_P(Burst, BurstSize, ::testing::Values(1, 5, 8, 9, 20, Pipeline::kMaxBurst),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return "Of" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace sluice::test
