/* Map layout shared by the sluice-decap XDP program (decap.bpf.c) and its
 * C++ loader (decap_loader.cc). Both sides include this header, so the key,
 * the counter indices and the object names have a single definition.
 *
 * It is plain C with kernel UAPI types only, because clang compiles it for
 * the BPF target and the host C++ compiler compiles it for the loader.
 */
#ifndef SLUICE_BPF_DECAP_ABI_H
#define SLUICE_BPF_DECAP_ABI_H

#include <linux/types.h>

/* Object names as the kernel stores them. They are C identifiers because the
 * program and map definitions in decap.bpf.c use these macros as their names,
 * and each stays within BPF_OBJ_NAME_LEN - 1 (15) characters so the kernel
 * keeps it whole. The loader looks the maps of an attached program up by
 * these names. */
#define SLUICE_DECAP_PROGRAM sluice_decap
#define SLUICE_DECAP_LOCAL_ADDRESSES_MAP sl_decap_addrs
#define SLUICE_DECAP_COUNTERS_MAP sl_decap_stats

#define SLUICE_DECAP_STRINGIFY_(name) #name
#define SLUICE_DECAP_STRINGIFY(name) SLUICE_DECAP_STRINGIFY_(name)

/* Maximum number of local outer addresses the program matches. */
#define SLUICE_DECAP_MAX_LOCAL_ADDRESSES 1024

/* Values of sluice_decap_address_key.family. */
enum sluice_decap_family {
    SLUICE_DECAP_FAMILY_IPV4 = 4,
    SLUICE_DECAP_FAMILY_IPV6 = 6,
};

/* Key of the local address hash map. The address is in network byte order.
 * An IPv4 address fills address[0..3] and leaves address[4..15] zero. Every
 * byte, including reserved, is part of the hash key, so writers must zero
 * the whole struct first. */
struct sluice_decap_address_key {
    __u8 family;
    __u8 reserved[3];
    __u8 address[16];
};

/* Value of the local address hash map. Its content is not read. */
typedef __u8 sluice_decap_address_value;

/* Per-CPU packet counters, in counter-array index order:
 * X(enum constant, name used in stats output, description).
 * Every packet increments exactly one counter. */
#define SLUICE_DECAP_COUNTER_LIST(X)                                                             \
    X(SLUICE_DECAP_DECAPSULATED_IPV4, decapsulated_ipv4,                                         \
      "outer header removed, inner packet is IPv4")                                              \
    X(SLUICE_DECAP_DECAPSULATED_IPV6, decapsulated_ipv6,                                         \
      "outer header removed, inner packet is IPv6")                                              \
    X(SLUICE_DECAP_PASSED_NOT_IPIP, passed_not_ipip,                                             \
      "not IP-in-IP or GUE, or more than two VLAN tags")                                     \
    X(SLUICE_DECAP_PASSED_NOT_LOCAL, passed_not_local,                                           \
      "IP-in-IP or UDP to an outer destination that is not local")                             \
    X(SLUICE_DECAP_PASSED_MALFORMED, passed_malformed,                                           \
      "truncated or invalid Ethernet, VLAN, outer or inner IP header")                           \
    X(SLUICE_DECAP_PASSED_BAD_CHECKSUM, passed_bad_checksum,                                     \
      "local IP-in-IP or GUE whose outer IPv4 checksum is wrong")                                  \
    X(SLUICE_DECAP_PASSED_FRAGMENT, passed_fragment,                                             \
      "local IP-in-IP or GUE whose outer IPv4 packet is a fragment")                                    \
    X(SLUICE_DECAP_PASSED_IPV6_EXTENSION_HEADER, passed_ipv6_extension_header,                   \
      "outer IPv6 whose next header is an extension header, not inspected")                      \
    X(SLUICE_DECAP_PASSED_ECN_CE_NOT_ECT, passed_ecn_ce_not_ect,                                 \
      "outer ECN is CE but the inner packet is not ECN-capable (RFC 6040 says drop)")            \
    X(SLUICE_DECAP_PASSED_ADJUST_HEAD_FAILED, passed_adjust_head_failed,                         \
      "bpf_xdp_adjust_head failed, packet left as it was")                                       \
    X(SLUICE_DECAP_PASSED_GUE_CHECKSUM, passed_gue_checksum,                                     \
      "GUE with a UDP checksum, left to the kernel (Sluice sends checksum 0)")                   \
    X(SLUICE_DECAP_PASSED_UDP_NOT_GUE, passed_udp_not_gue,                                       \
      "UDP to a local address on another port than the GUE port (--gue-port)")

#define SLUICE_DECAP_COUNTER_ENUMERATOR_(id, name, description) id,
enum sluice_decap_counter {
    SLUICE_DECAP_COUNTER_LIST(SLUICE_DECAP_COUNTER_ENUMERATOR_)
    SLUICE_DECAP_COUNTER_COUNT
};
#undef SLUICE_DECAP_COUNTER_ENUMERATOR_

#endif /* SLUICE_BPF_DECAP_ABI_H */
