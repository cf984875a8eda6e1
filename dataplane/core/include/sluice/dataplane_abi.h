/*
 * Facts that the C++ data planes and the BPF programs share: limits, drop reasons and
 * verdicts. Both sides compile this header, so nothing here is kept in sync by hand.
 */
#ifndef SLUICE_DATAPLANE_ABI_H
#define SLUICE_DATAPLANE_ABI_H

/* Backend and VIP slots are stable small integers that index counters and tables. */
#define SLUICE_MAX_VIPS 1024
#define SLUICE_MAX_BACKENDS 16384

/* Maglev table sizes: primes in this closed range. 65537 is the default. */
#define SLUICE_MAGLEV_MIN_SIZE 7
#define SLUICE_MAGLEV_MAX_SIZE 16777213
#define SLUICE_MAGLEV_DEFAULT_SIZE 65537

/* Outer header defaults for IP-in-IP and GUE. */
#define SLUICE_OUTER_TTL 64
#define SLUICE_GUE_DEFAULT_PORT 6080 /* outer UDP destination port of GUE */

/*
 * ICMP "fragmentation needed" and ICMPv6 "packet too big" replies quote this many bytes of
 * the packet that was too big: as much as fits in 576 bytes for IPv4 (RFC 1812, 4.3.2.3) and
 * in 1280 bytes for IPv6 (RFC 4443, 3.2). Egress MTUs are at least 1280 bytes, so every
 * packet that is too big after encapsulation has at least this many bytes to quote.
 */
#define SLUICE_MIN_EGRESS_MTU 1280
#define SLUICE_TOO_BIG_QUOTE_IPV4 548  /* 576 - 20 (IPv4 header) - 8 (ICMP header) */
#define SLUICE_TOO_BIG_QUOTE_IPV6 1232 /* 1280 - 40 (IPv6 header) - 8 (ICMPv6 header) */

/* The two hashes of a backend's identity that give its Maglev permutation. */
#define SLUICE_MAGLEV_OFFSET_SEED 0x9e3779b9u
#define SLUICE_MAGLEV_SKIP_SEED 0x7f4a7c15u

/*
 * Drop reasons: X(enumerator suffix, exported name). The C++ enum and the BPF counter index
 * are generated from this list, so a reason has one number and one name everywhere.
 */
#define SLUICE_DROP_REASONS(X)                                                                  \
  X(TruncatedEthernet, "truncated_ethernet")                                                    \
  X(TruncatedVlan, "truncated_vlan")                                                            \
  X(TooManyVlanTags, "too_many_vlan_tags")                                                      \
  X(TruncatedIpv4, "truncated_ipv4")                                                            \
  X(Ipv4BadVersion, "ipv4_bad_version")                                                         \
  X(Ipv4HeaderTooShort, "ipv4_header_too_short")                                                \
  X(Ipv4HeaderPastTotalLength, "ipv4_header_past_total_length")                                 \
  X(Ipv4TotalLengthPastFrame, "ipv4_total_length_past_frame")                                   \
  X(TruncatedIpv6, "truncated_ipv6")                                                            \
  X(Ipv6BadVersion, "ipv6_bad_version")                                                         \
  X(Ipv6PayloadLengthPastFrame, "ipv6_payload_length_past_frame")                               \
  X(TruncatedIpv6ExtensionHeader, "truncated_ipv6_extension_header")                            \
  X(TooManyIpv6ExtensionHeaders, "too_many_ipv6_extension_headers")                             \
  X(TruncatedTcp, "truncated_tcp")                                                              \
  X(TcpBadDataOffset, "tcp_bad_data_offset")                                                    \
  X(TruncatedUdp, "truncated_udp")                                                              \
  X(NoBackend, "no_backend")                                                                    \
  X(NoNextHop, "no_next_hop")                                                                   \
  X(UnsupportedEncapsulation, "unsupported_encapsulation")                                      \
  X(TooBigAfterEncapsulation, "too_big_after_encapsulation")                                    \
  X(NoHeadroom, "no_headroom")                                                                  \
  X(TxQueueFull, "tx_queue_full")                                                               \
  X(ExceptionQueueFull, "exception_queue_full")                                                 \
  X(MultiSegmentMbuf, "multi_segment_mbuf")                                                     \
  /* XDP only: the receiving interface has no egress entry in the balancer's map */             \
  X(NoEgress, "no_egress")

enum sluice_drop_reason {
  SLUICE_DROP_NONE = 0,
#define SLUICE_DROP_ENUM(suffix, name) SLUICE_DROP_##suffix,
  SLUICE_DROP_REASONS(SLUICE_DROP_ENUM)
#undef SLUICE_DROP_ENUM
  SLUICE_DROP_COUNT
};

/* The verdict on a packet. */
enum sluice_action {
  SLUICE_ACTION_DROP = 0,
  SLUICE_ACTION_FORWARD = 1,   /* encapsulated, sent to a backend */
  SLUICE_ACTION_TO_KERNEL = 2, /* not for a VIP: the host kernel handles it */
};

/*
 * Per-VIP session persistence: what the hash that picks a backend covers. CONNECTION hashes
 * the 5-tuple, so each connection is placed on its own. CLIENT hashes the client's address
 * only, so every connection of a client reaches the same backend while the set is stable.
 */
enum sluice_persistence {
  SLUICE_PERSISTENCE_CONNECTION = 0,
  SLUICE_PERSISTENCE_CLIENT = 1,
};

/*
 * Per-VIP encapsulation. IPIP puts the datagram right after the outer IP header (IPv4 in
 * IPv4, IPv6 in IPv6, IPv4 in IPv6). GUE puts it after an outer UDP header instead: GUE
 * variant 1 (draft-ietf-intarea-gue), where the UDP payload is the IP datagram itself, as
 * Linux's fou and gue receivers accept.
 */
enum sluice_encapsulation {
  SLUICE_ENCAP_IPIP = 0,
  SLUICE_ENCAP_GUE = 1,
};

/*
 * GUE's outer UDP source port: from the flow hash, so one flow keeps one port and a backend's
 * RSS spreads flows over its queues, in the dynamic range 49152-65535 (RFC 8086, 3.2.1), so it
 * is never 0. Both halves of the hash are folded in, so clients that share a prefix and a
 * source port still get different ports.
 */
static inline unsigned short sluice_gue_source_port(unsigned int flow_hash) {
  return (unsigned short)(0xc000u | ((flow_hash ^ (flow_hash >> 16)) & 0x3fffu));
}

#endif /* SLUICE_DATAPLANE_ABI_H */
