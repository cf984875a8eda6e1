// Per-packet cost of Pipeline::process and Pipeline::process_burst for TCP ACKs of
// established flows, with 1k, 100k and 1M flows in the flow table. process() encapsulates in place, so each iteration first copies
// a 54-byte frame from a template and writes the flow's source address and port. That copy
// is part of the measured time.
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_workload.h"
#include "sluice/maglev.h"
#include "sluice/pipeline.h"
#include "sluice/snapshot.h"

namespace sluice {
namespace {

using bench::Frame;
using bench::kBackends;
using bench::kFrameSize;
using bench::make_snapshot;
using bench::write_flow;

constexpr uint32_t kHeadroom = 128;
constexpr uint64_t kStartNs = 1'000'000'000;
// Clock step per measured packet: 6 Mpps, about the data plane's rate in bench/run's 1M-flow
// scenario. Each flow's entry is then refreshed as often as in the data plane, so work that
// depends on time passing costs the same in both.
constexpr uint64_t kPacketIntervalNs = 166;

// A pipeline whose flow table contains `flows` established flows, one SYN each. The flow table
// capacity is twice the flow count rounded up to a power of two (2048, 262144 and 2097152).
struct Fixture {
  Snapshot snapshot = make_snapshot();
  std::unique_ptr<Pipeline> pipeline;
  EgressPort egress{MacAddress{{0x02, 0, 0, 0, 0, 0xbb}}, 1500};
  std::vector<uint8_t> buffer = std::vector<uint8_t>(kHeadroom + kFrameSize);
  Frame ack = bench::make_frame(0x10);

  explicit Fixture(uint32_t flows)
      : pipeline(std::make_unique<Pipeline>(std::bit_ceil(flows * 2))) {
    const Frame syn = bench::make_frame(0x02);
    for (uint32_t flow = 0; flow < flows; ++flow) process(syn, flow, kStartNs);
  }

  Verdict process(const Frame& frame_template, uint32_t flow, uint64_t now_ns) {
    uint8_t* frame = buffer.data() + kHeadroom;
    std::memcpy(frame, frame_template.data(), kFrameSize);
    write_flow(frame, flow);
    PacketBuffer packet{frame, kFrameSize, kHeadroom};
    return pipeline->process(snapshot, packet, egress, now_ns);
  }
};

// Google Benchmark calls a benchmark function several times while it sizes the run, so the
// fixture of each flow count is built once and kept.
Fixture& fixture_for(uint32_t flows) {
  static std::map<uint32_t, std::unique_ptr<Fixture>> fixtures;
  std::unique_ptr<Fixture>& fixture = fixtures[flows];
  if (!fixture) fixture = std::make_unique<Fixture>(flows);
  return *fixture;
}

void BM_PipelineEstablishedAck(benchmark::State& state) {
  const uint32_t flows = static_cast<uint32_t>(state.range(0));
  Fixture& fixture = fixture_for(flows);
  const PipelineCounters& counters = fixture.pipeline->counters();
  const uint64_t misses_before = counters.non_syn_misses.get();
  const uint64_t forwarded_before = counters.forwarded.get();

  uint32_t flow = 0;
  uint64_t now_ns = kStartNs + 1'000'000;
  for (auto _ : state) {
    const Verdict verdict = fixture.process(fixture.ack, flow, now_ns);
    benchmark::DoNotOptimize(verdict);
    if (++flow == flows) flow = 0;
    now_ns += kPacketIntervalNs;
  }

  const double iterations = static_cast<double>(state.iterations());
  const uint64_t forwarded = counters.forwarded.get() - forwarded_before;
  if (forwarded != static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("a measured packet was not forwarded");
  }
  state.SetItemsProcessed(state.iterations());
  // kIsRate divides by the elapsed seconds and kInvert turns that around: seconds per packet.
  state.counters["time_per_packet"] = benchmark::Counter(
      iterations, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  // ACKs of flows the table lost to eviction while it was filled.
  state.counters["miss_ratio"] =
      static_cast<double>(counters.non_syn_misses.get() - misses_before) / iterations;
  state.counters["table_entries"] =
      static_cast<double>(fixture.pipeline->flow_table().counters().entries);
}

BENCHMARK(BM_PipelineEstablishedAck)->ArgName("flows")->Arg(1'000)->Arg(100'000)->Arg(1'000'000);

// The same ACKs through Pipeline::process_burst, 32 at a time, as the DPDK worker runs them:
// the flow table's bucket and entry lines of a burst are prefetched before they are read.
void BM_PipelineBurstEstablishedAck(benchmark::State& state) {
  constexpr uint32_t kBurst = Pipeline::kMaxBurst;
  const uint32_t flows = static_cast<uint32_t>(state.range(0));
  Fixture& fixture = fixture_for(flows);
  const PipelineCounters& counters = fixture.pipeline->counters();
  const uint64_t misses_before = counters.non_syn_misses.get();
  const uint64_t forwarded_before = counters.forwarded.get();
  std::vector<uint8_t> buffers((kHeadroom + kFrameSize) * kBurst);
  PacketBuffer packets[kBurst];
  Verdict verdicts[kBurst];

  uint32_t flow = 0;
  uint64_t now_ns = kStartNs + 1'000'000;
  for (auto _ : state) {
    for (uint32_t i = 0; i < kBurst; ++i) {
      uint8_t* frame = buffers.data() + i * (kHeadroom + kFrameSize) + kHeadroom;
      std::memcpy(frame, fixture.ack.data(), kFrameSize);
      write_flow(frame, flow);
      packets[i] = PacketBuffer{frame, kFrameSize, kHeadroom};
      if (++flow == flows) flow = 0;
    }
    fixture.pipeline->process_burst(fixture.snapshot, packets, fixture.egress, now_ns, verdicts);
    benchmark::DoNotOptimize(verdicts);
    now_ns += kBurst * kPacketIntervalNs;
  }

  const double packets_processed = static_cast<double>(state.iterations()) * kBurst;
  if (counters.forwarded.get() - forwarded_before != static_cast<uint64_t>(packets_processed)) {
    state.SkipWithError("a measured packet was not forwarded");
  }
  state.SetItemsProcessed(static_cast<int64_t>(packets_processed));
  state.counters["time_per_packet"] = benchmark::Counter(
      packets_processed, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["miss_ratio"] =
      static_cast<double>(counters.non_syn_misses.get() - misses_before) / packets_processed;
}

BENCHMARK(BM_PipelineBurstEstablishedAck)->ArgName("flows")->Arg(1'000)->Arg(100'000)->Arg(1'000'000);

}  // namespace
}  // namespace sluice
