// Big-endian 16-bit loads and stores on packet bytes, shared by the parser, encapsulation and
// the replies the load balancer writes. Private to dataplane/core.
#pragma once

#include <cstdint>

namespace sluice {

inline uint16_t load_be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

inline void store_be16(uint8_t* p, uint16_t value) {
  p[0] = static_cast<uint8_t>(value >> 8);
  p[1] = static_cast<uint8_t>(value);
}

}  // namespace sluice
