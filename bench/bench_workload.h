// The workload both pipeline benchmarks share: TCP segments of many flows to one VIP with 100
// backends, so that the C++ and XDP figures measure the same packets.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "sluice/maglev.h"
#include "sluice/packet.h"
#include "sluice/snapshot.h"

namespace sluice::bench {

inline constexpr uint32_t kFrameSize = 14 + 20 + 20;  // Ethernet, IPv4 and TCP without options
inline constexpr uint32_t kSourceAddressOffset = 14 + 12;
inline constexpr uint32_t kSourcePortOffset = 14 + 20;
inline constexpr uint32_t kBackends = 100;

using Frame = std::array<uint8_t, kFrameSize>;

// A TCP segment from 192.0.2.1:1024 to the VIP 203.0.113.10:80 with the given flags.
inline Frame make_frame(uint8_t tcp_flags) {
  Frame frame{};
  const uint8_t ethernet[14] = {0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00};
  const uint8_t ipv4[20] = {0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 61, 6, 0, 0,
                            192, 0, 2, 1, 203, 0, 113, 10};
  const uint8_t tcp[20] = {0x04, 0x00, 0, 80, 0, 0, 0, 1, 0, 0, 0, 1,
                           0x50, tcp_flags, 0xff, 0xff, 0, 0, 0, 0};
  std::memcpy(frame.data(), ethernet, 14);
  std::memcpy(frame.data() + 14, ipv4, 20);
  std::memcpy(frame.data() + 34, tcp, 20);
  return frame;
}

// Flow i comes from 192.0.2.(1 + i % 250), port 1024 + i / 250: 250 hosts with up to 4000
// ports each give the 1M flows distinct keys inside the documentation range.
inline void write_flow(uint8_t* frame, uint32_t flow) {
  frame[kSourceAddressOffset + 3] = static_cast<uint8_t>(1 + flow % 250);
  const uint32_t port = 1024 + flow / 250;
  frame[kSourcePortOffset] = static_cast<uint8_t>(port >> 8);
  frame[kSourcePortOffset + 1] = static_cast<uint8_t>(port);
}

// One VIP, 203.0.113.10:80/tcp, over kBackends equal backends, Maglev size 65537.
inline Snapshot make_snapshot() {
  Snapshot snapshot;
  snapshot.seed = 0x5eed5eed;
  const uint8_t source[4] = {198, 51, 100, 254};
  snapshot.source_ipv4 = IpAddress::v4(source);
  snapshot.next_hop_mac.bytes = {0x02, 0, 0, 0, 0, 0xcc};

  std::vector<MaglevBackend> maglev_backends;
  for (uint32_t slot = 0; slot < kBackends; ++slot) {
    const uint8_t address[4] = {198, 51, 100, static_cast<uint8_t>(slot + 1)};
    snapshot.backends.push_back({slot + 1, BackendState::kLive, IpAddress::v4(address)});
    maglev_backends.push_back({snapshot.backends.back().address, 1, slot});
  }
  const uint8_t vip_address[4] = {203, 0, 113, 10};
  Vip vip;
  vip.key = {IpAddress::v4(vip_address), 80, kProtocolTcp};
  vip.maglev = build_maglev_table(maglev_backends, SLUICE_MAGLEV_DEFAULT_SIZE).value().entries;
  snapshot.vips.push_back(vip);
  snapshot.prepare();
  return snapshot;
}

}  // namespace sluice::bench
