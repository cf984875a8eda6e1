#include "traffic.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "sluice/packet.h"

namespace sluice::pktgen {
namespace {

constexpr uint32_t kEthernetSize = 14;
constexpr uint32_t kIpv4Size = 20;
constexpr uint32_t kIpv6Size = 40;
constexpr uint32_t kTcpSize = 20;
constexpr uint32_t kUdpSize = 8;
constexpr uint32_t kFirstClientPort = 1024;
constexpr uint32_t kClientPorts = 65536 - kFirstClientPort;
constexpr uint16_t kAnyPortDestination = 80;  // the destination of flows to a port-0 VIP
constexpr uint8_t kTtl = 64;

void put16(uint8_t* out, uint32_t value) {
  out[0] = static_cast<uint8_t>(value >> 8);
  out[1] = static_cast<uint8_t>(value);
}

void put32(uint8_t* out, uint32_t value) {
  put16(out, value >> 16);
  put16(out + 2, value);
}

// Adds `length` bytes to a one's complement sum (RFC 1071). The bytes start at an even or odd
// offset of the checksummed data, and bytes never added count as zero.
uint32_t add_bytes(uint32_t sum, const uint8_t* data, uint32_t length, bool odd_start) {
  for (uint32_t i = 0; i < length; ++i) {
    const bool high = ((i & 1) == 0) != odd_start;
    sum += high ? uint32_t{data[i]} << 8 : data[i];
  }
  return sum;
}

uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Clients use the prefix's addresses except its first (and in IPv4 its last, the broadcast
// address), unless the prefix is too short to spare them: a /32, /31 or /128 uses all.
bool skips_first_address(const IpPrefix& prefix) {
  const uint32_t bits = (prefix.base.is_v4() ? 32 : 128) - prefix.length;
  return prefix.base.is_v4() ? bits >= 2 : bits >= 1;
}

uint32_t host_count(const IpPrefix& prefix) {
  const uint32_t bits = (prefix.base.is_v4() ? 32 : 128) - prefix.length;
  if (bits >= 32) return UINT32_MAX;
  const uint64_t all = uint64_t{1} << bits;
  if (!skips_first_address(prefix)) return static_cast<uint32_t>(all);
  return static_cast<uint32_t>(all - (prefix.base.is_v4() ? 2 : 1));
}

Result<uint64_t> parse_number(std::string_view text, const std::string& field) {
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) {
    return Error{field + " '" + std::string(text) + "' is not a whole number"};
  }
  return value;
}

}  // namespace

Result<IpPrefix> IpPrefix::parse(std::string_view text) {
  const size_t slash = text.find('/');
  const std::string usage = " (write ADDRESS/LENGTH, for example 192.0.2.0/24 or 2001:db8::/64)";
  if (slash == std::string_view::npos) return Error{"client prefix '" + std::string(text) + "' has no length" + usage};
  Result<IpAddress> address = IpAddress::parse(text.substr(0, slash));
  if (!address) return Error{"client prefix '" + std::string(text) + "': " + address.error() + usage};
  Result<uint64_t> length = parse_number(text.substr(slash + 1), "prefix length");
  const uint32_t max_length = address->is_v4() ? 32 : 128;
  if (!length || *length > max_length) {
    return Error{"client prefix '" + std::string(text) + "': the length must be 0 to " +
                 std::to_string(max_length)};
  }
  IpPrefix prefix{*address, static_cast<uint32_t>(*length)};
  // Clear the host bits, so that hosts count from the prefix's first address.
  for (uint32_t bit = prefix.length; bit < max_length; ++bit) {
    prefix.base.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  return prefix;
}

Result<std::vector<uint32_t>> parse_frame_sizes(std::string_view text) {
  if (text == "imix") {
    // Simple IMIX: IP packets of 40, 576 and 1500 bytes in the ratio 7:4:1, as frames,
    // interleaved so that no burst holds only large frames.
    return std::vector<uint32_t>{64, 594, 64, 594, 64, 1518, 64, 594, 64, 594, 64, 64};
  }
  Result<uint64_t> size = parse_number(text, "frame size");
  if (!size || *size < kMinFrameSize || *size > kMaxFrameSize) {
    return Error{"frame size '" + std::string(text) + "' must be 'imix' or a number of bytes from " +
                 std::to_string(kMinFrameSize) + " to " + std::to_string(kMaxFrameSize) +
                 " (the frame with its FCS)"};
  }
  return std::vector<uint32_t>{static_cast<uint32_t>(*size)};
}

Status parse_mix(std::string_view text, TrafficSpec& spec) {
  uint32_t syn = 0, ack = 0, udp = 0;
  std::string_view rest = text;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    const size_t equals = item.find('=');
    const std::string usage = " (write KIND=WEIGHT,..., with kinds syn, ack and udp, for example ack=90,syn=10)";
    if (equals == std::string_view::npos) return Error{"mix item '" + std::string(item) + "' has no weight" + usage};
    const std::string_view name = item.substr(0, equals);
    Result<uint64_t> weight = parse_number(item.substr(equals + 1), "mix weight");
    if (!weight || *weight > 1000) return Error{"mix item '" + std::string(item) + "': the weight must be 0 to 1000"};
    if (name == "syn") {
      syn = static_cast<uint32_t>(*weight);
    } else if (name == "ack") {
      ack = static_cast<uint32_t>(*weight);
    } else if (name == "udp") {
      udp = static_cast<uint32_t>(*weight);
    } else {
      return Error{"mix item '" + std::string(item) + "': unknown kind '" + std::string(name) + "'" + usage};
    }
  }
  if (syn + ack + udp == 0) return Error{"mix '" + std::string(text) + "' gives every kind weight 0"};
  spec.syn_weight = syn;
  spec.ack_weight = ack;
  spec.udp_weight = udp;
  return {};
}

Status validate(const TrafficSpec& spec) {
  if (spec.vips.empty()) return Error{"no VIP to send to (give --vip ADDRESS:PORT/PROTOCOL)"};
  if (spec.flows == 0 || spec.flows > UINT32_MAX) {
    return Error{"flows must be 1 to " + std::to_string(UINT32_MAX)};
  }
  for (const IpPrefix& a : spec.clients) {
    for (const IpPrefix& b : spec.clients) {
      if (&a != &b && a.base.family == b.base.family) return Error{"give one client prefix per address family"};
    }
  }
  auto needs = [&](uint8_t protocol, uint32_t weight, const char* kind) -> Status {
    if (weight == 0) return {};
    bool found = false;
    for (const VipKey& vip : spec.vips) {
      if (vip.protocol != protocol) continue;
      found = true;
      const auto client = std::find_if(spec.clients.begin(), spec.clients.end(),
                                       [&](const IpPrefix& p) { return p.base.family == vip.address.family; });
      if (client == spec.clients.end()) {
        return Error{"VIP " + vip.to_string() + " needs a client prefix of its address family (--client)"};
      }
      const uint64_t tuples = uint64_t{host_count(*client)} * kClientPorts;
      if (spec.flows > tuples) {
        return Error{"client prefix " + client->base.to_string() + "/" + std::to_string(client->length) +
                     " has room for " + std::to_string(tuples) + " flows, fewer than " +
                     std::to_string(spec.flows) + " (use a shorter prefix)"};
      }
    }
    if (!found) return Error{std::string("the mix sends ") + kind + " packets, but no VIP has that protocol"};
    return {};
  };
  if (Status status = needs(kProtocolTcp, spec.syn_weight + spec.ack_weight, "TCP"); !status) return status;
  if (Status status = needs(kProtocolUdp, spec.udp_weight, "UDP"); !status) return status;
  if (spec.frame_sizes.empty()) return Error{"no frame size"};
  return {};
}

FrameBuilder::FrameBuilder(const TrafficSpec& spec, uint64_t random_seed)
    : spec_(spec), random_state_(random_seed | 1) {
  // Spread each kind over its cycle as evenly as the weights allow (largest remainder first).
  const uint32_t total = spec.syn_weight + spec.ack_weight + spec.udp_weight;
  const uint32_t weights[3] = {spec.syn_weight, spec.ack_weight, spec.udp_weight};
  uint32_t given[3] = {0, 0, 0};
  for (uint32_t i = 1; i <= total; ++i) {
    int best = 0;
    double best_lag = -1e9;
    for (int kind = 0; kind < 3; ++kind) {
      const double lag = static_cast<double>(weights[kind]) * i / total - given[kind];
      if (weights[kind] > 0 && lag > best_lag) best_lag = lag, best = kind;
    }
    ++given[best];
    kinds_.push_back(static_cast<PacketKind>(best));
  }
  for (const VipKey& vip : spec_.vips) {
    (vip.protocol == kProtocolUdp ? udp_vips_ : tcp_vips_).push_back(&vip);
  }
}

uint64_t FrameBuilder::flow_of(uint64_t sequence) {
  // Each kind walks through all the flows on its own, so that every flow receives every kind
  // of the mix, whatever factor the mix's cycle and the flow count have in common.
  if (!spec_.random_order) return kind_sequence_[static_cast<int>(kind_of(sequence))]++ % spec_.flows;
  // xorshift64, then a multiply-shift that maps 32 random bits onto [0, flows).
  random_state_ ^= random_state_ << 13;
  random_state_ ^= random_state_ >> 7;
  random_state_ ^= random_state_ << 17;
  return ((random_state_ >> 32) * spec_.flows) >> 32;
}

FrameBuilder::Endpoint FrameBuilder::client_of(uint64_t flow, uint8_t family) const {
  const IpPrefix* prefix = &spec_.clients.front();
  for (const IpPrefix& candidate : spec_.clients) {
    if (candidate.base.family == family) prefix = &candidate;
  }
  const uint32_t hosts = host_count(*prefix);
  const uint32_t host = (skips_first_address(*prefix) ? 1 : 0) + static_cast<uint32_t>(flow % hosts);
  Endpoint endpoint{prefix->base, static_cast<uint16_t>(kFirstClientPort + (flow / hosts) % kClientPorts)};
  // Add the host number to the address's last 32 bits.
  uint8_t* last = endpoint.address.bytes.data() + (family == 4 ? 0 : 12);
  const uint32_t value = ((uint32_t{last[0]} << 24) | (uint32_t{last[1]} << 16) |
                          (uint32_t{last[2]} << 8) | last[3]) + host;
  put32(last, value);
  return endpoint;
}

const VipKey& FrameBuilder::vip_of(uint64_t flow, PacketKind kind) const {
  // A multiplicative hash of the flow picks the VIP, so that VIPs and client addresses (also
  // chosen from the flow number) do not pair up when their counts share a factor.
  const auto& vips = kind == PacketKind::kUdp ? udp_vips_ : tcp_vips_;
  return *vips[((flow * 0x9e3779b97f4a7c15ULL) >> 32) % vips.size()];
}

uint32_t FrameBuilder::build(uint64_t sequence, uint64_t stamp, uint8_t* out) {
  const PacketKind kind = kind_of(sequence);
  const uint64_t flow = flow_of(sequence);
  const VipKey& vip = vip_of(flow, kind);
  const bool v4 = vip.address.is_v4();
  const Endpoint client = client_of(flow, vip.address.family);
  const uint16_t destination_port = vip.port == 0 ? kAnyPortDestination : vip.port;

  const uint32_t ip_size = v4 ? kIpv4Size : kIpv6Size;
  const uint32_t l4_header = kind == PacketKind::kUdp ? kUdpSize : kTcpSize;
  const uint32_t requested = spec_.frame_sizes[sequence % spec_.frame_sizes.size()] - kFcsSize;
  const uint32_t length = std::max(requested, kEthernetSize + ip_size + l4_header + kStampSize);
  const uint32_t l4_length = length - kEthernetSize - ip_size;
  std::memset(out, 0, length);

  std::memcpy(out, spec_.destination_mac.bytes.data(), 6);
  std::memcpy(out + 6, spec_.source_mac.bytes.data(), 6);
  put16(out + 12, v4 ? 0x0800 : 0x86dd);

  uint8_t* ip = out + kEthernetSize;
  const uint8_t protocol = kind == PacketKind::kUdp ? kProtocolUdp : kProtocolTcp;
  const uint32_t address_size = v4 ? 4 : 16;
  uint8_t* source = ip + (v4 ? 12 : 8);
  uint8_t* destination = source + address_size;
  if (v4) {
    ip[0] = 0x45;
    put16(ip + 2, ip_size + l4_length);
    put16(ip + 4, static_cast<uint32_t>(sequence));
    ip[8] = kTtl;
    ip[9] = protocol;
  } else {
    ip[0] = 0x60;
    put16(ip + 4, l4_length);
    ip[6] = protocol;
    ip[7] = kTtl;
  }
  std::memcpy(source, client.address.bytes.data(), address_size);
  std::memcpy(destination, vip.address.bytes.data(), address_size);
  if (v4) put16(ip + 10, fold(add_bytes(0, ip, kIpv4Size, false)));

  uint8_t* l4 = ip + ip_size;
  put16(l4, client.port);
  put16(l4 + 2, destination_port);
  if (kind == PacketKind::kUdp) {
    put16(l4 + 4, l4_length);
  } else {
    put32(l4 + 4, static_cast<uint32_t>(flow));           // sequence number
    put32(l4 + 8, kind == PacketKind::kTcpAck ? 1 : 0);   // acknowledgment number
    l4[12] = 0x50;                                        // data offset: 5 words
    l4[13] = kind == PacketKind::kTcpAck ? 0x10 : 0x02;   // ACK or SYN
    put16(l4 + 14, 0xffff);                               // window
  }
  const uint64_t masked = stamp & kStampMask;
  uint8_t* stamp_bytes = out + length - kStampSize;
  for (uint32_t i = 0; i < kStampSize; ++i) {
    stamp_bytes[i] = static_cast<uint8_t>(masked >> (8 * (kStampSize - 1 - i)));
  }

  // The L4 checksum over the pseudo-header, the L4 header and the stamp; the rest of the
  // payload is zero and adds nothing.
  uint32_t sum = add_bytes(0, source, 2 * address_size, false);
  sum += protocol + (l4_length >> 16) + (l4_length & 0xffff);
  sum = add_bytes(sum, l4, l4_header, false);
  sum = add_bytes(sum, stamp_bytes, kStampSize, ((l4_length - kStampSize) & 1) != 0);
  uint16_t checksum = fold(sum);
  if (checksum == 0 && kind == PacketKind::kUdp) checksum = 0xffff;  // 0 means none in UDP
  put16(l4 + (kind == PacketKind::kUdp ? 6 : 16), checksum);
  return length;
}

uint64_t read_stamp(std::span<const uint8_t> frame) {
  if (frame.size() < kStampSize) return 0;
  uint64_t stamp = 0;
  for (uint32_t i = 0; i < kStampSize; ++i) stamp = (stamp << 8) | frame[frame.size() - kStampSize + i];
  return stamp;
}

}  // namespace sluice::pktgen
