// BPF_PROG_TEST_RUN helpers shared by sluice_xdp_bench and sluice-xdp-replay: one run of an
// XDP program on one frame, the cost of an empty program measured the same way, and summary
// figures of a set of durations. Loading programs needs root.
#pragma once

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace sluice::bench {

inline constexpr uint32_t kXdpHeadroom = 256;  // XDP_PACKET_HEADROOM, as BPF_PROG_TEST_RUN gives it

// One BPF_PROG_TEST_RUN call with repeat = 1. Returns the kernel's duration in ns, or -1 on
// failure. `output` must hold the frame plus kXdpHeadroom.
inline int64_t test_run(int program_fd, const uint8_t* frame, uint32_t length, uint8_t* output,
                        uint32_t output_size, uint32_t* action) {
  bpf_test_run_opts options{};
  options.sz = sizeof(options);
  options.data_in = frame;
  options.data_size_in = length;
  options.data_out = output;
  options.data_size_out = output_size;
  options.repeat = 1;
  if (bpf_prog_test_run_opts(program_fd, &options) < 0) return -1;
  *action = options.retval;
  return options.duration;
}

// A program of two instructions, r0 = XDP_PASS and exit: the cost of a test run around an
// empty program, to subtract from the balancer's.
inline int load_empty_program() {
  const bpf_insn instructions[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS},
      {.code = BPF_JMP | BPF_EXIT},
  };
  return bpf_prog_load(BPF_PROG_TYPE_XDP, "sl_bench_pass", "Dual BSD/GPL", instructions, 2, nullptr);
}

struct Durations {
  double mean = 0;
  double median = 0;
};

inline Durations summarize(std::vector<uint32_t>& samples) {
  Durations durations;
  if (samples.empty()) return durations;
  double sum = 0;
  for (uint32_t sample : samples) sum += sample;
  durations.mean = sum / static_cast<double>(samples.size());
  std::nth_element(samples.begin(), samples.begin() + samples.size() / 2, samples.end());
  durations.median = samples[samples.size() / 2];
  return durations;
}

}  // namespace sluice::bench
