// Benchmarks of the machine's memory, for reading the pipeline figures next to them:
//
// - MemoryLatency: one dependent load after another over randomly ordered lines, the
//   latency of a flow-table access that nothing hides. `spread` places each line in its own
//   4 KiB page, so that the page count grows 64 times while the data stays the same: if that
//   costs much more, the lookups wait for the TLB, not for the caches.
// - TwoLineLookup: the flow table's memory pattern with no other work. Bursts of 32 lookups,
//   each reading a 64-byte bucket line in a 16 MiB array and then a 64-byte entry line in a
//   128 MiB array that the bucket's contents select, prefetched in the same three passes as
//   Pipeline::process_burst. Its time per lookup is a lower bound for the memory part of the
//   1M-flow pipeline figure.
//
// The arrays are in transparent huge pages, as the flow table is.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "sluice/huge_page_array.h"

namespace sluice {
namespace {

constexpr size_t kLine = 64;
constexpr size_t kPage = 4096;

struct alignas(kLine) Line {
  uint64_t words[kLine / sizeof(uint64_t)];
};

void BM_MemoryLatency(benchmark::State& state) {
  const size_t data_bytes = static_cast<size_t>(state.range(0)) << 20;
  const bool spread = state.range(1) != 0;
  const size_t lines = data_bytes / kLine;
  const size_t stride = spread ? kPage / kLine : 1;  // in lines
  HugePageArray<Line> memory(lines * stride);
  // Spread lines take every position in their pages in turn, so that they do not all fall in
  // the same cache sets.
  const auto place = [stride](size_t line) { return line * stride + (stride > 1 ? line % stride : 0); };

  // Links every line into one random cycle, so that each load depends on the one before.
  std::vector<size_t> order(lines);
  std::iota(order.begin(), order.end(), size_t{0});
  std::shuffle(order.begin(), order.end(), std::mt19937_64(1));
  for (size_t i = 0; i < lines; ++i) {
    memory[place(order[i])].words[0] = place(order[(i + 1) % lines]);
  }

  size_t position = place(order[0]);
  for (auto _ : state) {
    for (int i = 0; i < 1024; ++i) position = memory[position].words[0];
  }
  benchmark::DoNotOptimize(position);
  state.SetItemsProcessed(state.iterations() * 1024);
  state.counters["ns_per_load"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 1024, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

BENCHMARK(BM_MemoryLatency)
    ->ArgNames({"MiB", "spread"})
    ->Args({4, 0})
    ->Args({16, 0})
    ->Args({128, 0})
    ->Args({4, 1});

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

void BM_TwoLineLookup(benchmark::State& state) {
  constexpr size_t kBurst = 32;
  constexpr size_t kBuckets = (size_t{16} << 20) / kLine;
  constexpr size_t kEntries = (size_t{128} << 20) / kLine;
  HugePageArray<Line> buckets(kBuckets);
  HugePageArray<Line> entries(kEntries);
  for (size_t i = 0; i < kBuckets; ++i) buckets[i].words[0] = mix(i) % kEntries;

  uint64_t counter = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    size_t bucket[kBurst];
    size_t entry[kBurst];
    for (size_t i = 0; i < kBurst; ++i) {
      bucket[i] = mix(++counter) % kBuckets;
      __builtin_prefetch(&buckets[bucket[i]]);
    }
    for (size_t i = 0; i < kBurst; ++i) {
      entry[i] = buckets[bucket[i]].words[0];
      __builtin_prefetch(&entries[entry[i]]);
    }
    for (size_t i = 0; i < kBurst; ++i) {
      sum += entries[entry[i]].words[1];
      buckets[bucket[i]].words[1] = sum;  // the expiry refresh writes the bucket line
    }
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * kBurst);
  state.counters["ns_per_lookup"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kBurst, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

BENCHMARK(BM_TwoLineLookup);

}  // namespace
}  // namespace sluice
