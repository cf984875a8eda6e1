// Quoting of untrusted response bytes in error messages.
#pragma once

#include <cctype>
#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::health {

// Quotes the first `limit` bytes of `text`, with bytes outside printable ASCII shown as '?'.
inline std::string quote(std::string_view text, size_t limit = 64) {
  std::string quoted = "'";
  for (const char byte : text.substr(0, limit)) {
    quoted += std::isprint(static_cast<unsigned char>(byte)) ? byte : '?';
  }
  quoted += text.size() > limit ? "...'" : "'";
  return quoted;
}

}  // namespace sluice::health
