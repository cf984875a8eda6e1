/* Packet parsing for the XDP balancer (step 1 of the packet path): Ethernet with up to two
 * VLAN tags, IPv4 with options, IPv6 with up to six extension headers, then TCP or UDP. It
 * follows dataplane/core/src/packet.cc check for check and in the same order, so a frame
 * gets the same drop reason and the same flow key on both data planes.
 *
 * Included only by balancer.bpf.c.
 */
#ifndef SLUICE_BPF_BALANCER_PARSE_H
#define SLUICE_BPF_BALANCER_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "balancer_abi.h"

#define ETHERNET_HEADER_SIZE 14
#define VLAN_TAG_SIZE 4
#define MAX_VLAN_TAGS 2
#define IPV4_HEADER_SIZE 20 /* without options */
#define IPV6_HEADER_SIZE 40 /* without extension headers */
#define MAX_IPV6_EXTENSION_HEADERS 6
#define ICMP_HEADER_SIZE 8 /* type, code, checksum and 4 bytes, for ICMP and ICMPv6 */

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* Offsets of headers that the parser reads stay below 12,400 bytes: 22 of Ethernet and VLAN
 * tags, 40 of IPv6 and six extension headers of at most 2,048 bytes each. Masking such an
 * offset with this value leaves it unchanged and shows the verifier a bound. */
#define HEADER_OFFSET_MASK 0x3fff

/* A parsed packet: the fields of sluice::ParsedPacket, plus the frame length and the inner
 * IPv4 ID that encapsulation needs. Offsets are from the frame's start. */
struct parsed_packet {
    struct sluice_flow_key key; /* ports zero for fragments and non-TCP/UDP packets */
    __u32 frame_length;         /* the frame as received, padding included */
    __u16 l3_offset;
    __u16 l4_offset;
    __u16 l3_length;   /* IPv4 total length, or 40 + IPv6 payload length (16 bits, as in C++) */
    __u8 ipv4_id[2];   /* the inner IPv4 identification, as on the wire */
    __u8 vlan_tags;
    __u8 family;       /* 4 or 6; 0 for a frame that is not IP */
    __u8 protocol;     /* upper-layer protocol after IPv6 extension headers */
    __u8 tcp_flags;
    __u8 traffic_class; /* IPv4 TOS or IPv6 traffic class */
    __u8 dont_fragment; /* IPv4 DF bit */
    __u8 fragment;      /* MF set or a non-zero fragment offset */
    __u8 has_ports;
    __u8 icmp_error; /* an ICMP error quoting TCP or UDP; `key` is the quote reversed */
    __u8 icmp_echo_request; /* ICMP type 8 or ICMPv6 type 128, code 0 */
};

/* A read-only view of the frame. `limit` is the number of bytes that count: the frame,
 * then only the IP datagram, so Ethernet padding is never read as L4 data. */
struct cursor {
    void *data;
    void *data_end;
    __u32 limit;
};

static __always_inline int cursor_has(const struct cursor *cursor, __u32 offset, __u32 size)
{
    return offset <= cursor->limit && size <= cursor->limit - offset;
}

/* Returns the `size` bytes at `offset`, or NULL when they do not all lie below the limit.
 * `size` must be a constant. Every header read of the parser goes through here. The limit
 * never exceeds the frame, so the data_end check only serves the verifier. */
static __always_inline __u8 *cursor_bytes(const struct cursor *cursor, __u32 offset, __u32 size)
{
    if (!cursor_has(cursor, offset, size) || offset > HEADER_OFFSET_MASK)
        return NULL;
    __u8 *bytes = (__u8 *)cursor->data + (offset & HEADER_OFFSET_MASK);
    if ((void *)(bytes + size) > cursor->data_end)
        return NULL;
    return bytes;
}

static __always_inline __u16 load_be16(const __u8 *bytes)
{
    return (__u16)((bytes[0] << 8) | bytes[1]);
}

static __always_inline __u32 parse_ethernet(struct cursor *cursor, struct parsed_packet *out,
                                            __u16 *ether_type)
{
    __u8 *ethernet = cursor_bytes(cursor, 0, ETHERNET_HEADER_SIZE);
    if (!ethernet)
        return SLUICE_DROP_TruncatedEthernet;
    *ether_type = load_be16(ethernet + 12);
    __u32 offset = ETHERNET_HEADER_SIZE;

    /* Two tags are read, and a third is counted as too many before it is read. */
#pragma unroll
    for (int i = 0; i <= MAX_VLAN_TAGS; i++) {
        if (*ether_type != ETH_P_8021Q && *ether_type != ETH_P_8021AD)
            break;
        if (out->vlan_tags == MAX_VLAN_TAGS)
            return SLUICE_DROP_TooManyVlanTags;
        __u8 *tag = cursor_bytes(cursor, offset, VLAN_TAG_SIZE);
        if (!tag)
            return SLUICE_DROP_TruncatedVlan;
        *ether_type = load_be16(tag + 2);
        offset += VLAN_TAG_SIZE;
        out->vlan_tags++;
    }
    out->l3_offset = (__u16)offset;
    return SLUICE_DROP_NONE;
}

static __always_inline __u32 parse_ipv4(struct cursor *cursor, struct parsed_packet *out)
{
    __u32 l3 = out->l3_offset;
    __u8 *ip = cursor_bytes(cursor, l3, IPV4_HEADER_SIZE);
    if (!ip)
        return SLUICE_DROP_TruncatedIpv4;
    if ((ip[0] >> 4) != 4)
        return SLUICE_DROP_Ipv4BadVersion;

    __u32 header_length = (ip[0] & 0x0f) * 4u;
    __u32 total_length = load_be16(ip + 2);
    if (header_length < IPV4_HEADER_SIZE)
        return SLUICE_DROP_Ipv4HeaderTooShort;
    if (header_length > total_length)
        return SLUICE_DROP_Ipv4HeaderPastTotalLength;
    if (!cursor_has(cursor, l3, total_length))
        return SLUICE_DROP_Ipv4TotalLengthPastFrame;

    cursor->limit = l3 + total_length;
    __u16 fragment_field = load_be16(ip + 6);
    out->family = 4;
    out->traffic_class = ip[1];
    out->dont_fragment = (fragment_field & 0x4000) != 0;
    out->fragment = (fragment_field & 0x3fff) != 0; /* MF or a non-zero offset */
    out->protocol = ip[9];
    out->l3_length = (__u16)total_length;
    out->l4_offset = (__u16)(l3 + header_length);
    out->ipv4_id[0] = ip[4];
    out->ipv4_id[1] = ip[5];
    out->key.family = 4;
    out->key.protocol = ip[9];
    __builtin_memcpy(&out->key.src[0], ip + 12, 4);
    __builtin_memcpy(&out->key.dst[0], ip + 16, 4);
    return SLUICE_DROP_NONE;
}

/* Walks IPv6 extension headers to the upper-layer header. Hop-by-Hop, Routing and
 * Destination Options give their length in 8-byte units after the first 8 (RFC 8200
 * section 4), AH in 4-byte units after the first 8 (RFC 4302 section 2.2), and the Fragment
 * header is 8 bytes. One pass per extension header, plus one for the upper-layer header. */
static __always_inline __u32 parse_ipv6_extensions(const struct cursor *cursor,
                                                   struct parsed_packet *out, __u8 next_header)
{
    __u32 offset = out->l3_offset + IPV6_HEADER_SIZE;

#pragma unroll
    for (int i = 0; i <= MAX_IPV6_EXTENSION_HEADERS; i++) {
        int is_options = next_header == IPPROTO_HOPOPTS || next_header == IPPROTO_ROUTING ||
                         next_header == IPPROTO_DSTOPTS || next_header == IPPROTO_AH;
        int is_fragment = next_header == IPPROTO_FRAGMENT;
        if (!is_options && !is_fragment)
            break;
        if (i == MAX_IPV6_EXTENSION_HEADERS)
            return SLUICE_DROP_TooManyIpv6ExtensionHeaders;
        __u8 *header = cursor_bytes(cursor, offset, 8);
        if (!header)
            return SLUICE_DROP_TruncatedIpv6ExtensionHeader;

        if (is_fragment) {
            out->fragment = (load_be16(header + 2) & 0xfff9) != 0; /* offset or M flag */
            next_header = header[0];
            offset += 8;
            /* In a later fragment the bytes after this header are data (RFC 8200 section
             * 4.5), so every fragment of a datagram stops here, as packet.cc does. */
            if (out->fragment)
                break;
            continue;
        }

        __u32 length = next_header == IPPROTO_AH ? (header[1] + 2u) * 4u : (header[1] + 1u) * 8u;
        if (!cursor_has(cursor, offset, length))
            return SLUICE_DROP_TruncatedIpv6ExtensionHeader;
        next_header = header[0];
        offset += length;
    }

    out->protocol = next_header;
    out->key.protocol = next_header;
    out->l4_offset = (__u16)offset;
    return SLUICE_DROP_NONE;
}

static __always_inline __u32 parse_ipv6(struct cursor *cursor, struct parsed_packet *out)
{
    __u32 l3 = out->l3_offset;
    __u8 *ip = cursor_bytes(cursor, l3, IPV6_HEADER_SIZE);
    if (!ip)
        return SLUICE_DROP_TruncatedIpv6;
    if ((ip[0] >> 4) != 6)
        return SLUICE_DROP_Ipv6BadVersion;

    __u32 payload_length = load_be16(ip + 4);
    if (!cursor_has(cursor, l3 + IPV6_HEADER_SIZE, payload_length))
        return SLUICE_DROP_Ipv6PayloadLengthPastFrame;
    cursor->limit = l3 + IPV6_HEADER_SIZE + payload_length;
    out->family = 6;
    out->traffic_class = (__u8)(((ip[0] & 0x0f) << 4) | (ip[1] >> 4));
    out->l3_length = (__u16)(IPV6_HEADER_SIZE + payload_length);
    out->key.family = 6;
    __builtin_memcpy(out->key.src, ip + 8, 16);
    __builtin_memcpy(out->key.dst, ip + 24, 16);
    return parse_ipv6_extensions(cursor, out, ip[6]);
}

/* As parse_icmp_error in packet.cc: an ICMP or ICMPv6 error (destination unreachable, time
 * exceeded, packet too big) that quotes an IP header and 8 bytes of TCP or UDP gets the
 * reversed quote as its key. Anything else stays plain ICMP, for the kernel. */
static __always_inline void parse_icmp_error(const struct cursor *cursor, struct parsed_packet *out)
{
    __u32 l4 = out->l4_offset;
    __u8 *icmp = cursor_bytes(cursor, l4, ICMP_HEADER_SIZE);
    if (!icmp)
        return;
    __u8 type = icmp[0];
    if (type == (out->family == 4 ? 8 : 128) && icmp[1] == 0) {
        out->icmp_echo_request = 1;
        return;
    }
    int error = out->family == 4 ? (type == 3 || type == 11) : (type == 1 || type == 2 || type == 3);
    if (!error)
        return;

    __u32 quote = l4 + ICMP_HEADER_SIZE;
    __u32 quoted_l4;
    __u8 protocol;
    struct sluice_flow_key quoted;
    __builtin_memset(&quoted, 0, sizeof(quoted));
    if (out->family == 4) {
        __u8 *ip = cursor_bytes(cursor, quote, IPV4_HEADER_SIZE);
        if (!ip)
            return;
        __u32 header_length = (ip[0] & 0x0f) * 4u;
        if ((ip[0] >> 4) != 4 || header_length < IPV4_HEADER_SIZE)
            return;
        if ((load_be16(ip + 6) & 0x1fff) != 0)
            return; /* a later fragment quotes no ports */
        protocol = ip[9];
        __builtin_memcpy(&quoted.src[0], ip + 12, 4);
        __builtin_memcpy(&quoted.dst[0], ip + 16, 4);
        quoted_l4 = quote + header_length;
    } else {
        /* NOTE: a quoted IPv6 datagram with extension headers is not followed, as in C++. */
        __u8 *ip = cursor_bytes(cursor, quote, IPV6_HEADER_SIZE);
        if (!ip)
            return;
        if ((ip[0] >> 4) != 6)
            return;
        protocol = ip[6];
        __builtin_memcpy(quoted.src, ip + 8, 16);
        __builtin_memcpy(quoted.dst, ip + 24, 16);
        quoted_l4 = quote + IPV6_HEADER_SIZE;
    }
    if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
        return;
    __u8 *ports = cursor_bytes(cursor, quoted_l4, 8);
    if (!ports)
        return;

    out->key.protocol = protocol;
    __builtin_memcpy(out->key.src, quoted.dst, 16);
    __builtin_memcpy(out->key.dst, quoted.src, 16);
    __builtin_memcpy(&out->key.src_port, ports + 2, 2);
    __builtin_memcpy(&out->key.dst_port, ports, 2);
    out->icmp_error = 1;
}

static __always_inline __u32 parse_transport(const struct cursor *cursor,
                                             struct parsed_packet *out)
{
    __u32 l4 = out->l4_offset;
    __u8 *header;

    if (out->protocol == IPPROTO_TCP) {
        header = cursor_bytes(cursor, l4, 20);
        if (!header)
            return SLUICE_DROP_TruncatedTcp;
        __u32 data_offset = (header[12] >> 4) * 4u;
        if (data_offset < 20)
            return SLUICE_DROP_TcpBadDataOffset;
        if (!cursor_has(cursor, l4, data_offset))
            return SLUICE_DROP_TruncatedTcp;
        out->tcp_flags = header[13];
    } else if (out->protocol == IPPROTO_UDP) {
        header = cursor_bytes(cursor, l4, 8);
        if (!header)
            return SLUICE_DROP_TruncatedUdp;
    } else if ((out->protocol == IPPROTO_ICMP && out->family == 4) ||
               (out->protocol == IPPROTO_ICMPV6 && out->family == 6)) {
        parse_icmp_error(cursor, out);
        return SLUICE_DROP_NONE;
    } else {
        return SLUICE_DROP_NONE; /* the rest carry no ports */
    }
    __builtin_memcpy(&out->key.src_port, header, 2);
    __builtin_memcpy(&out->key.dst_port, header + 2, 2);
    out->has_ports = 1;
    return SLUICE_DROP_NONE;
}

/* Parses the frame into `out`, which the caller has zeroed. Returns SLUICE_DROP_NONE for a
 * frame that is well formed as far as the parser checks, with out->family 0 when it is not
 * IP, or the reason to drop it. */
static __always_inline __u32 parse_packet(struct xdp_md *ctx, struct parsed_packet *out)
{
    struct cursor cursor = {
        .data = (void *)(long)ctx->data,
        .data_end = (void *)(long)ctx->data_end,
    };
    cursor.limit = (__u32)(cursor.data_end - cursor.data);
    out->frame_length = cursor.limit;

    __u16 ether_type = 0;
    __u32 drop = parse_ethernet(&cursor, out, &ether_type);
    if (drop != SLUICE_DROP_NONE)
        return drop;

    if (ether_type == ETH_P_IP)
        drop = parse_ipv4(&cursor, out);
    else if (ether_type == ETH_P_IPV6)
        drop = parse_ipv6(&cursor, out);
    else
        return SLUICE_DROP_NONE; /* ARP, LLDP and the rest: family 0, for the kernel */
    if (drop != SLUICE_DROP_NONE)
        return drop;

    /* A fragment's transport header is in the first fragment only, so fragments are hashed
     * on (source, destination, protocol) and their ports are never read. */
    if (out->fragment)
        return SLUICE_DROP_NONE;
    return parse_transport(&cursor, out);
}

#endif /* SLUICE_BPF_BALANCER_PARSE_H */
