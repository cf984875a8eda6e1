// The DPDK side of sluice-pktgen: ports, the send and receive loop of a trial, and the
// trial's counts and latencies.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "latency_histogram.h"
#include "sluice/result.h"
#include "traffic.h"

struct rte_mempool;

namespace sluice::pktgen {

struct TrialResult {
  double offered_rate_pps = 0;  // the target, 0 for as fast as possible
  double seconds = 0;           // from the first to the last send
  uint64_t offered = 0;         // packets built and handed to tx_burst
  uint64_t sent = 0;            // packets tx_burst accepted
  uint64_t received = 0;        // packets that came back on the RX port
  uint64_t sent_bytes = 0;      // without FCS
  uint64_t received_bytes = 0;
  uint64_t out_of_mbufs = 0;    // bursts skipped because the mempool was empty
  uint64_t latency_p50_ns = 0;
  uint64_t latency_p99_ns = 0;
  uint64_t latency_p999_ns = 0;
  uint64_t latency_samples = 0;

  double sent_pps() const { return seconds > 0 ? static_cast<double>(sent) / seconds : 0; }
  double offered_pps() const { return seconds > 0 ? static_cast<double>(offered) / seconds : 0; }
  double received_pps() const { return seconds > 0 ? static_cast<double>(received) / seconds : 0; }
  // Offered packets that did not come back; a TX queue that refuses a packet loses it, as a
  // wire would.
  double loss() const {
    return offered == 0 ? 0 : 1.0 - static_cast<double>(received) / static_cast<double>(offered);
  }
};

struct GeneratorPorts {
  std::vector<uint16_t> tx;
  uint16_t rx = 0;
};

class Generator {
 public:
  // Sets up every port (one RX and one TX queue each) and waits up to `link_timeout_s` for
  // their links. `frames` replaces generated traffic with these frames, sent in turn.
  static Result<std::unique_ptr<Generator>> create(const GeneratorPorts& ports,
                                                   const TrafficSpec& spec,
                                                   std::vector<std::vector<uint8_t>> frames,
                                                   double link_timeout_s);
  ~Generator();

  // Sends at `rate_pps` (0: as fast as the ports take packets) for `seconds` or `count`
  // packets, whichever comes first (0: no limit), then receives until the RX port has been
  // quiet for `drain_ms`. Stops early when `stop` becomes true.
  TrialResult run(double rate_pps, double seconds, uint64_t count, double drain_ms,
                  const std::atomic<bool>& stop);

  // With retry, a TX queue that rejects packets gets them again until it takes them, so
  // every offered packet is sent: a lossless link, for tests that must deliver a count.
  void set_retry(bool retry) { retry_ = retry; }

 private:
  Generator(const GeneratorPorts& ports, const TrafficSpec& spec,
            std::vector<std::vector<uint8_t>> frames);
  uint32_t fill(uint64_t sequence, uint64_t stamp, uint8_t* out);
  void receive(TrialResult& result, LatencyHistogram& latency, uint64_t now);
  uint16_t receive_burst(TrialResult& result, LatencyHistogram& latency, uint64_t now);

  GeneratorPorts ports_;
  FrameBuilder builder_;
  std::vector<std::vector<uint8_t>> frames_;  // replayed instead of built when not empty
  rte_mempool* pool_ = nullptr;
  std::vector<uint16_t> started_;
  uint64_t sequence_ = 0;
  bool retry_ = false;
  uint64_t tsc_base_ = 0;
  double ns_per_cycle_ = 0;
};

}  // namespace sluice::pktgen
