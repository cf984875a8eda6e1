// Packet parser: a table of well-formed and malformed frames, each checked through
// parse_packet and through Pipeline::process, then header variants (IPv4 options, VLAN tags,
// IPv6 extension headers, fragments) that must reach the same backend as the plain packet.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "parser_cases.h"
#include "sluice/packet.h"
#include "sluice/pipeline.h"
#include "test_frames.h"

namespace sluice::test {
namespace {

ParseResult parse(const Bytes& frame) { return parse_packet({frame.data(), frame.size()}); }

bool keys_equal(const sluice_flow_key& a, const sluice_flow_key& b) {
  return std::memcmp(&a, &b, sizeof(a)) == 0;
}

class ParserTable : public ::testing::TestWithParam<ParseCase> {};

TEST_P(ParserTable, ParseVerdict) {
  const ParseCase& parse_case = GetParam();
  const ParseResult result = parse(parse_case.frame);
  EXPECT_EQ(drop_reason_name(result.drop), drop_reason_name(parse_case.drop));
}

TEST_P(ParserTable, PipelineVerdict) {
  const ParseCase& parse_case = GetParam();
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(64);
  Bytes output;
  const Verdict verdict = run_frame(pipeline, snapshot, parse_case.frame, kStartNs, &output);

  EXPECT_EQ(static_cast<int>(verdict.action), static_cast<int>(parse_case.action));
  EXPECT_EQ(drop_reason_name(verdict.drop), drop_reason_name(parse_case.drop));
  const PipelineCounters& counters = pipeline.counters();
  EXPECT_EQ(counters.received.get(), 1u);
  switch (parse_case.action) {
    case Action::kDrop:
      EXPECT_EQ(counters.drops[static_cast<int>(parse_case.drop)].get(), 1u);
      EXPECT_EQ(output, parse_case.frame) << "a dropped frame is left as it was";
      break;
    case Action::kToKernel:
      EXPECT_EQ(counters.to_kernel.get(), 1u);
      EXPECT_EQ(output, parse_case.frame) << "a frame for the kernel is left as it was";
      break;
    case Action::kForward: {
      if (parse(parse_case.frame).packet.icmp_echo_request) {
        EXPECT_EQ(counters.icmp_echo_replies.get(), 1u) << "answered by the load balancer";
        EXPECT_EQ(verdict.backend, Verdict::kNoSlot);
        break;
      }
      EXPECT_EQ(counters.forwarded.get(), 1u);
      const bool ipv6 = parse(parse_case.frame).packet.family == 6;
      EXPECT_EQ(verdict.backend >= kFirstIpv6Slot, ipv6) << "backend slot " << verdict.backend;
      EXPECT_LT(verdict.backend, kFirstIpv6Slot + 3);
      break;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Frames, ParserTable, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<ParseCase>& info) {
                           return info.param.name;
                         });

// ---- Parsed fields ----------------------------------------------------------------------

TEST(Parser, Ipv4TcpFields) {
  const Bytes frame = tcp4_frame({.source_port = 40001, .flags = kSyn | kAck},
                                 {.tos = 0xb8, .dont_fragment = true});
  const ParseResult result = parse(frame);
  ASSERT_EQ(result.drop, DropReason::kNone);
  const ParsedPacket& packet = result.packet;

  EXPECT_EQ(packet.family, 4);
  EXPECT_EQ(packet.vlan_tags, 0);
  EXPECT_EQ(packet.l3_offset, 14);
  EXPECT_EQ(packet.l4_offset, 34);
  EXPECT_EQ(packet.l3_length, 40);
  EXPECT_EQ(packet.protocol, kProtocolTcp);
  EXPECT_EQ(packet.tcp_flags, kSyn | kAck);
  EXPECT_EQ(packet.traffic_class, 0xb8);
  EXPECT_TRUE(packet.dont_fragment);
  EXPECT_FALSE(packet.fragment);
  EXPECT_TRUE(packet.has_ports);
  EXPECT_TRUE(keys_equal(packet.key, flow_key4(kClient4, kVip4, kNextTcp, 40001, 80)));
}

TEST(Parser, Ipv6TcpFields) {
  const Bytes frame = tcp6_frame({.source_port = 40002, .flags = kFin | kAck},
                                 {.traffic_class = 0x2e, .flow_label = 0xabcde});
  const ParseResult result = parse(frame);
  ASSERT_EQ(result.drop, DropReason::kNone);
  const ParsedPacket& packet = result.packet;

  EXPECT_EQ(packet.family, 6);
  EXPECT_EQ(packet.l3_offset, 14);
  EXPECT_EQ(packet.l4_offset, 54);
  EXPECT_EQ(packet.l3_length, 60);
  EXPECT_EQ(packet.protocol, kProtocolTcp);
  EXPECT_EQ(packet.tcp_flags, kFin | kAck);
  EXPECT_EQ(packet.traffic_class, 0x2e);
  EXPECT_FALSE(packet.fragment);
  EXPECT_TRUE(packet.has_ports);
  EXPECT_TRUE(keys_equal(packet.key, flow_key6(kClient6, kVip6, kNextTcp, 40002, 80)));
}

TEST(Parser, UdpPortsParsed) {
  const Bytes frame =
      ethernet_frame(kEtherTypeIpv4, ipv4_packet({.protocol = kNextUdp}, udp_datagram(5353, 53)));
  const ParseResult result = parse(frame);
  ASSERT_EQ(result.drop, DropReason::kNone);
  EXPECT_TRUE(result.packet.has_ports);
  EXPECT_TRUE(keys_equal(result.packet.key, flow_key4(kClient4, kVip4, kNextUdp, 5353, 53)));
}

TEST(Parser, ArpHasNoFamily) {
  const ParseResult result = parse(arp_request_frame());
  ASSERT_EQ(result.drop, DropReason::kNone);
  EXPECT_EQ(result.packet.family, 0);
  EXPECT_FALSE(result.packet.has_ports);
}

TEST(Parser, EthernetPaddingIgnored) {
  // A 54-byte SYN padded to the 60-byte Ethernet minimum.
  const Bytes frame = ipv4_with_tcp(tcp_segment({}), {}, 60);
  ASSERT_EQ(frame.size(), 60u);
  const ParseResult result = parse(frame);
  ASSERT_EQ(result.drop, DropReason::kNone);
  EXPECT_EQ(result.packet.l3_length, 40);
  EXPECT_TRUE(keys_equal(result.packet.key, flow_key4(kClient4, kVip4, kNextTcp, 40000, 80)));

  const Snapshot snapshot = make_snapshot();
  Pipeline padded_pipeline(64);
  Pipeline plain_pipeline(64);
  Bytes output;
  const Verdict padded = run_frame(padded_pipeline, snapshot, frame, kStartNs, &output);
  const Verdict plain = run_frame(plain_pipeline, snapshot, tcp4_frame({}));
  ASSERT_EQ(padded.action, Action::kForward);
  EXPECT_EQ(padded.backend, plain.backend);
  EXPECT_EQ(output.size(), 14u + 20u + 40u) << "the padding is not sent to the backend";
}

// ---- Header variants that must reach the same backend -------------------------------------

// Sends a SYN of each of `flows` client ports in the frame that `make_frame` builds and
// returns the backends, so variants of one flow can be compared. Sixteen flows over three
// backends make an accidental match of two different keys unlikely (1 in 3^16).
using FrameMaker = std::function<Bytes(uint16_t source_port)>;
constexpr int kFlows = 16;

std::vector<uint32_t> backends_for(const FrameMaker& make_frame) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  std::vector<uint32_t> backends;
  for (int i = 0; i < kFlows; ++i) {
    const Verdict verdict =
        run_frame(pipeline, snapshot, make_frame(static_cast<uint16_t>(40000 + i)));
    EXPECT_EQ(verdict.action, Action::kForward) << drop_reason_name(verdict.drop);
    backends.push_back(verdict.backend);
  }
  return backends;
}

// Checks that the flows of `make_frame` parse to `expected_key` and reach `expected_backends`.
void expect_same_flows(const FrameMaker& make_frame,
                       const std::function<sluice_flow_key(uint16_t)>& expected_key,
                       const std::vector<uint32_t>& expected_backends) {
  for (int i = 0; i < kFlows; ++i) {
    const uint16_t port = static_cast<uint16_t>(40000 + i);
    const ParseResult result = parse(make_frame(port));
    ASSERT_EQ(result.drop, DropReason::kNone) << drop_reason_name(result.drop);
    EXPECT_TRUE(keys_equal(result.packet.key, expected_key(port))) << "port " << port;
  }
  EXPECT_EQ(backends_for(make_frame), expected_backends);
}

TEST(Parser, Ipv4OptionsSameBackend) {
  const auto key = [](uint16_t port) { return flow_key4(kClient4, kVip4, kNextTcp, port, 80); };
  const std::vector<uint32_t> plain =
      backends_for([](uint16_t port) { return tcp4_frame({.source_port = port}); });
  EXPECT_GT(std::set<uint32_t>(plain.begin(), plain.end()).size(), 1u)
      << "the flows must spread over backends for this test to mean anything";

  for (uint8_t option_words : {1, 10}) {
    SCOPED_TRACE("IHL " + std::to_string(5 + option_words));
    const FrameMaker make = [option_words](uint16_t port) {
      return tcp4_frame({.source_port = port}, {.option_words = option_words});
    };
    expect_same_flows(make, key, plain);
    const ParseResult result = parse(make(40000));
    EXPECT_EQ(result.packet.l4_offset, 14 + (5 + option_words) * 4);
    EXPECT_EQ(result.packet.tcp_flags, kSyn);
  }
}

TEST(Parser, VlanTagsSameBackend) {
  const auto key = [](uint16_t port) { return flow_key4(kClient4, kVip4, kNextTcp, port, 80); };
  const std::vector<uint32_t> plain =
      backends_for([](uint16_t port) { return tcp4_frame({.source_port = port}); });

  const FrameMaker one_tag = [](uint16_t port) {
    return tcp4_frame({.source_port = port}, {}, {{kTpid8021Q, 100}});
  };
  const FrameMaker two_tags = [](uint16_t port) {
    return tcp4_frame({.source_port = port}, {}, {{kTpid8021ad, 200}, {kTpid8021Q, 100}});
  };
  expect_same_flows(one_tag, key, plain);
  expect_same_flows(two_tags, key, plain);

  const ParseResult one_tag_result = parse(one_tag(40000));
  EXPECT_EQ(one_tag_result.packet.vlan_tags, 1);
  EXPECT_EQ(one_tag_result.packet.l3_offset, 18);
  const ParseResult two_tag_result = parse(two_tags(40000));
  EXPECT_EQ(two_tag_result.packet.vlan_tags, 2);
  EXPECT_EQ(two_tag_result.packet.l3_offset, 22);
  EXPECT_EQ(two_tag_result.packet.l4_offset, 42);
}

TEST(Parser, Ipv6ExtensionHeadersSameBackend) {
  const auto key = [](uint16_t port) { return flow_key6(kClient6, kVip6, kNextTcp, port, 80); };
  const std::vector<uint32_t> plain =
      backends_for([](uint16_t port) { return tcp6_frame({.source_port = port}); });
  EXPECT_GT(std::set<uint32_t>(plain.begin(), plain.end()).size(), 1u);

  // Hop-by-Hop (8 bytes), AH (24 bytes), Destination Options (16 bytes), then TCP.
  const FrameMaker with_extensions = [](uint16_t port) {
    return ipv6_with(kNextHopByHop,
                     concat({ipv6_options_header(kNextAh), ipv6_ah_header(kNextDestinationOptions),
                             ipv6_options_header(kNextTcp, 1),
                             tcp_segment({.source_port = port})}));
  };
  expect_same_flows(with_extensions, key, plain);

  const ParseResult result = parse(with_extensions(40000));
  EXPECT_EQ(result.packet.l4_offset, 14 + 40 + 8 + 24 + 16);
  EXPECT_EQ(result.packet.protocol, kProtocolTcp);
  EXPECT_EQ(result.packet.l3_length, 40 + 8 + 24 + 16 + 20);
}

// ---- Fragments --------------------------------------------------------------------------

// Client n of the fragment tests is 192.0.2.(n + 1) or 2001:db8:2::(n + 1).
Ipv4 fragment_client4(int n) { return {192, 0, 2, static_cast<uint8_t>(n + 1)}; }
Ipv6 fragment_client6(int n) {
  Ipv6 address = kClient6;
  address[15] = static_cast<uint8_t>(n + 1);
  return address;
}

void expect_fragment(const Bytes& frame, const sluice_flow_key& expected_key) {
  const ParseResult result = parse(frame);
  ASSERT_EQ(result.drop, DropReason::kNone) << drop_reason_name(result.drop);
  EXPECT_TRUE(result.packet.fragment);
  EXPECT_FALSE(result.packet.has_ports) << "a fragment's ports are not read";
  EXPECT_TRUE(keys_equal(result.packet.key, expected_key));
}

TEST(Parser, Ipv4FragmentsSameBackend) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  std::set<uint32_t> used;
  for (int n = 0; n < kFlows; ++n) {
    SCOPED_TRACE("datagram " + std::to_string(n));
    const Ipv4 client = fragment_client4(n);
    const uint16_t id = static_cast<uint16_t>(0x4000 + n);
    // 560 bytes of datagram payload per fragment: offsets 0, 70 and 140 (8-byte units).
    const Bytes first = ipv4_with_tcp(tcp_segment({.source_port = 40000, .payload_size = 540}),
                                      {.source = client, .id = id, .more_fragments = true});
    const Bytes middle = ipv4_with_tcp(
        Bytes(560, 0xee), {.source = client, .id = id, .more_fragments = true,
                           .fragment_offset = 70});
    const Bytes last = ipv4_with_tcp(Bytes(100, 0xee),
                                     {.source = client, .id = id, .fragment_offset = 140});

    const sluice_flow_key key = flow_key4(client, kVip4, kNextTcp, 0, 0);
    expect_fragment(first, key);
    expect_fragment(middle, key);
    expect_fragment(last, key);

    const Verdict first_verdict = run_frame(pipeline, snapshot, first);
    const Verdict middle_verdict = run_frame(pipeline, snapshot, middle);
    const Verdict last_verdict = run_frame(pipeline, snapshot, last);
    ASSERT_EQ(first_verdict.action, Action::kForward);
    EXPECT_EQ(middle_verdict.backend, first_verdict.backend);
    EXPECT_EQ(last_verdict.backend, first_verdict.backend);
    used.insert(first_verdict.backend);
  }
  EXPECT_GT(used.size(), 1u) << "the datagrams must spread over backends";
  EXPECT_EQ(pipeline.counters().fragments.get(), 3u * kFlows);
  EXPECT_EQ(pipeline.flow_table().counters().entries, 0u) << "fragments make no flow entries";
}

TEST(Parser, Ipv6FragmentsSameBackend) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  std::set<uint32_t> used;
  for (int n = 0; n < kFlows; ++n) {
    SCOPED_TRACE("datagram " + std::to_string(n));
    const Ipv6Spec ip{.source = fragment_client6(n)};
    const uint32_t id = 0x10000 + n;
    const Bytes first = ipv6_with(
        kNextFragment, concat({ipv6_fragment_header(kNextTcp, 0, true, id),
                               tcp_segment({.source_port = 40000, .payload_size = 1212})}),
        ip);
    const Bytes last = ipv6_with(
        kNextFragment, concat({ipv6_fragment_header(kNextTcp, 154, false, id), Bytes(300, 0xee)}),
        ip);

    const sluice_flow_key key = flow_key6(ip.source, kVip6, kNextTcp, 0, 0);
    expect_fragment(first, key);
    expect_fragment(last, key);

    const Verdict first_verdict = run_frame(pipeline, snapshot, first);
    const Verdict last_verdict = run_frame(pipeline, snapshot, last);
    ASSERT_EQ(first_verdict.action, Action::kForward);
    EXPECT_EQ(last_verdict.backend, first_verdict.backend);
    used.insert(first_verdict.backend);
  }
  EXPECT_GT(used.size(), 1u);
  EXPECT_EQ(pipeline.counters().fragments.get(), 2u * kFlows);
}

TEST(Parser, Ipv6AtomicFragmentNotFragment) {
  // Offset 0 and M clear (RFC 6946): the whole packet, with readable ports.
  const Bytes frame = ipv6_with(
      kNextFragment, concat({ipv6_fragment_header(kNextTcp, 0, false, 5), tcp_segment({})}));
  const ParseResult result = parse(frame);
  ASSERT_EQ(result.drop, DropReason::kNone);
  EXPECT_FALSE(result.packet.fragment);
  EXPECT_TRUE(result.packet.has_ports);
  EXPECT_TRUE(keys_equal(result.packet.key, flow_key6(kClient6, kVip6, kNextTcp, 40000, 80)));
}

TEST(Parser, Ipv6LaterFragmentDataNotHeaders) {
  // The fragmentable part starts with Destination Options. In a later fragment the bytes after
  // the Fragment header are data (RFC 8200 section 4.5), so both fragments must classify the
  // same way: one verdict and one key, whatever the data bytes look like.
  const Bytes first = ipv6_with(
      kNextFragment, concat({ipv6_fragment_header(kNextDestinationOptions, 0, true, 99),
                             ipv6_options_header(kNextTcp), tcp_segment({.payload_size = 64})}));
  const Bytes later = ipv6_with(
      kNextFragment,
      concat({ipv6_fragment_header(kNextDestinationOptions, 11, false, 99), Bytes(40, 0xab)}));

  const ParseResult first_result = parse(first);
  const ParseResult later_result = parse(later);
  ASSERT_EQ(first_result.drop, DropReason::kNone) << drop_reason_name(first_result.drop);
  ASSERT_EQ(later_result.drop, DropReason::kNone) << drop_reason_name(later_result.drop);
  EXPECT_TRUE(first_result.packet.fragment);
  EXPECT_TRUE(later_result.packet.fragment);
  EXPECT_TRUE(keys_equal(first_result.packet.key, later_result.packet.key));

  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(64);
  const Verdict first_verdict = run_frame(pipeline, snapshot, first);
  const Verdict later_verdict = run_frame(pipeline, snapshot, later);
  EXPECT_EQ(first_verdict.action, later_verdict.action);
  EXPECT_EQ(first_verdict.backend, later_verdict.backend);
}

// The fast path for untagged IPv4 TCP and UDP must agree with the general parser on every
// frame: the same drop reason and, when the frame parses, the same fields. The frames are
// well-formed segments and datagrams with random bytes of their headers changed, and random
// truncations and paddings, so that every check of the fast path meets frames on both sides.
TEST(Parser, FastPathAgreesWithGeneralParser) {
  const std::vector<Bytes> bases = {
      ethernet_frame(kEtherTypeIpv4, ipv4_packet({}, tcp_segment({.flags = kAck}))),
      ethernet_frame(kEtherTypeIpv4, ipv4_packet({}, tcp_segment({.flags = kSyn, .payload_size = 30}))),
      ethernet_frame(kEtherTypeIpv4, ipv4_packet({.protocol = kNextUdp}, udp_datagram(5353, 53, 12))),
      ethernet_frame(kEtherTypeIpv4, ipv4_packet({.protocol = kNextUdp}, udp_datagram(5353, 53)), {}, 60),
  };
  std::mt19937_64 random(0x9e3779b97f4a7c15ULL);
  int fast_accepted = 0;
  for (int round = 0; round < 200000; ++round) {
    Bytes frame = bases[random() % bases.size()];
    const int changes = static_cast<int>(random() % 3);
    for (int i = 0; i < changes; ++i) {
      // Mostly the EtherType, IPv4 and transport header bytes: offsets 12 to 61.
      frame[12 + random() % std::min<size_t>(50, frame.size() - 12)] = static_cast<uint8_t>(random());
    }
    if (random() % 4 == 0) frame.resize(random() % (frame.size() + 8));

    ParsedPacket fast;
    ParsedPacket general;
    const DropReason fast_drop = parse_packet({frame.data(), frame.size()}, fast);
    const DropReason general_drop = parse_packet_general({frame.data(), frame.size()}, general);
    ASSERT_EQ(drop_reason_name(fast_drop), drop_reason_name(general_drop)) << "round " << round;
    if (fast_drop != DropReason::kNone) continue;
    ASSERT_TRUE(keys_equal(fast.key, general.key)) << "round " << round;
    ASSERT_EQ(fast.l3_offset, general.l3_offset) << "round " << round;
    ASSERT_EQ(fast.l4_offset, general.l4_offset) << "round " << round;
    ASSERT_EQ(fast.l3_length, general.l3_length) << "round " << round;
    ASSERT_EQ(fast.vlan_tags, general.vlan_tags) << "round " << round;
    ASSERT_EQ(fast.family, general.family) << "round " << round;
    ASSERT_EQ(fast.protocol, general.protocol) << "round " << round;
    ASSERT_EQ(fast.tcp_flags, general.tcp_flags) << "round " << round;
    ASSERT_EQ(fast.traffic_class, general.traffic_class) << "round " << round;
    ASSERT_EQ(fast.dont_fragment, general.dont_fragment) << "round " << round;
    ASSERT_EQ(fast.fragment, general.fragment) << "round " << round;
    ASSERT_EQ(fast.has_ports, general.has_ports) << "round " << round;
    ASSERT_EQ(fast.icmp_error, general.icmp_error) << "round " << round;
    ASSERT_EQ(fast.icmp_echo_request, general.icmp_echo_request) << "round " << round;
    if (fast.has_ports && fast.family == 4 && fast.vlan_tags == 0 && fast.l4_offset == 34) ++fast_accepted;
  }
  EXPECT_GT(fast_accepted, 50000);  // the fast path's own cases were met
}

TEST(Parser, DropReasonNames) {
  EXPECT_EQ(drop_reason_name(DropReason::kNone), "none");
  EXPECT_EQ(drop_reason_name(DropReason::kTruncatedTcp), "truncated_tcp");
  EXPECT_EQ(drop_reason_name(DropReason::kIpv4HeaderPastTotalLength),
            "ipv4_header_past_total_length");
  EXPECT_EQ(drop_reason_name(DropReason::kExceptionQueueFull), "exception_queue_full");
}

}  // namespace
}  // namespace sluice::test
