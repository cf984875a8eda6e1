// Time to build one Maglev table of equal-weight backends, for 100 to 10000 backends at the
// default size (65537) and at 655373.
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

#include "sluice/maglev.h"

namespace sluice {
namespace {

// Backend i is 2001:db8:1::(i + 1), a documentation address.
std::vector<MaglevBackend> make_backends(uint32_t count) {
  std::vector<MaglevBackend> backends;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t host = i + 1;
    const uint8_t bytes[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0,
                               static_cast<uint8_t>(host >> 24), static_cast<uint8_t>(host >> 16),
                               static_cast<uint8_t>(host >> 8), static_cast<uint8_t>(host)};
    backends.push_back({IpAddress::v6(bytes), 1, i});
  }
  return backends;
}

void BM_MaglevBuild(benchmark::State& state) {
  const std::vector<MaglevBackend> backends = make_backends(static_cast<uint32_t>(state.range(0)));
  const uint32_t size = static_cast<uint32_t>(state.range(1));
  for (auto _ : state) {
    Result<MaglevTable> table = build_maglev_table(backends, size);
    if (!table.ok()) {
      state.SkipWithError(table.error().c_str());
      break;
    }
    benchmark::DoNotOptimize(table.value().entries.data());
  }
}

BENCHMARK(BM_MaglevBuild)
    ->ArgNames({"backends", "size"})
    ->ArgsProduct({{100, 1000, 10000}, {65537, 655373}})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice
