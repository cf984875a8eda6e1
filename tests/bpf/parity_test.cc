// Parity of the XDP balancer (bpf/balancer.bpf.c) with sluice::Pipeline::process. Every frame
// runs through both: the action, the drop reason and the output bytes must be identical, and
// so must every counter after every frame. The corpus is the parser's table of frames, then
// classification and encapsulation frames, then flow sequences across snapshot changes and
// timeouts. A frame that differs is printed with both outputs in hex.
//
// The program runs with BPF_PROG_TEST_RUN, so these tests need root. Without it they fail with
// a message saying so. No frame leaves the process.
#include <gtest/gtest.h>
#include <sched.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <set>

#include "balancer_harness.h"
#include "balancer_loader.h"
#include "parser_cases.h"
#include "sluice/pipeline.h"
#include "test_frames.h"

namespace sluice::test {
namespace {

class Parity : public ::testing::Test {
 protected:
  void SetUp() override {
    // The flood guard's window is per CPU in the XDP program, as it is per worker in the
    // DPDK data plane, and BPF_PROG_TEST_RUN runs the program on the calling thread's CPU.
    // The test stays on one CPU, or a migration would start a second window.
    ASSERT_EQ(sched_getaffinity(0, sizeof(original_cpus_), &original_cpus_), 0) << std::strerror(errno);
    cpu_set_t one_cpu;
    CPU_ZERO(&one_cpu);
    CPU_SET(sched_getcpu(), &one_cpu);
    ASSERT_EQ(sched_setaffinity(0, sizeof(one_cpu), &one_cpu), 0) << std::strerror(errno);
    pinned_ = true;

    Result<std::unique_ptr<bpf::Balancer>> loaded = bpf::Balancer::load(65536);
    ASSERT_TRUE(loaded.ok()) << loaded.error() << "\n" << kNeedsRoot;
    balancer_ = std::move(loaded).value();
    apply(make_parity_snapshot());
  }

  // Gives both data planes a new snapshot and egress port, as sluiced would.
  void apply(const Snapshot& snapshot, const EgressPort& port = kEgress, int redirect_ifindex = 0) {
    snapshot_ = snapshot;
    snapshot_.prepare();  // as the control plane does, after the test changed its copy
    port_ = port;
    const Status status = balancer_->program(snapshot_, {test_run_egress(port, redirect_ifindex)});
    ASSERT_TRUE(status.ok()) << status.error();
  }

  // Runs one frame through both data planes and compares the outcomes and the counters.
  // Returns the C++ outcome, for tests that also check what happened.
  Outcome check(const std::string& name, const Bytes& frame) {
    const Outcome cpp = run_pipeline(pipeline_, snapshot_, port_, frame);
    const Outcome xdp = run_xdp(*balancer_, frame, xdp_totals_);
    const std::string difference = describe_difference(frame, cpp, xdp);
    EXPECT_TRUE(difference.empty()) << "frame " << name << " differs:\n" << difference;

    PipelineTotals cpp_totals;
    pipeline_.add_to(cpp_totals);
    const std::string counters = totals_difference(cpp_totals, xdp_totals_);
    // Counters that differ once differ after every later frame, so only the first is shown.
    if (!counters.empty() && !counters_differ_) {
      counters_differ_ = true;
      ADD_FAILURE() << "counters differ after frame " << name << ":\n" << counters;
    }
    return cpp;
  }

  // The backend slot that a forwarded IPv4 frame was sent to, read from its outer header.
  uint32_t backend_of(const Outcome& outcome) const {
    if (outcome.action != Action::kForward || outcome.frame.size() < 34) return UINT32_MAX;
    const IpAddress destination = IpAddress::v4(outcome.frame.data() + 14 + 16);
    for (uint32_t slot = 0; slot < snapshot_.backends.size(); ++slot) {
      if (snapshot_.backends[slot].address == destination) return slot;
    }
    return UINT32_MAX;
  }

  void TearDown() override {
    if (pinned_) sched_setaffinity(0, sizeof(original_cpus_), &original_cpus_);
  }

  cpu_set_t original_cpus_{};
  bool pinned_ = false;
  std::unique_ptr<bpf::Balancer> balancer_;
  Snapshot snapshot_;
  EgressPort port_ = kEgress;
  Pipeline pipeline_{65536};
  PipelineTotals xdp_totals_;
  bool counters_differ_ = false;
};

TEST_F(Parity, ParserTableFrames) {
  int run = 0;
  for (const ParseCase& parse_case : all_cases()) {
    if (parse_case.frame.size() < 14) {
      // BPF_PROG_TEST_RUN rejects data shorter than an Ethernet header with EINVAL, and a
      // driver never hands XDP such a frame. The program's own check stays untested here;
      // the C++ verdict is checked on a pipeline of its own, so the counters still agree.
      Pipeline alone(64);
      EXPECT_EQ(run_pipeline(alone, snapshot_, port_, parse_case.frame).drop,
                DropReason::kTruncatedEthernet)
          << parse_case.name;
      PipelineTotals unchanged = xdp_totals_;
      const Outcome xdp = run_xdp(*balancer_, parse_case.frame, unchanged);
      EXPECT_FALSE(xdp.ran) << parse_case.name;
      EXPECT_NE(xdp.verdict.find(std::strerror(EINVAL)), std::string::npos) << xdp.verdict;
      continue;
    }
    check(parse_case.name, parse_case.frame);
    ++run;
  }
  EXPECT_GE(run, 45) << "the parser table shrank";
}

TEST_F(Parity, ClassificationFrames) {
  check("tcp_to_web", tcp4_frame({.source_port = 40100}));
  check("tcp_to_https", tcp4_frame({.source_port = 40101, .destination_port = 443}));
  check("tcp_to_unknown_port", tcp4_frame({.source_port = 40102, .destination_port = 22}));
  check("tcp_to_port_zero_vip", tcp4_frame({.destination_port = 22}, {.destination = kVipAnyPort4}));
  check("tcp_to_alt_port", tcp4_frame({.destination_port = 8080}, {.destination = kVipAnyPort4}));
  check("tcp_to_mixed_family", tcp4_frame({}, {.destination = kVipMixed4}));
  check("tcp_to_vip_without_table", tcp4_frame({}, {.destination = kVipNoTable4}));
  check("tcp_to_vip_with_empty_table", tcp4_frame({}, {.destination = kVipEmptyTable4}));
  check("tcp_to_other_host", tcp4_frame({}, {.destination = kNotVip4}));
  check("tcp6_to_unknown_port", tcp6_frame({.destination_port = 22}));

  const Ipv4Spec udp4{.protocol = kNextUdp};
  check("udp_to_dns", ipv4_with_tcp(udp_datagram(5353, 53, 30), udp4));
  check("udp_to_other_port", ipv4_with_tcp(udp_datagram(5353, 54, 30), udp4));
  check("udp6_to_port_zero_vip", ipv6_with(kNextUdp, udp_datagram(5353, 5000, 12)));
  check("udp6_padded", ethernet_frame(kEtherTypeIpv6,
                                      ipv6_packet({}, kNextUdp, udp_datagram(5354, 53)), {}, 100));
  check("icmp_to_vip", ipv4_with_tcp(Bytes{8, 0, 0xf7, 0xff, 0, 0, 0, 0}, {.protocol = 1}));
  check("lldp", ethernet_frame(0x88cc, Bytes(46, 0x02)));
  check("cut_tcp_to_other_host", ipv4_with_tcp(truncated(tcp_segment({}), 12),
                                               {.destination = kNotVip4}));

  // Fragments: the port-0 VIP of the address, else the VIP with the lowest port.
  const Bytes payload(64, 0xee);
  check("fragment_to_port_zero_vip", ipv4_with_tcp(tcp_segment({.payload_size = 64}),
                                                   {.destination = kVipAnyPort4, .more_fragments = true}));
  check("later_fragment_to_port_zero_vip",
        ipv4_with_tcp(payload, {.destination = kVipAnyPort4, .fragment_offset = 11}));
  check("fragment_to_lowest_port", ipv4_with_tcp(payload, {.more_fragments = true}));
  check("udp_fragment", ipv4_with_tcp(payload, {.protocol = kNextUdp, .fragment_offset = 3}));
  check("icmp_fragment", ipv4_with_tcp(payload, {.protocol = 1, .fragment_offset = 3}));
  check("ipv6_udp_fragment",
        ipv6_with(kNextFragment, concat({ipv6_fragment_header(kNextUdp, 5, true, 31), payload})));
}

TEST_F(Parity, EncapsulationFrames) {
  const TcpSpec ack{.source_port = 40200, .flags = kAck, .payload_size = 100};
  check("dont_fragment_tos", tcp4_frame(ack, {.tos = 0xb9, .id = 0xbeef, .dont_fragment = true}));
  check("no_dont_fragment", tcp4_frame(ack, {.tos = 0x00, .id = 0x0102}));
  check("first_fragment_outer_whole", tcp4_frame(ack, {.id = 0x7777, .more_fragments = true}));
  check("ipv4_options", tcp4_frame(ack, {.option_words = 3}));
  check("one_vlan_tag", tcp4_frame(ack, {.id = 9}, {{kTpid8021Q, 0xa00c}}));
  check("two_vlan_tags", tcp4_frame(ack, {.id = 9}, {{kTpid8021ad, 0x2064}, {kTpid8021Q, 0xa00c}}));
  check("ipv6_one_vlan_tag", tcp6_frame(ack, {}, {{kTpid8021Q, 0x0123}}));
  check("ipv6_traffic_class", tcp6_frame(ack, {.traffic_class = 0xb9, .flow_label = 0x12345}));
  check("padded_to_60", ipv4_with_tcp(tcp_segment({.source_port = 40201}), {.id = 3}, 60));
  check("vlan_padded_to_64", ethernet_frame(kEtherTypeIpv4, ipv4_packet({}, tcp_segment({})),
                                            {{kTpid8021Q, 7}}, 64));

  // An inner IPv4 datagram of 1480 bytes fills a 1500-byte MTU exactly, and so does an inner
  // IPv6 datagram of 1460 bytes. One byte more is too big.
  check("ipv4_fits_mtu", tcp4_frame({.payload_size = 1480 - 40}));
  check("ipv4_too_big", tcp4_frame({.payload_size = 1481 - 40}));
  check("ipv4_vlan_too_big", tcp4_frame({.payload_size = 1481 - 40}, {}, {{kTpid8021Q, 5}}));
  check("ipv6_fits_mtu", tcp6_frame({.payload_size = 1460 - 60}));
  check("ipv6_too_big", tcp6_frame({.payload_size = 1461 - 60}));
  for (uint16_t id = 0; id < 32; ++id) {
    // IDs, TOS values and lengths that exercise carries in the outer header checksum.
    check("checksum_" + std::to_string(id),
          tcp4_frame({.source_port = static_cast<uint16_t>(40300 + id), .payload_size = id * 7u},
                     {.tos = static_cast<uint8_t>(id * 4), .id = static_cast<uint16_t>(id * 0x1111),
                      .dont_fragment = id % 2 == 0}));
  }
}

TEST_F(Parity, JumboMtuAndRedirect) {
  const Bytes big = tcp4_frame({.payload_size = 2000});
  check("big_with_mtu_1500", big);
  apply(make_parity_snapshot(), EgressPort{MacAddress{kEgressMac}, 9000}, test_run_ifindex());
  const Outcome outcome = check("big_with_mtu_9000_redirected", big);
  EXPECT_EQ(outcome.action, Action::kForward);
  check("ipv6_redirected", tcp6_frame({}));
}

TEST_F(Parity, NoNextHop) {
  Snapshot snapshot = make_parity_snapshot();
  snapshot.next_hop_mac = MacAddress{};
  apply(snapshot);
  EXPECT_EQ(check("syn", tcp4_frame({})).drop, DropReason::kNoNextHop);
  check("fragment", ipv4_with_tcp(Bytes(64, 0xee), {.fragment_offset = 3}));
  check("not_for_a_vip", tcp4_frame({}, {.destination = kNotVip4}));
}

TEST_F(Parity, TcpFlowSequence) {
  const auto segment = [](uint16_t port, uint8_t flags) {
    return tcp4_frame({.source_port = port, .flags = flags, .payload_size = 10});
  };
  check("syn", segment(42000, kSyn));
  check("syn_retransmitted", segment(42000, kSyn));
  check("ack", segment(42000, kAck));
  check("fin", segment(42000, kFin | kAck));
  check("ack_after_fin", segment(42000, kAck));
  check("syn_reusing_port", segment(42000, kSyn));
  check("rst", segment(42000, kRst));
  check("ack_after_rst", segment(42000, kAck));

  check("ack_without_syn", segment(42001, kAck));
  check("ack_without_syn_again", segment(42001, kAck));
  check("rst_without_syn", segment(42002, kRst | kAck));
  check("syn_ack_is_not_syn", segment(42003, kSyn | kAck));

  const uint8_t ipv6_sequence[] = {kSyn, kSyn, kAck, kFin | kAck, kSyn};
  for (uint8_t flags : ipv6_sequence) {
    check("ipv6_flags_" + std::to_string(flags), tcp6_frame({.source_port = 42004, .flags = flags}));
  }
  for (int i = 0; i < 3; ++i) {
    check("udp_repeat_" + std::to_string(i),
          ipv4_with_tcp(udp_datagram(42005, 53, 20), {.protocol = kNextUdp}));
  }

  PipelineTotals totals;
  pipeline_.add_to(totals);
  EXPECT_EQ(totals.non_syn_misses, 3u) << "ack_without_syn, rst_without_syn and syn_ack_is_not_syn";
}

TEST_F(Parity, BackendChanges) {
  constexpr int kFlows = 24;
  const auto segment = [](int flow, uint8_t flags) {
    return tcp4_frame({.source_port = static_cast<uint16_t>(43000 + flow), .flags = flags});
  };
  std::vector<uint32_t> first_backend(kFlows);
  for (int flow = 0; flow < kFlows; ++flow) {
    first_backend[flow] = backend_of(check("syn_" + std::to_string(flow), segment(flow, kSyn)));
  }

  // Backend 0 drained: its flows stay, new flows avoid it.
  Snapshot drained = make_parity_snapshot();
  drained.backends[0].state = BackendState::kDrained;
  drained.vips[kVipWeb4].maglev = weighted_table(drained, {{1, 1}, {2, 1}, {kDrainedSlot, 0}});
  apply(drained);
  for (int flow = 0; flow < kFlows; ++flow) {
    const Outcome outcome = check("drained_ack_" + std::to_string(flow), segment(flow, kAck));
    EXPECT_EQ(backend_of(outcome), first_backend[flow]) << "flow " << flow;
  }
  for (int flow = kFlows; flow < 2 * kFlows; ++flow) {
    EXPECT_NE(backend_of(check("drained_syn_" + std::to_string(flow), segment(flow, kSyn))), 0u);
  }

  // Backend 0 goes down, so its flows are invalid and move. Slot 1 goes to another backend
  // with a new uid, so the flows of the old one move too.
  Snapshot changed = drained;
  changed.backends[0].state = BackendState::kDown;
  const uint8_t replacement[4] = {198, 51, 100, 9};
  changed.backends[1] = {200, BackendState::kLive, IpAddress::v4(replacement)};
  changed.vips[kVipWeb4].maglev = weighted_table(changed, {{1, 1}, {2, 1}});
  apply(changed);
  const auto udp = [](int flow) {
    return ipv4_with_tcp(udp_datagram(static_cast<uint16_t>(44000 + flow), 53), {.protocol = kNextUdp});
  };
  for (int flow = 0; flow < 2 * kFlows; ++flow) {
    check("changed_ack_" + std::to_string(flow), segment(flow, kAck));
    check("changed_udp_" + std::to_string(flow), udp(flow));
  }

  // A backend slot past the snapshot's end is removed.
  Snapshot shorter = changed;
  shorter.backends.resize(kSpareSlot);
  shorter.vips[kVipDns].maglev = weighted_table(shorter, {{1, 1}}, 251);
  shorter.vips[kVipHttps].maglev = weighted_table(shorter, {{2, 1}}, 13);
  apply(shorter);
  for (int flow = 0; flow < 2 * kFlows; ++flow) {
    // The UDP flows on slot 7 find their backend gone and take the new table's choice.
    check("shorter_udp_" + std::to_string(flow), udp(flow));
    check("shorter_https_" + std::to_string(flow),
          tcp4_frame({.source_port = static_cast<uint16_t>(44000 + flow), .destination_port = 443}));
  }
}

TEST_F(Parity, ClientPersistence) {
  // Every VIP with client persistence: TCP to 203.0.113.10:80 (weighted 10:1:1), UDP to port
  // 53, IPv6, and fragments. Each client's connections, SYN or not, reach one backend.
  Snapshot persistent = make_parity_snapshot();
  for (Vip& vip : persistent.vips) vip.persistence = SLUICE_PERSISTENCE_CLIENT;
  persistent.prepare();
  apply(persistent);

  std::set<uint32_t> backends_of_clients;
  for (int client = 0; client < 24; ++client) {
    const Ipv4 source{192, 0, 2, static_cast<uint8_t>(10 + client)};
    std::set<uint32_t> backends;
    for (int port = 0; port < 6; ++port) {
      const uint16_t source_port = static_cast<uint16_t>(45000 + port);
      const std::string name = "client_" + std::to_string(client) + "_port_" + std::to_string(port);
      const uint8_t flags = port % 2 == 0 ? kSyn : kAck;  // ACKs without a SYN take the table too
      backends.insert(backend_of(check(name + "_tcp", tcp4_frame({.source_port = source_port, .flags = flags},
                                                                 {.source = source}))));
      check(name + "_udp", ipv4_with_tcp(udp_datagram(source_port, 53), {.source = source, .protocol = kNextUdp}));
    }
    check("client_" + std::to_string(client) + "_fragment",
          ipv4_with_tcp(udp_datagram(45100, 53, 40), {.source = source, .protocol = kNextUdp,
                                                      .more_fragments = true}));
    EXPECT_EQ(backends.size(), 1u) << "client " << client;
    backends_of_clients.insert(*backends.begin());
  }
  EXPECT_GT(backends_of_clients.size(), 1u) << "clients still spread over the backends";
  for (int port = 0; port < 6; ++port) {
    check("ipv6_port_" + std::to_string(port),
          tcp6_frame({.source_port = static_cast<uint16_t>(45200 + port), .flags = kSyn}));
  }
}

TEST_F(Parity, IcmpErrors) {
  const auto reply = [](uint16_t client_port) {
    return tcp_segment({.source_port = 80, .destination_port = client_port, .flags = kAck});
  };
  // Flows first, so that some errors find an entry; then the table changes, so that an entry
  // and the table disagree for some flows.
  for (int port = 0; port < 12; ++port) {
    check("syn_" + std::to_string(port), tcp4_frame({.source_port = static_cast<uint16_t>(46000 + port)}));
  }
  check("syn_ipv6", tcp6_frame({.source_port = 46100}));
  Snapshot changed = make_parity_snapshot();
  changed.vips[kVipWeb4].maglev = weighted_table(changed, {{1, 1}, {2, 1}});
  apply(changed);

  for (int port = 0; port < 16; ++port) {  // 12 known flows, 4 unknown ones
    const uint16_t client_port = static_cast<uint16_t>(46000 + port);
    check("fragmentation_needed_" + std::to_string(port), icmp4_error_frame(3, 4, reply(client_port)));
    check("time_exceeded_" + std::to_string(port), icmp4_error_frame(11, 0, reply(client_port)));
  }
  check("udp_port_unreachable",
        icmp4_error_frame(3, 3, udp_datagram(53, 46200), {.source = kVip4, .destination = kClient4,
                                                         .protocol = kNextUdp}));
  check("packet_too_big", icmp6_error_frame(2, 0, kNextTcp, reply(46100)));
  check("ipv6_time_exceeded_unknown", icmp6_error_frame(3, 0, kNextTcp, reply(46101)));
  check("quoted_options", icmp4_error_frame(3, 4, reply(46000), {.source = kVip4, .destination = kClient4,
                                                                 .option_words = 3}));

  // Messages that stay plain ICMP and go to the kernel on both data planes.
  check("echo_request", icmp4_error_frame(8, 0, reply(46000)));
  check("short_quote", icmp4_error_frame(3, 4, reply(46000), {.source = kVip4, .destination = kClient4}, 4));
  check("later_fragment_quote", icmp4_error_frame(3, 4, reply(46000), {.source = kVip4, .destination = kClient4,
                                                                       .fragment_offset = 8}));
  check("icmp_quote", icmp4_error_frame(3, 1, Bytes(8, 0), {.source = kVip4, .destination = kClient4,
                                                            .protocol = kNextIcmp}));
  check("not_a_vip", icmp4_error_frame(3, 4, reply(46000), {.source = kNotVip4, .destination = kClient4}));
  check("ipv6_extension_quote", icmp6_error_frame(2, 0, kNextDestinationOptions, ipv6_options_header(kNextTcp)));
  check("ipv6_echo_request", icmp6_error_frame(128, 0, kNextTcp, reply(46100)));

  PipelineTotals totals;
  pipeline_.add_to(totals);
  EXPECT_EQ(totals.icmp_errors, 32u + 4u);
}

TEST_F(Parity, EchoReplies) {
  check("echo_to_vip", echo4_frame(kVip4));
  check("echo_to_any_port_vip", echo4_frame(kVipAnyPort4));
  check("echo_to_ipv6_vip", echo6_frame(kVip6));
  check("echo_to_other_address", echo4_frame(kNotVip4));
  check("echo_to_other_ipv6_address", echo6_frame(kNotVip6));
  check("timestamp_request_to_vip", echo4_frame(kVip4, 13));
  check("echo_with_options", echo4_frame(kVip4, 8, 1));
  check("echo_fragment", echo4_frame(kVip4, 8, 0, 8));
  check("echo_reply_to_vip", echo4_frame(kVip4, 0));

  PipelineTotals totals;
  pipeline_.add_to(totals);
  EXPECT_EQ(totals.icmp_echo_replies, 3u);
}

TEST_F(Parity, NewFlowLimit) {
  // Both data planes admit 3 new entries in the second and forward the rest without one. The
  // test's frames all fall within one second, so both count in the same window.
  Snapshot limited = make_parity_snapshot();
  limited.new_flow_limit = 3;
  apply(limited);
  for (int flow = 0; flow < 10; ++flow) {
    check("limited_syn_" + std::to_string(flow), tcp4_frame({.source_port = static_cast<uint16_t>(47000 + flow)}));
  }
  for (int flow = 0; flow < 10; ++flow) {
    check("limited_ack_" + std::to_string(flow),
          tcp4_frame({.source_port = static_cast<uint16_t>(47000 + flow), .flags = kAck}));
  }
  check("limited_udp", ipv4_with_tcp(udp_datagram(47100, 53), {.protocol = kNextUdp}));
  PipelineTotals totals;
  pipeline_.add_to(totals);
  EXPECT_EQ(totals.new_flows_limited, 7u + 7u + 1u) << "7 SYNs, then the 7 ACKs that missed, then the UDP flow";
}

TEST_F(Parity, FlowTimeouts) {
  Snapshot snapshot = make_parity_snapshot();
  snapshot.timeouts = {60'000'000'000, 200'000'000, 200'000'000};
  apply(snapshot);
  const Bytes udp = ipv4_with_tcp(udp_datagram(45000, 53, 8), {.protocol = kNextUdp});
  const uint32_t first = backend_of(check("udp_first", udp));
  ASSERT_NE(first, UINT32_MAX);

  // Every new UDP flow now goes to the other backend, but the entry keeps this one until it
  // has been idle for the UDP timeout.
  const uint32_t other = first == 1 ? kSpareSlot : 1;
  snapshot.vips[kVipDns].maglev = std::vector<uint32_t>(251, other);
  apply(snapshot);
  EXPECT_EQ(backend_of(check("udp_within_timeout", udp)), first);

  const Bytes syn = tcp4_frame({.source_port = 45001, .flags = kSyn});
  check("syn", syn);
  check("fin", tcp4_frame({.source_port = 45001, .flags = kFin | kAck}));
  check("ack_within_closing_timeout", tcp4_frame({.source_port = 45001, .flags = kAck}));

  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(backend_of(check("udp_after_timeout", udp)), other);
  check("ack_after_closing_timeout", tcp4_frame({.source_port = 45001, .flags = kAck}));

  PipelineTotals totals;
  pipeline_.add_to(totals);
  EXPECT_EQ(totals.non_syn_misses, 1u) << "the ACK after the closing timeout";
  EXPECT_EQ(totals.backends[other].new_flows, 1u) << "the UDP flow after its timeout";
}

// The outer UDP header of a GUE frame without VLAN tags, whose outer IP header is `ip_size`
// bytes: (source port, destination port).
std::pair<uint16_t, uint16_t> gue_ports(const Bytes& frame, size_t ip_size) {
  if (frame.size() < 14 + ip_size + 8) return {0, 0};
  return {load16(frame.data() + 14 + ip_size), load16(frame.data() + 14 + ip_size + 2)};
}

TEST_F(Parity, GueAndIpv4InIpv6) {
  Snapshot gue = make_parity_snapshot();
  for (Vip& vip : gue.vips) vip.encapsulation = SLUICE_ENCAP_GUE;
  gue.gue_port = 6081;
  apply(gue);
  std::set<uint16_t> source_ports;
  for (uint16_t i = 0; i < 16; ++i) {
    const std::string n = std::to_string(i);
    const uint16_t port = static_cast<uint16_t>(46000 + i);
    const Outcome v4 = check("gue_ipv4_" + n, tcp4_frame({.source_port = port, .flags = kSyn}));
    ASSERT_EQ(v4.action, Action::kForward);
    EXPECT_EQ(v4.frame[14 + 9], kNextUdp);
    const auto [source_port, destination_port] = gue_ports(v4.frame, 20);
    EXPECT_GE(source_port, 49152);
    EXPECT_EQ(destination_port, 6081);
    source_ports.insert(source_port);

    const Outcome v6 = check("gue_ipv6_" + n, tcp6_frame({.source_port = port, .flags = kSyn}));
    ASSERT_EQ(v6.action, Action::kForward);
    EXPECT_EQ(v6.frame[14 + 6], kNextUdp);
    EXPECT_EQ(gue_ports(v6.frame, 40).second, 6081);

    // An IPv4 VIP whose backend is IPv6: GUE over IPv6 around the IPv4 datagram.
    const Outcome mixed = check("gue_ipv4_in_ipv6_" + n,
                                tcp4_frame({.source_port = port, .flags = kSyn}, {.destination = kVipMixed4}));
    ASSERT_EQ(mixed.action, Action::kForward);
    EXPECT_EQ(load16(mixed.frame.data() + 12), kEtherTypeIpv6);
    EXPECT_EQ(mixed.frame[14 + 6], kNextUdp);
    EXPECT_EQ(mixed.frame[14 + 48] >> 4, 4) << "the payload is the IPv4 datagram";

    check("gue_udp_" + n, ipv4_with_tcp(udp_datagram(port, 53), {.protocol = kNextUdp}));
    check("gue_fragment_" + n, ipv4_with_tcp(udp_datagram(port, 53, 40), {.protocol = kNextUdp, .more_fragments = true}));
    check("gue_vlan_" + n, tcp4_frame({.source_port = port}, {}, {{kTpid8021ad, 0x2064}, {kTpid8021Q, 0xa00c}}));
    check("gue_ipv4_in_ipv6_vlan_" + n,
          tcp4_frame({.source_port = port}, {.destination = kVipMixed4}, {{kTpid8021Q, 0x0123}}));
  }
  EXPECT_GT(source_ports.size(), 12u) << "flows spread over source ports";

  // IP-in-IP again: IPv4 in IPv6 has next header 4 and EtherType IPv6, behind tags too.
  apply(make_parity_snapshot());
  const Outcome mixed = check("ipip_ipv4_in_ipv6", tcp4_frame({.flags = kSyn}, {.destination = kVipMixed4}));
  ASSERT_EQ(mixed.action, Action::kForward);
  EXPECT_EQ(load16(mixed.frame.data() + 12), kEtherTypeIpv6);
  EXPECT_EQ(mixed.frame[14 + 6], 4);
  check("ipip_ipv4_in_ipv6_vlan", tcp4_frame({.flags = kAck}, {.destination = kVipMixed4}, {{kTpid8021Q, 9}}));
  check("ipv6_to_ipv4_backend_rejected", tcp6_frame({.flags = kSyn}));  // IPv6 VIP keeps IPv6 backends
}

// The MTU field of a too-big reply without VLAN tags: ICMP's 16 bits or ICMPv6's 32.
uint32_t reported_mtu(const Outcome& outcome) {
  if (outcome.frame.size() < 14 + 48) return 0;
  const uint8_t* ip = outcome.frame.data() + 14;
  if ((ip[0] >> 4) == 4) return load16(ip + 20 + 6);
  return (uint32_t{load16(ip + 40 + 4)} << 16) | load16(ip + 40 + 6);
}

TEST_F(Parity, TooBigReplies) {
  const Bytes big4 = tcp4_frame({.flags = kAck, .payload_size = 1500 - 40}, {.dont_fragment = true});
  const Bytes big6 = tcp6_frame({.flags = kAck, .payload_size = 1500 - 60});
  const Bytes big_mixed =
      tcp4_frame({.flags = kAck, .payload_size = 1500 - 40}, {.destination = kVipMixed4, .dont_fragment = true});
  // A 1500-byte DF packet on a 1500-byte link: 1480 with IPv4 in IPv4, 1460 with IPv6 in
  // IPv6 and with IPv4 in IPv6.
  EXPECT_EQ(reported_mtu(check("ipv4_in_ipv4", big4)), 1480u);
  EXPECT_EQ(reported_mtu(check("ipv6_in_ipv6", big6)), 1460u);
  EXPECT_EQ(reported_mtu(check("ipv4_in_ipv6", big_mixed)), 1460u);
  check("ipv4_vlan", tcp4_frame({.flags = kAck, .payload_size = 1460}, {.dont_fragment = true},
                                {{kTpid8021ad, 0x2064}, {kTpid8021Q, 0xa00c}}));
  check("ipv6_vlan", tcp6_frame({.flags = kAck, .payload_size = 1500}, {}, {{kTpid8021Q, 0x0123}}));
  check("ipv6_long_quote_cut", tcp6_frame({.flags = kAck, .payload_size = 2500}));

  // No error about these: dropped as too big.
  EXPECT_EQ(check("no_dont_fragment", tcp4_frame({.flags = kAck, .payload_size = 1460})).drop,
            DropReason::kTooBigAfterEncapsulation);
  EXPECT_EQ(check("multicast_source", tcp4_frame({.flags = kAck, .payload_size = 1460},
                                                 {.source = {239, 1, 2, 3}, .dont_fragment = true}))
                .drop,
            DropReason::kTooBigAfterEncapsulation);
  check("fragment", ipv4_with_tcp(Bytes(1480, 0xee), {.dont_fragment = true, .fragment_offset = 3}));
  check("icmp_error", icmp6_error_frame(1, 0, kNextTcp,
                                        tcp_segment({.source_port = 80, .destination_port = 40000, .payload_size = 1400}),
                                        1420));

  Snapshot gue = make_parity_snapshot();
  for (Vip& vip : gue.vips) vip.encapsulation = SLUICE_ENCAP_GUE;
  apply(gue);
  EXPECT_EQ(reported_mtu(check("gue_ipv4", big4)), 1472u);
  EXPECT_EQ(reported_mtu(check("gue_ipv6", big6)), 1452u);
  EXPECT_EQ(reported_mtu(check("gue_ipv4_in_ipv6", big_mixed)), 1452u);

  // The smallest MTU the config allows: a 1233-byte IPv6 packet is one byte too big for GUE
  // over IPv6 on a 1280-byte link, and its reply still quotes 1232 bytes.
  apply(gue, EgressPort{MacAddress{kEgressMac}, 1280});
  const Outcome smallest = check("gue_ipv6_mtu_1280", tcp6_frame({.flags = kAck, .payload_size = 1233 - 60}));
  EXPECT_EQ(reported_mtu(smallest), 1232u);
  EXPECT_EQ(smallest.frame.size(), 14u + 1280u);

  PipelineTotals totals;
  pipeline_.add_to(totals);
  EXPECT_EQ(totals.icmp_too_big_replies, 10u);
  EXPECT_EQ(xdp_totals_.icmp_too_big_replies, 10u);
}

}  // namespace
}  // namespace sluice::test
