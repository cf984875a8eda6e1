// libFuzzer target over the whole C++ pipeline: any byte string is a frame, run through
// Pipeline::process and Pipeline::process_burst with the unit tests' snapshot (IPv4 and IPv6
// VIPs, TCP, UDP and port-0 VIPs). It checks what must hold for every input: a forwarded
// frame fits its buffer and carries the outer header the parse promised, an echo reply keeps
// its request's size, and the counters add up. AddressSanitizer and UndefinedBehaviorSanitizer catch the rest.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "sluice/pipeline.h"
#include "test_frames.h"

namespace {

using sluice::Action;
using sluice::PacketBuffer;
using sluice::Pipeline;
using sluice::Verdict;

constexpr uint32_t kHeadroom = 128;
constexpr uint64_t kNowNs = 1'000'000'000;

void require(bool condition, const char* invariant) {
  if (!condition) {
    std::fprintf(stderr, "pipeline_fuzzer: invariant broken: %s\n", invariant);
    std::abort();
  }
}

// Checks one verdict against the frame as it was before the pipeline ran.
void check(const Verdict& verdict, const PacketBuffer& before, const PacketBuffer& after,
           const sluice::EgressPort& egress) {
  if (verdict.action != Action::kForward) {
    require(after.data == before.data && after.length == before.length,
            "a packet that is not forwarded is unchanged");
    return;
  }
  require(verdict.drop == sluice::DropReason::kNone, "a forwarded packet has no drop reason");
  if (verdict.backend == Verdict::kNoSlot) {
    // An echo reply, written in place of its request, or a too-big reply: new IP and ICMP
    // headers (28 or 48 bytes) in front of a quote of 548 or 1232 bytes.
    if (after.data == before.data) {
      require(after.length == before.length, "an echo reply keeps its request's size");
      return;
    }
    const uint32_t prepended = static_cast<uint32_t>(before.data - after.data);
    require(prepended == 28 || prepended == 48, "a too-big reply adds an IP and an ICMP header");
    require(after.headroom + prepended == before.headroom, "headroom shrinks by the new headers");
    require(after.length <= 14 + 2 * 4 + (prepended == 28 ? 576 : 1280), "a too-big reply fits 576 or 1280 bytes");
    return;
  }
  require(after.data < before.data, "encapsulation moves the start into the headroom");
  const uint32_t grown = static_cast<uint32_t>(before.data - after.data);
  require(grown == 20 || grown == 28 || grown == 40 || grown == 48,
          "the outer header is 20 or 40 bytes, and GUE adds 8");
  require(after.headroom + grown == before.headroom, "headroom shrinks by the outer header");
  require(after.length <= before.length + grown, "the frame grows by the outer header at most");
  // Ethernet and up to two VLAN tags, then the outer datagram, which the MTU bounds.
  require(after.length <= egress.mtu + 14 + 2 * 4, "the encapsulated datagram fits the egress MTU");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The IPv4 VIP uses IP-in-IP and the IPv6 VIP GUE, so both encapsulations meet the input.
  static const sluice::Snapshot snapshot = [] {
    sluice::Snapshot built = sluice::test::make_snapshot();
    built.vips[1].encapsulation = SLUICE_ENCAP_GUE;
    return built;
  }();
  static Pipeline pipeline(1024);
  const sluice::EgressPort egress{sluice::MacAddress{{0x02, 0, 0, 0, 0, 0xbb}}, 1500};
  if (size > 9000) return -1;  // larger than any frame a port receives

  // The parser's fast path and its general path agree on every input.
  {
    sluice::ParsedPacket fast;
    sluice::ParsedPacket general;
    const sluice::DropReason fast_drop = sluice::parse_packet({data, size}, fast);
    const sluice::DropReason general_drop = sluice::parse_packet_general({data, size}, general);
    require(fast_drop == general_drop, "the fast path gives the general parser's drop reason");
    if (fast_drop == sluice::DropReason::kNone) {
      require(std::memcmp(&fast.key, &general.key, sizeof(fast.key)) == 0 &&
                  fast.l3_offset == general.l3_offset && fast.l4_offset == general.l4_offset &&
                  fast.l3_length == general.l3_length && fast.protocol == general.protocol &&
                  fast.tcp_flags == general.tcp_flags && fast.traffic_class == general.traffic_class &&
                  fast.dont_fragment == general.dont_fragment && fast.fragment == general.fragment &&
                  fast.has_ports == general.has_ports && fast.icmp_error == general.icmp_error,
              "the fast path parses as the general parser does");
    }
  }

  // One packet through process(), twice: the second run meets the flow entry the first made.
  for (int round = 0; round < 2; ++round) {
    std::vector<uint8_t> buffer(kHeadroom + size);
    std::memcpy(buffer.data() + kHeadroom, data, size);
    PacketBuffer packet{buffer.data() + kHeadroom, static_cast<uint32_t>(size), kHeadroom};
    const PacketBuffer before = packet;
    const Verdict verdict = pipeline.process(snapshot, packet, egress, kNowNs + round);
    check(verdict, before, packet, egress);
  }

  // The input split into a burst: frame i is the input from byte i * 7 on, so the frames of
  // one burst differ and some are truncated copies of others.
  constexpr size_t kStride = 7;
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<PacketBuffer> packets;
  for (size_t offset = 0; offset < size && buffers.size() < Pipeline::kMaxBurst; offset += kStride) {
    buffers.emplace_back(kHeadroom + size - offset);
    std::memcpy(buffers.back().data() + kHeadroom, data + offset, size - offset);
  }
  for (auto& buffer : buffers) {
    packets.push_back({buffer.data() + kHeadroom, static_cast<uint32_t>(buffer.size() - kHeadroom), kHeadroom});
  }
  const std::vector<PacketBuffer> before = packets;
  Verdict verdicts[Pipeline::kMaxBurst];
  const uint64_t received = pipeline.counters().received.get();
  pipeline.process_burst(snapshot, packets, egress, kNowNs + 2, verdicts);
  require(pipeline.counters().received.get() == received + packets.size(), "every packet is counted as received");
  for (size_t i = 0; i < packets.size(); ++i) check(verdicts[i], before[i], packets[i], egress);
  return 0;
}
