#include "latency_histogram.h"

#include <gtest/gtest.h>

namespace sluice::pktgen {
namespace {

TEST(LatencyHistogram, EmptyReportsZero) {
  LatencyHistogram histogram;
  EXPECT_EQ(histogram.samples(), 0u);
  EXPECT_EQ(histogram.percentile(0.5), 0u);
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram histogram;
  for (uint64_t ns = 0; ns < 64; ++ns) histogram.record(ns);
  EXPECT_EQ(histogram.percentile(0.0), 0u);
  EXPECT_EQ(histogram.percentile(0.5), 31u);
  EXPECT_EQ(histogram.percentile(1.0), 63u);
}

TEST(LatencyHistogram, PercentilesWithinThreePercent) {
  LatencyHistogram histogram;
  // 1..100000 ns, one sample each: the p-th percentile is about p * 100000.
  for (uint64_t ns = 1; ns <= 100'000; ++ns) histogram.record(ns);
  for (double fraction : {0.5, 0.9, 0.99, 0.999}) {
    const double expected = fraction * 100'000;
    const double got = static_cast<double>(histogram.percentile(fraction));
    EXPECT_NEAR(got, expected, expected * 0.03) << "percentile " << fraction;
  }
}

TEST(LatencyHistogram, OutliersLandInTheTopBucket) {
  LatencyHistogram histogram;
  histogram.record(1000);
  histogram.record(UINT64_MAX);
  EXPECT_EQ(histogram.samples(), 2u);
  EXPECT_GT(histogram.percentile(1.0), uint64_t{1} << 44);
  EXPECT_NEAR(static_cast<double>(histogram.percentile(0.0)), 1000.0, 30.0);
}

}  // namespace
}  // namespace sluice::pktgen
