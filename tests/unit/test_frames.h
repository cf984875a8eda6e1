// Frame builders and fixtures for the unit tests. The builders write every header field byte
// by byte from the protocol specifications, without calling the code under test, so a test
// compares the parser and the encapsulation with an independent picture of the wire format.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <span>
#include <vector>

#include "sluice/encap.h"
#include "sluice/ip_address.h"
#include "sluice/maglev.h"
#include "sluice/pipeline.h"
#include "sluice/snapshot.h"

namespace sluice::test {

using Bytes = std::vector<uint8_t>;
using Ipv4 = std::array<uint8_t, 4>;
using Ipv6 = std::array<uint8_t, 16>;
using Mac = std::array<uint8_t, 6>;

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kTpid8021Q = 0x8100;
inline constexpr uint16_t kTpid8021ad = 0x88a8;

inline constexpr uint8_t kNextHopByHop = 0;
inline constexpr uint8_t kNextTcp = 6;
inline constexpr uint8_t kNextUdp = 17;
inline constexpr uint8_t kNextFragment = 44;
inline constexpr uint8_t kNextAh = 51;
inline constexpr uint8_t kNextIcmpv6 = 58;
inline constexpr uint8_t kNextDestinationOptions = 60;

inline constexpr uint8_t kFin = 0x01;
inline constexpr uint8_t kSyn = 0x02;
inline constexpr uint8_t kRst = 0x04;
inline constexpr uint8_t kAck = 0x10;

// Addresses from the documentation ranges (RFC 5737, RFC 3849).
inline constexpr Ipv4 kClient4{192, 0, 2, 1};
inline constexpr Ipv4 kVip4{203, 0, 113, 10};
inline constexpr Ipv4 kNotVip4{203, 0, 113, 99};
inline constexpr Ipv4 kSource4{198, 51, 100, 254};
inline constexpr Ipv6 kClient6{0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
inline constexpr Ipv6 kVip6{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
inline constexpr Ipv6 kNotVip6{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99};
inline constexpr Ipv6 kSource6{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe};

// Locally administered MAC addresses: the router that sends to the load balancer, the load
// balancer's port, and the next hop towards the backends.
inline constexpr Mac kRouterMac{0x02, 0, 0, 0, 0, 0x01};
inline constexpr Mac kBalancerMac{0x02, 0, 0, 0, 0, 0xaa};
inline constexpr Mac kEgressMac{0x02, 0, 0, 0, 0, 0xbb};
inline constexpr Mac kNextHopMac{0x02, 0, 0, 0, 0, 0xcc};

// Backend n (0 to 2) is 198.51.100.(n + 1) and 2001:db8:1::(n + 1).
inline Ipv4 backend4(int n) { return {198, 51, 100, static_cast<uint8_t>(n + 1)}; }
inline Ipv6 backend6(int n) {
  return {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(n + 1)};
}

// ---- Byte writers -----------------------------------------------------------------------

inline void append16(Bytes& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}

inline void append32(Bytes& out, uint32_t value) {
  append16(out, static_cast<uint16_t>(value >> 16));
  append16(out, static_cast<uint16_t>(value));
}

template <typename Range>
void append(Bytes& out, const Range& bytes) {
  out.insert(out.end(), std::begin(bytes), std::end(bytes));
}

inline void store16(Bytes& out, size_t offset, uint16_t value) {
  out[offset] = static_cast<uint8_t>(value >> 8);
  out[offset + 1] = static_cast<uint8_t>(value);
}

inline uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

// The one's complement sum of big-endian 16-bit words (RFC 1071), folded to 16 bits.
inline uint16_t ones_complement_sum(const uint8_t* data, size_t length) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < length; i += 2) sum += load16(data + i);
  if (length % 2 == 1) sum += static_cast<uint32_t>(data[length - 1]) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// ---- Transport headers ------------------------------------------------------------------

struct TcpSpec {
  uint16_t source_port = 40000;
  uint16_t destination_port = 80;
  uint8_t flags = kSyn;
  uint8_t data_offset_words = 5;  // written as given, but the header has at least 5 words
  size_t payload_size = 0;
};

// A TCP segment (RFC 9293) with NOP options up to the data offset and a 0xab payload. The
// checksum stays zero because the load balancer never reads it.
inline Bytes tcp_segment(const TcpSpec& spec) {
  Bytes out;
  append16(out, spec.source_port);
  append16(out, spec.destination_port);
  append32(out, 0x01020304);  // sequence number
  append32(out, spec.flags & kAck ? 0x0a0b0c0d : 0);
  out.push_back(static_cast<uint8_t>(spec.data_offset_words << 4));
  out.push_back(spec.flags);
  append16(out, 0xffff);  // window
  append16(out, 0);       // checksum
  append16(out, 0);       // urgent pointer
  const size_t header_size = std::max<size_t>(20, spec.data_offset_words * 4u);
  out.resize(header_size, 0x01);
  out.resize(header_size + spec.payload_size, 0xab);
  return out;
}

// A UDP datagram (RFC 768) with a 0xcd payload and a zero checksum.
inline Bytes udp_datagram(uint16_t source_port, uint16_t destination_port,
                          size_t payload_size = 0) {
  Bytes out;
  append16(out, source_port);
  append16(out, destination_port);
  append16(out, static_cast<uint16_t>(8 + payload_size));
  append16(out, 0);
  out.resize(8 + payload_size, 0xcd);
  return out;
}

// ---- IPv4 -------------------------------------------------------------------------------

struct Ipv4Spec {
  Ipv4 source = kClient4;
  Ipv4 destination = kVip4;
  uint8_t protocol = kNextTcp;
  uint8_t tos = 0;
  uint16_t id = 0x1234;
  bool dont_fragment = false;
  bool more_fragments = false;
  uint16_t fragment_offset = 0;  // in 8-byte units
  uint8_t ttl = 61;
  uint8_t option_words = 0;  // NOP options, so IHL is 5 + option_words
};

// An IPv4 packet (RFC 791) around `payload`, with its header checksum.
inline Bytes ipv4_packet(const Ipv4Spec& spec, const Bytes& payload) {
  const size_t header_size = (5u + spec.option_words) * 4u;
  Bytes out;
  out.push_back(static_cast<uint8_t>(0x40 | (5 + spec.option_words)));
  out.push_back(spec.tos);
  append16(out, static_cast<uint16_t>(header_size + payload.size()));
  append16(out, spec.id);
  uint16_t fragment_field = spec.fragment_offset & 0x1fff;
  if (spec.dont_fragment) fragment_field |= 0x4000;
  if (spec.more_fragments) fragment_field |= 0x2000;
  append16(out, fragment_field);
  out.push_back(spec.ttl);
  out.push_back(spec.protocol);
  append16(out, 0);  // checksum, filled in below
  append(out, spec.source);
  append(out, spec.destination);
  out.resize(header_size, 0x01);  // NOP options
  store16(out, 10, static_cast<uint16_t>(~ones_complement_sum(out.data(), header_size)));
  append(out, payload);
  return out;
}

// ---- IPv6 -------------------------------------------------------------------------------

struct Ipv6Spec {
  Ipv6 source = kClient6;
  Ipv6 destination = kVip6;
  uint8_t traffic_class = 0;
  uint32_t flow_label = 0;
  uint8_t hop_limit = 61;
};

// An IPv6 packet (RFC 8200) whose first header after the fixed one is `next_header`.
// `payload` contains the extension headers and the upper-layer data.
inline Bytes ipv6_packet(const Ipv6Spec& spec, uint8_t next_header, const Bytes& payload) {
  Bytes out;
  append32(out, (6u << 28) | (static_cast<uint32_t>(spec.traffic_class) << 20) |
                    (spec.flow_label & 0xfffff));
  append16(out, static_cast<uint16_t>(payload.size()));
  out.push_back(next_header);
  out.push_back(spec.hop_limit);
  append(out, spec.source);
  append(out, spec.destination);
  append(out, payload);
  return out;
}

// A Hop-by-Hop or Destination Options header of (extra_units + 1) * 8 bytes, filled with
// one PadN option (RFC 8200 section 4.2).
inline Bytes ipv6_options_header(uint8_t next_header, uint8_t extra_units = 0) {
  const size_t size = (extra_units + 1u) * 8u;
  Bytes out{next_header, extra_units, 0x01, static_cast<uint8_t>(size - 4)};
  out.resize(size, 0);
  return out;
}

// An Authentication Header (RFC 4302) with a 12-byte ICV: 24 bytes, Payload Len 4.
inline Bytes ipv6_ah_header(uint8_t next_header) {
  Bytes out{next_header, 4, 0, 0};
  append32(out, 0x00001000);  // SPI
  append32(out, 7);           // sequence number
  out.resize(24, 0x5a);       // ICV
  return out;
}

// A Fragment header (RFC 8200 section 4.5), with `offset` in 8-byte units.
inline Bytes ipv6_fragment_header(uint8_t next_header, uint16_t offset, bool more,
                                  uint32_t id) {
  Bytes out{next_header, 0};
  append16(out, static_cast<uint16_t>((offset << 3) | (more ? 1 : 0)));
  append32(out, id);
  return out;
}

// ---- Ethernet ---------------------------------------------------------------------------

struct VlanTag {
  uint16_t tpid = kTpid8021Q;
  uint16_t tci = 100;  // priority 0, VLAN ID 100
};

// An Ethernet II frame without FCS, zero-padded up to `padded_size` bytes. 60 is the
// Ethernet minimum without FCS, and 0 adds no padding.
inline Bytes ethernet_frame(uint16_t ether_type, const Bytes& payload,
                            std::initializer_list<VlanTag> tags = {}, size_t padded_size = 0,
                            const Mac& destination = kBalancerMac,
                            const Mac& source = kRouterMac) {
  Bytes out;
  append(out, destination);
  append(out, source);
  for (const VlanTag& tag : tags) {
    append16(out, tag.tpid);
    append16(out, tag.tci);
  }
  append16(out, ether_type);
  append(out, payload);
  if (out.size() < padded_size) out.resize(padded_size, 0);
  return out;
}

// An ARP request (RFC 826) from 192.0.2.1 for 203.0.113.10.
inline Bytes arp_request_frame() {
  Bytes arp;
  append16(arp, 1);       // hardware type: Ethernet
  append16(arp, 0x0800);  // protocol type: IPv4
  arp.push_back(6);
  arp.push_back(4);
  append16(arp, 1);  // operation: request
  append(arp, kRouterMac);
  append(arp, kClient4);
  append(arp, Mac{});
  append(arp, kVip4);
  return ethernet_frame(kEtherTypeArp, arp, {}, 60, Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
}

// Shorthands for the common frames: a TCP segment to the IPv4 or IPv6 VIP.
inline Bytes tcp4_frame(const TcpSpec& tcp, const Ipv4Spec& ip = {},
                        std::initializer_list<VlanTag> tags = {}) {
  return ethernet_frame(kEtherTypeIpv4, ipv4_packet(ip, tcp_segment(tcp)), tags);
}

inline Bytes tcp6_frame(const TcpSpec& tcp, const Ipv6Spec& ip = {},
                        std::initializer_list<VlanTag> tags = {}) {
  return ethernet_frame(kEtherTypeIpv6, ipv6_packet(ip, kNextTcp, tcp_segment(tcp)), tags);
}

// ---- ICMP errors about a flow ------------------------------------------------------------

inline constexpr Ipv4 kRouter4{198, 51, 100, 1};
inline constexpr Ipv6 kRouter6{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
inline constexpr uint8_t kNextIcmp = 1;

// An ICMP message (type, code, a zero checksum, `rest` in the last 4 bytes) quoting the first
// `quote_size` bytes of `quoted`.
inline Bytes icmp_message(uint8_t type, uint8_t code, uint32_t rest, const Bytes& quoted,
                          size_t quote_size) {
  Bytes out{type, code, 0, 0};
  append32(out, rest);
  out.insert(out.end(), quoted.begin(), quoted.begin() + std::min(quote_size, quoted.size()));
  return out;
}

// What a router sends to the VIP when a backend's reply (VIP:vip_port -> client:client_port)
// cannot pass: an ICMP error quoting the reply's IPv4 header and the first 8 bytes after it.
inline Bytes icmp4_error_frame(uint8_t type, uint8_t code, const Bytes& quoted_segment,
                               const Ipv4Spec& quoted_ip = {.source = kVip4, .destination = kClient4},
                               size_t quote_payload = 8) {
  const Bytes quoted = ipv4_packet(quoted_ip, quoted_segment);
  const size_t header = (5u + quoted_ip.option_words) * 4u;
  const Bytes icmp = icmp_message(type, code, type == 3 && code == 4 ? 1400 : 0, quoted, header + quote_payload);
  return ethernet_frame(kEtherTypeIpv4,
                        ipv4_packet({.source = kRouter4, .destination = quoted_ip.source, .protocol = kNextIcmp}, icmp));
}

// The same for ICMPv6: packet too big (type 2, MTU 1400) or another error.
inline Bytes icmp6_error_frame(uint8_t type, uint8_t code, uint8_t quoted_next_header,
                               const Bytes& quoted_segment, size_t quote_payload = 8) {
  const Bytes quoted = ipv6_packet({.source = kVip6, .destination = kClient6}, quoted_next_header, quoted_segment);
  const Bytes icmp = icmp_message(type, code, type == 2 ? 1400 : 0, quoted, 40 + quote_payload);
  return ethernet_frame(kEtherTypeIpv6, ipv6_packet({.source = kRouter6, .destination = kVip6}, kNextIcmpv6, icmp));
}

// ---- ICMP echo ---------------------------------------------------------------------------

// An ICMP or ICMPv6 message of `type` with identifier 0x1234, sequence 7, 32 bytes of payload
// and a correct checksum, summed over `pseudo_header` too (ICMPv6).
inline Bytes echo_message(uint8_t type, const Bytes& pseudo_header = {}) {
  Bytes icmp{type, 0, 0, 0, 0x12, 0x34, 0x00, 0x07};
  for (int i = 0; i < 32; ++i) icmp.push_back(static_cast<uint8_t>(i));
  Bytes summed = pseudo_header;
  summed.insert(summed.end(), icmp.begin(), icmp.end());
  const uint16_t checksum = static_cast<uint16_t>(~ones_complement_sum(summed.data(), summed.size()));
  icmp[2] = static_cast<uint8_t>(checksum >> 8);
  icmp[3] = static_cast<uint8_t>(checksum);
  return icmp;
}

// The ICMPv6 pseudo-header (RFC 8200 section 8.1) for a message of `length` bytes.
inline Bytes pseudo_header6(const Ipv6& source, const Ipv6& destination, uint32_t length) {
  Bytes out(source.begin(), source.end());
  out.insert(out.end(), destination.begin(), destination.end());
  append32(out, length);
  append32(out, kNextIcmpv6);
  return out;
}

// An echo request (or another message of `type`) from the client to `destination`.
inline Bytes echo4_frame(const Ipv4& destination, uint8_t type = 8, uint8_t option_words = 0,
                         uint16_t fragment_offset = 0) {
  return ethernet_frame(kEtherTypeIpv4, ipv4_packet({.source = kClient4, .destination = destination,
                                                     .protocol = kNextIcmp, .fragment_offset = fragment_offset,
                                                     .option_words = option_words},
                                                    echo_message(type)));
}

inline Bytes echo6_frame(const Ipv6& destination) {
  const Bytes icmp = echo_message(128, pseudo_header6(kClient6, destination, 40));
  return ethernet_frame(kEtherTypeIpv6, ipv6_packet({.source = kClient6, .destination = destination},
                                                    kNextIcmpv6, icmp));
}

// ---- Flow keys built from the test's own addresses ----------------------------------------

inline uint16_t network_order16(uint16_t host) {
  const uint8_t bytes[2] = {static_cast<uint8_t>(host >> 8), static_cast<uint8_t>(host)};
  uint16_t value;
  std::memcpy(&value, bytes, 2);
  return value;
}

inline sluice_flow_key flow_key4(const Ipv4& source, const Ipv4& destination, uint8_t protocol,
                                 uint16_t source_port, uint16_t destination_port) {
  sluice_flow_key key{};
  std::memcpy(key.src, source.data(), 4);
  std::memcpy(key.dst, destination.data(), 4);
  key.src_port = network_order16(source_port);
  key.dst_port = network_order16(destination_port);
  key.protocol = protocol;
  key.family = 4;
  return key;
}

inline sluice_flow_key flow_key6(const Ipv6& source, const Ipv6& destination, uint8_t protocol,
                                 uint16_t source_port, uint16_t destination_port) {
  sluice_flow_key key{};
  std::memcpy(key.src, source.data(), 16);
  std::memcpy(key.dst, destination.data(), 16);
  key.src_port = network_order16(source_port);
  key.dst_port = network_order16(destination_port);
  key.protocol = protocol;
  key.family = 6;
  return key;
}

// ---- Snapshot and pipeline fixtures -------------------------------------------------------

inline IpAddress address4(const Ipv4& bytes) { return IpAddress::v4(bytes.data()); }
inline IpAddress address6(const Ipv6& bytes) { return IpAddress::v6(bytes.data()); }

// Backend slots of the test snapshot: 0 to 2 are IPv4 backends 0 to 2, 3 to 5 are IPv6
// backends 0 to 2. A slot's uid is 100 + slot.
inline constexpr uint32_t kFirstIpv6Slot = 3;
inline constexpr uint32_t kVipSlot4 = 0;  // 203.0.113.10:80/tcp
inline constexpr uint32_t kVipSlot6 = 1;  // [2001:db8::10]:80/tcp

// Builds a Maglev table over the given backend slots of `snapshot`, all of weight 1.
inline std::vector<uint32_t> maglev_for(const Snapshot& snapshot,
                                        std::initializer_list<uint32_t> slots) {
  std::vector<MaglevBackend> backends;
  for (uint32_t slot : slots) backends.push_back({snapshot.backends[slot].address, 1, slot});
  Result<MaglevTable> table = build_maglev_table(backends, SLUICE_MAGLEV_DEFAULT_SIZE);
  return table.ok() ? std::move(table).value().entries : std::vector<uint32_t>{};
}

// A Maglev table that sends every flow to one backend slot.
inline std::vector<uint32_t> maglev_all_to(uint32_t slot) {
  return std::vector<uint32_t>(SLUICE_MAGLEV_DEFAULT_SIZE, slot);
}

// A snapshot with the VIPs 203.0.113.10:80/tcp and [2001:db8::10]:80/tcp, each with three
// live backends of its own family.
inline Snapshot make_snapshot() {
  Snapshot snapshot;
  snapshot.generation = 1;
  snapshot.seed = 0x5eed5eed;
  snapshot.source_ipv4 = address4(kSource4);
  snapshot.source_ipv6 = address6(kSource6);
  snapshot.next_hop_mac = MacAddress{kNextHopMac};
  for (int n = 0; n < 3; ++n) {
    snapshot.backends.push_back({static_cast<uint32_t>(100 + n), BackendState::kLive,
                                 address4(backend4(n))});
  }
  for (int n = 0; n < 3; ++n) {
    snapshot.backends.push_back({static_cast<uint32_t>(100 + kFirstIpv6Slot + n),
                                 BackendState::kLive, address6(backend6(n))});
  }

  Vip vip4;
  vip4.key = {address4(kVip4), 80, kProtocolTcp};
  vip4.slot = kVipSlot4;
  vip4.maglev = maglev_for(snapshot, {0, 1, 2});
  Vip vip6;
  vip6.key = {address6(kVip6), 80, kProtocolTcp};
  vip6.slot = kVipSlot6;
  vip6.maglev = maglev_for(snapshot, {3, 4, 5});
  snapshot.vips = {vip4, vip6};
  snapshot.prepare();
  return snapshot;
}

inline const EgressPort kEgress{MacAddress{kEgressMac}, 1500};

// A frame in its own buffer with headroom in front, as a NIC driver hands it over.
class FrameBuffer {
 public:
  explicit FrameBuffer(const Bytes& frame, uint32_t headroom = 128)
      : storage_(headroom + frame.size()) {
    std::copy(frame.begin(), frame.end(), storage_.begin() + headroom);
    packet_.data = storage_.data() + headroom;
    packet_.length = static_cast<uint32_t>(frame.size());
    packet_.headroom = headroom;
  }

  PacketBuffer& packet() { return packet_; }
  Bytes contents() const { return Bytes(packet_.data, packet_.data + packet_.length); }

 private:
  Bytes storage_;
  PacketBuffer packet_;
};

inline constexpr uint64_t kStartNs = 1'000'000'000;

// Runs one frame through the pipeline. `output`, when given, receives the frame as the
// pipeline left it.
inline Verdict run_frame(Pipeline& pipeline, const Snapshot& snapshot, const Bytes& frame,
                         uint64_t now_ns = kStartNs, Bytes* output = nullptr) {
  FrameBuffer buffer(frame);
  const Verdict verdict = pipeline.process(snapshot, buffer.packet(), kEgress, now_ns);
  if (output != nullptr) *output = buffer.contents();
  return verdict;
}

}  // namespace sluice::test
