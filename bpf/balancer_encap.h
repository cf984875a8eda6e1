/* Encapsulation for the XDP balancer (step 5 of the packet path): IP-in-IP (IPv4 in IPv4,
 * RFC 2003; IPv6 in IPv6 and IPv4 in IPv6, RFC 2473) and GUE variant 1, byte for byte as
 * dataplane/core/src/encap.cc writes them. The Ethernet header and VLAN tags move forward into the headroom, their MAC
 * addresses are rewritten, the outer header goes between them and the inner datagram, and
 * Ethernet padding after the datagram is cut.
 *
 * Included only by balancer.bpf.c.
 */
#ifndef SLUICE_BPF_BALANCER_ENCAP_H
#define SLUICE_BPF_BALANCER_ENCAP_H

#include <linux/bpf.h>
#include <linux/in.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "balancer_abi.h"
#include "balancer_parse.h"

/* The largest L3 offset: Ethernet and two VLAN tags. */
#define MAX_L3_OFFSET (ETHERNET_HEADER_SIZE + MAX_VLAN_TAGS * VLAN_TAG_SIZE)

#define UDP_HEADER_SIZE 8

/* Inputs of the outer header. */
struct encapsulation {
    const struct sluice_lb_options *options;
    const struct sluice_lb_backend *backend;
    const struct sluice_lb_egress *egress;
    __u32 flow_hash; /* the IPv6 flow label is its low 20 bits, GUE's source port comes from it */
    __u32 gue;       /* the VIP's encapsulation is SLUICE_ENCAP_GUE */
};

/* As sluice::encapsulation_overhead. */
static __always_inline __u32 encapsulation_overhead(__u8 outer_family, __u32 gue)
{
    __u32 ip = outer_family == 4 ? IPV4_HEADER_SIZE : IPV6_HEADER_SIZE;
    return gue ? ip + UDP_HEADER_SIZE : ip;
}

static __always_inline __u16 ipv4_header_checksum(const __u16 *words)
{
    __u32 sum = 0;

#pragma unroll
    for (int i = 0; i < IPV4_HEADER_SIZE / 2; i++)
        sum += words[i];
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (__u16)~sum;
}

/* The outer IPv4 header: the inner datagram's TOS, DF bit and ID, and TTL SLUICE_OUTER_TTL.
 * encap.cc gives the reasons. Only IPv4 datagrams travel in IPv4. */
static __always_inline void build_outer_ipv4(__u8 outer[IPV4_HEADER_SIZE],
                                             const struct parsed_packet *packet,
                                             const struct encapsulation *params, __u8 protocol,
                                             __u16 total_length)
{
    outer[0] = 0x45; /* version 4, IHL 5: no options */
    outer[1] = packet->traffic_class;
    outer[2] = (__u8)(total_length >> 8);
    outer[3] = (__u8)total_length;
    outer[4] = packet->ipv4_id[0];
    outer[5] = packet->ipv4_id[1];
    outer[6] = packet->dont_fragment ? 0x40 : 0;
    outer[7] = 0;
    outer[8] = SLUICE_OUTER_TTL;
    outer[9] = protocol;
    outer[10] = 0;
    outer[11] = 0;
    __builtin_memcpy(outer + 12, &params->options->source_ipv4, 4);
    __builtin_memcpy(outer + 16, &params->backend->address[0], 4);

    /* The one's complement sum does not depend on byte order (RFC 1071 section 2), so
     * summing the words as loaded gives the checksum in network byte order. */
    __u16 checksum = ipv4_header_checksum((const __u16 *)outer);
    __builtin_memcpy(outer + 10, &checksum, 2);
}

/* The outer IPv6 header: the inner traffic class, and a flow label from the flow hash so
 * one flow keeps one label on ECMP paths (RFC 6438). */
static __always_inline void build_outer_ipv6(__u8 outer[IPV6_HEADER_SIZE],
                                             const struct parsed_packet *packet,
                                             const struct encapsulation *params, __u8 next_header,
                                             __u16 payload_length)
{
    __u32 flow_label = params->flow_hash & 0xfffff;

    outer[0] = (__u8)(0x60 | (packet->traffic_class >> 4));
    outer[1] = (__u8)((packet->traffic_class << 4) | (flow_label >> 16));
    outer[2] = (__u8)(flow_label >> 8);
    outer[3] = (__u8)flow_label;
    outer[4] = (__u8)(payload_length >> 8);
    outer[5] = (__u8)payload_length;
    outer[6] = next_header;
    outer[7] = SLUICE_OUTER_TTL;
    __builtin_memcpy(outer + 8, params->options->source_ipv6, 16);
    __builtin_memcpy(outer + 24, params->backend->address, 16);
}

/* GUE variant 1: a UDP header whose payload is the datagram, with checksum 0 (encap.h explains
 * why that is allowed). */
static __always_inline void build_gue_udp(__u8 udp[UDP_HEADER_SIZE], const struct parsed_packet *packet,
                                          const struct encapsulation *params)
{
    __u16 source_port = sluice_gue_source_port(params->flow_hash);
    __u16 length = (__u16)(UDP_HEADER_SIZE + packet->l3_length);

    udp[0] = (__u8)(source_port >> 8);
    udp[1] = (__u8)source_port;
    __builtin_memcpy(udp + 2, &params->options->gue_port, 2);
    udp[4] = (__u8)(length >> 8);
    udp[5] = (__u8)length;
    udp[6] = 0;
    udp[7] = 0;
}

/* The bytes of the received L2 header after the MAC addresses: VLAN tags and EtherType,
 * 2 to 10 bytes. */
struct l2_tail {
    __u8 bytes[MAX_L3_OFFSET - 2 * ETH_ALEN];
    __u32 length;
};

/* Copies the L2 tail of the received frame. Returns 0, or -1 when the frame is shorter than
 * the longest tail, which a parsed IP packet (at least 34 bytes) never is. */
static __always_inline int save_l2_tail(struct xdp_md *ctx, const struct parsed_packet *packet,
                                        struct l2_tail *tail)
{
    const __u8 *frame = (const __u8 *)(long)ctx->data;
    if ((void *)(frame + MAX_L3_OFFSET) > (void *)(long)ctx->data_end)
        return -1;

    __builtin_memset(tail, 0, sizeof(*tail));
    tail->length = packet->l3_offset - 2 * ETH_ALEN;
#pragma unroll
    for (__u32 i = 0; i < sizeof(tail->bytes); i++) {
        if (i < tail->length)
            tail->bytes[i] = frame[2 * ETH_ALEN + i];
    }
    return 0;
}

/* Writes the L2 header at the frame start: `destination` and `source` MACs, then the saved
 * tail, with the EtherType changed to IPv6 when `ipv6_ether_type` is set (IPv4 in IPv6). */
static __always_inline int write_l2_header(struct xdp_md *ctx, const struct l2_tail *tail,
                                           const __u8 destination[ETH_ALEN], const __u8 source[ETH_ALEN],
                                           int ipv6_ether_type)
{
    __u8 *frame = (__u8 *)(long)ctx->data;
    if ((void *)(frame + MAX_L3_OFFSET) > (void *)(long)ctx->data_end)
        return -1;

    __builtin_memcpy(frame, destination, ETH_ALEN);
    __builtin_memcpy(frame + ETH_ALEN, source, ETH_ALEN);
#pragma unroll
    for (__u32 i = 0; i < sizeof(tail->bytes); i++) {
        if (i < tail->length)
            frame[2 * ETH_ALEN + i] = tail->bytes[i];
        if (ipv6_ether_type && i + 2 == tail->length)
            frame[2 * ETH_ALEN + i] = 0x86;
        if (ipv6_ether_type && i + 1 == tail->length)
            frame[2 * ETH_ALEN + i] = 0xdd;
    }
    return 0;
}

/* Encapsulates the packet in place, as sluice::encapsulate. Returns SLUICE_DROP_NONE, or why
 * the packet cannot be sent. A dropped frame is left as it was, except when a step after
 * bpf_xdp_adjust_head fails, which the parser's checks rule out. */
static __always_inline __u32 encapsulate(struct xdp_md *ctx, const struct parsed_packet *packet,
                                         const struct encapsulation *params)
{
    /* The outer family is the backend's. IPv4 travels in IPv4 or IPv6, IPv6 only in IPv6. */
    __u8 outer_family = params->backend->family;
    __u8 source_family = outer_family == 4 ? params->options->source_ipv4_family
                                           : params->options->source_ipv6_family;
    if ((outer_family != 4 && outer_family != 6) || source_family != outer_family ||
        (packet->family == 6 && outer_family == 4))
        return SLUICE_DROP_UnsupportedEncapsulation;

    __u32 gue = params->gue;
    __u32 ip_size = outer_family == 4 ? IPV4_HEADER_SIZE : IPV6_HEADER_SIZE;
    __u32 overhead = encapsulation_overhead(outer_family, gue);
    if ((__u32)packet->l3_length + overhead > params->egress->mtu)
        return SLUICE_DROP_TooBigAfterEncapsulation;

    struct l2_tail tail;
    if (save_l2_tail(ctx, packet, &tail) < 0)
        return SLUICE_DROP_TruncatedEthernet;
    if (bpf_xdp_adjust_head(ctx, -(int)overhead))
        return SLUICE_DROP_NoHeadroom;

    /* The frame grew by `overhead` bytes in front, so it is longer than before and the
     * checks in write_l2_header and below only serve the verifier. */
    if (write_l2_header(ctx, &tail, params->options->next_hop_mac, params->egress->source_mac,
                        outer_family != packet->family) < 0)
        return SLUICE_DROP_NoHeadroom;

    __u8 *frame = (__u8 *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    /* l3_offset is at most MAX_L3_OFFSET (22), so the mask changes nothing but shows the
     * verifier a bound. */
    __u8 *outer = frame + (packet->l3_offset & 0x1f);
    __u8 inner_protocol = packet->family == 4 ? IPPROTO_IPIP : IPPROTO_IPV6;
    __u8 protocol = gue ? IPPROTO_UDP : inner_protocol;
    __u16 payload_length = (__u16)(overhead - ip_size + packet->l3_length);
    if (outer_family == 4) {
        __u8 header[IPV4_HEADER_SIZE + UDP_HEADER_SIZE];
        build_outer_ipv4(header, packet, params, protocol, (__u16)(IPV4_HEADER_SIZE + payload_length));
        if (gue) {
            build_gue_udp(header + IPV4_HEADER_SIZE, packet, params);
            if ((void *)(outer + IPV4_HEADER_SIZE + UDP_HEADER_SIZE) > data_end)
                return SLUICE_DROP_NoHeadroom;
            __builtin_memcpy(outer, header, IPV4_HEADER_SIZE + UDP_HEADER_SIZE);
        } else {
            if ((void *)(outer + IPV4_HEADER_SIZE) > data_end)
                return SLUICE_DROP_NoHeadroom;
            __builtin_memcpy(outer, header, IPV4_HEADER_SIZE);
        }
    } else {
        __u8 header[IPV6_HEADER_SIZE + UDP_HEADER_SIZE];
        build_outer_ipv6(header, packet, params, protocol, payload_length);
        if (gue) {
            build_gue_udp(header + IPV6_HEADER_SIZE, packet, params);
            if ((void *)(outer + IPV6_HEADER_SIZE + UDP_HEADER_SIZE) > data_end)
                return SLUICE_DROP_NoHeadroom;
            __builtin_memcpy(outer, header, IPV6_HEADER_SIZE + UDP_HEADER_SIZE);
        } else {
            if ((void *)(outer + IPV6_HEADER_SIZE) > data_end)
                return SLUICE_DROP_NoHeadroom;
            __builtin_memcpy(outer, header, IPV6_HEADER_SIZE);
        }
    }

    /* Cut Ethernet padding: the frame ends where the inner datagram ends. */
    __u32 padding = packet->frame_length - packet->l3_offset - packet->l3_length;
    /* NOTE: for a single-buffer frame the kernel rejects a shrink only when it would leave
     * fewer than 14 bytes, which a parsed IP packet never does. So this no_headroom drop is
     * not expected to happen. */
    if (padding > 0 && bpf_xdp_adjust_tail(ctx, -(int)padding))
        return SLUICE_DROP_NoHeadroom;
    return SLUICE_DROP_NONE;
}

#endif /* SLUICE_BPF_BALANCER_ENCAP_H */
