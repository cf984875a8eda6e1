// A log-linear histogram of latencies in nanoseconds: exact below 64 ns, then 32 buckets per
// power of two, so a percentile is within about 3% of the true value. Fixed size, no
// allocation after construction, cheap enough to record every received packet.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace sluice::pktgen {

class LatencyHistogram {
 public:
  void record(uint64_t ns) {
    ++counts_[index_of(ns)];
    ++samples_;
  }

  uint64_t samples() const { return samples_; }

  // The value below which `fraction` (0 to 1) of the samples lie, as the middle of its bucket;
  // 0 without samples.
  uint64_t percentile(double fraction) const {
    if (samples_ == 0) return 0;
    const uint64_t rank = static_cast<uint64_t>(fraction * static_cast<double>(samples_ - 1)) + 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return middle_of(i);
    }
    return middle_of(counts_.size() - 1);
  }

 private:
  static constexpr uint32_t kLinear = 64;
  static constexpr uint32_t kSubBuckets = 32;
  static constexpr uint32_t kMaxExponent = 40;  // 2^45 ns, about 10 hours: the top bucket

  static size_t index_of(uint64_t ns) {
    if (ns < kLinear) return ns;
    uint32_t exponent = static_cast<uint32_t>(std::bit_width(ns)) - 6;  // ns >> exponent is 32..63
    if (exponent > kMaxExponent) return kLinear + kMaxExponent * kSubBuckets + kSubBuckets - 1;
    return kLinear + (exponent - 1) * kSubBuckets + ((ns >> exponent) - kSubBuckets);
  }

  static uint64_t middle_of(size_t index) {
    if (index < kLinear) return index;
    const uint64_t exponent = (index - kLinear) / kSubBuckets + 1;
    const uint64_t low = ((index - kLinear) % kSubBuckets + kSubBuckets) << exponent;
    return low + (uint64_t{1} << exponent) / 2;
  }

  std::array<uint64_t, kLinear + kMaxExponent * kSubBuckets + kSubBuckets> counts_{};
  uint64_t samples_ = 0;
};

}  // namespace sluice::pktgen
