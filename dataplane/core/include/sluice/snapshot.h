// The immutable state that workers read: VIPs, backends, Maglev tables and options. The
// control plane builds a new snapshot for every change and publishes it whole; a worker reads
// the current pointer once per burst.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "sluice/dataplane_abi.h"
#include "sluice/encap.h"
#include "sluice/flow_hash.h"
#include "sluice/flow_table.h"
#include "sluice/ip_address.h"

namespace sluice {

namespace snapshot_detail {

// The index's own hash: a multiply-xor over the address words, port and protocol. It needs
// to spread VIPs over a table of a few thousand entries, not to resist chosen inputs (VIP
// addresses come from the operator), so it is much cheaper than the flow hash.
inline uint32_t index_hash(const sluice_u32 address[4], uint16_t port, uint8_t protocol) {
  uint64_t low;
  uint64_t high;
  std::memcpy(&low, address, 8);
  std::memcpy(&high, address + 2, 8);
  uint64_t h = (low * 0x9e3779b97f4a7c15ULL) ^ (high * 0xc2b2ae3d27d4eb4fULL) ^
               ((uint64_t{port} << 8 | protocol) * 0x165667b19e3779f9ULL);
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ULL;
  return static_cast<uint32_t>(h >> 32);
}

inline bool same_address(const sluice_u32 a[4], const sluice_u32 b[4]) {
  uint64_t x[2];
  uint64_t y[2];
  std::memcpy(x, a, 16);
  std::memcpy(y, b, 16);
  return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
}

}  // namespace snapshot_detail

enum class BackendState : uint8_t {
  // No backend serves from the slot: it is free, or it rests for one snapshot after its
  // backend left and keeps that backend's address. Flow entries that point at it are invalid.
  kRemoved = 0,
  kLive = 1,     // in the Maglev table
  kDrained = 2,  // weight 0: no new flows, existing flow entries stay valid
  kDown = 3,     // failed health checks: flow entries are invalid
};

struct BackendSlot {
  uint32_t uid = 0;  // changes whenever the slot is given to another backend
  BackendState state = BackendState::kRemoved;
  IpAddress address;
  uint32_t weight = 0;
  uint32_t vip_slot = 0;  // the VIP this backend serves
  OuterHeader outer;      // built by Snapshot::prepare
};

struct VipKey {
  IpAddress address;
  uint16_t port = 0;  // host byte order; 0 takes every port
  uint8_t protocol = 0;

  std::string to_string() const;  // "203.0.113.10:80/tcp", "[2001:db8::10]:443/udp"
  auto operator<=>(const VipKey&) const = default;
};

struct Vip {
  VipKey key;
  uint32_t slot = 0;  // index of the VIP's counters, stable across snapshots
  sluice_encapsulation encapsulation = SLUICE_ENCAP_IPIP;
  sluice_persistence persistence = SLUICE_PERSISTENCE_CONNECTION;
  std::vector<uint32_t> maglev;  // backend slots; kMaglevEmpty where no backend is live
};

struct Snapshot {
  uint64_t generation = 0;
  uint32_t seed = 0;
  IpAddress source_ipv4;  // outer source for IPv4 backends
  IpAddress source_ipv6;  // outer source for IPv6 backends
  MacAddress next_hop_mac;
  uint16_t gue_port = SLUICE_GUE_DEFAULT_PORT;  // outer UDP destination port of GUE VIPs
  FlowTimeouts timeouts;
  // Flood guard: at most this many new flow entries per second on each worker; 0 for no
  // limit. Packets of flows beyond it are still forwarded, from the Maglev table.
  uint32_t new_flow_limit = 0;
  std::vector<BackendSlot> backends;  // indexed by backend slot
  std::vector<Vip> vips;

  // Builds the VIP lookup index and every backend's outer headers; call once after filling
  // `vips` and `backends`, before publishing.
  void prepare();

  // Finds the VIP of a packet's destination: (address, port, protocol) first, then the
  // port-0 VIP of that address and protocol. Fragments carry no ports, so they use
  // find_fragment_vip instead.
  const Vip* find_vip(const sluice_flow_key& key) const;

  // The VIP that every fragment to (address, protocol) goes to: the port-0 VIP if there is
  // one, else the VIP with the lowest port. First and later fragments carry different
  // headers, so one rule for both keeps a datagram's fragments on one backend.
  const Vip* find_fragment_vip(const sluice_flow_key& key) const;

  // Returns whether the key's destination address is the address of some VIP, whatever its
  // port and protocol. The load balancer replies to echo requests to such an address.
  bool is_vip_address(const sluice_flow_key& key) const {
    return lookup(key.dst, key.family, 0, 0, address_index_) != nullptr;
  }

  // Returns whether a flow entry still points at a backend that may serve it. Forced inline
  // for the same reason as Counter::add().
  [[gnu::always_inline]] bool backend_accepts_flow(uint32_t slot, uint32_t uid) const {
    if (slot >= backends.size()) return false;
    const BackendSlot& backend = backends[slot];
    return backend.uid == uid &&
           (backend.state == BackendState::kLive || backend.state == BackendState::kDrained);
  }

 private:
  struct IndexEntry {
    sluice_u32 address[4];
    uint16_t port;
    uint8_t protocol;
    uint8_t family;
    int32_t vip;  // index into vips, or -1 for a free entry
  };

  void index_vips();
  const Vip* lookup(const sluice_u32 address[4], uint8_t family, uint16_t port,
                    uint8_t protocol, const std::vector<IndexEntry>& index) const;

  std::vector<IndexEntry> exact_index_;     // (address, port, protocol)
  std::vector<IndexEntry> fragment_index_;  // (address, protocol), port field 0
  std::vector<IndexEntry> address_index_;   // (address), port and protocol fields 0
};

// Inline, because the per-packet path calls them once per packet.
inline const Vip* Snapshot::lookup(const sluice_u32 address[4], uint8_t family, uint16_t port,
                            uint8_t protocol, const std::vector<IndexEntry>& index) const {
  if (index.empty()) return nullptr;
  const size_t mask = index.size() - 1;
  for (size_t i = snapshot_detail::index_hash(address, port, protocol) & mask;; i = (i + 1) & mask) {
    const IndexEntry& entry = index[i];
    if (entry.vip < 0) return nullptr;
    if (entry.port == port && entry.protocol == protocol && entry.family == family &&
        snapshot_detail::same_address(entry.address, address)) {
      return &vips[entry.vip];
    }
  }
}

inline const Vip* Snapshot::find_vip(const sluice_flow_key& key) const {
  const uint16_t port = static_cast<uint16_t>((key.dst_port >> 8) | (key.dst_port << 8));
  if (const Vip* vip = lookup(key.dst, key.family, port, key.protocol, exact_index_)) return vip;
  return lookup(key.dst, key.family, 0, key.protocol, exact_index_);
}

}  // namespace sluice
