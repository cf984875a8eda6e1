// GUE (the datagram in UDP) and IPv4 in IPv6, compared byte for byte with frames the test
// builds on its own, and GUE's outer source port.
#include <cstdint>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/encap.h"
#include "sluice/flow_hash.h"
#include "sluice/packet.h"
#include "sluice/pipeline.h"
#include "test_frames.h"

namespace sluice::test {
namespace {

constexpr uint8_t kOuterTtl = 64;
constexpr uint8_t kProtocolIpInIp = 4;
constexpr uint8_t kNextIpv6InIpv6 = 41;
constexpr uint16_t kGuePort = 6080;

struct Output {
  DropReason drop = DropReason::kNone;
  Bytes frame;
};

Output encapsulate_frame(const Bytes& frame, const IpAddress& source, const IpAddress& destination,
                         sluice_encapsulation encapsulation, uint32_t flow_hash = 0x12345678,
                         uint16_t gue_port = kGuePort) {
  const ParseResult parse = parse_packet({frame.data(), frame.size()});
  EXPECT_EQ(parse.drop, DropReason::kNone) << drop_reason_name(parse.drop);
  FrameBuffer buffer(frame);
  const EncapsulationParams params{MacAddress{kEgressMac}, MacAddress{kNextHopMac}, source,
                                   destination, flow_hash, 1500, encapsulation, gue_port};
  Output output;
  output.drop = encapsulate(buffer.packet(), parse.packet, params);
  output.frame = buffer.contents();
  return output;
}

// GUE variant 1: a UDP header whose payload is the datagram itself. The checksum is 0.
Bytes gue_udp(uint16_t source_port, const Bytes& datagram, uint16_t gue_port = kGuePort) {
  Bytes out;
  append16(out, source_port);
  append16(out, gue_port);
  append16(out, static_cast<uint16_t>(8 + datagram.size()));
  append16(out, 0);
  append(out, datagram);
  return out;
}

Bytes expected_frame(uint16_t ether_type, const Bytes& outer, std::initializer_list<VlanTag> tags = {}) {
  return ethernet_frame(ether_type, outer, tags, 0, kNextHopMac, kEgressMac);
}

TEST(Gue, SourcePortFromFlowHash) {
  // 0xc000 | low 14 bits of (hash ^ hash >> 16): 0x5678 ^ 0x1234 = 0x444c.
  EXPECT_EQ(sluice_gue_source_port(0x12345678), 0xc000 | (0x444c & 0x3fff));
  EXPECT_EQ(sluice_gue_source_port(0), 49152) << "never 0: the lowest port is 49152";
  EXPECT_EQ(sluice_gue_source_port(0xffffffff), 49152);
  EXPECT_EQ(sluice_gue_source_port(0x00003fff), 65535);
}

TEST(Gue, Ipv4InIpv4) {
  const Bytes datagram = ipv4_packet({.tos = 0x48, .id = 0x0102, .dont_fragment = true},
                                     tcp_segment({.flags = kAck, .payload_size = 10}));
  const Output output = encapsulate_frame(ethernet_frame(kEtherTypeIpv4, datagram), address4(kSource4),
                                          address4(backend4(2)), SLUICE_ENCAP_GUE);
  ASSERT_EQ(output.drop, DropReason::kNone);
  const Bytes outer = ipv4_packet({.source = kSource4, .destination = backend4(2), .protocol = kNextUdp,
                                   .tos = 0x48, .id = 0x0102, .dont_fragment = true, .ttl = kOuterTtl},
                                  gue_udp(sluice_gue_source_port(0x12345678), datagram));
  EXPECT_EQ(output.frame, expected_frame(kEtherTypeIpv4, outer));
  EXPECT_EQ(output.frame.size(), 14u + 20u + 8u + datagram.size());
}

TEST(Gue, Ipv6InIpv6WithVlanTag) {
  const Bytes datagram = ipv6_packet({.traffic_class = 0x20}, kNextUdp, udp_datagram(5353, 53));
  const Output output = encapsulate_frame(ethernet_frame(kEtherTypeIpv6, datagram, {{}}),
                                          address6(kSource6), address6(backend6(1)), SLUICE_ENCAP_GUE,
                                          0xabcdef01, 9999);
  ASSERT_EQ(output.drop, DropReason::kNone);
  const Bytes outer = ipv6_packet({.source = kSource6, .destination = backend6(1), .traffic_class = 0x20,
                                   .flow_label = 0xabcdef01 & 0xfffff, .hop_limit = kOuterTtl},
                                  kNextUdp, gue_udp(sluice_gue_source_port(0xabcdef01), datagram, 9999));
  EXPECT_EQ(output.frame, expected_frame(kEtherTypeIpv6, outer, {{}})) << "the VLAN tag stays";
}

TEST(Gue, Ipv4InIpv6) {
  const Bytes datagram = ipv4_packet({.tos = 0x10}, tcp_segment({.flags = kSyn}));
  const Output output = encapsulate_frame(ethernet_frame(kEtherTypeIpv4, datagram), address6(kSource6),
                                          address6(backend6(0)), SLUICE_ENCAP_GUE);
  ASSERT_EQ(output.drop, DropReason::kNone);
  const Bytes outer = ipv6_packet({.source = kSource6, .destination = backend6(0), .traffic_class = 0x10,
                                   .flow_label = 0x12345678 & 0xfffff, .hop_limit = kOuterTtl},
                                  kNextUdp, gue_udp(sluice_gue_source_port(0x12345678), datagram));
  EXPECT_EQ(output.frame, expected_frame(kEtherTypeIpv6, outer)) << "the EtherType becomes IPv6";
}

TEST(IpipIpv4InIpv6, OuterHeaderAndEtherType) {
  const Bytes datagram = ipv4_packet({.tos = 0xb8, .dont_fragment = true}, tcp_segment({.flags = kAck}));
  // Behind a VLAN tag, the EtherType that changes is the one after the tag.
  const Output output = encapsulate_frame(ethernet_frame(kEtherTypeIpv4, datagram, {{.tci = 7}}, 64),
                                          address6(kSource6), address6(backend6(2)), SLUICE_ENCAP_IPIP);
  ASSERT_EQ(output.drop, DropReason::kNone);
  const Bytes outer = ipv6_packet({.source = kSource6, .destination = backend6(2), .traffic_class = 0xb8,
                                   .flow_label = 0x12345678 & 0xfffff, .hop_limit = kOuterTtl},
                                  kProtocolIpInIp, datagram);
  EXPECT_EQ(output.frame, expected_frame(kEtherTypeIpv6, outer, {{.tci = 7}})) << "padding is cut too";
}

TEST(IpipIpv4InIpv6, Ipv6NeverGoesInIpv4) {
  const Bytes frame = tcp6_frame({});
  for (sluice_encapsulation encapsulation : {SLUICE_ENCAP_IPIP, SLUICE_ENCAP_GUE}) {
    const Output output = encapsulate_frame(frame, address4(kSource4), address4(backend4(0)), encapsulation);
    EXPECT_EQ(output.drop, DropReason::kUnsupportedEncapsulation);
    EXPECT_EQ(output.frame, frame);
  }
  EXPECT_EQ(encapsulate_frame(tcp4_frame({}), address4(kSource4), address6(backend6(0)), SLUICE_ENCAP_GUE).drop,
            DropReason::kUnsupportedEncapsulation)
      << "the outer source must be of the backend's family";
}

TEST(Gue, Overheads) {
  EXPECT_EQ(encapsulation_overhead(4, SLUICE_ENCAP_IPIP), 20u);
  EXPECT_EQ(encapsulation_overhead(6, SLUICE_ENCAP_IPIP), 40u);
  EXPECT_EQ(encapsulation_overhead(4, SLUICE_ENCAP_GUE), 28u);
  EXPECT_EQ(encapsulation_overhead(6, SLUICE_ENCAP_GUE), 48u);
  // The largest datagram that fits a 1500-byte MTU with GUE over IPv4 is 1472 bytes.
  const Bytes fits = tcp4_frame({.payload_size = 1472 - 40});
  EXPECT_EQ(encapsulate_frame(fits, address4(kSource4), address4(backend4(0)), SLUICE_ENCAP_GUE).drop,
            DropReason::kNone);
  const Bytes big = tcp4_frame({.payload_size = 1473 - 40});
  EXPECT_EQ(encapsulate_frame(big, address4(kSource4), address4(backend4(0)), SLUICE_ENCAP_GUE).drop,
            DropReason::kTooBigAfterEncapsulation);
}

TEST(Gue, SourcePortsSpreadWithinOnePrefix) {
  // 4096 clients in one /48 (2001:db8:1::/48), all from source port 40000, to one VIP. The
  // 16384 possible ports should be used about evenly: the expected number of distinct ports
  // among 4096 draws is 16384 * (1 - (1 - 1/16384)^4096), about 3624.
  std::set<uint16_t> ports;
  std::vector<int> bins(16, 0);  // by the top 4 bits of the port's 14 free bits
  for (uint32_t i = 0; i < 4096; ++i) {
    Ipv6 client = kClient6;
    client[4] = 0;
    client[5] = 1;
    client[12] = static_cast<uint8_t>(i >> 24);
    client[13] = static_cast<uint8_t>(i >> 16);
    client[14] = static_cast<uint8_t>(i >> 8);
    client[15] = static_cast<uint8_t>(i);
    const sluice_flow_key key = flow_key6(client, kVip6, kNextUdp, 40000, 443);
    const uint16_t port = sluice_gue_source_port(sluice_flow_hash(&key, 0x5eed5eed));
    ASSERT_GE(port, 49152);
    ports.insert(port);
    ++bins[(port & 0x3fff) >> 10];
  }
  EXPECT_GT(ports.size(), 3500u);
  for (int count : bins) {
    EXPECT_GT(count, 256 / 2);  // 4096 / 16 = 256 expected in each
    EXPECT_LT(count, 256 * 3 / 2);
  }
}

// ---- Through the pipeline -----------------------------------------------------------------

TEST(Gue, PipelineUsesTheVipsEncapsulationAndPort) {
  Snapshot snapshot = make_snapshot();
  snapshot.vips[0].encapsulation = SLUICE_ENCAP_GUE;
  snapshot.gue_port = 7777;
  Pipeline pipeline(64);
  const Bytes datagram = ipv4_packet({}, tcp_segment({.flags = kSyn}));
  Bytes output;
  const Verdict verdict = run_frame(pipeline, snapshot, ethernet_frame(kEtherTypeIpv4, datagram), kStartNs, &output);
  ASSERT_EQ(verdict.action, Action::kForward);
  ASSERT_LT(verdict.backend, 3u);
  const sluice_flow_key key = flow_key4(kClient4, kVip4, kNextTcp, 40000, 80);
  const uint32_t hash = sluice_flow_hash(&key, snapshot.seed);
  const Bytes outer = ipv4_packet({.source = kSource4, .destination = backend4(static_cast<int>(verdict.backend)),
                                   .protocol = kNextUdp, .ttl = kOuterTtl},
                                  gue_udp(sluice_gue_source_port(hash), datagram, 7777));
  EXPECT_EQ(output, expected_frame(kEtherTypeIpv4, outer));

  // The IPv6 VIP keeps IP-in-IP.
  Bytes output6;
  const Bytes datagram6 = ipv6_packet({}, kNextTcp, tcp_segment({.flags = kSyn}));
  ASSERT_EQ(run_frame(pipeline, snapshot, ethernet_frame(kEtherTypeIpv6, datagram6), kStartNs, &output6).action,
            Action::kForward);
  EXPECT_EQ(output6[14 + 6], kNextIpv6InIpv6);
}

TEST(IpipIpv4InIpv6, PipelineSendsIpv4VipToIpv6Backend) {
  Snapshot snapshot = make_snapshot();
  snapshot.vips[0].maglev = maglev_all_to(kFirstIpv6Slot + 1);
  Pipeline pipeline(64);
  const Bytes datagram = ipv4_packet({}, tcp_segment({.flags = kSyn}));
  Bytes output;
  const Verdict verdict = run_frame(pipeline, snapshot, ethernet_frame(kEtherTypeIpv4, datagram), kStartNs, &output);
  ASSERT_EQ(verdict.action, Action::kForward);
  EXPECT_EQ(verdict.backend, kFirstIpv6Slot + 1);
  const sluice_flow_key key = flow_key4(kClient4, kVip4, kNextTcp, 40000, 80);
  const uint32_t hash = sluice_flow_hash(&key, snapshot.seed);
  const Bytes outer = ipv6_packet({.source = kSource6, .destination = backend6(1), .flow_label = hash & 0xfffff,
                                   .hop_limit = kOuterTtl},
                                  kProtocolIpInIp, datagram);
  EXPECT_EQ(output, expected_frame(kEtherTypeIpv6, outer));
  EXPECT_EQ(pipeline.counters().backends[kFirstIpv6Slot + 1].bytes.get(), output.size());
}

}  // namespace
}  // namespace sluice::test
