// Benchmarks of the machine's memory, for reading the pipeline figures next to them:
//
// - MemoryLatency: one dependent load after another over randomly ordered lines, the
//   latency of a flow-table access that nothing hides. `spread` places each line in its own
//   4 KiB page, so that the page count grows 64 times while the data stays the same: if that
//   costs much more, the lookups wait for the TLB, not for the caches.
// - TlbReach: the same dependent loads over a few hundred lines, which the caches hold, in
//   memory aligned to 2 MiB and advised for huge pages or against them. With `spread`, each
//   line sits in its own 4 KiB page. If huge pages widened the TLB's reach, spread lines in
//   huge pages would cost what dense lines cost. Where the host of a virtual machine maps
//   guest memory in 4 KiB pages they cost more, since the TLB then caches 4 KiB
//   translations. `huge_kib` reports how much of the memory the kernel backed with huge pages.
// - TwoLineLookup: the flow table's memory pattern with no other work. Bursts of 32 lookups,
//   each reading a 64-byte bucket line in a 16 MiB array and then a 64-byte entry line in a
//   128 MiB array that the bucket's contents select, prefetched in the same three passes as
//   Pipeline::process_burst. Its time per lookup is a lower bound for the memory part of the
//   1M-flow pipeline figure.
//
// The arrays are in transparent huge pages, as the flow table is.
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
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

// One dependent load after another over `lines` randomly ordered lines at `memory`, one line
// per 4 KiB page if `spread`. `memory` has room for 64 times `lines` lines if `spread`.
void run_dependent_loads(benchmark::State& state, Line* memory, size_t lines, bool spread) {
  const size_t stride = spread ? kPage / kLine : 1;  // in lines
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

void BM_MemoryLatency(benchmark::State& state) {
  const size_t lines = (static_cast<size_t>(state.range(0)) << 20) / kLine;
  const bool spread = state.range(1) != 0;
  HugePageArray<Line> memory(lines * (spread ? kPage / kLine : 1));
  run_dependent_loads(state, memory.data(), lines, spread);
}

BENCHMARK(BM_MemoryLatency)
    ->ArgNames({"MiB", "spread"})
    ->Args({4, 0})
    ->Args({16, 0})
    ->Args({128, 0})
    ->Args({4, 1});

// Returns the kB of AnonHugePages in /proc/self/smaps for the mapping that contains `address`.
double huge_kib_at(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t start = 0;
    uintptr_t end = 0;
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR, &start, &end) == 2 && line.find(':') > line.find(' ')) {
      inside = start <= at && at < end;
    } else if (inside && line.rfind("AnonHugePages:", 0) == 0) {
      return std::strtod(line.c_str() + 14, nullptr);
    }
  }
  return 0;
}

void BM_TlbReach(benchmark::State& state) {
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t lines = static_cast<size_t>(state.range(0));
  const bool huge = state.range(1) != 0;
  const bool spread = state.range(2) != 0;
  const size_t bytes = (lines * kPage + kHugePage - 1) / kHugePage * kHugePage;
  void* mapping = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) {
    state.SkipWithError(("mmap of " + std::to_string(bytes + kHugePage) + " bytes failed: " + std::strerror(errno)).c_str());
    return;
  }
  const uintptr_t aligned = (reinterpret_cast<uintptr_t>(mapping) + kHugePage - 1) & ~(kHugePage - 1);
  Line* memory = reinterpret_cast<Line*>(aligned);
  madvise(memory, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  std::memset(memory, 0, bytes);
  state.counters["huge_kib"] = huge_kib_at(memory);
  run_dependent_loads(state, memory, lines, spread);
  munmap(mapping, bytes + kHugePage);
}

BENCHMARK(BM_TlbReach)
    ->ArgNames({"lines", "huge", "spread"})
    ->Args({512, 1, 0})
    ->Args({512, 1, 1})
    ->Args({512, 0, 1})
    ->Args({2048, 1, 0})
    ->Args({2048, 1, 1})
    ->Args({2048, 0, 1});

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
