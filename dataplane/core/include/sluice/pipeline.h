// The per-packet pipeline: parse, classify, look up the flow, pick a backend, encapsulate and
// count. One Pipeline belongs to one worker and contains the worker's flow table and counters.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "sluice/encap.h"
#include "sluice/flow_table.h"
#include "sluice/packet.h"
#include "sluice/snapshot.h"

namespace sluice {

// A counter with one writer (its worker) and any number of readers. Relaxed loads and stores
// compile to plain moves, so counting costs no locked instruction.
class Counter {
 public:
  // Forced inline, because link-time optimisation left 20 calls to add() in sluiced's
  // process_burst() despite its [[gnu::flatten]]. Inlining them saved the worker about 13
  // cycles per packet (bench/RESULTS.md).
  [[gnu::always_inline]] void add(uint64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

struct VipCounters {
  Counter packets;
  Counter bytes;  // bytes received, before encapsulation
};

struct BackendCounters {
  Counter packets;
  Counter bytes;      // bytes sent, after encapsulation
  Counter new_flows;  // TCP SYNs that created or changed an entry, and new UDP flows
};

struct PipelineCounters {
  std::vector<VipCounters> vips = std::vector<VipCounters>(SLUICE_MAX_VIPS);
  std::vector<BackendCounters> backends = std::vector<BackendCounters>(SLUICE_MAX_BACKENDS);
  std::array<Counter, kDropReasonCount> drops{};
  Counter received;
  Counter forwarded;
  Counter to_kernel;
  // Non-SYN TCP packets without a flow entry, served from the Maglev table: another load
  // balancer or a restart served the flow before, or the table evicted it.
  Counter non_syn_misses;
  Counter fragments;
  Counter icmp_errors;  // ICMP and ICMPv6 errors about a VIP flow, sent to its backend
  Counter icmp_echo_replies;  // echo replies sent for requests to a VIP address
  // ICMP fragmentation needed and ICMPv6 packet too big sent for packets that would exceed
  // the egress MTU after encapsulation.
  Counter icmp_too_big_replies;
  // New flows forwarded without a flow entry, because the worker had reached the new-flow
  // limit of the current second.
  Counter new_flows_limited;
  // TSC cycles the worker spent on polls that received packets: receiving, processing and
  // sending them. Divided by `received`, the worker's cost per packet.
  Counter busy_cycles;
};

// Plain sums of one or more pipelines' counters, for reports.
struct PipelineTotals {
  struct Traffic {
    uint64_t packets = 0;
    uint64_t bytes = 0;
    uint64_t new_flows = 0;  // backends only
  };
  std::vector<Traffic> vips = std::vector<Traffic>(SLUICE_MAX_VIPS);
  std::vector<Traffic> backends = std::vector<Traffic>(SLUICE_MAX_BACKENDS);
  std::array<uint64_t, kDropReasonCount> drops{};
  uint64_t received = 0;
  uint64_t forwarded = 0;
  uint64_t to_kernel = 0;
  uint64_t non_syn_misses = 0;
  uint64_t fragments = 0;
  uint64_t icmp_errors = 0;
  uint64_t icmp_echo_replies = 0;
  uint64_t icmp_too_big_replies = 0;
  uint64_t new_flows_limited = 0;
  uint64_t busy_cycles = 0;
  uint64_t flow_entries = 0;
  uint64_t flow_capacity = 0;
  uint64_t flow_evictions = 0;
};

// The egress port of a packet: its MAC and L3 MTU.
struct EgressPort {
  MacAddress mac;
  uint32_t mtu = 1500;
};

struct Verdict {
  Action action = Action::kDrop;
  DropReason drop = DropReason::kNone;
  uint32_t backend = kNoSlot;  // backend slot for kForward
  static constexpr uint32_t kNoSlot = UINT32_MAX;
};

class Pipeline {
 public:
  explicit Pipeline(uint32_t flow_table_capacity);

  // Runs one packet through every step. On kForward, `packet` contains the encapsulated frame
  // (its data pointer moved into the headroom). Otherwise it is unchanged.
  Verdict process(const Snapshot& snapshot, PacketBuffer& packet, const EgressPort& egress,
                  uint64_t now_ns);

  // Runs up to kMaxBurst packets, with the same result as process() on each in turn, and
  // writes their verdicts in order. The flow table's memory accesses of the whole burst are
  // issued before the first packet needs them.
  static constexpr size_t kMaxBurst = 32;
  void process_burst(const Snapshot& snapshot, std::span<PacketBuffer> packets,
                     const EgressPort& egress, uint64_t now_ns, Verdict* verdicts);

  // Counts a drop that happens outside the pipeline, such as a full TX queue.
  void count_drop(DropReason reason) { counters_.drops[static_cast<int>(reason)].add(1); }
  void count_busy_cycles(uint64_t cycles) { counters_.busy_cycles.add(cycles); }

  const PipelineCounters& counters() const { return counters_; }

  // Adds this pipeline's counters to `totals`. Safe to call from another thread while the
  // worker runs, except for the flow table figures, which may be a burst out of date.
  void add_to(PipelineTotals& totals) const;
  const FlowTable& flow_table() const { return flow_table_; }

 private:
  // A packet after parsing and the VIP lookup; `vip` is null when the verdict is final.
  struct Classified {
    ParsedPacket parsed;
    const Vip* vip = nullptr;
    uint32_t hash = 0;         // the flow hash: flow table, IPv6 flow label
    uint32_t select_hash = 0;  // picks the backend: the flow hash, or the client hash
    uint32_t way = FlowTable::kWays;  // the way where prefetch_entry() found the flow's tag
  };
  struct Selection {
    uint32_t backend = Verdict::kNoSlot;
    bool new_flow = false;
  };

  Verdict classify(const Snapshot& snapshot, PacketBuffer& packet, const EgressPort& egress,
                   Classified& classified);
  Verdict forward(const Snapshot& snapshot, PacketBuffer& packet, const Classified& classified,
                  const EgressPort& egress, uint64_t now_ns);
  Selection select_for_icmp_error(const Snapshot& snapshot, const Vip& vip,
                                  const ParsedPacket& parsed, uint32_t hash, uint32_t select_hash,
                                  uint64_t now_ns);
  Selection select_backend(const Snapshot& snapshot, const Vip& vip, const ParsedPacket& parsed,
                           uint32_t hash, uint32_t select_hash, uint32_t way, uint64_t now_ns);
  Selection select_tcp_backend(const Snapshot& snapshot, const Vip& vip,
                               const ParsedPacket& parsed, uint32_t hash, uint32_t select_hash,
                               uint32_t way, uint64_t now_ns);
  Verdict drop(DropReason reason);
  bool admit_new_entry(const Snapshot& snapshot, uint64_t now_ns);

  FlowTable flow_table_;
  PipelineCounters counters_;
  uint64_t limit_window_start_ns_ = 0;  // the second that the new-flow limit counts in
  uint64_t limit_window_inserts_ = 0;
};

}  // namespace sluice
