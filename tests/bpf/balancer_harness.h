// Harness for the XDP balancer tests: the parity snapshot, one frame run through
// Pipeline::process and through the loaded program with BPF_PROG_TEST_RUN, and the
// comparison of the two outcomes and of the two sets of counters.
#pragma once

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "balancer_loader.h"
#include "sluice/maglev.h"
#include "sluice/pipeline.h"
#include "test_frames.h"

namespace sluice::test {

inline constexpr const char* kNeedsRoot =
    "The XDP balancer tests load a BPF program and run it with BPF_PROG_TEST_RUN, so they need "
    "root (CAP_BPF and CAP_NET_ADMIN) and a kernel with BPF enabled.";

// XDP headroom as drivers and BPF_PROG_TEST_RUN give it (XDP_PACKET_HEADROOM), so both data
// planes have the same room to grow into.
inline constexpr uint32_t kXdpHeadroom = 256;

// BPF_PROG_TEST_RUN without a context runs an XDP program as if the loopback device of the
// caller's network namespace had received the frame, so ctx->ingress_ifindex is lo's.
inline int test_run_ifindex() { return static_cast<int>(if_nametoindex("lo")); }

// The egress entry for test runs that matches the C++ pipeline's kEgress.
inline bpf::XdpEgress test_run_egress(const EgressPort& port = kEgress, int redirect_ifindex = 0) {
  return bpf::XdpEgress{test_run_ifindex(), port.mac, port.mtu, redirect_ifindex};
}

// bpf_ktime_get_ns() reads CLOCK_MONOTONIC, so the C++ pipeline gets the same clock.
inline uint64_t monotonic_ns() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(now.tv_nsec);
}

// ---- The parity snapshot -----------------------------------------------------------------

// Backend slots: 0 to 2 are backend4(0 to 2) and 3 to 5 are backend6(0 to 2), all live. Slot
// 6 is 198.51.100.7, drained, and slot 7 is 198.51.100.8, live. A slot's uid is 100 + slot.
inline constexpr uint32_t kDrainedSlot = 6;
inline constexpr uint32_t kSpareSlot = 7;

// VIP slots, chosen to exercise every classification and table rule.
inline constexpr uint32_t kVipWeb4 = 0;        // 203.0.113.10:80/tcp, weights 10, 1, 1 and 0
inline constexpr uint32_t kVipWeb6 = 1;        // [2001:db8::10]:80/tcp
inline constexpr uint32_t kVipDns = 2;         // 203.0.113.10:53/udp, table size 251
inline constexpr uint32_t kVipAnyPort = 3;     // 203.0.113.20:0/tcp, table size 1021
inline constexpr uint32_t kVipAltPort = 4;     // 203.0.113.20:8080/tcp, table size 7
inline constexpr uint32_t kVipHttps = 5;       // 203.0.113.10:443/tcp, table size 13
inline constexpr uint32_t kVipMixed = 6;       // 203.0.113.30:80/tcp with an IPv6 backend (IPv4 in IPv6)
inline constexpr uint32_t kVipNoTable = 7;     // 203.0.113.40:80/tcp without a table
inline constexpr uint32_t kVipEmptyTable = 700;  // 203.0.113.41:80/tcp, every entry empty
inline constexpr uint32_t kVipAnyUdp6 = 9;     // [2001:db8::10]:0/udp

inline constexpr Ipv4 kVipAnyPort4{203, 0, 113, 20};
inline constexpr Ipv4 kVipMixed4{203, 0, 113, 30};
inline constexpr Ipv4 kVipNoTable4{203, 0, 113, 40};
inline constexpr Ipv4 kVipEmptyTable4{203, 0, 113, 41};

// Builds a Maglev table of `size` entries over (backend slot, weight) pairs of `snapshot`.
inline std::vector<uint32_t> weighted_table(const Snapshot& snapshot,
                                            std::initializer_list<std::pair<uint32_t, uint32_t>> slots,
                                            uint32_t size = SLUICE_MAGLEV_DEFAULT_SIZE) {
  std::vector<MaglevBackend> backends;
  for (const auto& [slot, weight] : slots) {
    backends.push_back({snapshot.backends[slot].address, weight, slot});
  }
  Result<MaglevTable> table = build_maglev_table(backends, size);
  return table.ok() ? std::move(table).value().entries : std::vector<uint32_t>{};
}

inline Vip make_vip(const IpAddress& address, uint16_t port, uint8_t protocol, uint32_t slot,
                    std::vector<uint32_t> table) {
  Vip vip;
  vip.key = {address, port, protocol};
  vip.slot = slot;
  vip.maglev = std::move(table);
  return vip;
}

inline Snapshot make_parity_snapshot() {
  Snapshot snapshot = make_snapshot();  // backends 0 to 5, seed, sources, next hop
  const uint8_t drained[4] = {198, 51, 100, 7};
  const uint8_t spare[4] = {198, 51, 100, 8};
  snapshot.backends.push_back({100 + kDrainedSlot, BackendState::kDrained, IpAddress::v4(drained)});
  snapshot.backends.push_back({100 + kSpareSlot, BackendState::kLive, IpAddress::v4(spare)});

  const Snapshot& s = snapshot;
  snapshot.vips = {
      make_vip(address4(kVip4), 80, kProtocolTcp, kVipWeb4,
               weighted_table(s, {{0, 10}, {1, 1}, {2, 1}, {kDrainedSlot, 0}})),
      make_vip(address6(kVip6), 80, kProtocolTcp, kVipWeb6, weighted_table(s, {{3, 1}, {4, 1}, {5, 1}})),
      make_vip(address4(kVip4), 53, kProtocolUdp, kVipDns, weighted_table(s, {{1, 1}, {kSpareSlot, 1}}, 251)),
      make_vip(address4(kVipAnyPort4), 0, kProtocolTcp, kVipAnyPort,
               weighted_table(s, {{0, 1}, {1, 1}, {2, 1}}, 1021)),
      make_vip(address4(kVipAnyPort4), 8080, kProtocolTcp, kVipAltPort, weighted_table(s, {{2, 1}}, 7)),
      make_vip(address4(kVip4), 443, kProtocolTcp, kVipHttps, weighted_table(s, {{kSpareSlot, 1}}, 13)),
      make_vip(address4(kVipMixed4), 80, kProtocolTcp, kVipMixed, weighted_table(s, {{3, 1}}, 7)),
      make_vip(address4(kVipNoTable4), 80, kProtocolTcp, kVipNoTable, {}),
      make_vip(address4(kVipEmptyTable4), 80, kProtocolTcp, kVipEmptyTable,
               weighted_table(s, {{kDrainedSlot, 0}}, 7)),
      make_vip(address6(kVip6), 0, kProtocolUdp, kVipAnyUdp6, weighted_table(s, {{4, 1}, {5, 1}}, 251)),
  };
  snapshot.prepare();
  return snapshot;
}

// ---- Running a frame ---------------------------------------------------------------------

struct Outcome {
  bool ran = true;  // false when BPF_PROG_TEST_RUN itself failed
  Action action = Action::kDrop;
  DropReason drop = DropReason::kNone;
  Bytes frame;          // the frame as the data plane left it
  std::string verdict;  // the XDP return code, or what went wrong
};

inline Outcome run_pipeline(Pipeline& pipeline, const Snapshot& snapshot, const EgressPort& egress,
                            const Bytes& frame) {
  FrameBuffer buffer(frame, kXdpHeadroom);
  const Verdict verdict = pipeline.process(snapshot, buffer.packet(), egress, monotonic_ns());
  return Outcome{true, verdict.action, verdict.drop, buffer.contents(), ""};
}

// Runs `frame` through the program. `totals` contains the balancer's counters before the run
// and receives them after it; the drop reason is the counter that changed.
inline Outcome run_xdp(const bpf::Balancer& balancer, const Bytes& frame, PipelineTotals& totals) {
  const PipelineTotals before = totals;
  Bytes output(frame.size() + kXdpHeadroom);
  bpf_test_run_opts options{};
  options.sz = sizeof(options);
  options.data_in = frame.data();
  options.data_size_in = static_cast<uint32_t>(frame.size());
  options.data_out = output.data();
  options.data_size_out = static_cast<uint32_t>(output.size());
  options.repeat = 1;
  const int err = bpf_prog_test_run_opts(balancer.program_fd(), &options);
  totals = balancer.totals();

  Outcome outcome;
  if (err < 0) {
    outcome.ran = false;
    outcome.verdict = std::string("BPF_PROG_TEST_RUN failed: ") + std::strerror(-err);
    return outcome;
  }
  output.resize(options.data_size_out);
  outcome.frame = output;
  switch (options.retval) {
    case XDP_TX:
      outcome.verdict = "XDP_TX";
      outcome.action = Action::kForward;
      break;
    case XDP_REDIRECT:
      outcome.verdict = "XDP_REDIRECT";
      outcome.action = Action::kForward;
      break;
    case XDP_PASS:
      outcome.verdict = "XDP_PASS";
      outcome.action = Action::kToKernel;
      break;
    case XDP_DROP:
      outcome.verdict = "XDP_DROP";
      outcome.action = Action::kDrop;
      break;
    default:
      outcome.ran = false;
      outcome.verdict = "XDP return code " + std::to_string(options.retval);
      return outcome;
  }

  int changed = 0;
  for (int reason = 1; reason < kDropReasonCount; ++reason) {
    if (totals.drops[reason] == before.drops[reason]) continue;
    ++changed;
    outcome.drop = static_cast<DropReason>(reason);
  }
  if (changed > 1) {
    outcome.ran = false;
    outcome.verdict += ", but " + std::to_string(changed) + " drop counters changed";
  }
  return outcome;
}

// ---- Comparing -----------------------------------------------------------------------------

inline std::string hex(const Bytes& bytes) {
  std::string text;
  char cell[24];
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i % 16 == 0) {
      std::snprintf(cell, sizeof(cell), "%s%04zx ", i == 0 ? "" : "\n", i);
      text += cell;
    }
    std::snprintf(cell, sizeof(cell), " %02x", bytes[i]);
    text += cell;
  }
  return text;
}

inline std::string action_name(Action action) {
  switch (action) {
    case Action::kForward:
      return "forward";
    case Action::kToKernel:
      return "to_kernel";
    case Action::kDrop:
      return "drop";
  }
  return "unknown";
}

// Returns an empty string when both data planes did the same, else what differs, with both
// output frames in hex.
inline std::string describe_difference(const Bytes& input, const Outcome& cpp, const Outcome& xdp) {
  std::string text;
  if (!xdp.ran) text += "  XDP run failed: " + xdp.verdict + "\n";
  if (cpp.action != xdp.action) {
    text += "  action: C++ " + action_name(cpp.action) + ", XDP " + action_name(xdp.action) + " (" +
            xdp.verdict + ")\n";
  }
  if (cpp.drop != xdp.drop) {
    text += "  drop reason: C++ " + std::string(drop_reason_name(cpp.drop)) + ", XDP " +
            std::string(drop_reason_name(xdp.drop)) + "\n";
  }
  if (cpp.frame != xdp.frame) {
    size_t offset = 0;
    while (offset < cpp.frame.size() && offset < xdp.frame.size() && cpp.frame[offset] == xdp.frame[offset]) {
      ++offset;
    }
    char where[64];
    std::snprintf(where, sizeof(where), "  output bytes differ from offset %zu (0x%zx)\n", offset, offset);
    text += where;
  }
  if (text.empty()) return text;
  return text + "  input (" + std::to_string(input.size()) + " bytes):\n" + hex(input) +
         "\n  C++ output (" + std::to_string(cpp.frame.size()) + " bytes):\n" + hex(cpp.frame) +
         "\n  XDP output (" + std::to_string(xdp.frame.size()) + " bytes):\n" + hex(xdp.frame) + "\n";
}

// Returns an empty string when the counters agree, else the fields that differ. Flow table
// figures are left out: the XDP balancer cannot count LRU entries or evictions.
inline std::string totals_difference(const PipelineTotals& cpp, const PipelineTotals& xdp) {
  std::string text;
  const auto compare = [&text](const std::string& name, uint64_t a, uint64_t b) {
    if (a != b) text += "  " + name + ": C++ " + std::to_string(a) + ", XDP " + std::to_string(b) + "\n";
  };
  compare("received", cpp.received, xdp.received);
  compare("forwarded", cpp.forwarded, xdp.forwarded);
  compare("to_kernel", cpp.to_kernel, xdp.to_kernel);
  compare("non_syn_misses", cpp.non_syn_misses, xdp.non_syn_misses);
  compare("fragments", cpp.fragments, xdp.fragments);
  compare("icmp_errors", cpp.icmp_errors, xdp.icmp_errors);
  compare("icmp_echo_replies", cpp.icmp_echo_replies, xdp.icmp_echo_replies);
  compare("icmp_too_big_replies", cpp.icmp_too_big_replies, xdp.icmp_too_big_replies);
  compare("new_flows_limited", cpp.new_flows_limited, xdp.new_flows_limited);
  for (int reason = 0; reason < kDropReasonCount; ++reason) {
    compare("drops." + std::string(drop_reason_name(static_cast<DropReason>(reason))),
            cpp.drops[reason], xdp.drops[reason]);
  }
  for (size_t slot = 0; slot < cpp.vips.size(); ++slot) {
    const std::string name = "vip " + std::to_string(slot);
    compare(name + " packets", cpp.vips[slot].packets, xdp.vips[slot].packets);
    compare(name + " bytes", cpp.vips[slot].bytes, xdp.vips[slot].bytes);
  }
  for (size_t slot = 0; slot < cpp.backends.size(); ++slot) {
    const std::string name = "backend " + std::to_string(slot);
    compare(name + " packets", cpp.backends[slot].packets, xdp.backends[slot].packets);
    compare(name + " bytes", cpp.backends[slot].bytes, xdp.backends[slot].bytes);
    compare(name + " new_flows", cpp.backends[slot].new_flows, xdp.backends[slot].new_flows);
  }
  return text;
}

}  // namespace sluice::test
