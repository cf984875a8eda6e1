// Packet parsing (step 1 of the packet path): Ethernet with up to two VLAN tags, IPv4 with
// options, IPv6 with extension headers, then TCP, UDP, ICMP or ICMPv6. Every malformed case
// has its own drop reason, and the parser never reads past the frame.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "sluice/dataplane_abi.h"
#include "sluice/flow_hash.h"

namespace sluice {

enum class DropReason : uint8_t {
  kNone = SLUICE_DROP_NONE,
#define SLUICE_DROP_CPP_ENUM(suffix, name) k##suffix = SLUICE_DROP_##suffix,
  SLUICE_DROP_REASONS(SLUICE_DROP_CPP_ENUM)
#undef SLUICE_DROP_CPP_ENUM
};

inline constexpr int kDropReasonCount = SLUICE_DROP_COUNT;

// The exported name of a drop reason, for example "truncated_tcp".
std::string_view drop_reason_name(DropReason reason);

enum class Action : uint8_t {
  kDrop = SLUICE_ACTION_DROP,
  kForward = SLUICE_ACTION_FORWARD,
  kToKernel = SLUICE_ACTION_TO_KERNEL,
};

inline constexpr uint8_t kProtocolIcmp = 1;
inline constexpr uint8_t kProtocolIpip = 4;
inline constexpr uint8_t kProtocolTcp = 6;
inline constexpr uint8_t kProtocolUdp = 17;
inline constexpr uint8_t kProtocolIpv6 = 41;
inline constexpr uint8_t kProtocolIcmpv6 = 58;

inline constexpr uint32_t kIpv4HeaderSize = 20;  // without options
inline constexpr uint32_t kIpv6HeaderSize = 40;  // without extension headers
inline constexpr uint32_t kUdpHeaderSize = 8;
inline constexpr uint32_t kIcmpHeaderSize = 8;  // ICMP and ICMPv6 errors and echo messages

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpAck = 0x10;

// IPv6 extension headers the parser walks before it gives up (Hop-by-Hop, Routing,
// Destination Options, AH, Fragment). A chain longer than this is dropped.
inline constexpr int kMaxIpv6ExtensionHeaders = 6;

// The facts about a packet that the later steps use. Offsets are from the frame's start.
struct ParsedPacket {
  sluice_flow_key key{};     // 5-tuple; ports zero for fragments and non-TCP/UDP packets
  uint16_t l3_offset = 0;    // after Ethernet and VLAN tags
  uint16_t l4_offset = 0;    // after IPv4 options or IPv6 extension headers
  uint16_t l3_length = 0;    // IP total length: IPv4 total length, or 40 + IPv6 payload length
  uint8_t vlan_tags = 0;
  uint8_t family = 0;        // 4 or 6
  uint8_t protocol = 0;      // the upper-layer protocol after extension headers
  uint8_t tcp_flags = 0;
  uint8_t traffic_class = 0;  // IPv4 TOS or IPv6 traffic class
  bool dont_fragment = false;  // IPv4 DF bit
  bool fragment = false;       // MF set or a non-zero offset
  bool has_ports = false;      // TCP or UDP header present and parsed
  // An ICMP or ICMPv6 error that quotes a TCP or UDP datagram. `key` is then the quoted
  // 5-tuple reversed: the flow, as its client sends it, that the error is about.
  bool icmp_error = false;
  // An ICMP echo request (type 8) or ICMPv6 echo request (type 128), code 0, with its 8-byte
  // header present.
  bool icmp_echo_request = false;
};

struct ParseResult {
  ParsedPacket packet;
  DropReason drop = DropReason::kNone;
};

// Parses an Ethernet frame. A result with drop == kNone is well formed as far as the
// parser checks; the caller decides what a non-IP EtherType means (parsed.family == 0).
ParseResult parse_packet(std::span<const uint8_t> frame);
// The same, writing into `out`: the per-packet path uses this to avoid a copy.
DropReason parse_packet(std::span<const uint8_t> frame, ParsedPacket& out);
// The parser without its fast path for untagged IPv4 TCP and UDP, for the tests that check
// that the two agree.
DropReason parse_packet_general(std::span<const uint8_t> frame, ParsedPacket& out);

}  // namespace sluice
