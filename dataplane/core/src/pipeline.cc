#include "sluice/pipeline.h"

#include <algorithm>

#include "sluice/icmp_reply.h"
#include "sluice/maglev.h"

namespace sluice {
namespace {

bool is_syn(const ParsedPacket& parsed) {
  return (parsed.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn;
}

uint32_t pick_from_table(const Vip& vip, uint32_t hash) {
  const uint32_t size = static_cast<uint32_t>(vip.maglev.size());
  if (size == 0) return Verdict::kNoSlot;
  const uint32_t backend = vip.maglev[sluice_maglev_slot(hash, size)];
  return backend == kMaglevEmpty ? Verdict::kNoSlot : backend;
}

}  // namespace

Pipeline::Pipeline(uint32_t flow_table_capacity) : flow_table_(flow_table_capacity) {}

void Pipeline::add_to(PipelineTotals& totals) const {
  for (size_t i = 0; i < totals.vips.size(); ++i) {
    totals.vips[i].packets += counters_.vips[i].packets.get();
    totals.vips[i].bytes += counters_.vips[i].bytes.get();
  }
  for (size_t i = 0; i < totals.backends.size(); ++i) {
    totals.backends[i].packets += counters_.backends[i].packets.get();
    totals.backends[i].bytes += counters_.backends[i].bytes.get();
    totals.backends[i].new_flows += counters_.backends[i].new_flows.get();
  }
  for (int i = 0; i < kDropReasonCount; ++i) totals.drops[i] += counters_.drops[i].get();
  totals.received += counters_.received.get();
  totals.forwarded += counters_.forwarded.get();
  totals.to_kernel += counters_.to_kernel.get();
  totals.non_syn_misses += counters_.non_syn_misses.get();
  totals.fragments += counters_.fragments.get();
  totals.icmp_errors += counters_.icmp_errors.get();
  totals.icmp_echo_replies += counters_.icmp_echo_replies.get();
  totals.icmp_too_big_replies += counters_.icmp_too_big_replies.get();
  totals.new_flows_limited += counters_.new_flows_limited.get();
  totals.busy_cycles += counters_.busy_cycles.get();
  totals.flow_entries += flow_table_.counters().entries;
  totals.flow_capacity += flow_table_.capacity();
  totals.flow_evictions += flow_table_.counters().evictions;
}

// The flood guard: new entries beyond snapshot.new_flow_limit in one second are refused, so
// that a flood of new flows cannot evict the entries of established ones. Fixed one-second
// windows, as in the XDP program.
bool Pipeline::admit_new_entry(const Snapshot& snapshot, uint64_t now_ns) {
  if (snapshot.new_flow_limit == 0) return true;
  if (now_ns - limit_window_start_ns_ >= 1'000'000'000) {
    limit_window_start_ns_ = now_ns;
    limit_window_inserts_ = 0;
  }
  if (limit_window_inserts_ >= snapshot.new_flow_limit) {
    counters_.new_flows_limited.add(1);
    return false;
  }
  ++limit_window_inserts_;
  return true;
}

Verdict Pipeline::drop(DropReason reason) {
  counters_.drops[static_cast<int>(reason)].add(1);
  return Verdict{Action::kDrop, reason};
}

Verdict Pipeline::process(const Snapshot& snapshot, PacketBuffer& packet,
                          const EgressPort& egress, uint64_t now_ns) {
  Classified classified;
  const Verdict verdict = classify(snapshot, packet, egress, classified);
  if (classified.vip == nullptr) return verdict;
  return forward(snapshot, packet, classified, egress, now_ns);
}

// Flattened: the steps of every packet inline into the three passes, without calls.
[[gnu::flatten]] void Pipeline::process_burst(const Snapshot& snapshot, std::span<PacketBuffer> packets,
                             const EgressPort& egress, uint64_t now_ns, Verdict* verdicts) {
  // Three steps, so that the cache misses of the flow table overlap instead of following
  // one another. The first classifies every packet and prefetches its bucket line. The
  // second reads the bucket and prefetches the entry whose hash matches, or for a new flow
  // its Maglev slot and the entry it will overwrite. The third finishes each packet. The
  // second step runs kLag packets behind the first, inside the same loop. By then the bucket
  // line has arrived, and the address translation of its page is still cached. The entry
  // prefetches are also spread over the loop instead of issued all at once.
  constexpr size_t kLag = 8;
  Classified classified[kMaxBurst];
  const size_t count = std::min(packets.size(), kMaxBurst);
  const auto look_up_way = [&](Classified& c) {
    if (c.vip == nullptr) return;
    if (!c.parsed.fragment) c.way = flow_table_.prefetch_entry(c.hash, now_ns);
    const bool known = c.way != FlowTable::kWays;
    if ((!known || is_syn(c.parsed)) && !c.vip->maglev.empty()) {
      __builtin_prefetch(&c.vip->maglev[sluice_maglev_slot(c.select_hash, static_cast<uint32_t>(c.vip->maglev.size()))]);
    }
  };
  for (size_t i = 0; i < count; ++i) {
    verdicts[i] = classify(snapshot, packets[i], egress, classified[i]);
    if (classified[i].vip != nullptr && !classified[i].parsed.fragment) {
      flow_table_.prefetch_bucket(classified[i].hash);
    }
    if (i >= kLag) look_up_way(classified[i - kLag]);
  }
  for (size_t i = count > kLag ? count - kLag : 0; i < count; ++i) look_up_way(classified[i]);
  for (size_t i = 0; i < count; ++i) {
    if (classified[i].vip != nullptr) verdicts[i] = forward(snapshot, packets[i], classified[i], egress, now_ns);
  }
}

Verdict Pipeline::classify(const Snapshot& snapshot, PacketBuffer& packet, const EgressPort& egress,
                           Classified& classified) {
  counters_.received.add(1);

  const DropReason parse_drop = parse_packet({packet.data, packet.length}, classified.parsed);
  if (parse_drop != DropReason::kNone) return drop(parse_drop);
  const ParsedPacket& parsed = classified.parsed;

  // The load balancer replies to an echo request to a VIP's address, whatever the VIP's port
  // and protocol, because no other host has that address: a backend would reply from its own.
  if (parsed.icmp_echo_request && !parsed.fragment && snapshot.is_vip_address(parsed.key) &&
      write_echo_reply(packet, parsed, egress.mac)) {
    counters_.icmp_echo_replies.add(1);
    return Verdict{Action::kForward};
  }

  // Classify: traffic that is not for a VIP (ARP, the host's own addresses, ICMP) belongs to
  // the kernel. An ICMP error about a VIP flow carries that flow's key, so it finds the VIP.
  if (parsed.family != 0) {
    classified.vip = parsed.fragment ? snapshot.find_fragment_vip(parsed.key) : snapshot.find_vip(parsed.key);
  }
  if (classified.vip == nullptr) {
    counters_.to_kernel.add(1);
    return Verdict{Action::kToKernel};
  }
  counters_.vips[classified.vip->slot].packets.add(1);
  counters_.vips[classified.vip->slot].bytes.add(packet.length);
  classified.hash = parsed.family == 4 ? sluice_flow_hash_ipv4(&parsed.key, snapshot.seed)
                                      : sluice_flow_hash(&parsed.key, snapshot.seed);
  classified.select_hash = classified.vip->persistence == SLUICE_PERSISTENCE_CLIENT
                               ? sluice_client_hash(&parsed.key, snapshot.seed)
                               : classified.hash;
  return Verdict{};
}

Verdict Pipeline::forward(const Snapshot& snapshot, PacketBuffer& packet, const Classified& classified,
                          const EgressPort& egress, uint64_t now_ns) {
  const ParsedPacket& parsed = classified.parsed;
  const Vip& vip = *classified.vip;
  const uint32_t hash = classified.hash;
  Selection selection;
  if (parsed.fragment) {
    // Stateless: the key of a fragment has no ports, so every fragment of a datagram hashes
    // on (source, destination, protocol) to the same backend.
    counters_.fragments.add(1);
    selection.backend = pick_from_table(vip, classified.select_hash);
  } else if (parsed.icmp_error) {
    selection = select_for_icmp_error(snapshot, vip, parsed, hash, classified.select_hash, now_ns);
  } else {
    selection = select_backend(snapshot, vip, parsed, hash, classified.select_hash, classified.way, now_ns);
  }
  if (selection.backend == Verdict::kNoSlot) return drop(DropReason::kNoBackend);
  if (snapshot.next_hop_mac.is_zero()) return drop(DropReason::kNoNextHop);

  const BackendSlot& backend = snapshot.backends[selection.backend];
  const DropReason encapsulation_drop =
      encapsulate(packet, parsed, backend.outer, vip.encapsulation, snapshot.gue_port, egress.mac,
                  snapshot.next_hop_mac, hash, egress.mtu);
  if (encapsulation_drop != DropReason::kNone) {
    // Step 5: a packet too big for the link after encapsulation gets an ICMP error, so that
    // the client lowers its path MTU. When no error may be sent about it (IPv4 without DF,
    // for one), only the drop is counted.
    if (encapsulation_drop == DropReason::kTooBigAfterEncapsulation &&
        write_too_big_reply(packet, parsed, egress.mac,
                            egress.mtu - encapsulation_overhead(backend.outer.family, vip.encapsulation))) {
      counters_.icmp_too_big_replies.add(1);
      return Verdict{Action::kForward};
    }
    return drop(encapsulation_drop);
  }

  BackendCounters& counters = counters_.backends[selection.backend];
  counters.packets.add(1);
  counters.bytes.add(packet.length);
  if (selection.new_flow) counters.new_flows.add(1);
  counters_.forwarded.add(1);
  return Verdict{Action::kForward, DropReason::kNone, selection.backend};
}

// Step 6: an ICMP error goes where its flow goes. The flow's entry wins over the table, and
// the error neither creates nor refreshes an entry, since it is not traffic of the flow.
Pipeline::Selection Pipeline::select_for_icmp_error(const Snapshot& snapshot, const Vip& vip,
                                                    const ParsedPacket& parsed, uint32_t hash,
                                                    uint32_t select_hash, uint64_t now_ns) {
  counters_.icmp_errors.add(1);
  Selection selection;
  const FlowEntry* entry = flow_table_.find(parsed.key, hash, now_ns);
  if (entry != nullptr && snapshot.backend_accepts_flow(entry->backend, entry->backend_uid)) {
    selection.backend = entry->backend;
  } else {
    selection.backend = pick_from_table(vip, select_hash);
  }
  return selection;
}

Pipeline::Selection Pipeline::select_backend(const Snapshot& snapshot, const Vip& vip,
                                             const ParsedPacket& parsed, uint32_t hash,
                                             uint32_t select_hash, uint32_t way, uint64_t now_ns) {
  if (parsed.protocol == kProtocolTcp) {
    return select_tcp_backend(snapshot, vip, parsed, hash, select_hash, way, now_ns);
  }

  Selection selection;
  const uint64_t expires = now_ns + snapshot.timeouts.udp_ns;
  FlowEntry* entry = flow_table_.find(parsed.key, hash, now_ns, way);
  if (entry != nullptr && snapshot.backend_accepts_flow(entry->backend, entry->backend_uid)) {
    flow_table_.refresh(entry, expires);
    selection.backend = entry->backend;
    return selection;
  }

  selection.backend = pick_from_table(vip, select_hash);
  if (selection.backend == Verdict::kNoSlot) return selection;
  selection.new_flow = true;
  if (!admit_new_entry(snapshot, now_ns)) return selection;
  entry = flow_table_.insert(parsed.key, hash, expires, now_ns);
  entry->backend = selection.backend;
  entry->backend_uid = snapshot.backends[selection.backend].uid;
  return selection;
}

Pipeline::Selection Pipeline::select_tcp_backend(const Snapshot& snapshot, const Vip& vip,
                                                 const ParsedPacket& parsed, uint32_t hash,
                                                 uint32_t select_hash, uint32_t way, uint64_t now_ns) {
  Selection selection;
  const bool closing = (parsed.tcp_flags & (kTcpFin | kTcpRst)) != 0;
  FlowEntry* entry = flow_table_.find(parsed.key, hash, now_ns, way);

  // A SYN always takes the current table's choice, so a client that reuses a source port
  // never sticks to the backend of an older connection. A retransmitted SYN that finds its
  // own entry unchanged is not a new flow.
  if (is_syn(parsed)) {
    selection.backend = pick_from_table(vip, select_hash);
    if (selection.backend == Verdict::kNoSlot) return selection;
    const uint32_t uid = snapshot.backends[selection.backend].uid;
    selection.new_flow = entry == nullptr || entry->backend != selection.backend ||
                         entry->backend_uid != uid || (entry->flags & kFlowClosing) != 0;
    if (entry == nullptr && !admit_new_entry(snapshot, now_ns)) return selection;
    entry = flow_table_.insert(parsed.key, hash, now_ns + snapshot.timeouts.tcp_ns, now_ns);
    entry->backend = selection.backend;
    entry->backend_uid = uid;
    return selection;
  }

  if (entry != nullptr && snapshot.backend_accepts_flow(entry->backend, entry->backend_uid)) {
    if (closing) entry->flags |= kFlowClosing;
    const bool closed = (entry->flags & kFlowClosing) != 0;
    flow_table_.refresh(entry, now_ns + (closed ? snapshot.timeouts.tcp_closing_ns
                                                : snapshot.timeouts.tcp_ns));
    selection.backend = entry->backend;
    return selection;
  }

  // A non-SYN packet without a valid entry: another load balancer or an earlier run of this
  // one served the flow, its backend went away, or a full bucket lost its entry. The table's
  // choice is what every instance with the same backends would pick. The entry made for it
  // takes a free or expired way only. Evicting a live entry would let the flows of an
  // overfull bucket evict one another in turn, each packet missing and evicting the next.
  counters_.non_syn_misses.add(1);
  selection.backend = pick_from_table(vip, select_hash);
  if (selection.backend == Verdict::kNoSlot) return selection;
  if (!admit_new_entry(snapshot, now_ns)) return selection;
  const uint64_t timeout = closing ? snapshot.timeouts.tcp_closing_ns : snapshot.timeouts.tcp_ns;
  entry = flow_table_.insert(parsed.key, hash, now_ns + timeout, now_ns, FlowTable::Overwrite::kExpiredOnly);
  if (entry == nullptr) return selection;
  entry->backend = selection.backend;
  entry->backend_uid = snapshot.backends[selection.backend].uid;
  if (closing) entry->flags |= kFlowClosing;
  return selection;
}

}  // namespace sluice
