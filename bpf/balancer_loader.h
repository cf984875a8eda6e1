// The XDP balancer: loads bpf/balancer.bpf.c through its libbpf skeleton, attaches it to
// interfaces and programs its maps from the same Snapshot that the DPDK data plane uses.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sluice/ip_address.h"
#include "sluice/pipeline.h"
#include "sluice/result.h"
#include "sluice/snapshot.h"

namespace sluice::bpf {

enum class AttachMode { kNative, kGeneric };

// The egress of packets forwarded from one receiving interface.
struct XdpEgress {
  int ingress_ifindex = 0;   // the receiving interface this entry applies to
  MacAddress source_mac;     // the MAC that forwarded packets carry as source
  uint32_t mtu = 1500;       // egress L3 MTU for the too-big check
  int redirect_ifindex = 0;  // 0: XDP_TX out of the receiving interface; else XDP_REDIRECT
};

class Balancer {
 public:
  // Opens and loads the program and its maps. A verifier rejection returns the verifier's
  // log in the error message.
  static Result<std::unique_ptr<Balancer>> load(uint32_t flow_table_size);
  ~Balancer();  // detaches from every interface it attached to

  Balancer(const Balancer&) = delete;
  Balancer& operator=(const Balancer&) = delete;

  // Attaches to `interface`. Errors name the interface and carry libbpf's message.
  Status attach(const std::string& interface, AttachMode mode);
  void detach_all();

  // Writes the snapshot into the maps: options, egress entries, VIPs, backends, and each
  // VIP's Maglev table as a new inner map swapped in with one update. A VIP or backend
  // absent from the snapshot is removed. On error, nothing the running program reads
  // refers to a half-written table.
  Status program(const Snapshot& snapshot, const std::vector<XdpEgress>& egress);

  // Per-CPU counters summed, in the DPDK data plane's report format.
  PipelineTotals totals() const;

  // The loaded program, for BPF_PROG_TEST_RUN in tests and benchmarks.
  int program_fd() const;

  // A copy of the Maglev table in the maps for `vip_slot`, to compare with the snapshot.
  Result<std::vector<uint32_t>> read_maglev_table(uint32_t vip_slot) const;

 private:
  struct State;
  explicit Balancer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace sluice::bpf
