// The traffic model of sluice-pktgen: the flows (client prefixes to VIPs), the packet kinds (TCP SYN,
// TCP ACK, UDP), the frame sizes, and the bytes of each frame. Plain C++ without DPDK, so
// that tests and the XDP benchmark build the same frames.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/ip_address.h"
#include "sluice/result.h"
#include "sluice/snapshot.h"

namespace sluice::pktgen {

enum class PacketKind : uint8_t { kTcpSyn, kTcpAck, kUdp };

// Frame sizes count the Ethernet frame with its 4-byte FCS, as RFC 2544 does; the bytes
// handed to the NIC are 4 fewer. A frame too small for its headers and the timestamp grows.
inline constexpr uint32_t kMinFrameSize = 64;
inline constexpr uint32_t kMaxFrameSize = 1518;
inline constexpr uint32_t kFcsSize = 4;

// Every generated frame ends with a 48-bit timestamp (TSC cycles since the generator
// started, big-endian), so latency survives encapsulation, which only adds headers in front.
inline constexpr uint32_t kStampSize = 6;
inline constexpr uint64_t kStampMask = (uint64_t{1} << 48) - 1;

struct IpPrefix {
  IpAddress base;
  uint32_t length = 0;
  static Result<IpPrefix> parse(std::string_view text);  // "192.0.2.0/24", "2001:db8::/64"
};

struct TrafficSpec {
  std::vector<VipKey> vips;
  std::vector<IpPrefix> clients;  // at most one per address family
  uint64_t flows = 1024;          // distinct 5-tuples
  bool random_order = false;      // a uniformly drawn flow per packet; else flows in turn
  // Weights of the packet kinds; the sequence of kinds repeats every sum-of-weights packets.
  uint32_t syn_weight = 0;
  uint32_t ack_weight = 1;
  uint32_t udp_weight = 0;
  std::vector<uint32_t> frame_sizes{64};  // cycled in order; IMIX is 7 × 64, 4 × 594, 1 × 1518
  MacAddress source_mac{{0x02, 0, 0, 0, 0x5c, 0x01}};
  MacAddress destination_mac{{0x02, 0, 0, 0, 0x5c, 0x02}};
};

// Parses "64" or "imix" into frame sizes.
Result<std::vector<uint32_t>> parse_frame_sizes(std::string_view text);
// Parses "ack=90,syn=10,udp=0" into the spec's weights.
Status parse_mix(std::string_view text, TrafficSpec& spec);
// Checks the spec as a whole: every kind with a weight has a VIP of its protocol and a
// client prefix of that VIP's family, and the flows fit the prefixes' address and port space.
Status validate(const TrafficSpec& spec);

// Turns packet sequence numbers into frames. Not thread safe; one per sending lcore.
class FrameBuilder {
 public:
  explicit FrameBuilder(const TrafficSpec& spec, uint64_t random_seed = 0x51ce);

  // Writes frame `sequence` into `out` (at least kMaxFrameSize bytes) and returns its
  // length without FCS. `stamp` goes into the last kStampSize bytes.
  uint32_t build(uint64_t sequence, uint64_t stamp, uint8_t* out);

  // The flow of packet `sequence`. In sequential order each kind takes the flows in turn, so
  // call it once per packet, in sequence order.
  uint64_t flow_of(uint64_t sequence);
  PacketKind kind_of(uint64_t sequence) const { return kinds_[sequence % kinds_.size()]; }

 private:
  struct Endpoint {
    IpAddress address;
    uint16_t port = 0;
  };
  Endpoint client_of(uint64_t flow, uint8_t family) const;
  const VipKey& vip_of(uint64_t flow, PacketKind kind) const;

  TrafficSpec spec_;
  std::vector<PacketKind> kinds_;
  std::vector<const VipKey*> tcp_vips_;
  std::vector<const VipKey*> udp_vips_;
  uint64_t random_state_;
  uint64_t kind_sequence_[3] = {0, 0, 0};  // packets built so far of each kind
};

// Reads the 48-bit timestamp at the end of a frame.
uint64_t read_stamp(std::span<const uint8_t> frame);

}  // namespace sluice::pktgen
