// The frame builder's rules; the bytes themselves are checked by scapy in pktgen_test.py.
#include "traffic.h"

#include <gtest/gtest.h>

#include "sluice/packet.h"

#include <set>
#include <vector>

namespace sluice::pktgen {
namespace {

VipKey tcp_vip() { return {IpAddress::parse("203.0.113.10").value(), 80, kProtocolTcp}; }

TrafficSpec spec_with(uint64_t flows) {
  TrafficSpec spec;
  spec.vips = {tcp_vip()};
  spec.clients = {IpPrefix::parse("192.0.2.0/24").value()};
  spec.flows = flows;
  return spec;
}

TEST(Traffic, PrefixClearsHostBits) {
  const IpPrefix prefix = IpPrefix::parse("192.0.2.77/24").value();
  EXPECT_EQ(prefix.base.to_string(), "192.0.2.0");
  EXPECT_EQ(prefix.length, 24u);
  EXPECT_FALSE(IpPrefix::parse("192.0.2.0/33"));
  EXPECT_FALSE(IpPrefix::parse("2001:db8::/129"));
  EXPECT_FALSE(IpPrefix::parse("192.0.2.0"));
}

TEST(Traffic, FrameSizes) {
  EXPECT_EQ(parse_frame_sizes("64").value(), std::vector<uint32_t>{64});
  EXPECT_EQ(parse_frame_sizes("1518").value(), std::vector<uint32_t>{1518});
  EXPECT_FALSE(parse_frame_sizes("63"));
  EXPECT_FALSE(parse_frame_sizes("1519"));
  const std::vector<uint32_t> imix = parse_frame_sizes("imix").value();
  std::multiset<uint32_t> counts(imix.begin(), imix.end());
  EXPECT_EQ(counts.count(64), 7u);
  EXPECT_EQ(counts.count(594), 4u);
  EXPECT_EQ(counts.count(1518), 1u);
}

TEST(Traffic, MixSpreadsKindsByWeight) {
  TrafficSpec spec = spec_with(10);
  spec.vips.push_back({IpAddress::parse("203.0.113.11").value(), 53, kProtocolUdp});
  ASSERT_TRUE(parse_mix("ack=6,syn=3,udp=1", spec));
  FrameBuilder builder(spec);
  int acks = 0, syns = 0, udps = 0;
  for (uint64_t i = 0; i < 10; ++i) {
    switch (builder.kind_of(i)) {
      case PacketKind::kTcpAck: ++acks; break;
      case PacketKind::kTcpSyn: ++syns; break;
      case PacketKind::kUdp: ++udps; break;
    }
  }
  EXPECT_EQ(acks, 6);
  EXPECT_EQ(syns, 3);
  EXPECT_EQ(udps, 1);
  EXPECT_FALSE(parse_mix("ack=0", spec));
  EXPECT_FALSE(parse_mix("rst=1", spec));
  EXPECT_FALSE(parse_mix("ack", spec));
}

TEST(Traffic, ValidateNamesWhatIsMissing) {
  TrafficSpec spec = spec_with(10);
  EXPECT_TRUE(validate(spec));
  spec.udp_weight = 1;
  EXPECT_NE(validate(spec).error().find("UDP"), std::string::npos);
  spec = spec_with(10);
  spec.vips = {{IpAddress::parse("2001:db8::10").value(), 80, kProtocolTcp}};
  EXPECT_NE(validate(spec).error().find("client prefix"), std::string::npos);
  spec = spec_with(254ull * 64512 + 1);  // one more than a /24 has room for
  EXPECT_NE(validate(spec).error().find("room for"), std::string::npos);
}

TEST(Traffic, SequentialOrderVisitsEveryFlowInTurn) {
  FrameBuilder builder(spec_with(5));
  for (uint64_t i = 0; i < 20; ++i) EXPECT_EQ(builder.flow_of(i), i % 5);
}

TEST(Traffic, RandomOrderStaysInRangeAndCoversFlows) {
  TrafficSpec spec = spec_with(100);
  spec.random_order = true;
  FrameBuilder builder(spec);
  std::set<uint64_t> seen;
  for (uint64_t i = 0; i < 5000; ++i) {
    const uint64_t flow = builder.flow_of(i);
    ASSERT_LT(flow, 100u);
    seen.insert(flow);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(Traffic, HostPrefixSendsFromItsOwnAddress) {
  TrafficSpec spec = spec_with(1000);
  spec.clients = {IpPrefix::parse("192.0.2.7/32").value()};
  ASSERT_TRUE(validate(spec));
  FrameBuilder builder(spec);
  uint8_t frame[kMaxFrameSize];
  for (uint64_t i = 0; i < 1000; ++i) {
    builder.build(i, 0, frame);
    ASSERT_EQ(IpAddress::v4(frame + 14 + 12).to_string(), "192.0.2.7") << "packet " << i;
  }
  spec.flows = 64512 + 1;  // one more than the ports of one address
  EXPECT_FALSE(validate(spec));
}

TEST(Traffic, Ipv6HostPrefixSendsFromItsOwnAddress) {
  TrafficSpec spec = spec_with(10);
  spec.vips = {{IpAddress::parse("2001:db8::10").value(), 80, kProtocolTcp}};
  spec.clients = {IpPrefix::parse("2001:db8:1::5/128").value()};
  FrameBuilder builder(spec);
  uint8_t frame[kMaxFrameSize];
  builder.build(3, 0, frame);
  EXPECT_EQ(IpAddress::v6(frame + 14 + 8).to_string(), "2001:db8:1::5");
}

TEST(Traffic, EveryKindVisitsEveryFlow) {
  TrafficSpec spec = spec_with(100);
  spec.vips.push_back({IpAddress::parse("203.0.113.11").value(), 53, kProtocolUdp});
  ASSERT_TRUE(parse_mix("ack=6,syn=3,udp=1", spec));
  FrameBuilder builder(spec);
  std::set<uint64_t> flows_by_kind[3];
  for (uint64_t i = 0; i < 1000; ++i) {
    const PacketKind kind = builder.kind_of(i);
    flows_by_kind[static_cast<int>(kind)].insert(builder.flow_of(i));
  }
  for (const auto& flows : flows_by_kind) EXPECT_EQ(flows.size(), 100u);
}

TEST(Traffic, StampRoundTrips) {
  FrameBuilder builder(spec_with(4));
  uint8_t frame[kMaxFrameSize];
  const uint32_t length = builder.build(3, 0x123456789abcdeULL, frame);
  EXPECT_EQ(length, 60u);  // a 64-byte frame without FCS
  EXPECT_EQ(read_stamp({frame, length}), 0x123456789abcdeULL & kStampMask);
}

}  // namespace
}  // namespace sluice::pktgen
