/*
 * The flow hash, shared by the C++ core and the BPF programs.
 *
 * Every load balancer instance with the same seed hashes a flow to the same value, on either
 * data plane, so this file is the only definition. It uses 32-bit operations only, no loops
 * with a variable bound and no library calls, so the BPF verifier accepts it unchanged.
 * The mixing steps are MurmurHash3's (x86_32 variant, public domain, Austin Appleby); the
 * input is a fixed-size flow key rather than a byte string.
 */
#ifndef SLUICE_FLOW_HASH_H
#define SLUICE_FLOW_HASH_H

#if defined(__bpf__)
#include <linux/types.h>
typedef __u8 sluice_u8;
typedef __u16 sluice_u16;
typedef __u32 sluice_u32;
#else
#include <stdint.h>
typedef uint8_t sluice_u8;
typedef uint16_t sluice_u16;
typedef uint32_t sluice_u32;
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_INLINE static inline __attribute__((always_inline))

/*
 * A flow's identity. Addresses and ports are in network byte order. An IPv4 address fills
 * word 0 and leaves words 1 to 3 zero; `family` (4 or 6) keeps an IPv4 flow apart from an
 * IPv6 flow whose address happens to have that shape. Unused ports are zero.
 */
struct sluice_flow_key {
  sluice_u32 src[4];
  sluice_u32 dst[4];
  sluice_u16 src_port;
  sluice_u16 dst_port;
  sluice_u8 protocol;
  sluice_u8 family;
  sluice_u8 pad[2];
};

SLUICE_INLINE sluice_u32 sluice_rotl32(sluice_u32 x, int r) {
  return (x << r) | (x >> (32 - r));
}

SLUICE_INLINE sluice_u32 sluice_hash_mix(sluice_u32 h, sluice_u32 k) {
  k *= 0xcc9e2d51u;
  k = sluice_rotl32(k, 15);
  k *= 0x1b873593u;
  h ^= k;
  h = sluice_rotl32(h, 13);
  return h * 5u + 0xe6546b64u;
}

SLUICE_INLINE sluice_u32 sluice_hash_final(sluice_u32 h, sluice_u32 length) {
  h ^= length;
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

/* Hashes four 32-bit words, for example a 16-byte address (Maglev uses it on backends). */
SLUICE_INLINE sluice_u32 sluice_hash_words4(const sluice_u32 words[4], sluice_u32 seed) {
  sluice_u32 h = seed;
  h = sluice_hash_mix(h, words[0]);
  h = sluice_hash_mix(h, words[1]);
  h = sluice_hash_mix(h, words[2]);
  h = sluice_hash_mix(h, words[3]);
  return sluice_hash_final(h, 16);
}

/*
 * Hashes the client (source) address of a flow key with a seed: the backend choice of a VIP
 * with client persistence. The family is mixed too, so IPv4 and IPv6 clients never collide.
 */
SLUICE_INLINE sluice_u32 sluice_client_hash(const struct sluice_flow_key *key, sluice_u32 seed) {
  sluice_u32 h = seed;
  h = sluice_hash_mix(h, key->src[0]);
  h = sluice_hash_mix(h, key->src[1]);
  h = sluice_hash_mix(h, key->src[2]);
  h = sluice_hash_mix(h, key->src[3]);
  h = sluice_hash_mix(h, key->family);
  return sluice_hash_final(h, 20);
}

/*
 * Hashes a flow key with a seed. Ports are mixed as one word, source port in the high half,
 * and the protocol and family as another, so the key's padding bytes never matter.
 */
SLUICE_INLINE sluice_u32 sluice_flow_hash(const struct sluice_flow_key *key, sluice_u32 seed) {
  sluice_u32 h = seed;
  h = sluice_hash_mix(h, key->src[0]);
  h = sluice_hash_mix(h, key->src[1]);
  h = sluice_hash_mix(h, key->src[2]);
  h = sluice_hash_mix(h, key->src[3]);
  h = sluice_hash_mix(h, key->dst[0]);
  h = sluice_hash_mix(h, key->dst[1]);
  h = sluice_hash_mix(h, key->dst[2]);
  h = sluice_hash_mix(h, key->dst[3]);
  h = sluice_hash_mix(h, ((sluice_u32)key->src_port << 16) | key->dst_port);
  h = sluice_hash_mix(h, ((sluice_u32)key->protocol << 8) | key->family);
  return sluice_hash_final(h, 40);
}

/*
 * sluice_flow_hash of an IPv4 key, whose address words 1 to 3 are zero, in fewer operations:
 * mixing a zero word leaves only the rotation, multiplication and addition on h.
 */
SLUICE_INLINE sluice_u32 sluice_hash_mix_zero(sluice_u32 h) {
  return sluice_rotl32(h, 13) * 5u + 0xe6546b64u;
}

SLUICE_INLINE sluice_u32 sluice_flow_hash_ipv4(const struct sluice_flow_key *key, sluice_u32 seed) {
  sluice_u32 h = seed;
  h = sluice_hash_mix(h, key->src[0]);
  h = sluice_hash_mix_zero(sluice_hash_mix_zero(sluice_hash_mix_zero(h)));
  h = sluice_hash_mix(h, key->dst[0]);
  h = sluice_hash_mix_zero(sluice_hash_mix_zero(sluice_hash_mix_zero(h)));
  h = sluice_hash_mix(h, ((sluice_u32)key->src_port << 16) | key->dst_port);
  h = sluice_hash_mix(h, ((sluice_u32)key->protocol << 8) | key->family);
  return sluice_hash_final(h, 40);
}

/*
 * Maps a flow hash onto a Maglev table of `size` entries: (hash * size) / 2^32, which spreads
 * as evenly as hash % size but needs a multiplication instead of a division.
 */
SLUICE_INLINE sluice_u32 sluice_maglev_slot(sluice_u32 hash, sluice_u32 size) {
  return (sluice_u32)(((unsigned long long)hash * size) >> 32);
}

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_FLOW_HASH_H */
