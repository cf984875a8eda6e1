// sluice-xdp-replay: ns per packet of the XDP balancer on the frames of a pcap, with the VIPs
// and backends of a sluiced config. bench/run writes each scenario's frames with
// sluice-pktgen on net_pcap and measures them here, so the XDP figure and the DPDK rates come
// from the same packets.
//
// Method, as in xdp_bench.cc: one BPF_PROG_TEST_RUN call per frame with repeat = 1, the
// kernel's duration, minus that of an empty program on the same frame. A first pass over all
// frames fills the flow table and is not timed. The thread is pinned to CPU 0.
//
//   sluice-xdp-replay --config FILE --pcap FILE [--passes N] [--json]   (as root)
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <bpf/libbpf.h>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "balancer_loader.h"
#include "sluice/control/config.h"
#include "sluice/control/snapshot_builder.h"
#include "xdp_test_run.h"

namespace {

using Frames = std::vector<std::vector<uint8_t>>;

// Reads a classic pcap file (libpcap's pcap.h cannot be included here: its struct bpf_insn
// collides with linux/bpf.h). Both byte orders and the nanosecond variant are accepted.
sluice::Result<Frames> read_pcap(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  uint8_t header[24];
  if (!file.read(reinterpret_cast<char*>(header), sizeof(header))) {
    return sluice::Error{"pcap " + path + " is shorter than a pcap file header"};
  }
  uint32_t magic = 0;
  std::memcpy(&magic, header, 4);
  bool swapped = false;
  if (magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1) {
    swapped = true;
  } else if (magic != 0xa1b2c3d4 && magic != 0xa1b23c4d) {
    return sluice::Error{"pcap " + path + " is not a pcap file (pcapng is not read; convert it with editcap -F pcap)"};
  }
  const auto field = [&](const uint8_t* bytes) {
    uint32_t value = 0;
    std::memcpy(&value, bytes, 4);
    return swapped ? __builtin_bswap32(value) : value;
  };
  Frames frames;
  uint8_t record[16];
  while (file.read(reinterpret_cast<char*>(record), sizeof(record))) {
    const uint32_t captured = field(record + 8);
    if (captured > 65535) return sluice::Error{"pcap " + path + " has a record of " + std::to_string(captured) + " bytes"};
    std::vector<uint8_t> frame(captured);
    if (!file.read(reinterpret_cast<char*>(frame.data()), captured)) break;
    frames.push_back(std::move(frame));
  }
  if (frames.empty()) return sluice::Error{"pcap " + path + " contains no frames"};
  return frames;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::string pcap_path;
  uint32_t passes = 1;
  bool json = false;
  CLI::App app{"sluice-xdp-replay: ns per packet of the XDP balancer on the frames of a pcap"};
  app.add_option("--config", config_path, "sluiced config with the VIPs, backends and next hop")
      ->required()->check(CLI::ExistingFile);
  app.add_option("--pcap", pcap_path, "frames to run, in order")->required()->check(CLI::ExistingFile);
  app.add_option("--passes", passes, "timed passes over the frames")->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_flag("--json", json, "print the figures as one JSON object");
  CLI11_PARSE(app, argc, argv);

  auto config = sluice::control::load_config_file(config_path);
  if (!config) {
    std::fprintf(stderr, "sluice-xdp-replay: %s\n", config.error().c_str());
    return 2;
  }
  if (!config->next_hop.mac) {
    std::fprintf(stderr, "sluice-xdp-replay: the config needs next_hop.mac\n");
    return 2;
  }
  auto frames = read_pcap(pcap_path);
  if (!frames) {
    std::fprintf(stderr, "sluice-xdp-replay: %s\n", frames.error().c_str());
    return 2;
  }
  sluice::control::SnapshotBuilder builder;
  auto snapshot = builder.build(*config, *config->next_hop.mac);
  if (!snapshot) {
    std::fprintf(stderr, "sluice-xdp-replay: %s\n", snapshot.error().c_str());
    return 2;
  }

  cpu_set_t cpu0;
  CPU_ZERO(&cpu0);
  CPU_SET(0, &cpu0);
  if (sched_setaffinity(0, sizeof(cpu0), &cpu0) != 0) {
    std::perror("sluice-xdp-replay: pinning to CPU 0 failed");
    return 1;
  }
  const int empty_fd = sluice::bench::load_empty_program();
  if (empty_fd < 0) {
    std::fprintf(stderr, "sluice-xdp-replay: loading an XDP program failed: %s (run it as root)\n",
                 std::strerror(-empty_fd));
    return 1;
  }
  // Test runs execute on CPU 0 only, and each CPU of the per-CPU LRU gets its share of the
  // entries, so the table gets flow_table_size entries per possible CPU.
  const uint32_t cpus = static_cast<uint32_t>(libbpf_num_possible_cpus());
  auto balancer = sluice::bpf::Balancer::load(config->flow_table_size * cpus);
  if (!balancer) {
    std::fprintf(stderr, "sluice-xdp-replay: %s\n", balancer.error().c_str());
    return 1;
  }
  uint32_t mtu = 1500;
  if (!config->dpdk.ports.empty() && config->dpdk.ports[0].egress_mtu) mtu = *config->dpdk.ports[0].egress_mtu;
  // BPF_PROG_TEST_RUN runs the program as if lo of this namespace had received the frame.
  const sluice::bpf::XdpEgress egress{static_cast<int>(if_nametoindex("lo")),
                                      sluice::MacAddress{{0x02, 0, 0, 0, 0, 0xbb}}, mtu, 0};
  if (auto status = (*balancer)->program(**snapshot, {egress}); !status) {
    std::fprintf(stderr, "sluice-xdp-replay: programming the maps failed: %s\n", status.error().c_str());
    return 1;
  }

  const int program_fd = (*balancer)->program_fd();
  std::vector<uint8_t> output(2048 + sluice::bench::kXdpHeadroom);
  uint32_t action = 0;
  for (const auto& frame : *frames) {
    sluice::bench::test_run(program_fd, frame.data(), static_cast<uint32_t>(frame.size()), output.data(),
                            static_cast<uint32_t>(output.size()), &action);
  }

  std::vector<uint32_t> balancer_samples;
  std::vector<uint32_t> empty_samples;
  uint64_t actions[5] = {0, 0, 0, 0, 0};  // XDP_ABORTED, DROP, PASS, TX, REDIRECT
  for (uint32_t pass = 0; pass < passes; ++pass) {
    for (const auto& frame : *frames) {
      const uint32_t length = static_cast<uint32_t>(frame.size());
      const int64_t duration = sluice::bench::test_run(program_fd, frame.data(), length, output.data(),
                                                       static_cast<uint32_t>(output.size()), &action);
      if (duration < 0) {
        std::fprintf(stderr, "sluice-xdp-replay: BPF_PROG_TEST_RUN failed: %s\n", std::strerror(errno));
        return 1;
      }
      balancer_samples.push_back(static_cast<uint32_t>(duration));
      if (action < 5) ++actions[action];
      uint32_t ignored = 0;
      empty_samples.push_back(static_cast<uint32_t>(sluice::bench::test_run(
          empty_fd, frame.data(), length, output.data(), static_cast<uint32_t>(output.size()), &ignored)));
    }
  }
  close(empty_fd);
  const sluice::bench::Durations measured = sluice::bench::summarize(balancer_samples);
  const sluice::bench::Durations empty = sluice::bench::summarize(empty_samples);
  const double ns_per_packet = measured.mean - empty.mean;
  if (json) {
    const nlohmann::json report{{"frames", frames->size()},
                                {"packets", balancer_samples.size()},
                                {"ns_per_packet", ns_per_packet},
                                {"median_ns_per_packet", measured.median - empty.median},
                                {"empty_program_ns", empty.mean},
                                {"actions", {{"aborted", actions[0]}, {"drop", actions[1]}, {"pass", actions[2]},
                                             {"tx", actions[3]}, {"redirect", actions[4]}}}};
    std::printf("%s\n", report.dump().c_str());
  } else {
    std::printf("%zu packets: %.1f ns per packet (mean %.1f minus %.1f for an empty program); "
                "XDP_TX %llu, XDP_PASS %llu, XDP_DROP %llu\n",
                balancer_samples.size(), ns_per_packet, measured.mean, empty.mean,
                static_cast<unsigned long long>(actions[3]), static_cast<unsigned long long>(actions[2]),
                static_cast<unsigned long long>(actions[1]));
  }
  return 0;
}
