// ICMP and ICMPv6 errors about a VIP flow: parsed into the flow's own key, and sent to the
// flow's backend, its flow entry winning over the Maglev table.
#include <gtest/gtest.h>

#include "sluice/pipeline.h"
#include "test_frames.h"

namespace sluice::test {
namespace {

constexpr uint16_t kClientPort = 40000;

// The reply a backend sends to the client, as an ICMP error quotes it.
Bytes reply_segment() { return tcp_segment({.source_port = 80, .destination_port = kClientPort, .flags = kAck}); }

ParseResult parse(const Bytes& frame) { return parse_packet({frame.data(), frame.size()}); }

// The backend slot a forwarded frame went to, from its outer IPv4 or IPv6 destination.
uint32_t backend_slot(const Snapshot& snapshot, const Bytes& frame) {
  const bool v4 = frame[12] == 0x08;
  const IpAddress destination = v4 ? IpAddress::v4(frame.data() + 14 + 16) : IpAddress::v6(frame.data() + 14 + 24);
  for (uint32_t slot = 0; slot < snapshot.backends.size(); ++slot) {
    if (snapshot.backends[slot].address == destination) return slot;
  }
  return UINT32_MAX;
}

TEST(IcmpErrorParse, FragmentationNeededCarriesFlowKey) {
  const ParseResult result = parse(icmp4_error_frame(3, 4, reply_segment()));
  ASSERT_EQ(result.drop, DropReason::kNone);
  EXPECT_TRUE(result.packet.icmp_error);
  EXPECT_EQ(result.packet.protocol, kProtocolIcmp);
  EXPECT_TRUE(flow_keys_equal(result.packet.key, flow_key4(kClient4, kVip4, kNextTcp, kClientPort, 80)));
}

TEST(IcmpErrorParse, TimeExceededQuotingUdp) {
  const ParseResult result =
      parse(icmp4_error_frame(11, 0, udp_datagram(53, kClientPort), {.source = kVip4, .destination = kClient4,
                                                                     .protocol = kNextUdp}));
  ASSERT_EQ(result.drop, DropReason::kNone);
  EXPECT_TRUE(result.packet.icmp_error);
  EXPECT_TRUE(flow_keys_equal(result.packet.key, flow_key4(kClient4, kVip4, kNextUdp, kClientPort, 53)));
}

TEST(IcmpErrorParse, QuotedOptionsAreSkipped) {
  const ParseResult result = parse(
      icmp4_error_frame(3, 4, reply_segment(), {.source = kVip4, .destination = kClient4, .option_words = 2}));
  EXPECT_TRUE(result.packet.icmp_error);
  EXPECT_TRUE(flow_keys_equal(result.packet.key, flow_key4(kClient4, kVip4, kNextTcp, kClientPort, 80)));
}

TEST(IcmpErrorParse, PacketTooBigCarriesFlowKey) {
  const ParseResult result = parse(icmp6_error_frame(2, 0, kNextTcp, reply_segment()));
  ASSERT_EQ(result.drop, DropReason::kNone);
  EXPECT_TRUE(result.packet.icmp_error);
  EXPECT_EQ(result.packet.protocol, kNextIcmpv6);
  EXPECT_TRUE(flow_keys_equal(result.packet.key, flow_key6(kClient6, kVip6, kNextTcp, kClientPort, 80)));
}

TEST(IcmpErrorParse, OtherMessagesStayPlain) {
  struct Case {
    const char* name;
    Bytes frame;
  };
  const Case cases[] = {
      {"echo request", icmp4_error_frame(8, 0, reply_segment())},
      {"redirect", icmp4_error_frame(5, 0, reply_segment())},
      {"quote of 4 bytes after the IP header", icmp4_error_frame(3, 4, reply_segment(), {.source = kVip4,
                                                                                          .destination = kClient4}, 4)},
      {"quote of a later fragment",
       icmp4_error_frame(3, 4, reply_segment(), {.source = kVip4, .destination = kClient4, .fragment_offset = 8})},
      {"quote of ICMP", icmp4_error_frame(3, 1, Bytes(8, 0), {.source = kVip4, .destination = kClient4,
                                                               .protocol = kNextIcmp})},
      {"ICMPv6 echo request", icmp6_error_frame(128, 0, kNextTcp, reply_segment())},
      {"ICMPv6 quote with an extension header", icmp6_error_frame(2, 0, kNextDestinationOptions,
                                                                  ipv6_options_header(kNextTcp))},
  };
  for (const Case& test_case : cases) {
    const ParseResult result = parse(test_case.frame);
    EXPECT_EQ(result.drop, DropReason::kNone) << test_case.name;
    EXPECT_FALSE(result.packet.icmp_error) << test_case.name;
  }
}

TEST(IcmpErrorPipeline, FollowsFlowEntryOverTable) {
  Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  Bytes output;
  ASSERT_EQ(run_frame(pipeline, snapshot, tcp4_frame({.source_port = kClientPort}), kStartNs, &output).action,
            Action::kForward);
  const uint32_t flow_backend = backend_slot(snapshot, output);
  ASSERT_LT(flow_backend, 3u);

  // The table now sends every new flow elsewhere, but the flow's entry still names its backend.
  const uint32_t other = (flow_backend + 1) % 3;
  snapshot.vips[0].maglev = maglev_all_to(other);
  const Bytes error = icmp4_error_frame(3, 4, reply_segment());
  const Verdict verdict = run_frame(pipeline, snapshot, error, kStartNs + 1, &output);
  ASSERT_EQ(verdict.action, Action::kForward);
  EXPECT_EQ(backend_slot(snapshot, output), flow_backend);
  EXPECT_EQ(Bytes(output.begin() + 14 + 20, output.end()), Bytes(error.begin() + 14, error.end()))
      << "the backend receives the ICMP datagram unchanged, inside IP-in-IP";
  EXPECT_EQ(pipeline.counters().icmp_errors.get(), 1u);
}

TEST(IcmpErrorPipeline, UnknownFlowTakesTableAndCreatesNoEntry) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  Bytes output;
  ASSERT_EQ(run_frame(pipeline, snapshot, icmp4_error_frame(3, 4, reply_segment()), kStartNs, &output).action,
            Action::kForward);
  const uint32_t error_backend = backend_slot(snapshot, output);
  EXPECT_EQ(pipeline.flow_table().counters().entries, 0u) << "an error creates no flow entry";

  Pipeline fresh(1024);
  run_frame(fresh, snapshot, tcp4_frame({.source_port = kClientPort}), kStartNs, &output);
  EXPECT_EQ(backend_slot(snapshot, output), error_backend) << "the same backend as the flow's SYN";
}

TEST(IcmpErrorPipeline, Ipv6PacketTooBigReachesBackend) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  Bytes output;
  run_frame(pipeline, snapshot, tcp6_frame({.source_port = kClientPort}), kStartNs, &output);
  const uint32_t flow_backend = backend_slot(snapshot, output);
  const Verdict verdict =
      run_frame(pipeline, snapshot, icmp6_error_frame(2, 0, kNextTcp, reply_segment()), kStartNs + 1, &output);
  ASSERT_EQ(verdict.action, Action::kForward);
  EXPECT_EQ(backend_slot(snapshot, output), flow_backend);
}

TEST(IcmpErrorPipeline, ErrorAboutOtherAddressGoesToKernel) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(1024);
  const Bytes error = icmp4_error_frame(3, 4, reply_segment(), {.source = kNotVip4, .destination = kClient4});
  EXPECT_EQ(run_frame(pipeline, snapshot, error).action, Action::kToKernel);
  EXPECT_EQ(pipeline.counters().icmp_errors.get(), 0u);
}

}  // namespace
}  // namespace sluice::test
