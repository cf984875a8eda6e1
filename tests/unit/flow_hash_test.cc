// Pins sluice_flow_hash to fixed values: the C++ data plane and the BPF programs must hash a
// flow the same way on every load balancer, so any change to the function has to fail here.
#include <bit>
#include <cstdint>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "sluice/flow_hash.h"
#include "test_frames.h"

namespace sluice::test {
namespace {

struct HashVector {
  const char* name;
  sluice_flow_key key;
  uint32_t seed;
  uint32_t expected;
};

// The expected values were computed once from this header. They also equal
// MurmurHash3_x86_32 with the same seed over the ten mixed words written little-endian
// (src[0..3], dst[0..3], ports, protocol and family), checked with a separate implementation.
// The words are loaded from network-order bytes, so the values hold on little-endian hosts.
const HashVector kVectors[] = {
    {"ipv4_tcp_seed_0", flow_key4(kClient4, kVip4, kNextTcp, 40000, 80), 0, 0xdd7a807cu},
    {"ipv4_tcp_seed_5eed5eed", flow_key4(kClient4, kVip4, kNextTcp, 40000, 80), 0x5eed5eedu,
     0x2da6da05u},
    {"ipv4_udp_seed_1", flow_key4({198, 51, 100, 7}, kVip4, kNextUdp, 5353, 53), 1, 0xfe375b06u},
    {"ipv4_fragment_no_ports", flow_key4(kClient4, kVip4, kNextTcp, 0, 0), 0x5eed5eedu,
     0x15f3d1a3u},
    {"ipv6_tcp_seed_0", flow_key6(kClient6, kVip6, kNextTcp, 40000, 443), 0, 0x7b91f022u},
    {"ipv6_tcp_seed_deadbeef", flow_key6(kClient6, kVip6, kNextTcp, 40000, 443), 0xdeadbeefu,
     0xbeb141cfu},
    {"zero_key_seed_0", sluice_flow_key{}, 0, 0xc2067ae9u},
};

// The IPv4 shortcut that the C++ pipeline takes gives sluice_flow_hash's value on every IPv4
// key, including the pinned ones.
TEST(FlowHash, Ipv4ShortcutMatchesTheFullHash) {
  for (const HashVector& vector : kVectors) {
    if (vector.key.family != 4) continue;
    EXPECT_EQ(sluice_flow_hash_ipv4(&vector.key, vector.seed), vector.expected) << vector.name;
  }
  std::mt19937 random(0x2545f491u);
  for (int i = 0; i < 100000; ++i) {
    sluice_flow_key key{};
    key.family = 4;
    key.src[0] = random();
    key.dst[0] = random();
    key.src_port = static_cast<uint16_t>(random());
    key.dst_port = static_cast<uint16_t>(random());
    key.protocol = static_cast<uint8_t>(random());
    const uint32_t seed = random();
    ASSERT_EQ(sluice_flow_hash_ipv4(&key, seed), sluice_flow_hash(&key, seed)) << "key " << i;
  }
}

TEST(FlowHash, MatchesPinnedVectors) {
  if constexpr (std::endian::native != std::endian::little) {
    GTEST_SKIP() << "the pinned values are for little-endian hosts";
  }
  for (const HashVector& vector : kVectors) {
    EXPECT_EQ(sluice_flow_hash(&vector.key, vector.seed), vector.expected) << vector.name;
  }
}

TEST(FlowHash, HashWords4PinnedVector) {
  const uint32_t zero_words[4] = {0, 0, 0, 0};
  EXPECT_EQ(sluice_hash_words4(zero_words, 0), 0x8134cdf8u);
}

TEST(FlowHash, SeedsGiveDifferentValues) {
  const sluice_flow_key key = flow_key4(kClient4, kVip4, kNextTcp, 40000, 80);
  std::set<uint32_t> values;
  for (uint32_t seed = 0; seed < 64; ++seed) values.insert(sluice_flow_hash(&key, seed));
  EXPECT_EQ(values.size(), 64u);
}

TEST(FlowHash, PaddingBytesIgnored) {
  sluice_flow_key key = flow_key6(kClient6, kVip6, kNextTcp, 40000, 443);
  const uint32_t expected = sluice_flow_hash(&key, 7);
  key.pad[0] = 0xff;
  key.pad[1] = 0x11;
  EXPECT_EQ(sluice_flow_hash(&key, 7), expected);
}

TEST(FlowHash, FamilySeparatesIpv4FromIpv6) {
  // An IPv6 key whose addresses have the IPv4 layout (word 0 only) still hashes apart.
  sluice_flow_key ipv4 = flow_key4(kClient4, kVip4, kNextTcp, 40000, 80);
  sluice_flow_key ipv6 = ipv4;
  ipv6.family = 6;
  EXPECT_NE(sluice_flow_hash(&ipv4, 0), sluice_flow_hash(&ipv6, 0));
}

TEST(FlowHash, EveryKeyFieldChangesHash) {
  const sluice_flow_key base = flow_key6(kClient6, kVip6, kNextTcp, 40000, 443);
  const uint32_t base_hash = sluice_flow_hash(&base, 0);

  for (int word = 0; word < 4; ++word) {
    sluice_flow_key changed = base;
    changed.src[word] ^= 1;
    EXPECT_NE(sluice_flow_hash(&changed, 0), base_hash) << "src word " << word;
    changed = base;
    changed.dst[word] ^= 1;
    EXPECT_NE(sluice_flow_hash(&changed, 0), base_hash) << "dst word " << word;
  }
  sluice_flow_key changed = base;
  changed.src_port ^= 1;
  EXPECT_NE(sluice_flow_hash(&changed, 0), base_hash) << "source port";
  changed = base;
  changed.dst_port ^= 1;
  EXPECT_NE(sluice_flow_hash(&changed, 0), base_hash) << "destination port";
  changed = base;
  changed.protocol = kNextUdp;
  EXPECT_NE(sluice_flow_hash(&changed, 0), base_hash) << "protocol";
}

TEST(FlowHash, MaglevSlotScalesHash) {
  EXPECT_EQ(sluice_maglev_slot(0, 65537), 0u);
  EXPECT_EQ(sluice_maglev_slot(0xffffffffu, 65537), 65536u);
  EXPECT_EQ(sluice_maglev_slot(0x80000000u, 65537), 32768u);
  EXPECT_EQ(sluice_maglev_slot(0x80000000u, 7), 3u);
  EXPECT_EQ(sluice_maglev_slot(0xffffffffu, SLUICE_MAGLEV_MAX_SIZE), SLUICE_MAGLEV_MAX_SIZE - 1u);
}

}  // namespace
}  // namespace sluice::test
