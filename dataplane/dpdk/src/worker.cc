// The worker loop: receive a burst, run it through the pipeline as one burst, send what it
// forwards, free what the TX queue did not take. No locks, system calls or allocations.
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>

#include "sluice/dpdk/dataplane.h"

namespace sluice::dpdk {
namespace {

constexpr uint16_t kBurstSize = Pipeline::kMaxBurst;

// Returns whether the CPU has PREFETCHW (CPUID leaf 0x80000001, ECX bit 8). GCC emits a read
// prefetch for __builtin_prefetch(p, 1) unless built with -mprfchw, so the worker uses asm.
bool cpu_has_prefetchw() {
#if defined(__x86_64__)
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_PRFCHW) != 0;
#else
  return false;
#endif
}

// Fetches the cache line at `p` ready to be written: in the exclusive state where the CPU
// has PREFETCHW, else shared, as a read prefetch does.
inline void prefetch_for_write(const void* p, bool has_prefetchw) {
#if defined(__x86_64__)
  if (has_prefetchw) {
    asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
    return;
  }
#endif
  (void)has_prefetchw;
  rte_prefetch0(p);
}

// Sends `count` mbufs and frees the ones the queue did not accept, counting them as drops.
void send_burst(uint16_t port_id, uint16_t queue, rte_mbuf** mbufs, uint16_t count,
                Pipeline& pipeline, DropReason reason_if_full) {
  if (count == 0) return;
  const uint16_t sent = rte_eth_tx_burst(port_id, queue, mbufs, count);
  if (sent < count) {
    for (uint16_t i = sent; i < count; ++i) pipeline.count_drop(reason_if_full);
    rte_pktmbuf_free_bulk(mbufs + sent, count - sent);
  }
}

}  // namespace


int Dataplane::run_worker(void* argument) {
  Worker& worker = *static_cast<Worker*>(argument);
  Dataplane& dataplane = *worker.owner;
  Pipeline& pipeline = worker.pipeline;
  const uint16_t queue = worker.queue;
  const unsigned int thread_id = worker.queue;

  rte_rcu_qsbr_thread_register(dataplane.qsbr_, thread_id);
  rte_rcu_qsbr_thread_online(dataplane.qsbr_, thread_id);

  std::vector<EgressPort> egress;
  for (const PortInfo& port : dataplane.ports_) egress.push_back({port.mac, port.mtu});
  const Snapshot empty_snapshot;
  // Nanoseconds per TSC cycle as a 32.32 fixed-point factor. Reading the TSC costs about
  // 10 ns in a virtual machine, so a poll reads it once and a busy poll once more at its end,
  // which the next poll takes as its start.
  const uint64_t ns_per_cycle = (uint64_t{1'000'000'000} << 32) / rte_get_tsc_hz();
  const auto to_ns = [ns_per_cycle](uint64_t cycles) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(cycles) * ns_per_cycle) >> 32);
  };
  uint64_t tsc = rte_rdtsc();
  const bool has_prefetchw = cpu_has_prefetchw();

  rte_mbuf* received[kBurstSize];
  rte_mbuf* to_wire[kBurstSize];
  rte_mbuf* to_kernel[kBurstSize];
  PacketBuffer packets[kBurstSize];
  Verdict verdicts[kBurstSize];

  while (!dataplane.stopping_.load(std::memory_order_relaxed)) {
    // One snapshot per burst: the pointer stays valid until this worker reports quiescence.
    const Snapshot* snapshot = dataplane.current_.load(std::memory_order_acquire);
    if (snapshot == nullptr) snapshot = &empty_snapshot;
    const uint64_t now_ns = to_ns(tsc);
    bool busy = false;

    for (size_t p = 0; p < dataplane.ports_.size(); ++p) {
      const PortInfo& port = dataplane.ports_[p];
      const uint64_t poll_start = tsc;
      const uint16_t count = rte_eth_rx_burst(port.port_id, queue, received, kBurstSize);
      uint16_t wire_count = 0;
      uint16_t kernel_count = 0;

      // Multi-segment mbufs are dropped here; the rest go through the pipeline as one burst.
      uint16_t accepted = 0;
      for (uint16_t i = 0; i < count; ++i) {
        rte_mbuf* mbuf = received[i];
        if (mbuf->nb_segs > 1) {
          pipeline.count_drop(DropReason::kMultiSegmentMbuf);
          rte_pktmbuf_free(mbuf);
          continue;
        }
        // Both lines for writing, because the pipeline writes the outer headers there. The NIC
        // or another core wrote them, so a read prefetch would leave the write a second transfer.
        uint8_t* data = rte_pktmbuf_mtod(mbuf, uint8_t*);
        prefetch_for_write(data, has_prefetchw);
        prefetch_for_write(data - RTE_CACHE_LINE_SIZE, has_prefetchw);
        received[accepted] = mbuf;
        packets[accepted++] = PacketBuffer{rte_pktmbuf_mtod(mbuf, uint8_t*), mbuf->data_len,
                                           rte_pktmbuf_headroom(mbuf)};
      }
      // An empty poll skips the pipeline, which zeroes its working array of kMaxBurst
      // packets on every call and would delay the next poll.
      if (accepted > 0) {
        pipeline.process_burst(*snapshot, {packets, accepted}, egress[p], now_ns, verdicts);
      }

      for (uint16_t i = 0; i < accepted; ++i) {
        rte_mbuf* mbuf = received[i];
        const PacketBuffer& packet = packets[i];
        switch (verdicts[i].action) {
          case Action::kForward:
            mbuf->data_off = static_cast<uint16_t>(packet.data - static_cast<uint8_t*>(mbuf->buf_addr));
            mbuf->data_len = static_cast<uint16_t>(packet.length);
            mbuf->pkt_len = packet.length;
            to_wire[wire_count++] = mbuf;
            break;
          case Action::kToKernel:
            if (port.has_exception) {
              to_kernel[kernel_count++] = mbuf;
            } else {
              rte_pktmbuf_free(mbuf);
            }
            break;
          case Action::kDrop:
            rte_pktmbuf_free(mbuf);
            break;
        }
      }
      send_burst(port.port_id, queue, to_wire, wire_count, pipeline, DropReason::kTxQueueFull);
      if (count > 0) {
        tsc = rte_rdtsc();
        pipeline.count_busy_cycles(tsc - poll_start);
        busy = true;
      }
      if (port.has_exception) {
        send_burst(port.exception_port_id, queue, to_kernel, kernel_count, pipeline,
                   DropReason::kExceptionQueueFull);

        // The kernel's own packets (ARP replies, neighbour discovery, health checks) leave
        // through the port unchanged.
        const uint16_t from_kernel = rte_eth_rx_burst(port.exception_port_id, queue, received, kBurstSize);
        send_burst(port.port_id, queue, received, from_kernel, pipeline, DropReason::kTxQueueFull);
      }
    }

    rte_rcu_qsbr_quiescent(dataplane.qsbr_, thread_id);
    if (!busy) tsc = rte_rdtsc();
  }

  rte_rcu_qsbr_thread_offline(dataplane.qsbr_, thread_id);
  rte_rcu_qsbr_thread_unregister(dataplane.qsbr_, thread_id);
  return 0;
}

}  // namespace sluice::dpdk
