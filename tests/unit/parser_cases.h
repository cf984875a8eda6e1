// The parser's table of frames: well-formed and malformed Ethernet, VLAN, IPv4, IPv6, TCP
// and UDP, each with the verdict that parse_packet and Pipeline::process give it with the
// snapshot of make_snapshot(). parser_test.cc checks those verdicts, and
// tests/bpf/parity_test.cc runs the same frames through the XDP balancer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "sluice/packet.h"
#include "test_frames.h"

namespace sluice::test {

inline constexpr size_t kEthernetSize = 14;
inline constexpr size_t kIpv4Offset = kEthernetSize;
inline constexpr size_t kIpv6Offset = kEthernetSize;

inline Bytes truncated(Bytes frame, size_t size) {
  frame.resize(size);
  return frame;
}

// ---- The table --------------------------------------------------------------------------

struct ParseCase {
  std::string name;
  Bytes frame;
  DropReason drop;
  Action action;  // through Pipeline::process with the test snapshot
};

inline void PrintTo(const ParseCase& parse_case, std::ostream* out) { *out << parse_case.name; }

inline Bytes ipv4_with_tcp(const Bytes& tcp, const Ipv4Spec& ip = {}, size_t padded_size = 0) {
  return ethernet_frame(kEtherTypeIpv4, ipv4_packet(ip, tcp), {}, padded_size);
}

inline Bytes ipv6_with(uint8_t next_header, const Bytes& payload, const Ipv6Spec& ip = {}) {
  return ethernet_frame(kEtherTypeIpv6, ipv6_packet(ip, next_header, payload));
}

inline Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& part : parts) append(out, part);
  return out;
}

inline std::vector<ParseCase> ipv4_cases() {
  const Bytes syn = tcp_segment({});
  std::vector<ParseCase> cases;
  cases.push_back({"ipv4_tcp", tcp4_frame({}), DropReason::kNone, Action::kForward});
  cases.push_back({"ipv4_ihl_6", tcp4_frame({}, {.option_words = 1}), DropReason::kNone,
                   Action::kForward});
  cases.push_back({"ipv4_ihl_15", tcp4_frame({}, {.option_words = 10}), DropReason::kNone,
                   Action::kForward});

  Bytes ihl4 = tcp4_frame({});
  ihl4[kIpv4Offset] = 0x44;
  cases.push_back({"ipv4_ihl_4", ihl4, DropReason::kIpv4HeaderTooShort, Action::kDrop});
  Bytes ihl0 = tcp4_frame({});
  ihl0[kIpv4Offset] = 0x40;
  cases.push_back({"ipv4_ihl_0", ihl0, DropReason::kIpv4HeaderTooShort, Action::kDrop});

  // IHL 15 (60 bytes) in a datagram of total length 40, inside a frame long enough for both.
  Bytes ihl_past = ipv4_with_tcp(syn, {}, 100);
  ihl_past[kIpv4Offset] = 0x4f;
  cases.push_back({"ipv4_ihl_past_total_length", ihl_past,
                   DropReason::kIpv4HeaderPastTotalLength, Action::kDrop});

  Bytes total_past = tcp4_frame({});
  store16(total_past, kIpv4Offset + 2, static_cast<uint16_t>(total_past.size() - 14 + 1));
  cases.push_back({"ipv4_total_length_past_frame", total_past,
                   DropReason::kIpv4TotalLengthPastFrame, Action::kDrop});

  cases.push_back({"ipv4_header_cut", truncated(tcp4_frame({}), kIpv4Offset + 19),
                   DropReason::kTruncatedIpv4, Action::kDrop});
  Bytes version6 = tcp4_frame({});
  version6[kIpv4Offset] = 0x65;
  cases.push_back({"ipv4_bad_version", version6, DropReason::kIpv4BadVersion, Action::kDrop});

  cases.push_back({"ipv4_tcp_cut", ipv4_with_tcp(truncated(syn, 19)), DropReason::kTruncatedTcp,
                   Action::kDrop});
  // The missing TCP byte is in the frame, but as Ethernet padding after the datagram.
  cases.push_back({"ipv4_tcp_cut_padded", ipv4_with_tcp(truncated(syn, 19), {}, 60),
                   DropReason::kTruncatedTcp, Action::kDrop});
  cases.push_back({"ipv4_tcp_offset_4", ipv4_with_tcp(tcp_segment({.data_offset_words = 4})),
                   DropReason::kTcpBadDataOffset, Action::kDrop});
  cases.push_back({"ipv4_tcp_offset_0", ipv4_with_tcp(tcp_segment({.data_offset_words = 0})),
                   DropReason::kTcpBadDataOffset, Action::kDrop});
  cases.push_back({"ipv4_tcp_options_cut",
                   ipv4_with_tcp(truncated(tcp_segment({.data_offset_words = 8}), 28)),
                   DropReason::kTruncatedTcp, Action::kDrop});
  cases.push_back({"ipv4_tcp_options", ipv4_with_tcp(tcp_segment({.data_offset_words = 15})),
                   DropReason::kNone, Action::kForward});

  const Ipv4Spec udp_ip{.protocol = kNextUdp};
  cases.push_back({"ipv4_udp_cut", ipv4_with_tcp(truncated(udp_datagram(5353, 80), 7), udp_ip),
                   DropReason::kTruncatedUdp, Action::kDrop});
  // No UDP VIP exists, so a well-formed UDP datagram goes to the kernel.
  cases.push_back({"ipv4_udp_no_vip", ipv4_with_tcp(udp_datagram(5353, 80), udp_ip),
                   DropReason::kNone, Action::kToKernel});
  // The load balancer replies to echo requests to a VIP. Other ICMP to a VIP goes to the kernel.
  const Bytes icmp_echo{8, 0, 0xf7, 0xff, 0, 0, 0, 0};
  cases.push_back({"ipv4_icmp_echo_to_vip", ipv4_with_tcp(icmp_echo, {.protocol = 1}),
                   DropReason::kNone, Action::kForward});
  const Bytes icmp_timestamp{13, 0, 0xf2, 0xff, 0, 0, 0, 0};
  cases.push_back({"ipv4_icmp_timestamp_to_vip", ipv4_with_tcp(icmp_timestamp, {.protocol = 1}),
                   DropReason::kNone, Action::kToKernel});
  cases.push_back({"ipv4_not_vip_address", tcp4_frame({}, {.destination = kNotVip4}),
                   DropReason::kNone, Action::kToKernel});
  cases.push_back({"ipv4_not_vip_port", tcp4_frame({.destination_port = 443}),
                   DropReason::kNone, Action::kToKernel});
  cases.push_back({"ipv4_padded", ipv4_with_tcp(syn, {}, 60), DropReason::kNone,
                   Action::kForward});

  cases.push_back({"ipv4_first_fragment",
                   ipv4_with_tcp(tcp_segment({.payload_size = 64}), {.more_fragments = true}),
                   DropReason::kNone, Action::kForward});
  cases.push_back({"ipv4_later_fragment",
                   ipv4_with_tcp(Bytes(40, 0xee), {.fragment_offset = 11}), DropReason::kNone,
                   Action::kForward});
  // A later fragment shorter than a TCP header: its bytes are not read as one.
  cases.push_back({"ipv4_later_fragment_short",
                   ipv4_with_tcp(Bytes(8, 0xee), {.fragment_offset = 11}), DropReason::kNone,
                   Action::kForward});
  return cases;
}

inline std::vector<ParseCase> ethernet_cases() {
  std::vector<ParseCase> cases;
  cases.push_back({"ethernet_empty", Bytes{}, DropReason::kTruncatedEthernet, Action::kDrop});
  cases.push_back({"ethernet_cut", truncated(tcp4_frame({}), 13), DropReason::kTruncatedEthernet,
                   Action::kDrop});
  cases.push_back({"arp_request", arp_request_frame(), DropReason::kNone, Action::kToKernel});

  cases.push_back({"vlan_one_tag", tcp4_frame({}, {}, {{kTpid8021Q, 100}}), DropReason::kNone,
                   Action::kForward});
  cases.push_back({"vlan_two_tags", tcp4_frame({}, {}, {{kTpid8021ad, 200}, {kTpid8021Q, 100}}),
                   DropReason::kNone, Action::kForward});
  cases.push_back({"vlan_two_tags_ipv6",
                   tcp6_frame({}, {}, {{kTpid8021ad, 200}, {kTpid8021Q, 100}}), DropReason::kNone,
                   Action::kForward});
  cases.push_back({"vlan_three_tags",
                   tcp4_frame({}, {}, {{kTpid8021ad, 300}, {kTpid8021ad, 200}, {kTpid8021Q, 100}}),
                   DropReason::kTooManyVlanTags, Action::kDrop});
  cases.push_back({"vlan_tag_cut", truncated(tcp4_frame({}, {}, {{kTpid8021Q, 100}}), 17),
                   DropReason::kTruncatedVlan, Action::kDrop});
  return cases;
}

inline std::vector<ParseCase> ipv6_cases() {
  const Bytes syn = tcp_segment({});
  std::vector<ParseCase> cases;
  cases.push_back({"ipv6_tcp", tcp6_frame({}), DropReason::kNone, Action::kForward});
  cases.push_back({"ipv6_extension_headers",
                   ipv6_with(kNextHopByHop, concat({ipv6_options_header(kNextAh),
                                                    ipv6_ah_header(kNextDestinationOptions),
                                                    ipv6_options_header(kNextTcp, 1), syn})),
                   DropReason::kNone, Action::kForward});

  // Six extension headers are the documented maximum, so a seventh is one too many.
  Bytes six;
  for (int i = 0; i < 5; ++i) append(six, ipv6_options_header(kNextDestinationOptions));
  append(six, ipv6_options_header(kNextTcp));
  cases.push_back({"ipv6_six_extension_headers",
                   ipv6_with(kNextDestinationOptions, concat({six, syn})), DropReason::kNone,
                   Action::kForward});
  cases.push_back({"ipv6_seven_extension_headers",
                   ipv6_with(kNextDestinationOptions,
                             concat({ipv6_options_header(kNextDestinationOptions), six, syn})),
                   DropReason::kTooManyIpv6ExtensionHeaders, Action::kDrop});

  // Hop-by-Hop claims 24 bytes but the payload ends after 16.
  cases.push_back({"ipv6_hop_by_hop_cut",
                   ipv6_with(kNextHopByHop, truncated(ipv6_options_header(kNextTcp, 2), 16)),
                   DropReason::kTruncatedIpv6ExtensionHeader, Action::kDrop});
  cases.push_back({"ipv6_extension_header_cut",
                   ipv6_with(kNextHopByHop, truncated(ipv6_options_header(kNextTcp), 4)),
                   DropReason::kTruncatedIpv6ExtensionHeader, Action::kDrop});
  cases.push_back({"ipv6_ah_cut", ipv6_with(kNextAh, truncated(ipv6_ah_header(kNextTcp), 20)),
                   DropReason::kTruncatedIpv6ExtensionHeader, Action::kDrop});
  cases.push_back({"ipv6_fragment_header_cut",
                   ipv6_with(kNextFragment,
                             truncated(ipv6_fragment_header(kNextTcp, 0, true, 9), 6)),
                   DropReason::kTruncatedIpv6ExtensionHeader, Action::kDrop});

  Bytes payload_past = tcp6_frame({});
  store16(payload_past, kIpv6Offset + 4, 21);
  cases.push_back({"ipv6_payload_length_past_frame", payload_past,
                   DropReason::kIpv6PayloadLengthPastFrame, Action::kDrop});
  cases.push_back({"ipv6_header_cut", truncated(tcp6_frame({}), kIpv6Offset + 39),
                   DropReason::kTruncatedIpv6, Action::kDrop});
  Bytes version4 = tcp6_frame({});
  version4[kIpv6Offset] = 0x40;
  cases.push_back({"ipv6_bad_version", version4, DropReason::kIpv6BadVersion, Action::kDrop});

  cases.push_back({"ipv6_tcp_cut", ipv6_with(kNextTcp, truncated(syn, 19)),
                   DropReason::kTruncatedTcp, Action::kDrop});
  cases.push_back({"ipv6_tcp_offset_4", ipv6_with(kNextTcp, tcp_segment({.data_offset_words = 4})),
                   DropReason::kTcpBadDataOffset, Action::kDrop});
  cases.push_back({"ipv6_udp_cut", ipv6_with(kNextUdp, truncated(udp_datagram(5353, 80), 7)),
                   DropReason::kTruncatedUdp, Action::kDrop});
  const Bytes echo_request{128, 0, 0, 0, 0, 1, 0, 1};
  cases.push_back({"ipv6_icmpv6_echo_to_vip", ipv6_with(kNextIcmpv6, echo_request), DropReason::kNone,
                   Action::kForward});
  const Bytes node_information{139, 0, 0, 0, 0, 1, 0, 1};
  cases.push_back({"ipv6_icmpv6_other_to_vip", ipv6_with(kNextIcmpv6, node_information),
                   DropReason::kNone, Action::kToKernel});
  cases.push_back({"ipv6_not_vip_address", tcp6_frame({}, {.destination = kNotVip6}),
                   DropReason::kNone, Action::kToKernel});

  cases.push_back({"ipv6_first_fragment",
                   ipv6_with(kNextFragment, concat({ipv6_fragment_header(kNextTcp, 0, true, 77),
                                                    tcp_segment({.payload_size = 64})})),
                   DropReason::kNone, Action::kForward});
  cases.push_back({"ipv6_later_fragment",
                   ipv6_with(kNextFragment, concat({ipv6_fragment_header(kNextTcp, 11, false, 77),
                                                    Bytes(8, 0xee)})),
                   DropReason::kNone, Action::kForward});
  return cases;
}

inline std::vector<ParseCase> all_cases() {
  std::vector<ParseCase> cases = ethernet_cases();
  for (ParseCase& parse_case : ipv4_cases()) cases.push_back(std::move(parse_case));
  for (ParseCase& parse_case : ipv6_cases()) cases.push_back(std::move(parse_case));
  return cases;
}

}  // namespace sluice::test
