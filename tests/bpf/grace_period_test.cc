// GracePeriod::wait() while a BPF program runs: it must return only after the program has
// returned, which is what lets the XDP driver acknowledge a removed backend only once no
// program can still send a packet to it. The program runs with BPF_PROG_TEST_RUN, so the test
// needs root. Without root it fails with a message that says so.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <thread>

#include "grace_period.h"
#include "slow_program.skel.h"

namespace sluice::test {
namespace {

constexpr const char* kNeedsRootHint =
    "(loading BPF programs and creating maps needs root: run the test as root)";

uint64_t monotonic_ns() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(now.tv_nsec);
}

struct SkeletonDeleter {
  void operator()(slow_program* skeleton) const { slow_program__destroy(skeleton); }
};

uint64_t read_time(int map_fd, uint32_t key) {
  uint64_t value = 0;
  bpf_map_lookup_elem(map_fd, &key, &value);
  return value;
}

TEST(GracePeriod, WaitReturnsAfterRunningProgram) {
  auto grace_period = bpf::GracePeriod::create();
  ASSERT_TRUE(grace_period.ok()) << grace_period.error() << " " << kNeedsRootHint;
  std::unique_ptr<slow_program, SkeletonDeleter> skeleton(slow_program__open_and_load());
  ASSERT_TRUE(skeleton) << "loading slow_program failed: " << strerror(errno) << " " << kNeedsRootHint;
  const int times_fd = bpf_map__fd(skeleton->maps.sl_slow_times);
  const int program_fd = bpf_program__fd(skeleton->progs.slow_program);

  // The wait must begin while the program runs. A runner thread that is scheduled late can
  // miss that, so the test tries again a few times.
  for (int attempt = 0; attempt < 5; ++attempt) {
    const uint64_t zero = 0;
    for (uint32_t key : {0u, 1u}) bpf_map_update_elem(times_fd, &key, &zero, BPF_ANY);

    int run_error = 0;
    std::thread runner([&] {
      uint8_t frame[64] = {};
      LIBBPF_OPTS(bpf_test_run_opts, options, .data_in = frame, .data_size_in = sizeof(frame),
                  .repeat = 1);
      run_error = bpf_prog_test_run_opts(program_fd, &options);
    });

    const uint64_t deadline = monotonic_ns() + 10'000'000'000;
    while (read_time(times_fd, 0) == 0 && monotonic_ns() < deadline) usleep(100);
    const uint64_t wait_started = monotonic_ns();
    const Status waited = grace_period->wait();
    const uint64_t wait_returned = monotonic_ns();
    runner.join();

    ASSERT_EQ(run_error, 0) << "BPF_PROG_TEST_RUN failed: " << strerror(-run_error);
    ASSERT_TRUE(waited.ok()) << waited.error();
    const uint64_t started = read_time(times_fd, 0);
    const uint64_t returned = read_time(times_fd, 1);
    ASSERT_NE(started, 0u) << "the program did not start within 10 s";
    ASSERT_GT(returned, started);
    if (wait_started >= returned) continue;  // the program had returned already
    EXPECT_GE(wait_returned, returned)
        << "wait() returned " << (returned - wait_returned) / 1000
        << " us before the program that was running when it was called";
    return;
  }
  FAIL() << "in 5 attempts, the program never was still running when wait() was called";
}

}  // namespace
}  // namespace sluice::test
