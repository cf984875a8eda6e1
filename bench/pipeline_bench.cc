// Per-packet cost of Pipeline::process for TCP ACKs of established flows, with 1k, 100k and
// 1M flows in the flow table. process() encapsulates in place, so each iteration first copies
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

#include "sluice/maglev.h"
#include "sluice/pipeline.h"
#include "sluice/snapshot.h"

namespace sluice {
namespace {

constexpr uint32_t kHeadroom = 128;
constexpr uint32_t kFrameSize = 14 + 20 + 20;  // Ethernet, IPv4 and TCP without options
constexpr uint32_t kSourceAddressOffset = 14 + 12;
constexpr uint32_t kSourcePortOffset = 14 + 20;
constexpr uint32_t kBackends = 100;
constexpr uint64_t kStartNs = 1'000'000'000;

using Frame = std::array<uint8_t, kFrameSize>;

// A TCP segment from 192.0.2.1:1024 to the VIP 203.0.113.10:80 with the given flags.
Frame make_template(uint8_t tcp_flags) {
  Frame frame{};
  const uint8_t ethernet[14] = {0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00};
  const uint8_t ipv4[20] = {0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 61, 6, 0, 0,
                            192, 0, 2, 1, 203, 0, 113, 10};
  const uint8_t tcp[20] = {0x04, 0x00, 0, 80, 0, 0, 0, 1, 0, 0, 0, 1,
                           0x50, tcp_flags, 0xff, 0xff, 0, 0, 0, 0};
  std::memcpy(frame.data(), ethernet, 14);
  std::memcpy(frame.data() + 14, ipv4, 20);
  std::memcpy(frame.data() + 34, tcp, 20);
  return frame;
}

// Flow i comes from 192.0.2.(1 + i % 250), port 1024 + i / 250: 250 hosts with up to 4000
// ports each give the 1M flows distinct keys inside the documentation range.
void write_flow(uint8_t* frame, uint32_t flow) {
  frame[kSourceAddressOffset + 3] = static_cast<uint8_t>(1 + flow % 250);
  const uint32_t port = 1024 + flow / 250;
  frame[kSourcePortOffset] = static_cast<uint8_t>(port >> 8);
  frame[kSourcePortOffset + 1] = static_cast<uint8_t>(port);
}

Snapshot make_snapshot() {
  Snapshot snapshot;
  snapshot.seed = 0x5eed5eed;
  const uint8_t source[4] = {198, 51, 100, 254};
  snapshot.source_ipv4 = IpAddress::v4(source);
  snapshot.next_hop_mac.bytes = {0x02, 0, 0, 0, 0, 0xcc};

  std::vector<MaglevBackend> maglev_backends;
  for (uint32_t slot = 0; slot < kBackends; ++slot) {
    const uint8_t address[4] = {198, 51, 100, static_cast<uint8_t>(slot + 1)};
    snapshot.backends.push_back({slot + 1, BackendState::kLive, IpAddress::v4(address)});
    maglev_backends.push_back({snapshot.backends.back().address, 1, slot});
  }
  const uint8_t vip_address[4] = {203, 0, 113, 10};
  Vip vip;
  vip.key = {IpAddress::v4(vip_address), 80, kProtocolTcp};
  vip.maglev = build_maglev_table(maglev_backends, SLUICE_MAGLEV_DEFAULT_SIZE).value().entries;
  snapshot.vips.push_back(vip);
  snapshot.index_vips();
  return snapshot;
}

// A pipeline whose flow table contains `flows` established flows, one SYN each. The flow table
// capacity is twice the flow count rounded up to a power of two (2048, 262144 and 2097152).
struct Fixture {
  Snapshot snapshot = make_snapshot();
  std::unique_ptr<Pipeline> pipeline;
  EgressPort egress{MacAddress{{0x02, 0, 0, 0, 0, 0xbb}}, 1500};
  std::vector<uint8_t> buffer = std::vector<uint8_t>(kHeadroom + kFrameSize);
  Frame ack = make_template(0x10);

  explicit Fixture(uint32_t flows)
      : pipeline(std::make_unique<Pipeline>(std::bit_ceil(flows * 2))) {
    const Frame syn = make_template(0x02);
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
    ++now_ns;
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

}  // namespace
}  // namespace sluice
