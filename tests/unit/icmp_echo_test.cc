// The load balancer replies to echo requests to a VIP's address, with valid checksums.
#include <gtest/gtest.h>

#include "sluice/pipeline.h"
#include "test_frames.h"

namespace sluice::test {
namespace {

TEST(IcmpEcho, Ipv4RequestToVipIsAnswered) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  const Bytes request = echo4_frame(kVip4);
  Bytes reply;
  const Verdict verdict = run_frame(pipeline, snapshot, request, kStartNs, &reply);
  ASSERT_EQ(verdict.action, Action::kForward);
  ASSERT_EQ(reply.size(), request.size());
  EXPECT_EQ(Bytes(reply.begin(), reply.begin() + 6), Bytes(kRouterMac.begin(), kRouterMac.end()));
  EXPECT_EQ(Bytes(reply.begin() + 6, reply.begin() + 12), Bytes(kEgressMac.begin(), kEgressMac.end()));
  EXPECT_EQ(Bytes(reply.begin() + 26, reply.begin() + 30), Bytes(kVip4.begin(), kVip4.end()));
  EXPECT_EQ(Bytes(reply.begin() + 30, reply.begin() + 34), Bytes(kClient4.begin(), kClient4.end()));
  EXPECT_EQ(reply[14 + 8], 64) << "TTL";
  EXPECT_EQ(ones_complement_sum(reply.data() + 14, 20), 0xffff) << "IPv4 header checksum";
  EXPECT_EQ(reply[34], 0) << "echo reply";
  EXPECT_EQ(ones_complement_sum(reply.data() + 34, reply.size() - 34), 0xffff) << "ICMP checksum";
  EXPECT_EQ(Bytes(reply.begin() + 38, reply.end()), Bytes(request.begin() + 38, request.end()))
      << "identifier, sequence and payload stay";
  EXPECT_EQ(pipeline.counters().icmp_echo_replies.get(), 1u);
}

TEST(IcmpEcho, Ipv6RequestToVipIsAnswered) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  const Bytes request = echo6_frame(kVip6);
  Bytes reply;
  ASSERT_EQ(run_frame(pipeline, snapshot, request, kStartNs, &reply).action, Action::kForward);
  EXPECT_EQ(Bytes(reply.begin() + 22, reply.begin() + 38), Bytes(kVip6.begin(), kVip6.end()));
  EXPECT_EQ(Bytes(reply.begin() + 38, reply.begin() + 54), Bytes(kClient6.begin(), kClient6.end()));
  EXPECT_EQ(reply[14 + 7], 64) << "hop limit";
  EXPECT_EQ(reply[54], 129) << "echo reply";
  Bytes summed = pseudo_header6(kVip6, kClient6, 40);
  summed.insert(summed.end(), reply.begin() + 54, reply.end());
  EXPECT_EQ(ones_complement_sum(summed.data(), summed.size()), 0xffff) << "ICMPv6 checksum";
}

TEST(IcmpEcho, OtherRequestsGoToKernel) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  EXPECT_EQ(run_frame(pipeline, snapshot, echo4_frame(kNotVip4)).action, Action::kToKernel) << "not a VIP";
  EXPECT_EQ(run_frame(pipeline, snapshot, echo4_frame(kVip4, 13)).action, Action::kToKernel) << "timestamp request";
  EXPECT_EQ(run_frame(pipeline, snapshot, echo6_frame(kNotVip6)).action, Action::kToKernel);
  EXPECT_EQ(run_frame(pipeline, snapshot, echo4_frame(kVip4, 8, 1)).action, Action::kToKernel) << "IPv4 options";
  EXPECT_EQ(run_frame(pipeline, snapshot, echo4_frame(kVip4, 8, 0, 8)).action, Action::kToKernel) << "a fragment";
  EXPECT_EQ(pipeline.counters().icmp_echo_replies.get(), 0u);
}

}  // namespace
}  // namespace sluice::test
