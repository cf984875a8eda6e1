#include "sluice/snapshot.h"

#include <bit>
#include <cstring>

#include "sluice/packet.h"

namespace sluice {

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
    size_t i = snapshot_detail::index_hash(address, port, key.protocol) & (size - 1);
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

const Vip* Snapshot::find_fragment_vip(const sluice_flow_key& key) const {
  return lookup(key.dst, key.family, 0, key.protocol, fragment_index_);
}

}  // namespace sluice
