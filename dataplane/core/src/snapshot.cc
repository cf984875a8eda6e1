#include "sluice/snapshot.h"

#include <bit>
#include <cstring>

#include "sluice/packet.h"

namespace sluice {
namespace {

// The index's own hash: a multiply-xor over the address words, port and protocol. It needs
// to spread VIPs over a table of a few thousand entries, not to resist chosen inputs (VIP
// addresses come from the operator), so it is much cheaper than the flow hash.
uint32_t index_hash(const sluice_u32 address[4], uint16_t port, uint8_t protocol) {
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

bool same_address(const sluice_u32 a[4], const sluice_u32 b[4]) {
  uint64_t x[2];
  uint64_t y[2];
  std::memcpy(x, a, 16);
  std::memcpy(y, b, 16);
  return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
}

}  // namespace

std::string VipKey::to_string() const {
  std::string text = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  text += ":" + std::to_string(port) + "/";
  switch (protocol) {
    case kProtocolTcp:
      return text + "tcp";
    case kProtocolUdp:
      return text + "udp";
    default:
      return text + std::to_string(protocol);
  }
}

void Snapshot::prepare() {
  index_vips();
  for (BackendSlot& backend : backends) {
    backend.outer = make_outer_header(backend.address.is_v4() ? source_ipv4 : source_ipv6, backend.address);
  }
}

void Snapshot::index_vips() {
  // Open addressing at a load factor of at most 1/2, so a lookup probes few entries.
  const size_t size = std::bit_ceil(std::max<size_t>(vips.size() * 2, 4));
  const IndexEntry free_entry{{0, 0, 0, 0}, 0, 0, 0, -1};
  exact_index_.assign(size, free_entry);
  fragment_index_.assign(size, free_entry);
  address_index_.assign(size, free_entry);

  auto place = [size](std::vector<IndexEntry>& index, const VipKey& key, uint16_t port,
                      int32_t vip, const std::vector<Vip>& all) {
    sluice_u32 address[4];
    std::memcpy(address, key.address.bytes.data(), 16);
    size_t i = index_hash(address, port, key.protocol) & (size - 1);
    for (;; i = (i + 1) & (size - 1)) {
      IndexEntry& entry = index[i];
      const bool same = entry.vip >= 0 && std::memcmp(entry.address, address, 16) == 0 &&
                        entry.port == port && entry.protocol == key.protocol &&
                        entry.family == key.address.family;
      if (same) {
        // Fragment index: keep the port-0 VIP, else the lowest port.
        if (all[vip].key.port < all[entry.vip].key.port) entry.vip = vip;
        return;
      }
      if (entry.vip < 0) {
        std::memcpy(entry.address, address, 16);
        entry.port = port;
        entry.protocol = key.protocol;
        entry.family = key.address.family;
        entry.vip = vip;
        return;
      }
    }
  };

  for (size_t i = 0; i < vips.size(); ++i) {
    const VipKey& key = vips[i].key;
    place(exact_index_, key, key.port, static_cast<int32_t>(i), vips);
    place(fragment_index_, key, 0, static_cast<int32_t>(i), vips);
    place(address_index_, VipKey{key.address, 0, 0}, 0, static_cast<int32_t>(i), vips);
  }
}

const Vip* Snapshot::lookup(const sluice_u32 address[4], uint8_t family, uint16_t port,
                            uint8_t protocol, const std::vector<IndexEntry>& index) const {
  if (index.empty()) return nullptr;
  const size_t mask = index.size() - 1;
  for (size_t i = index_hash(address, port, protocol) & mask;; i = (i + 1) & mask) {
    const IndexEntry& entry = index[i];
    if (entry.vip < 0) return nullptr;
    if (entry.port == port && entry.protocol == protocol && entry.family == family &&
        same_address(entry.address, address)) {
      return &vips[entry.vip];
    }
  }
}

const Vip* Snapshot::find_vip(const sluice_flow_key& key) const {
  const uint16_t port = static_cast<uint16_t>((key.dst_port >> 8) | (key.dst_port << 8));
  if (const Vip* vip = lookup(key.dst, key.family, port, key.protocol, exact_index_)) return vip;
  return lookup(key.dst, key.family, 0, key.protocol, exact_index_);
}

const Vip* Snapshot::find_fragment_vip(const sluice_flow_key& key) const {
  return lookup(key.dst, key.family, 0, key.protocol, fragment_index_);
}

}  // namespace sluice
