/* sluice-decap: XDP program that removes the outer IP header of IP-in-IP
 * packets, and the outer IP and UDP headers of GUE packets, sent to a local
 * address, so a backend without the ipip, sit or fou module receives the
 * inner packet.
 *
 * Accepted outer/inner pairs: IPv4 protocol 4 (IPv4), IPv4 protocol 41
 * (IPv6), IPv6 next header 41 (IPv6), IPv6 next header 4 (IPv4). GUE is UDP
 * to the GUE port (sluice_decap_gue_port) over IPv4 or IPv6 with checksum 0,
 * in variant 1: the UDP payload is an IPv4 or IPv6 packet, which its version
 * field identifies. Up to two
 * VLAN tags (802.1Q or 802.1ad) may precede the outer header. The Ethernet
 * header and its tags are kept, and its last EtherType is set to the inner
 * family. Every other packet is returned with XDP_PASS unchanged. The program
 * never drops a packet.
 *
 * As the kernel would before its ipip handler, the program verifies the
 * outer IPv4 header checksum and leaves outer fragments to the kernel. Like
 * the kernel's ip_tunnel_rcv, it copies a CE mark from the outer header to an
 * ECN-capable inner header (RFC 6040).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "decap_abi.h"

/* The kernel checks this string only before allowing GPL-only helpers, and
 * the program calls none.
 * TODO: replace with the project's license once it has one. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, SLUICE_DECAP_MAX_LOCAL_ADDRESSES);
    __type(key, struct sluice_decap_address_key);
    __type(value, sluice_decap_address_value);
} SLUICE_DECAP_LOCAL_ADDRESSES_MAP SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, SLUICE_DECAP_COUNTER_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} SLUICE_DECAP_COUNTERS_MAP SEC(".maps");

/* GUE's UDP destination port, network byte order; the loader sets it before
 * loading. */
volatile const __be16 sluice_decap_gue_port = 0;

#define MAX_VLAN_TAGS 2
#define UDP_HEADER_LENGTH 8
#define IPV4_MIN_HEADER_LENGTH 20
#define IPV6_HEADER_LENGTH 40

/* Flags and offset field of the IPv4 frag_off word, host byte order. */
#define IPV4_MORE_FRAGMENTS 0x2000
#define IPV4_FRAGMENT_OFFSET 0x1fff

/* ECN codepoints (RFC 3168), the low two bits of the traffic class. */
#define ECN_MASK 0x3
#define ECN_NOT_ECT 0x0
#define ECN_CE 0x3

/* Ethernet header layout of the received frame, saved before the outer IP
 * header is removed and written again in front of the inner packet. */
struct l2_header {
    __u8 macs[2 * ETH_ALEN];
    __u8 vlan_tags[MAX_VLAN_TAGS][4]; /* TPID and TCI, as on the wire */
    __u32 vlan_tag_count;
};

/* Result of parsing an accepted outer header. */
struct outer_header {
    __u32 header_length;    /* bytes to remove after the L2 header */
    __u32 packet_length;    /* outer header and payload, from its length field */
    __u8 ecn;               /* ECN bits of the outer header */
    __u8 inner_protocol;    /* IPPROTO_IPIP or IPPROTO_IPV6 */
};

static __always_inline int pass_and_count(__u32 counter)
{
    __u64 *value = bpf_map_lookup_elem(&SLUICE_DECAP_COUNTERS_MAP, &counter);

    if (value)
        *value += 1;
    return XDP_PASS;
}

static __always_inline int is_local_address(__u8 family, const void *address, __u32 length)
{
    struct sluice_decap_address_key key;

    __builtin_memset(&key, 0, sizeof(key));
    key.family = family;
    if (length == 4)
        __builtin_memcpy(key.address, address, 4);
    else
        __builtin_memcpy(key.address, address, 16);
    return bpf_map_lookup_elem(&SLUICE_DECAP_LOCAL_ADDRESSES_MAP, &key) != NULL;
}

static __always_inline __u16 fold_checksum(__u32 sum)
{
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (__u16)sum;
}

/* Returns 1 when the one's complement sum over the IPv4 header, including
 * its checksum field, is 0xffff. header_length is 20..60 and the caller has
 * checked that the whole header lies before data_end, so the per-word check
 * against data_end only serves the verifier. */
static __always_inline int ipv4_checksum_is_valid(const struct iphdr *ip, __u32 header_length,
                                                  const void *data_end)
{
    const __u16 *word = (const __u16 *)ip;
    __u32 sum = 0;

    /* Unrolled so every bounds check below has a constant offset, which
     * the verifier can follow. */
#pragma unroll
    for (__u32 i = 0; i < 60 / 2; i++) {
        if (i * 2 < header_length && (const void *)(word + i + 1) <= data_end)
            sum += word[i];
    }
    return fold_checksum(sum) == 0xffff;
}

/* Returns the ECN bits of an IPv4 or IPv6 header that starts at header. */
static __always_inline __u8 read_ecn(const __u8 *header, __u8 version)
{
    if (version == 4)
        return header[1] & ECN_MASK;
    return (header[1] >> 4) & ECN_MASK;
}

/* Sets the inner ECN field to CE and, for IPv4, updates the header checksum
 * incrementally (RFC 1624, equation 3). */
static __always_inline void mark_inner_ce(__u8 *header, __u8 version)
{
    if (version == 6) {
        header[1] |= ECN_CE << 4;
        return;
    }

    struct iphdr *ip = (struct iphdr *)header;
    __u16 old_word = *(__u16 *)header;

    header[1] |= ECN_CE;
    __u16 new_word = *(__u16 *)header;
    __u32 sum = (__u16)~ip->check;
    sum += (__u16)~old_word;
    sum += new_word;
    ip->check = ~fold_checksum(sum);
}

/* Parses the UDP header of a GUE packet at udp, whose length from the outer IP
 * header is udp_length. Returns -1 and completes outer when it is GUE variant
 * 1 to the GUE port, or the counter for a packet that is passed unchanged. */
static __always_inline int parse_gue(const __u8 *udp, void *data_end, __u32 udp_length,
                                     struct outer_header *outer)
{
    if ((void *)(udp + UDP_HEADER_LENGTH + 1) > data_end)
        return SLUICE_DECAP_PASSED_MALFORMED;
    if (*(const __be16 *)(udp + 2) != sluice_decap_gue_port || sluice_decap_gue_port == 0)
        return SLUICE_DECAP_PASSED_UDP_NOT_GUE;
    if (bpf_ntohs(*(const __be16 *)(udp + 4)) != udp_length)
        return SLUICE_DECAP_PASSED_MALFORMED;
    if (*(const __u16 *)(udp + 6) != 0)
        return SLUICE_DECAP_PASSED_GUE_CHECKSUM;

    /* Variant 1 starts with the inner IP version: 4 or 6. A GUE header
     * (variant 0) starts with the bits 00 and is not handled here. */
    __u8 version = udp[UDP_HEADER_LENGTH] >> 4;
    if (version == 4)
        outer->inner_protocol = IPPROTO_IPIP;
    else if (version == 6)
        outer->inner_protocol = IPPROTO_IPV6;
    else
        return SLUICE_DECAP_PASSED_NOT_IPIP;
    outer->header_length += UDP_HEADER_LENGTH;
    return -1;
}

/* Parses an outer IPv4 header at ip. Returns -1 and fills outer when the
 * packet is local IP-in-IP with a valid outer header, or returns the counter
 * to increment for a packet that is passed unchanged. */
static __always_inline int parse_outer_ipv4(struct iphdr *ip, void *data_end,
                                            struct outer_header *outer)
{
    if ((void *)(ip + 1) > data_end)
        return SLUICE_DECAP_PASSED_MALFORMED;
    if (ip->version != 4 || ip->ihl < 5)
        return SLUICE_DECAP_PASSED_MALFORMED;
    if (ip->protocol != IPPROTO_IPIP && ip->protocol != IPPROTO_IPV6 && ip->protocol != IPPROTO_UDP)
        return SLUICE_DECAP_PASSED_NOT_IPIP;
    if (!is_local_address(SLUICE_DECAP_FAMILY_IPV4, &ip->daddr, 4))
        return SLUICE_DECAP_PASSED_NOT_LOCAL;

    __u32 header_length = ip->ihl * 4;
    __u32 total_length = bpf_ntohs(ip->tot_len);

    /* total_length may be shorter than the frame (Ethernet padding), never
     * longer. */
    if ((void *)ip + header_length > data_end)
        return SLUICE_DECAP_PASSED_MALFORMED;
    if (total_length < header_length || (void *)ip + total_length > data_end)
        return SLUICE_DECAP_PASSED_MALFORMED;
    /* NOTE: a backend without the ipip module reassembles such packets and
     * then drops them, so the load balancer must not fragment outer packets. */
    if (ip->frag_off & bpf_htons(IPV4_MORE_FRAGMENTS | IPV4_FRAGMENT_OFFSET))
        return SLUICE_DECAP_PASSED_FRAGMENT;
    if (!ipv4_checksum_is_valid(ip, header_length, data_end))
        return SLUICE_DECAP_PASSED_BAD_CHECKSUM;

    outer->header_length = header_length;
    outer->packet_length = total_length;
    outer->ecn = ip->tos & ECN_MASK;
    outer->inner_protocol = ip->protocol;
    if (ip->protocol == IPPROTO_UDP) {
        /* header_length is 20..60; the mask shows the verifier the bound. */
        const __u8 *udp = (const __u8 *)ip + (header_length & 0x3f);
        return parse_gue(udp, data_end, total_length - header_length, outer);
    }
    return -1;
}

/* Parses an outer IPv6 header, with the same return values as
 * parse_outer_ipv4. */
static __always_inline int parse_outer_ipv6(struct ipv6hdr *ip6, void *data_end,
                                            struct outer_header *outer)
{
    if ((void *)(ip6 + 1) > data_end)
        return SLUICE_DECAP_PASSED_MALFORMED;
    if (ip6->version != 6)
        return SLUICE_DECAP_PASSED_MALFORMED;

    switch (ip6->nexthdr) {
    case IPPROTO_IPIP:
    case IPPROTO_IPV6:
    case IPPROTO_UDP:
        break;
    case IPPROTO_HOPOPTS:
    case IPPROTO_ROUTING:
    case IPPROTO_FRAGMENT:
    case IPPROTO_ESP:
    case IPPROTO_AH:
    case IPPROTO_DSTOPTS:
    case IPPROTO_MH:
    case 139: /* Host Identity Protocol, RFC 7401 */
    case 140: /* Shim6, RFC 5533 */
        /* An IP-in-IP payload may follow these headers, but walking the
         * chain is not supported, so the kernel gets the packet as it is. */
        return SLUICE_DECAP_PASSED_IPV6_EXTENSION_HEADER;
    default:
        return SLUICE_DECAP_PASSED_NOT_IPIP;
    }

    if (!is_local_address(SLUICE_DECAP_FAMILY_IPV6, &ip6->daddr, 16))
        return SLUICE_DECAP_PASSED_NOT_LOCAL;

    __u32 payload_length = bpf_ntohs(ip6->payload_len);

    if ((void *)(ip6 + 1) + payload_length > data_end)
        return SLUICE_DECAP_PASSED_MALFORMED;

    outer->header_length = IPV6_HEADER_LENGTH;
    outer->packet_length = IPV6_HEADER_LENGTH + payload_length;
    outer->ecn = read_ecn((const __u8 *)ip6, 6);
    outer->inner_protocol = ip6->nexthdr;
    if (ip6->nexthdr == IPPROTO_UDP)
        return parse_gue((const __u8 *)(ip6 + 1), data_end, payload_length, outer);
    return -1;
}

/* Checks the version field and the header length of the inner header. The
 * caller has checked that its minimum length lies before data_end. */
static __always_inline int inner_header_is_valid(const __u8 *inner, __u8 version)
{
    if (version == 4)
        return (inner[0] >> 4) == 4 && (inner[0] & 0xf) >= 5;
    return (inner[0] >> 4) == 6;
}

/* Removes outer_length bytes after the L2 header and writes the saved L2
 * header, with inner_ethertype as its last EtherType, in front of the inner
 * packet. Returns 0, or -1 when bpf_xdp_adjust_head failed and the packet is
 * unchanged. */
static __always_inline int remove_outer_header(struct xdp_md *ctx, const struct l2_header *l2,
                                               __u32 outer_length, __be16 inner_ethertype)
{
    if (bpf_xdp_adjust_head(ctx, (int)outer_length))
        return -1;

    /* adjust_head invalidates every packet pointer, so start again. */
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u8 *cursor = data;

    if ((void *)(cursor + sizeof(l2->macs) + sizeof(l2->vlan_tags) + sizeof(__be16)) >
        data_end) {
        /* Unreachable: the inner header (20 bytes or more) follows the
         * 14..22 byte L2 header, but the verifier needs the check. */
        return 0;
    }
    __builtin_memcpy(cursor, l2->macs, sizeof(l2->macs));
    cursor += sizeof(l2->macs);
    if (l2->vlan_tag_count > 0) {
        __builtin_memcpy(cursor, l2->vlan_tags[0], sizeof(l2->vlan_tags[0]));
        cursor += sizeof(l2->vlan_tags[0]);
    }
    if (l2->vlan_tag_count > 1) {
        __builtin_memcpy(cursor, l2->vlan_tags[1], sizeof(l2->vlan_tags[1]));
        cursor += sizeof(l2->vlan_tags[1]);
    }
    __builtin_memcpy(cursor, &inner_ethertype, sizeof(inner_ethertype));
    return 0;
}

SEC("xdp")
int SLUICE_DECAP_PROGRAM(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct l2_header l2;

    if ((void *)(eth + 1) > data_end)
        return pass_and_count(SLUICE_DECAP_PASSED_MALFORMED);

    __builtin_memset(&l2, 0, sizeof(l2));
    __builtin_memcpy(l2.macs, eth, sizeof(l2.macs));

    __be16 ethertype = eth->h_proto;
    __u32 l2_length = sizeof(*eth);

    for (__u32 i = 0; i < MAX_VLAN_TAGS; i++) {
        if (ethertype != bpf_htons(ETH_P_8021Q) && ethertype != bpf_htons(ETH_P_8021AD))
            break;
        /* A tag is the TPID (the EtherType just read) and the TCI, and the
         * EtherType of the next header follows it. */
        __u8 *tag = (__u8 *)data + sizeof(l2.macs) + i * sizeof(l2.vlan_tags[0]);
        __be16 *next_ethertype = (__be16 *)(tag + sizeof(l2.vlan_tags[0]));
        if ((void *)(next_ethertype + 1) > data_end)
            return pass_and_count(SLUICE_DECAP_PASSED_MALFORMED);
        __builtin_memcpy(l2.vlan_tags[i], tag, sizeof(l2.vlan_tags[i]));
        l2.vlan_tag_count = i + 1;
        ethertype = *next_ethertype;
        l2_length += sizeof(l2.vlan_tags[0]);
    }

    struct outer_header outer = {};
    int pass_counter;

    if (ethertype == bpf_htons(ETH_P_IP))
        pass_counter = parse_outer_ipv4(data + l2_length, data_end, &outer);
    else if (ethertype == bpf_htons(ETH_P_IPV6))
        pass_counter = parse_outer_ipv6(data + l2_length, data_end, &outer);
    else
        /* Includes a third VLAN tag: the program looks no deeper. */
        pass_counter = SLUICE_DECAP_PASSED_NOT_IPIP;
    if (pass_counter >= 0)
        return pass_and_count(pass_counter);

    __u8 inner_version = outer.inner_protocol == IPPROTO_IPIP ? 4 : 6;
    __u32 inner_min_length = inner_version == 4 ? IPV4_MIN_HEADER_LENGTH : IPV6_HEADER_LENGTH;
    __u8 *inner = (__u8 *)data + l2_length + outer.header_length;

    if (outer.header_length + inner_min_length > outer.packet_length)
        return pass_and_count(SLUICE_DECAP_PASSED_MALFORMED);
    /* Implied by the check above, because the parsers checked packet_length
     * against data_end, but the verifier needs it spelled out. */
    if ((void *)(inner + IPV4_MIN_HEADER_LENGTH) > data_end)
        return pass_and_count(SLUICE_DECAP_PASSED_MALFORMED);
    if (!inner_header_is_valid(inner, inner_version))
        return pass_and_count(SLUICE_DECAP_PASSED_MALFORMED);

    int mark_ce = 0;
    if (outer.ecn == ECN_CE) {
        __u8 inner_ecn = read_ecn(inner, inner_version);
        if (inner_ecn == ECN_NOT_ECT)
            return pass_and_count(SLUICE_DECAP_PASSED_ECN_CE_NOT_ECT);
        mark_ce = inner_ecn != ECN_CE;
    }

    __be16 inner_ethertype = inner_version == 4 ? bpf_htons(ETH_P_IP) : bpf_htons(ETH_P_IPV6);

    if (remove_outer_header(ctx, &l2, outer.header_length, inner_ethertype) < 0)
        return pass_and_count(SLUICE_DECAP_PASSED_ADJUST_HEAD_FAILED);

    if (mark_ce) {
        /* Marked only now, so a failed adjust_head leaves the packet as it
         * was. The inner header moved to data + l2_length. */
        data = (void *)(long)ctx->data;
        data_end = (void *)(long)ctx->data_end;
        inner = (__u8 *)data + l2_length;
        if ((void *)(inner + IPV4_MIN_HEADER_LENGTH) <= data_end)
            mark_inner_ce(inner, inner_version);
    }
    return pass_and_count(inner_version == 4 ? SLUICE_DECAP_DECAPSULATED_IPV4
                                             : SLUICE_DECAP_DECAPSULATED_IPV6);
}
