// IP-in-IP encapsulation, compared byte for byte with frames the test builds on its own:
// IPv4 in IPv4 (RFC 2003) and IPv6 in IPv6 (RFC 2473). gue_test.cc covers GUE and IPv4 in
// IPv6, too_big_test.cc the replies to packets that do not fit.
#include <cstdint>
#include <cstring>

#include <gtest/gtest.h>

#include "sluice/encap.h"
#include "sluice/packet.h"
#include "sluice/pipeline.h"
#include "test_frames.h"

namespace sluice::test {
namespace {

constexpr uint8_t kOuterTtl = 64;
constexpr uint8_t kProtocolIpInIp = 4;
constexpr uint8_t kNextIpv6InIpv6 = 41;

struct EncapsulationOutput {
  DropReason drop = DropReason::kNone;
  Bytes frame;  // the frame after the call
  uint32_t headroom = 0;
};

// Parses `frame` and encapsulates it in a buffer with `headroom` bytes in front.
EncapsulationOutput encapsulate(const Bytes& frame, const IpAddress& source,
                                const IpAddress& destination, uint32_t flow_hash = 0,
                                uint32_t mtu = 1500, uint32_t headroom = 128) {
  const ParseResult parse = parse_packet({frame.data(), frame.size()});
  EXPECT_EQ(parse.drop, DropReason::kNone) << drop_reason_name(parse.drop);
  FrameBuffer buffer(frame, headroom);
  const EncapsulationParams params{MacAddress{kEgressMac}, MacAddress{kNextHopMac}, source,
                                   destination, flow_hash, mtu};
  EncapsulationOutput output;
  output.drop = encapsulate(buffer.packet(), parse.packet, params);
  output.frame = buffer.contents();
  output.headroom = buffer.packet().headroom;
  return output;
}

// The frame a backend should receive: new MACs, the same VLAN tags, then the outer header
// around the inner datagram.
Bytes expected_frame(uint16_t ether_type, const Bytes& outer_packet,
                     std::initializer_list<VlanTag> tags = {}) {
  return ethernet_frame(ether_type, outer_packet, tags, 0, kNextHopMac, kEgressMac);
}

// Checks that the outer IPv4 header at `offset` sums to 0xffff with its checksum included.
void expect_ipv4_checksum_valid(const Bytes& frame, size_t offset) {
  ASSERT_GE(frame.size(), offset + 20);
  EXPECT_EQ(ones_complement_sum(frame.data() + offset, 20), 0xffff);
}

TEST(Encapsulation, Ipv4InIpv4DontFragment) {
  const Ipv4Spec inner{.tos = 0xb9, .id = 0xbeef, .dont_fragment = true};
  const Bytes datagram = ipv4_packet(inner, tcp_segment({.flags = kAck, .payload_size = 100}));
  const Bytes frame = ethernet_frame(kEtherTypeIpv4, datagram);

  const EncapsulationOutput output =
      encapsulate(frame, address4(kSource4), address4(backend4(1)));
  ASSERT_EQ(output.drop, DropReason::kNone);

  const Bytes outer = ipv4_packet({.source = kSource4, .destination = backend4(1),
                                   .protocol = kProtocolIpInIp, .tos = 0xb9, .id = 0xbeef,
                                   .dont_fragment = true, .ttl = kOuterTtl},
                                  datagram);
  EXPECT_EQ(output.frame, expected_frame(kEtherTypeIpv4, outer));
  expect_ipv4_checksum_valid(output.frame, 14);
  EXPECT_EQ(output.headroom, 128u - 20u);

  // The fields the RFC and the header comment name, read back from the output.
  const uint8_t* header = output.frame.data() + 14;
  EXPECT_EQ(header[0], 0x45);
  EXPECT_EQ(header[1], 0xb9) << "TOS copied";
  EXPECT_EQ(load16(header + 2), 20 + datagram.size());
  EXPECT_EQ(load16(header + 4), 0xbeef) << "outer ID is the inner ID";
  EXPECT_EQ(load16(header + 6), 0x4000) << "DF copied";
  EXPECT_EQ(header[8], kOuterTtl);
  EXPECT_EQ(header[9], kProtocolIpInIp);
}

TEST(Encapsulation, Ipv4InIpv4NoDontFragment) {
  const Ipv4Spec inner{.tos = 0x00, .id = 0x0102};
  const Bytes datagram = ipv4_packet(inner, tcp_segment({.flags = kSyn}));
  const Bytes frame = ethernet_frame(kEtherTypeIpv4, datagram);

  const EncapsulationOutput output =
      encapsulate(frame, address4(kSource4), address4(backend4(0)));
  ASSERT_EQ(output.drop, DropReason::kNone);
  const Bytes outer = ipv4_packet({.source = kSource4, .destination = backend4(0),
                                   .protocol = kProtocolIpInIp, .id = 0x0102, .ttl = kOuterTtl},
                                  datagram);
  EXPECT_EQ(output.frame, expected_frame(kEtherTypeIpv4, outer));
  expect_ipv4_checksum_valid(output.frame, 14);
}

TEST(Encapsulation, Ipv4FragmentOuterHasNoMoreFragments) {
  // The inner datagram is a first fragment, but the outer packet is a whole datagram.
  const Ipv4Spec inner{.id = 0x7777, .more_fragments = true};
  const Bytes datagram = ipv4_packet(inner, tcp_segment({.payload_size = 64}));
  const EncapsulationOutput output = encapsulate(ethernet_frame(kEtherTypeIpv4, datagram),
                                                 address4(kSource4), address4(backend4(2)));
  ASSERT_EQ(output.drop, DropReason::kNone);
  const Bytes outer = ipv4_packet({.source = kSource4, .destination = backend4(2),
                                   .protocol = kProtocolIpInIp, .id = 0x7777, .ttl = kOuterTtl},
                                  datagram);
  EXPECT_EQ(output.frame, expected_frame(kEtherTypeIpv4, outer));
}

TEST(Encapsulation, Ipv4ChecksumMatchesManyHeaders) {
  // Different IDs, TOS values and lengths exercise carries in the one's complement sum.
  for (uint32_t i = 0; i < 64; ++i) {
    const Ipv4Spec inner{.tos = static_cast<uint8_t>(i * 4),
                         .id = static_cast<uint16_t>(i * 0x1111),
                         .dont_fragment = (i % 2) == 0};
    const Bytes datagram = ipv4_packet(inner, tcp_segment({.payload_size = i * 7}));
    const EncapsulationOutput output = encapsulate(ethernet_frame(kEtherTypeIpv4, datagram),
                                                   address4({198, 51, 100, 255}),
                                                   address4({203, 0, 113, 255}));
    ASSERT_EQ(output.drop, DropReason::kNone);
    expect_ipv4_checksum_valid(output.frame, 14);
  }
}

TEST(Encapsulation, Ipv4HeaderChecksumKnownValue) {
  // The IPv4 header of a UDP datagram with the checksum field zero. Its words sum to 0x479e
  // after folding, so the checksum is ~0x479e = 0xb861.
  const uint8_t header[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                              0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  const uint16_t checksum = ipv4_header_checksum(header, 20);
  uint8_t bytes[2];
  std::memcpy(bytes, &checksum, 2);
  EXPECT_EQ(bytes[0], 0xb8);
  EXPECT_EQ(bytes[1], 0x61);
}

TEST(Encapsulation, Ipv6InIpv6) {
  const Ipv6Spec inner{.traffic_class = 0xb9, .flow_label = 0x12345};
  const Bytes datagram = ipv6_packet(inner, kNextTcp, tcp_segment({.payload_size = 33}));
  const Bytes frame = ethernet_frame(kEtherTypeIpv6, datagram);
  const uint32_t flow_hash = 0xabcdef12;

  const EncapsulationOutput output =
      encapsulate(frame, address6(kSource6), address6(backend6(2)), flow_hash);
  ASSERT_EQ(output.drop, DropReason::kNone);

  const Bytes outer = ipv6_packet({.source = kSource6, .destination = backend6(2),
                                   .traffic_class = 0xb9, .flow_label = 0xdef12,
                                   .hop_limit = kOuterTtl},
                                  kNextIpv6InIpv6, datagram);
  EXPECT_EQ(output.frame, expected_frame(kEtherTypeIpv6, outer));
  EXPECT_EQ(output.headroom, 128u - 40u);

  const uint8_t* header = output.frame.data() + 14;
  EXPECT_EQ(load16(header + 4), datagram.size()) << "payload length is the inner datagram";
  EXPECT_EQ(header[6], kNextIpv6InIpv6);
  EXPECT_EQ(header[7], kOuterTtl);
}

TEST(Encapsulation, Ipv6FlowLabelFromHash) {
  const Bytes datagram = ipv6_packet({}, kNextTcp, tcp_segment({}));
  const Bytes frame = ethernet_frame(kEtherTypeIpv6, datagram);
  for (uint32_t flow_hash : {0u, 0xfffffu, 0x100000u, 0xffffffffu, 0x5a5a5a5au}) {
    const EncapsulationOutput output =
        encapsulate(frame, address6(kSource6), address6(backend6(0)), flow_hash);
    ASSERT_EQ(output.drop, DropReason::kNone);
    const uint8_t* header = output.frame.data() + 14;
    const uint32_t first_word = (static_cast<uint32_t>(header[0]) << 24) |
                                (header[1] << 16) | (header[2] << 8) | header[3];
    EXPECT_EQ(first_word >> 28, 6u);
    EXPECT_EQ((first_word >> 20) & 0xff, 0u) << "traffic class";
    EXPECT_EQ(first_word & 0xfffff, flow_hash & 0xfffff) << std::hex << flow_hash;
  }
}

TEST(Encapsulation, VlanTagsKept) {
  const Bytes datagram4 = ipv4_packet({.id = 9}, tcp_segment({}));
  const Bytes frame4 =
      ethernet_frame(kEtherTypeIpv4, datagram4, {{kTpid8021ad, 0x2064}, {kTpid8021Q, 0xa00c}});
  const EncapsulationOutput output4 =
      encapsulate(frame4, address4(kSource4), address4(backend4(0)));
  ASSERT_EQ(output4.drop, DropReason::kNone);
  const Bytes outer4 = ipv4_packet({.source = kSource4, .destination = backend4(0),
                                    .protocol = kProtocolIpInIp, .id = 9, .ttl = kOuterTtl},
                                   datagram4);
  EXPECT_EQ(output4.frame, expected_frame(kEtherTypeIpv4, outer4,
                                          {{kTpid8021ad, 0x2064}, {kTpid8021Q, 0xa00c}}));
  expect_ipv4_checksum_valid(output4.frame, 22);

  const Bytes datagram6 = ipv6_packet({}, kNextTcp, tcp_segment({}));
  const Bytes frame6 = ethernet_frame(kEtherTypeIpv6, datagram6, {{kTpid8021Q, 0x0123}});
  const EncapsulationOutput output6 =
      encapsulate(frame6, address6(kSource6), address6(backend6(1)), 0x777);
  ASSERT_EQ(output6.drop, DropReason::kNone);
  const Bytes outer6 = ipv6_packet({.source = kSource6, .destination = backend6(1),
                                    .flow_label = 0x777, .hop_limit = kOuterTtl},
                                   kNextIpv6InIpv6, datagram6);
  EXPECT_EQ(output6.frame, expected_frame(kEtherTypeIpv6, outer6, {{kTpid8021Q, 0x0123}}));
}

TEST(Encapsulation, EthernetPaddingCut) {
  const Bytes datagram = ipv4_packet({.id = 3}, tcp_segment({}));
  const Bytes frame = ethernet_frame(kEtherTypeIpv4, datagram, {}, 60);
  ASSERT_EQ(frame.size(), 60u);
  const EncapsulationOutput output =
      encapsulate(frame, address4(kSource4), address4(backend4(0)));
  ASSERT_EQ(output.drop, DropReason::kNone);
  const Bytes outer = ipv4_packet({.source = kSource4, .destination = backend4(0),
                                   .protocol = kProtocolIpInIp, .id = 3, .ttl = kOuterTtl},
                                  datagram);
  EXPECT_EQ(output.frame, expected_frame(kEtherTypeIpv4, outer));
  EXPECT_EQ(output.frame.size(), 14u + 20u + 40u);

  const Bytes datagram6 = ipv6_packet({}, kNextUdp, udp_datagram(1, 2));
  const Bytes frame6 = ethernet_frame(kEtherTypeIpv6, datagram6, {}, 100);
  const EncapsulationOutput output6 =
      encapsulate(frame6, address6(kSource6), address6(backend6(0)));
  ASSERT_EQ(output6.drop, DropReason::kNone);
  EXPECT_EQ(output6.frame.size(), 14u + 40u + datagram6.size());
}

TEST(Encapsulation, TooBigAfterEncapsulation) {
  // An inner IPv4 datagram of 1480 bytes fills a 1500-byte MTU exactly. One more byte fails.
  const Bytes fits4 = tcp4_frame({.payload_size = 1480 - 40});
  EXPECT_EQ(encapsulate(fits4, address4(kSource4), address4(backend4(0))).drop,
            DropReason::kNone);
  const Bytes big4 = tcp4_frame({.payload_size = 1481 - 40});
  const EncapsulationOutput too_big4 = encapsulate(big4, address4(kSource4), address4(backend4(0)));
  EXPECT_EQ(too_big4.drop, DropReason::kTooBigAfterEncapsulation);
  EXPECT_EQ(too_big4.frame, big4) << "a rejected frame is left as it was";

  const Bytes fits6 = tcp6_frame({.payload_size = 1460 - 60});
  EXPECT_EQ(encapsulate(fits6, address6(kSource6), address6(backend6(0))).drop,
            DropReason::kNone);
  const Bytes big6 = tcp6_frame({.payload_size = 1461 - 60});
  EXPECT_EQ(encapsulate(big6, address6(kSource6), address6(backend6(0))).drop,
            DropReason::kTooBigAfterEncapsulation);

  // The MTU is a parameter: 9000 takes what 1500 rejects.
  EXPECT_EQ(encapsulate(big4, address4(kSource4), address4(backend4(0)), 0, 9000).drop,
            DropReason::kNone);
}

TEST(Encapsulation, NoHeadroom) {
  const Bytes frame4 = tcp4_frame({});
  const EncapsulationOutput short4 =
      encapsulate(frame4, address4(kSource4), address4(backend4(0)), 0, 1500, 19);
  EXPECT_EQ(short4.drop, DropReason::kNoHeadroom);
  EXPECT_EQ(short4.frame, frame4);
  EXPECT_EQ(short4.headroom, 19u);
  const EncapsulationOutput exact4 =
      encapsulate(frame4, address4(kSource4), address4(backend4(0)), 0, 1500, 20);
  EXPECT_EQ(exact4.drop, DropReason::kNone);
  EXPECT_EQ(exact4.headroom, 0u);

  const Bytes frame6 = tcp6_frame({});
  EXPECT_EQ(encapsulate(frame6, address6(kSource6), address6(backend6(0)), 0, 1500, 39).drop,
            DropReason::kNoHeadroom);
  EXPECT_EQ(encapsulate(frame6, address6(kSource6), address6(backend6(0)), 0, 1500, 40).drop,
            DropReason::kNone);
}

TEST(Encapsulation, MixedFamilyRejected) {
  // IPv4 goes in IPv6 too (gue_test.cc), but IPv6 never goes in IPv4, and the outer source
  // is of the backend's family.
  const Bytes frame4 = tcp4_frame({});
  EXPECT_EQ(encapsulate(frame4, address6(kSource6), address4(backend4(0))).drop,
            DropReason::kUnsupportedEncapsulation)
      << "outer source of the other family";
  EXPECT_EQ(encapsulate(frame4, address4(kSource4), address6(backend6(0))).drop,
            DropReason::kUnsupportedEncapsulation)
      << "outer source of the other family";

  const Bytes frame6 = tcp6_frame({});
  const EncapsulationOutput ipv4_backend = encapsulate(frame6, address4(kSource4), address4(backend4(0)));
  EXPECT_EQ(ipv4_backend.drop, DropReason::kUnsupportedEncapsulation);
  EXPECT_EQ(ipv4_backend.frame, frame6);
  EXPECT_EQ(encapsulate(frame6, IpAddress{}, address6(backend6(0))).drop,
            DropReason::kUnsupportedEncapsulation)
      << "unset outer source";
}

// ---- Through the pipeline -----------------------------------------------------------------

TEST(Encapsulation, PipelineIpv4Frame) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(64);
  const Bytes datagram = ipv4_packet({.tos = 0x10, .id = 0x4242, .dont_fragment = true},
                                     tcp_segment({.flags = kSyn}));
  Bytes output;
  const Verdict verdict = run_frame(pipeline, snapshot,
                                    ethernet_frame(kEtherTypeIpv4, datagram, {}, 60), kStartNs,
                                    &output);
  ASSERT_EQ(verdict.action, Action::kForward);
  ASSERT_LT(verdict.backend, 3u);

  const Bytes outer = ipv4_packet({.source = kSource4, .destination = backend4(verdict.backend),
                                   .protocol = kProtocolIpInIp, .tos = 0x10, .id = 0x4242,
                                   .dont_fragment = true, .ttl = kOuterTtl},
                                  datagram);
  EXPECT_EQ(output, expected_frame(kEtherTypeIpv4, outer));
}

TEST(Encapsulation, PipelineIpv6Frame) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(64);
  const Bytes datagram =
      ipv6_packet({.traffic_class = 0x28}, kNextTcp, tcp_segment({.flags = kSyn}));
  Bytes output;
  const Verdict verdict =
      run_frame(pipeline, snapshot, ethernet_frame(kEtherTypeIpv6, datagram), kStartNs, &output);
  ASSERT_EQ(verdict.action, Action::kForward);
  ASSERT_GE(verdict.backend, kFirstIpv6Slot);
  ASSERT_LT(verdict.backend, kFirstIpv6Slot + 3);

  // The flow label is the low 20 bits of the flow hash with the snapshot's seed. The flow
  // hash tests pin the hash itself.
  const sluice_flow_key key = flow_key6(kClient6, kVip6, kNextTcp, 40000, 80);
  const uint32_t label = sluice_flow_hash(&key, snapshot.seed) & 0xfffff;
  const int backend = static_cast<int>(verdict.backend - kFirstIpv6Slot);
  const Bytes outer = ipv6_packet({.source = kSource6, .destination = backend6(backend),
                                   .traffic_class = 0x28, .flow_label = label,
                                   .hop_limit = kOuterTtl},
                                  kNextIpv6InIpv6, datagram);
  EXPECT_EQ(output, expected_frame(kEtherTypeIpv6, outer));
}

TEST(Encapsulation, PipelineCountsTooBig) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(64);
  const Bytes frame = tcp4_frame({.payload_size = 1481 - 40});
  Bytes output;
  const Verdict verdict = run_frame(pipeline, snapshot, frame, kStartNs, &output);
  EXPECT_EQ(verdict.action, Action::kDrop);
  EXPECT_EQ(verdict.drop, DropReason::kTooBigAfterEncapsulation);
  EXPECT_EQ(output, frame);
  EXPECT_EQ(
      pipeline.counters().drops[static_cast<int>(DropReason::kTooBigAfterEncapsulation)].get(),
      1u);
  EXPECT_EQ(pipeline.counters().forwarded.get(), 0u);
}

}  // namespace
}  // namespace sluice::test
