#include "generator.h"

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

namespace sluice::pktgen {
namespace {

constexpr uint16_t kBurst = 32;
constexpr int kRxBurstsPerPoll = 4;
// Enough for full RX and TX rings of 8192 slots each (memif rsize=13, zero-copy) and bursts.
constexpr uint32_t kMbufs = 65535;
constexpr uint32_t kMempoolCache = 256;
constexpr uint16_t kDescriptors = 1024;
// Latency samples above this are not ours (a stale or foreign frame) and are left out.
constexpr double kLatencyCeilingSeconds = 1.0;
// A rate-limited sender that falls behind catches up by at most this much, so one stall
// does not turn into a burst at line rate.
constexpr double kMaxCatchUpSeconds = 0.001;

std::string dpdk_error(int code) { return rte_strerror(code < 0 ? -code : code); }

Status setup_port(uint16_t port_id, rte_mempool* pool) {
  if (!rte_eth_dev_is_valid_port(port_id)) {
    return Error{"port " + std::to_string(port_id) + " does not exist (the EAL found " +
                 std::to_string(rte_eth_dev_count_avail()) + " ports; check --vdev or -a)"};
  }
  rte_eth_conf conf{};
  int rc = rte_eth_dev_configure(port_id, 1, 1, &conf);
  if (rc != 0) return Error{"port " + std::to_string(port_id) + ": cannot configure: " + dpdk_error(rc)};
  uint16_t rx_descriptors = kDescriptors;
  uint16_t tx_descriptors = kDescriptors;
  rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rx_descriptors, &tx_descriptors);
  const int socket = rte_eth_dev_socket_id(port_id);
  rc = rte_eth_rx_queue_setup(port_id, 0, rx_descriptors, socket, nullptr, pool);
  if (rc != 0) return Error{"port " + std::to_string(port_id) + ": RX queue: " + dpdk_error(rc)};
  rc = rte_eth_tx_queue_setup(port_id, 0, tx_descriptors, socket, nullptr);
  if (rc != 0) return Error{"port " + std::to_string(port_id) + ": TX queue: " + dpdk_error(rc)};
  rc = rte_eth_dev_start(port_id);
  if (rc != 0) return Error{"port " + std::to_string(port_id) + ": cannot start: " + dpdk_error(rc)};
  return {};
}

Status wait_for_link(uint16_t port_id, double timeout_s) {
  const uint64_t deadline = rte_get_tsc_cycles() + static_cast<uint64_t>(timeout_s * rte_get_tsc_hz());
  while (true) {
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(port_id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP) return {};
    if (rte_get_tsc_cycles() > deadline) {
      char seconds[32];
      std::snprintf(seconds, sizeof(seconds), "%g", timeout_s);
      return Error{"port " + std::to_string(port_id) + ": the link is still down after " + seconds +
                   " s (is the peer running?)"};
    }
    rte_delay_ms(10);
  }
}

}  // namespace

Result<std::unique_ptr<Generator>> Generator::create(const GeneratorPorts& ports,
                                                     const TrafficSpec& spec,
                                                     std::vector<std::vector<uint8_t>> frames,
                                                     double link_timeout_s) {
  std::unique_ptr<Generator> generator(new Generator(ports, spec, std::move(frames)));
  generator->pool_ = rte_pktmbuf_pool_create("pktgen_mbufs", kMbufs, kMempoolCache, 0,
                                             RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
  if (generator->pool_ == nullptr) {
    return Error{"cannot create the mbuf pool: " + dpdk_error(rte_errno) + " (give the EAL more memory with -m)"};
  }
  std::vector<uint16_t> all = ports.tx;
  all.push_back(ports.rx);
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  for (uint16_t port : all) {
    if (Status status = setup_port(port, generator->pool_); !status) return Error{status.error()};
    generator->started_.push_back(port);
  }
  std::fprintf(stderr, "sluice-pktgen: ports started, waiting up to %g s for their links\n", link_timeout_s);
  for (uint16_t port : all) {
    if (Status status = wait_for_link(port, link_timeout_s); !status) return Error{status.error()};
  }
  return generator;
}

Generator::Generator(const GeneratorPorts& ports, const TrafficSpec& spec,
                     std::vector<std::vector<uint8_t>> frames)
    : ports_(ports), builder_(spec), frames_(std::move(frames)),
      tsc_base_(rte_get_tsc_cycles()), ns_per_cycle_(1e9 / static_cast<double>(rte_get_tsc_hz())) {}

Generator::~Generator() {
  for (uint16_t port : started_) {
    rte_eth_dev_stop(port);
    rte_eth_dev_close(port);
  }
  rte_mempool_free(pool_);
}

uint32_t Generator::fill(uint64_t sequence, uint64_t stamp, uint8_t* out) {
  if (frames_.empty()) return builder_.build(sequence, stamp, out);
  const std::vector<uint8_t>& frame = frames_[sequence % frames_.size()];
  std::memcpy(out, frame.data(), frame.size());
  return static_cast<uint32_t>(frame.size());
}

void Generator::receive(TrialResult& result, LatencyHistogram& latency, uint64_t now) {
  // Up to kRxBurstsPerPoll full bursts, so that receiving keeps up with sending.
  for (int burst = 0; burst < kRxBurstsPerPoll; ++burst) {
    if (receive_burst(result, latency, now) < kBurst) return;
  }
}

uint16_t Generator::receive_burst(TrialResult& result, LatencyHistogram& latency, uint64_t now) {
  rte_mbuf* mbufs[kBurst];
  const uint16_t count = rte_eth_rx_burst(ports_.rx, 0, mbufs, kBurst);
  if (count == 0) return 0;
  const uint64_t ceiling = static_cast<uint64_t>(kLatencyCeilingSeconds * rte_get_tsc_hz());
  const uint64_t stamp_now = (now - tsc_base_) & kStampMask;
  uint16_t counted = 0;
  for (uint16_t i = 0; i < count; ++i) {
    const rte_mbuf* mbuf = mbufs[i];
    // Only IP frames, VLAN-tagged or not, count: ARP, LLDP and the like on a real link are
    // not ours.
    const uint8_t* frame = rte_pktmbuf_mtod(mbuf, const uint8_t*);
    const uint16_t ether_type = mbuf->data_len >= 14 ? static_cast<uint16_t>((frame[12] << 8) | frame[13]) : 0;
    if (ether_type != 0x0800 && ether_type != 0x86dd && ether_type != 0x8100 && ether_type != 0x88a8) continue;
    ++counted;
    result.received_bytes += mbuf->pkt_len;
    // Replayed frames carry no stamp of ours.
    if (!frames_.empty() || mbuf->nb_segs != 1) continue;
    const uint64_t stamp = read_stamp({rte_pktmbuf_mtod(mbuf, const uint8_t*), mbuf->data_len});
    const uint64_t cycles = (stamp_now - stamp) & kStampMask;
    if (cycles < ceiling) latency.record(static_cast<uint64_t>(static_cast<double>(cycles) * ns_per_cycle_));
  }
  result.received += counted;
  rte_pktmbuf_free_bulk(mbufs, count);
  return count;
}

TrialResult Generator::run(double rate_pps, double seconds, uint64_t count, double drain_ms,
                           const std::atomic<bool>& stop) {
  TrialResult result;
  result.offered_rate_pps = rate_pps;
  LatencyHistogram latency;
  const double hz = static_cast<double>(rte_get_tsc_hz());
  const uint64_t start = rte_get_tsc_cycles();
  const uint64_t end = seconds > 0 ? start + static_cast<uint64_t>(seconds * hz) : UINT64_MAX;
  const double cycles_per_packet = rate_pps > 0 ? hz / rate_pps : 0;
  const uint64_t max_lag = static_cast<uint64_t>(kMaxCatchUpSeconds * hz);
  double next_send = static_cast<double>(start);
  size_t next_port = 0;
  uint64_t last_send = start;
  rte_mbuf* mbufs[kBurst];

  while (!stop.load(std::memory_order_relaxed)) {
    const uint64_t now = rte_get_tsc_cycles();
    if (now >= end || (count > 0 && result.offered >= count)) break;
    receive(result, latency, now);
    if (rate_pps > 0) {
      if (static_cast<double>(now) < next_send) continue;
      if (static_cast<double>(now) - next_send > static_cast<double>(max_lag)) {
        next_send = static_cast<double>(now - max_lag);
      }
    }

    uint16_t burst = kBurst;
    if (count > 0) burst = static_cast<uint16_t>(std::min<uint64_t>(burst, count - result.offered));
    if (rte_pktmbuf_alloc_bulk(pool_, mbufs, burst) != 0) {
      ++result.out_of_mbufs;
      continue;
    }
    const uint64_t stamp = now - tsc_base_;
    for (uint16_t i = 0; i < burst; ++i) {
      rte_mbuf* mbuf = mbufs[i];
      const uint32_t length = fill(sequence_++, stamp, rte_pktmbuf_mtod(mbuf, uint8_t*));
      mbuf->data_len = static_cast<uint16_t>(length);
      mbuf->pkt_len = length;
      result.sent_bytes += length;
    }
    const uint16_t port = ports_.tx[next_port];
    next_port = (next_port + 1) % ports_.tx.size();
    uint16_t sent = rte_eth_tx_burst(port, 0, mbufs, burst);
    while (retry_ && sent < burst && !stop.load(std::memory_order_relaxed)) {
      receive(result, latency, rte_get_tsc_cycles());
      sent += rte_eth_tx_burst(port, 0, mbufs + sent, burst - sent);
    }
    for (uint16_t i = sent; i < burst; ++i) result.sent_bytes -= mbufs[i]->pkt_len;
    if (sent < burst) rte_pktmbuf_free_bulk(mbufs + sent, burst - sent);
    result.offered += burst;
    result.sent += sent;
    last_send = now;
    next_send += burst * cycles_per_packet;
  }
  result.seconds = static_cast<double>(last_send - start) / hz;
  if (result.seconds <= 0) result.seconds = static_cast<double>(rte_get_tsc_cycles() - start) / hz;

  // Receive what is still in flight, until the RX port has been quiet for drain_ms.
  const uint64_t quiet = static_cast<uint64_t>(drain_ms / 1000.0 * hz);
  uint64_t last_seen = rte_get_tsc_cycles();
  uint64_t received = result.received;
  while (!stop.load(std::memory_order_relaxed)) {
    const uint64_t now = rte_get_tsc_cycles();
    receive(result, latency, now);
    if (result.received != received) {
      received = result.received;
      last_seen = now;
    } else if (now - last_seen > quiet) {
      break;
    }
  }

  result.latency_samples = latency.samples();
  result.latency_p50_ns = latency.percentile(0.5);
  result.latency_p99_ns = latency.percentile(0.99);
  result.latency_p999_ns = latency.percentile(0.999);
  return result;
}

}  // namespace sluice::pktgen
