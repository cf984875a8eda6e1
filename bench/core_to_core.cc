// sluice-core-to-core: the round trip of one cache line between two CPUs. The memif link of
// bench/run pays it for every line that the generator writes and the forwarder reads. Two
// threads, pinned to the two CPUs, pass a counter back and forth a fixed number of times.
//
//   sluice-core-to-core --cpus 0,1 [--round-trips 200000] [--json]
//
// On a virtual machine the host may move the two virtual CPUs between physical cores, so the
// figure changes over time: bench/run measures it around each forwarder's trials.
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

namespace {

struct alignas(64) Line {
  std::atomic<uint64_t> value{0};
};

bool pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Round trip of one cache line between two CPUs"};
  std::vector<int> cpus;
  uint64_t round_trips = 200'000;
  bool json = false;
  app.add_option("--cpus", cpus, "the two CPUs, for example 0,1")->required()->delimiter(',')->expected(2);
  app.add_option("--round-trips", round_trips, "how many times the line goes there and back")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100'000'000}));
  app.add_flag("--json", json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);
  if (cpus[0] == cpus[1]) {
    std::fprintf(stderr, "sluice-core-to-core: invalid --cpus %d,%d: give two different CPUs, such as 0,1\n", cpus[0], cpus[1]);
    return 2;
  }
  const int cpu_count = static_cast<int>(std::thread::hardware_concurrency());
  for (int cpu : cpus) {
    if (cpu < 0 || cpu >= cpu_count) {
      std::fprintf(stderr, "sluice-core-to-core: invalid --cpus: CPU %d not found (this machine has CPUs 0 to %d)\n", cpu,
                   cpu_count - 1);
      return 2;
    }
  }

  Line line;
  std::atomic<bool> pinned_ok{true};
  // The second thread waits for each odd value and replies with the next even one.
  std::thread answer([&] {
    if (!pin_to(cpus[1])) pinned_ok = false;
    for (uint64_t i = 0; i < round_trips; ++i) {
      while (line.value.load(std::memory_order_acquire) != 2 * i + 1) {
        if (!pinned_ok.load(std::memory_order_relaxed)) return;
      }
      line.value.store(2 * i + 2, std::memory_order_release);
    }
  });
  if (!pin_to(cpus[0])) pinned_ok = false;
  // Each thread checks the other's pinning while it waits, so a failed pin ends both.
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < round_trips && pinned_ok.load(std::memory_order_relaxed); ++i) {
    line.value.store(2 * i + 1, std::memory_order_release);
    while (line.value.load(std::memory_order_acquire) != 2 * i + 2) {
      if (!pinned_ok.load(std::memory_order_relaxed)) break;
    }
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  answer.join();
  if (!pinned_ok) {
    std::fprintf(stderr, "sluice-core-to-core: failed to pin a thread to CPU %d or %d; check the CPUs allowed by taskset or cgroups\n", cpus[0], cpus[1]);
    return 1;
  }

  const double ns = std::chrono::duration<double, std::nano>(elapsed).count() / static_cast<double>(round_trips);
  if (json) {
    std::printf("{\"cpus\": [%d, %d], \"round_trips\": %llu, \"round_trip_ns\": %.1f}\n", cpus[0], cpus[1],
                static_cast<unsigned long long>(round_trips), ns);
  } else {
    std::printf("CPU %d <-> CPU %d: %.1f ns per round trip of one cache line (%llu round trips)\n", cpus[0],
                cpus[1], ns, static_cast<unsigned long long>(round_trips));
  }
  return 0;
}
