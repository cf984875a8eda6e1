// ns per packet of the XDP balancer (bpf/balancer.bpf.c) next to sluice::Pipeline::process,
// for TCP ACKs of established flows with 1k and 100k flows in the flow table. The packets are
// those of bench/pipeline_bench.cc: one VIP with 100 backends and a Maglev table of 65537
// entries.
//
// Method. Every XDP packet is one BPF_PROG_TEST_RUN call with repeat = 1, and the figure is
// the kernel's own `duration` for the call, which times only the program run, minus the
// duration of a two-instruction program that returns XDP_PASS, measured the same way. The
// subtraction removes the timer reads and the bottom-half toggling inside the timed region.
// Two alternatives were rejected. With repeat > 1 the kernel runs the program again on the
// frame that the last run left, which the balancer has already encapsulated, so every repeat
// after the first would time the path of a non-VIP packet. BPF_F_TEST_XDP_LIVE_FRAMES starts
// each repeat from the original frame, but it really transmits, and all repeats of a call
// carry one frame and so one flow. Single runs visit every flow in turn.
//
// The flow table is filled with one SYN per flow first. The thread is pinned to CPU 0,
// because test runs execute on the calling CPU and each CPU of the per-CPU LRU inserts into
// its own share of max_entries; the table gets 2 * flows entries per possible CPU.
//
// The C++ figure times Pipeline::process in a loop over the same ACKs, each first copied from
// a template because process() encapsulates in place; the copy is in the time, as in
// pipeline_bench.cc. Both columns need root only for the XDP side.
//
//   sudo build/bin/sluice_xdp_bench [ROUNDS]   (passes over the 1k flows, default 200)
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "balancer_loader.h"
#include "bench_workload.h"
#include "xdp_test_run.h"
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

constexpr uint32_t kHeadroom = bench::kXdpHeadroom;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpAck = 0x10;

const EgressPort kEgress{MacAddress{{0x02, 0, 0, 0, 0, 0xbb}}, 1500};

int64_t test_run(int program_fd, const Frame& frame, uint32_t* action) {
  std::array<uint8_t, kFrameSize + kHeadroom> output;
  return bench::test_run(program_fd, frame.data(), kFrameSize, output.data(), output.size(), action);
}

using bench::Durations;
using bench::load_empty_program;
using bench::summarize;

struct XdpFigures {
  Durations balancer;
  Durations empty;
  double miss_ratio = 0;
};

// Fills a fresh balancer with one SYN per flow, then times `rounds` passes of ACKs.
bool measure_xdp(uint32_t flows, uint32_t rounds, int empty_fd, XdpFigures& figures) {
  const uint32_t cpus = static_cast<uint32_t>(libbpf_num_possible_cpus());
  Result<std::unique_ptr<bpf::Balancer>> loaded = bpf::Balancer::load(2 * flows * cpus);
  if (!loaded.ok()) {
    std::fprintf(stderr, "sluice_xdp_bench: %s\nThe benchmark loads BPF programs and needs root.\n",
                 loaded.error().c_str());
    return false;
  }
  bpf::Balancer& balancer = *loaded.value();
  // BPF_PROG_TEST_RUN runs the program as if lo of this namespace had received the frame.
  const bpf::XdpEgress egress{static_cast<int>(if_nametoindex("lo")), kEgress.mac, kEgress.mtu, 0};
  const Status programmed = balancer.program(make_snapshot(), {egress});
  if (!programmed.ok()) {
    std::fprintf(stderr, "sluice_xdp_bench: programming the maps failed: %s\n",
                 programmed.error().c_str());
    return false;
  }

  Frame frame = bench::make_frame(kTcpSyn);
  uint32_t action = 0;
  for (uint32_t flow = 0; flow < flows; ++flow) {
    write_flow(frame.data(), flow);
    if (test_run(balancer.program_fd(), frame, &action) < 0 || action != XDP_TX) {
      std::fprintf(stderr, "sluice_xdp_bench: SYN of flow %u was not forwarded\n", flow);
      return false;
    }
  }

  const uint64_t misses_before = balancer.totals().non_syn_misses;
  frame = bench::make_frame(kTcpAck);
  std::vector<uint32_t> balancer_samples;
  std::vector<uint32_t> empty_samples;
  balancer_samples.reserve(static_cast<size_t>(flows) * rounds);
  empty_samples.reserve(static_cast<size_t>(flows) * rounds);
  for (uint32_t round = 0; round < rounds; ++round) {
    for (uint32_t flow = 0; flow < flows; ++flow) {
      write_flow(frame.data(), flow);
      const int64_t duration = test_run(balancer.program_fd(), frame, &action);
      if (duration < 0 || action != XDP_TX) {
        std::fprintf(stderr, "sluice_xdp_bench: ACK of flow %u was not forwarded\n", flow);
        return false;
      }
      balancer_samples.push_back(static_cast<uint32_t>(duration));
      empty_samples.push_back(static_cast<uint32_t>(test_run(empty_fd, frame, &action)));
    }
  }
  const uint64_t misses = balancer.totals().non_syn_misses - misses_before;
  figures.balancer = summarize(balancer_samples);
  figures.empty = summarize(empty_samples);
  figures.miss_ratio = static_cast<double>(misses) / static_cast<double>(balancer_samples.size());
  return true;
}

struct CppFigures {
  double ns_per_packet = 0;
  double miss_ratio = 0;
};

CppFigures measure_cpp(uint32_t flows, uint32_t rounds) {
  const Snapshot snapshot = make_snapshot();
  Pipeline pipeline(std::bit_ceil(flows * 2));  // the capacity pipeline_bench.cc uses
  std::vector<uint8_t> buffer(kHeadroom + kFrameSize);
  uint8_t* data = buffer.data() + kHeadroom;
  const auto process = [&](const Frame& frame_template, uint32_t flow, uint64_t now_ns) {
    std::memcpy(data, frame_template.data(), kFrameSize);
    write_flow(data, flow);
    PacketBuffer packet{data, kFrameSize, kHeadroom};
    return pipeline.process(snapshot, packet, kEgress, now_ns);
  };

  const Frame syn = bench::make_frame(kTcpSyn);
  uint64_t now_ns = 1'000'000'000;
  for (uint32_t flow = 0; flow < flows; ++flow) process(syn, flow, now_ns);

  const Frame ack = bench::make_frame(kTcpAck);
  const uint64_t misses_before = pipeline.counters().non_syn_misses.get();
  const auto start = std::chrono::steady_clock::now();
  for (uint32_t round = 0; round < rounds; ++round) {
    for (uint32_t flow = 0; flow < flows; ++flow) process(ack, flow, ++now_ns);
  }
  const std::chrono::duration<double, std::nano> elapsed = std::chrono::steady_clock::now() - start;
  const double packets = static_cast<double>(flows) * rounds;
  return CppFigures{elapsed.count() / packets,
                    static_cast<double>(pipeline.counters().non_syn_misses.get() - misses_before) / packets};
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  using namespace sluice;
  const uint32_t rounds_1k = argc > 1 ? static_cast<uint32_t>(std::strtoul(argv[1], nullptr, 10)) : 200;
  if (rounds_1k == 0) {
    std::fprintf(stderr,
                 "usage: %s [ROUNDS]\n  ROUNDS: passes over the 1k flows, at least 1 (default 200). "
                 "Every flow count gets the same number of packets, at least one pass.\n",
                 argv[0]);
    return 2;
  }

  cpu_set_t cpu0;
  CPU_ZERO(&cpu0);
  CPU_SET(0, &cpu0);
  if (sched_setaffinity(0, sizeof(cpu0), &cpu0) != 0) {
    std::perror("sluice_xdp_bench: pinning to CPU 0 failed");
    return 1;
  }
  const int empty_fd = load_empty_program();
  if (empty_fd < 0) {
    std::fprintf(stderr, "sluice_xdp_bench: loading an XDP program failed: %s. Run it as root.\n",
                 std::strerror(-empty_fd));
    return 1;
  }

  std::printf("%8s %8s | %12s %12s %12s %12s %9s | %10s %9s\n", "flows", "packets", "xdp_mean_ns",
              "empty_mean", "xdp_net_ns", "xdp_net_med", "xdp_miss", "cpp_ns", "cpp_miss");
  // One flow is the floor: the same flow's map entries stay in cache between runs.
  for (uint32_t flows : {1u, 1'000u, 100'000u}) {
    const uint32_t rounds = std::max(1u, rounds_1k * 1'000u / flows);
    XdpFigures xdp;
    if (!measure_xdp(flows, rounds, empty_fd, xdp)) return 1;
    const CppFigures cpp = measure_cpp(flows, rounds);
    std::printf("%8u %8u | %12.1f %12.1f %12.1f %12.1f %9.4f | %10.1f %9.4f\n", flows, flows * rounds,
                xdp.balancer.mean, xdp.empty.mean, xdp.balancer.mean - xdp.empty.mean,
                xdp.balancer.median - xdp.empty.median, xdp.miss_ratio, cpp.ns_per_packet, cpp.miss_ratio);
  }
  close(empty_fd);
  return 0;
}
