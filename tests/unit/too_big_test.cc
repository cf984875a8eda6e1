// ICMP fragmentation needed and ICMPv6 packet too big for packets that would exceed the egress
// MTU after encapsulation (DESIGN.md step 5). Every expected reply is built by the test from
// the RFCs' field layouts, with the MTU values written out: a 1500-byte packet on a 1500-byte
// link gets 1480 with IPv4 in IPv4 and 1460 with IPv6 in IPv6.
#include <cstdint>

#include <gtest/gtest.h>

#include "sluice/packet.h"
#include "sluice/pipeline.h"
#include "test_frames.h"

namespace sluice::test {
namespace {

constexpr uint8_t kDscpCs6 = 0xc0;

// The ICMP message with its checksum: type, code, `rest`, then the first `quote` bytes of the
// datagram. For ICMPv6 the checksum also covers `pseudo_header`.
Bytes checksummed_icmp(uint8_t type, uint8_t code, uint32_t rest, const Bytes& datagram, size_t quote,
                       const Bytes& pseudo_header = {}) {
  Bytes icmp = icmp_message(type, code, rest, datagram, quote);
  Bytes summed = pseudo_header;
  summed.insert(summed.end(), icmp.begin(), icmp.end());
  store16(icmp, 2, static_cast<uint16_t>(~ones_complement_sum(summed.data(), summed.size())));
  return icmp;
}

// The reply goes back to the router it came from (the request's source MAC).
Bytes reply_frame(uint16_t ether_type, const Bytes& packet, std::initializer_list<VlanTag> tags = {}) {
  return ethernet_frame(ether_type, packet, tags, 0, kRouterMac, kEgressMac);
}

Bytes fragmentation_needed(const Bytes& datagram, uint16_t mtu, const Ipv4& vip = kVip4) {
  return ipv4_packet({.source = vip, .destination = kClient4, .protocol = kNextIcmp, .tos = kDscpCs6,
                      .id = 0, .ttl = 64},
                     checksummed_icmp(3, 4, mtu, datagram, 548));
}

Bytes packet_too_big(const Bytes& datagram, uint32_t mtu) {
  return ipv6_packet({.source = kVip6, .destination = kClient6, .hop_limit = 64}, kNextIcmpv6,
                     checksummed_icmp(2, 0, mtu, datagram, 1232, pseudo_header6(kVip6, kClient6, 8 + 1232)));
}

// A 1500-byte IPv4 TCP datagram from the client to the VIP, DF set by default.
Bytes big_datagram4(bool dont_fragment = true, const Ipv4& source = kClient4) {
  return ipv4_packet({.source = source, .dont_fragment = dont_fragment},
                     tcp_segment({.flags = kAck, .payload_size = 1500 - 40}));
}

Bytes big_datagram6() { return ipv6_packet({}, kNextTcp, tcp_segment({.flags = kAck, .payload_size = 1500 - 60})); }

struct RunResult {
  Verdict verdict;
  Bytes output;
};

RunResult run(const Snapshot& snapshot, Pipeline& pipeline, const Bytes& frame) {
  RunResult result;
  result.verdict = run_frame(pipeline, snapshot, frame, kStartNs, &result.output);
  return result;
}

void expect_reply_counted(const Pipeline& pipeline, uint64_t replies) {
  EXPECT_EQ(pipeline.counters().icmp_too_big_replies.get(), replies);
  EXPECT_EQ(pipeline.counters().forwarded.get(), 0u) << "nothing goes to a backend";
  EXPECT_EQ(pipeline.counters().drops[static_cast<int>(DropReason::kTooBigAfterEncapsulation)].get(), 0u);
  for (uint32_t slot = 0; slot < 6; ++slot) EXPECT_EQ(pipeline.counters().backends[slot].packets.get(), 0u);
}

TEST(TooBig, Ipv4InIpv4Gets1480) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(64);
  const Bytes datagram = big_datagram4();
  const RunResult result = run(snapshot, pipeline, ethernet_frame(kEtherTypeIpv4, datagram));
  EXPECT_EQ(result.verdict.action, Action::kForward);
  EXPECT_EQ(result.verdict.backend, Verdict::kNoSlot);
  const Bytes expected = reply_frame(kEtherTypeIpv4, fragmentation_needed(datagram, 1480));
  EXPECT_EQ(result.output, expected);
  ASSERT_EQ(result.output.size(), 14u + 20u + 8u + 548u) << "576 bytes of IP, as RFC 1812 asks";

  // Fields read back from the output, independently of the builder above.
  const uint8_t* ip = result.output.data() + 14;
  EXPECT_EQ(ones_complement_sum(ip, 20), 0xffff) << "valid IPv4 header checksum";
  EXPECT_EQ(ones_complement_sum(ip + 20, 8 + 548), 0xffff) << "valid ICMP checksum";
  EXPECT_EQ(load16(ip + 6), 0) << "fragment field 0";
  EXPECT_EQ(ip[20], 3);
  EXPECT_EQ(ip[21], 4);
  EXPECT_EQ(load16(ip + 20 + 6), 1480);
  expect_reply_counted(pipeline, 1);
}

TEST(TooBig, Ipv6InIpv6Gets1460) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(64);
  const Bytes datagram = big_datagram6();
  const RunResult result = run(snapshot, pipeline, ethernet_frame(kEtherTypeIpv6, datagram));
  EXPECT_EQ(result.verdict.action, Action::kForward);
  EXPECT_EQ(result.output, reply_frame(kEtherTypeIpv6, packet_too_big(datagram, 1460)));
  ASSERT_EQ(result.output.size(), 14u + 1280u) << "1280 bytes of IP, as RFC 4443 asks";

  const uint8_t* ip = result.output.data() + 14;
  Bytes summed = pseudo_header6(kVip6, kClient6, 8 + 1232);
  summed.insert(summed.end(), ip + 40, ip + 40 + 8 + 1232);
  EXPECT_EQ(ones_complement_sum(summed.data(), summed.size()), 0xffff) << "valid ICMPv6 checksum";
  EXPECT_EQ(ip[40], 2);
  EXPECT_EQ(load16(ip + 40 + 6), 1460);
  expect_reply_counted(pipeline, 1);
}

TEST(TooBig, GueAndIpv4InIpv6Overheads) {
  Snapshot snapshot = make_snapshot();
  snapshot.vips[0].encapsulation = SLUICE_ENCAP_GUE;
  snapshot.vips[1].encapsulation = SLUICE_ENCAP_GUE;
  Pipeline pipeline(64);
  const Bytes datagram4 = big_datagram4();
  EXPECT_EQ(run(snapshot, pipeline, ethernet_frame(kEtherTypeIpv4, datagram4)).output,
            reply_frame(kEtherTypeIpv4, fragmentation_needed(datagram4, 1472)))
      << "GUE over IPv4: 20 + 8 bytes";
  const Bytes datagram6 = big_datagram6();
  EXPECT_EQ(run(snapshot, pipeline, ethernet_frame(kEtherTypeIpv6, datagram6)).output,
            reply_frame(kEtherTypeIpv6, packet_too_big(datagram6, 1452)))
      << "GUE over IPv6: 40 + 8 bytes";

  // The IPv4 VIP's backends are IPv6 now: IPv4 in IPv6 costs 40 bytes, and with GUE 48. A
  // new pipeline, so that no flow entry keeps the flow on its IPv4 backend.
  snapshot.vips[0].maglev = maglev_all_to(kFirstIpv6Slot);
  expect_reply_counted(pipeline, 2);
  Pipeline fresh(64);
  EXPECT_EQ(run(snapshot, fresh, ethernet_frame(kEtherTypeIpv4, datagram4)).output,
            reply_frame(kEtherTypeIpv4, fragmentation_needed(datagram4, 1452)));
  snapshot.vips[0].encapsulation = SLUICE_ENCAP_IPIP;
  EXPECT_EQ(run(snapshot, fresh, ethernet_frame(kEtherTypeIpv4, datagram4)).output,
            reply_frame(kEtherTypeIpv4, fragmentation_needed(datagram4, 1460)));
  expect_reply_counted(fresh, 2);
}

TEST(TooBig, VlanTagsStay) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(64);
  const Bytes datagram = big_datagram4();
  const RunResult result = run(snapshot, pipeline, ethernet_frame(kEtherTypeIpv4, datagram, {{.tpid = kTpid8021ad, .tci = 5}, {}}));
  EXPECT_EQ(result.output,
            reply_frame(kEtherTypeIpv4, fragmentation_needed(datagram, 1480), {{.tpid = kTpid8021ad, .tci = 5}, {}}));
}

TEST(TooBig, LargerMtuForwards) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(64);
  FrameBuffer buffer(ethernet_frame(kEtherTypeIpv4, big_datagram4()));
  const Verdict verdict = pipeline.process(snapshot, buffer.packet(), EgressPort{MacAddress{kEgressMac}, 1520}, kStartNs);
  EXPECT_EQ(verdict.action, Action::kForward);
  EXPECT_NE(verdict.backend, Verdict::kNoSlot) << "1500 + 20 fits 1520";
  EXPECT_EQ(pipeline.counters().icmp_too_big_replies.get(), 0u);
}

TEST(TooBig, SmallestMtuStillQuotesInFull) {
  // On a 1280-byte link with GUE over IPv6, a 1233-byte packet is too big by one byte, and
  // its reply quotes 1232 bytes of it, the most that 1280 bytes of reply can hold.
  Snapshot snapshot = make_snapshot();
  snapshot.vips[1].encapsulation = SLUICE_ENCAP_GUE;
  Pipeline pipeline(64);
  const Bytes datagram = ipv6_packet({}, kNextTcp, tcp_segment({.flags = kAck, .payload_size = 1233 - 60}));
  FrameBuffer buffer(ethernet_frame(kEtherTypeIpv6, datagram));
  const Verdict verdict = pipeline.process(snapshot, buffer.packet(), EgressPort{MacAddress{kEgressMac}, 1280}, kStartNs);
  EXPECT_EQ(verdict.action, Action::kForward);
  EXPECT_EQ(buffer.contents(), reply_frame(kEtherTypeIpv6, packet_too_big(datagram, 1232)));
}

// No error may be sent about these: they are dropped and counted, as before.
TEST(TooBig, DroppedWithoutReply) {
  const Snapshot snapshot = make_snapshot();
  const auto expect_dropped = [&](const Bytes& frame, const char* what) {
    Pipeline pipeline(64);
    const RunResult result = run(snapshot, pipeline, frame);
    EXPECT_EQ(result.verdict.action, Action::kDrop) << what;
    EXPECT_EQ(result.verdict.drop, DropReason::kTooBigAfterEncapsulation) << what;
    EXPECT_EQ(result.output, frame) << what << ": the frame is left as it was";
    EXPECT_EQ(pipeline.counters().icmp_too_big_replies.get(), 0u) << what;
  };
  expect_dropped(ethernet_frame(kEtherTypeIpv4, big_datagram4(false)), "IPv4 without DF");
  expect_dropped(ethernet_frame(kEtherTypeIpv4, big_datagram4(true, Ipv4{224, 0, 0, 5})), "multicast source");
  expect_dropped(ethernet_frame(kEtherTypeIpv4, big_datagram4(true, Ipv4{0, 0, 0, 0})), "unspecified source");
  expect_dropped(ethernet_frame(kEtherTypeIpv4, big_datagram4(true, Ipv4{255, 255, 255, 255})), "broadcast source");
  expect_dropped(ethernet_frame(kEtherTypeIpv4,
                                ipv4_packet({.dont_fragment = true, .more_fragments = true},
                                            tcp_segment({.flags = kAck, .payload_size = 1480}))),
                 "IPv4 fragment");
  // An ICMPv6 error about a VIP flow that is itself too big: never an error about an error.
  expect_dropped(icmp6_error_frame(1, 0, kNextTcp,
                                   tcp_segment({.source_port = 80, .destination_port = 40000, .payload_size = 1400}),
                                   1400 + 20),
                 "ICMPv6 error");
}

}  // namespace
}  // namespace sluice::test
