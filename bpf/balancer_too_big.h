/* ICMP fragmentation needed and ICMPv6 packet too big for packets that would exceed the
 * egress MTU after encapsulation, byte for byte as write_too_big_reply in
 * dataplane/core/src/icmp_reply.cc writes them. The quote keeps its place in the frame. The
 * new Ethernet, IP and ICMP headers go in front of it, and the frame is cut after it.
 *
 * Included only by balancer.bpf.c.
 */
#ifndef SLUICE_BPF_BALANCER_TOO_BIG_H
#define SLUICE_BPF_BALANCER_TOO_BIG_H

#include <linux/bpf.h>
#include <linux/in.h>

#include <bpf/bpf_helpers.h>

#include "balancer_abi.h"
#include "balancer_encap.h"
#include "balancer_parse.h"

#define REPLY_TTL 64
#define DSCP_CS6 0xc0
#define CSUM_DIFF_MAX 512 /* the maximum size of one bpf_csum_diff call */

/* Folds a 32-bit one's complement sum to 16 bits. */
static __always_inline __u16 fold_checksum(__u64 sum)
{
    sum = (sum & 0xffffffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (__u16)sum;
}

/* As is_unicast_source in icmp_reply.cc, on the key's source address. */
static __always_inline int is_unicast_source(const struct parsed_packet *packet)
{
    const __u8 *address = (const __u8 *)packet->key.src;
    if (packet->family == 4)
        return address[0] < 224 && packet->key.src[0] != 0;
    if (address[0] == 0xff)
        return 0;
    return (packet->key.src[0] | packet->key.src[1] | packet->key.src[2] | packet->key.src[3]) != 0;
}

/* The one's complement sum of the quote, `size` bytes at `quote`, plus `seed`. Both quote
 * sizes are multiples of 4, so bpf_csum_diff sums them in constant-size pieces. Returns -1
 * when the quote runs past the frame, which the caller's length check rules out. */
static __always_inline __s64 quote_sum(__u8 *quote, void *data_end, __u32 size, __s64 seed)
{
    if (size == SLUICE_TOO_BIG_QUOTE_IPV4) {
        if ((void *)(quote + SLUICE_TOO_BIG_QUOTE_IPV4) > data_end)
            return -1;
        seed = bpf_csum_diff(NULL, 0, (__be32 *)quote, CSUM_DIFF_MAX, (__wsum)seed);
        if (seed < 0)
            return -1;
        return bpf_csum_diff(NULL, 0, (__be32 *)(quote + CSUM_DIFF_MAX),
                             SLUICE_TOO_BIG_QUOTE_IPV4 - CSUM_DIFF_MAX, (__wsum)seed);
    }
    if ((void *)(quote + SLUICE_TOO_BIG_QUOTE_IPV6) > data_end)
        return -1;
    seed = bpf_csum_diff(NULL, 0, (__be32 *)quote, CSUM_DIFF_MAX, (__wsum)seed);
    if (seed < 0)
        return -1;
    seed = bpf_csum_diff(NULL, 0, (__be32 *)(quote + CSUM_DIFF_MAX), CSUM_DIFF_MAX, (__wsum)seed);
    if (seed < 0)
        return -1;
    return bpf_csum_diff(NULL, 0, (__be32 *)(quote + 2 * CSUM_DIFF_MAX),
                         SLUICE_TOO_BIG_QUOTE_IPV6 - 2 * CSUM_DIFF_MAX, (__wsum)seed);
}

/* Turns the packet into its too-big reply, reporting `path_mtu`. Returns 1 with the reply in
 * the frame, or 0 with the frame unchanged when no error may be sent about the packet (the
 * cases write_too_big_reply lists). */
static __always_inline int write_too_big_reply(struct xdp_md *ctx, const struct parsed_packet *packet,
                                               const __u8 source_mac[ETH_ALEN], __u32 path_mtu)
{
    int v4 = packet->family == 4;
    if (packet->family != 4 && packet->family != 6)
        return 0;
    if (v4 && (!packet->dont_fragment || packet->fragment))
        return 0;
    if (packet->icmp_error || !is_unicast_source(packet))
        return 0;
    __u32 quote_size = v4 ? SLUICE_TOO_BIG_QUOTE_IPV4 : SLUICE_TOO_BIG_QUOTE_IPV6;
    __u32 prepend = (v4 ? IPV4_HEADER_SIZE : IPV6_HEADER_SIZE) + ICMP_HEADER_SIZE;
    if (packet->l3_length < quote_size)
        return 0;

    /* Everything the new headers need from the old frame, before it moves. */
    struct l2_tail tail;
    if (save_l2_tail(ctx, packet, &tail) < 0)
        return 0;
    __u8 router_mac[ETH_ALEN];
    __u8 *old_frame = (__u8 *)(long)ctx->data;
    if ((void *)(old_frame + ETHERNET_HEADER_SIZE) > (void *)(long)ctx->data_end)
        return 0;
    __builtin_memcpy(router_mac, old_frame + ETH_ALEN, ETH_ALEN);
    if (bpf_xdp_adjust_head(ctx, -(int)prepend))
        return 0;
    /* From here the frame has changed; a failed check below drops it (as too big), which
     * the length checks above rule out. */
    if (write_l2_header(ctx, &tail, router_mac, source_mac, 0) < 0)
        return 0;

    __u8 *frame = (__u8 *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u8 *ip = frame + (packet->l3_offset & 0x1f);
    __u16 message_length = (__u16)(ICMP_HEADER_SIZE + quote_size);
    __s64 sum;
    if (v4) {
        __u8 header[IPV4_HEADER_SIZE + ICMP_HEADER_SIZE];
        __u16 total_length = IPV4_HEADER_SIZE + message_length;
        header[0] = 0x45;
        header[1] = DSCP_CS6;
        header[2] = (__u8)(total_length >> 8);
        header[3] = (__u8)total_length;
        __builtin_memset(header + 4, 0, 4); /* ID, flags and fragment offset */
        header[8] = REPLY_TTL;
        header[9] = IPPROTO_ICMP;
        header[10] = 0;
        header[11] = 0;
        __builtin_memcpy(header + 12, &packet->key.dst[0], 4);
        __builtin_memcpy(header + 16, &packet->key.src[0], 4);
        __u16 header_checksum = ipv4_header_checksum((const __u16 *)header);
        __builtin_memcpy(header + 10, &header_checksum, 2);

        __u8 *icmp = header + IPV4_HEADER_SIZE;
        icmp[0] = 3; /* destination unreachable */
        icmp[1] = 4; /* fragmentation needed */
        __builtin_memset(icmp + 2, 0, 4);
        icmp[6] = (__u8)(path_mtu >> 8);
        icmp[7] = (__u8)path_mtu;
        if ((void *)(ip + IPV4_HEADER_SIZE + ICMP_HEADER_SIZE) > data_end)
            return 0;
        sum = bpf_csum_diff(NULL, 0, (__be32 *)icmp, ICMP_HEADER_SIZE, 0);
        if (sum < 0)
            return 0;
        sum = quote_sum(ip + IPV4_HEADER_SIZE + ICMP_HEADER_SIZE, data_end, SLUICE_TOO_BIG_QUOTE_IPV4, sum);
        if (sum < 0)
            return 0;
        __u16 checksum = (__u16)~fold_checksum((__u64)sum);
        __builtin_memcpy(icmp + 2, &checksum, 2);
        __builtin_memcpy(ip, header, IPV4_HEADER_SIZE + ICMP_HEADER_SIZE);
    } else {
        __u8 header[IPV6_HEADER_SIZE + ICMP_HEADER_SIZE];
        header[0] = 0x60;
        __builtin_memset(header + 1, 0, 3); /* traffic class 0, flow label 0 */
        header[4] = (__u8)(message_length >> 8);
        header[5] = (__u8)message_length;
        header[6] = IPPROTO_ICMPV6;
        header[7] = REPLY_TTL;
        __builtin_memcpy(header + 8, packet->key.dst, 16);
        __builtin_memcpy(header + 24, packet->key.src, 16);

        __u8 *icmp = header + IPV6_HEADER_SIZE;
        icmp[0] = 2; /* packet too big */
        icmp[1] = 0;
        icmp[2] = 0;
        icmp[3] = 0;
        icmp[4] = (__u8)(path_mtu >> 24);
        icmp[5] = (__u8)(path_mtu >> 16);
        icmp[6] = (__u8)(path_mtu >> 8);
        icmp[7] = (__u8)path_mtu;
        /* The pseudo-header (RFC 8200, section 8.1): the addresses, then the upper-layer
         * length and next header as 32-bit fields. */
        __u8 pseudo[8] = {0, 0, (__u8)(message_length >> 8), (__u8)message_length, 0, 0, 0, IPPROTO_ICMPV6};
        if ((void *)(ip + IPV6_HEADER_SIZE + ICMP_HEADER_SIZE) > data_end)
            return 0;
        sum = bpf_csum_diff(NULL, 0, (__be32 *)(header + 8), 32, 0);
        if (sum < 0)
            return 0;
        sum = bpf_csum_diff(NULL, 0, (__be32 *)pseudo, 8, (__wsum)sum);
        if (sum < 0)
            return 0;
        sum = bpf_csum_diff(NULL, 0, (__be32 *)icmp, ICMP_HEADER_SIZE, (__wsum)sum);
        if (sum < 0)
            return 0;
        sum = quote_sum(ip + IPV6_HEADER_SIZE + ICMP_HEADER_SIZE, data_end, SLUICE_TOO_BIG_QUOTE_IPV6, sum);
        if (sum < 0)
            return 0;
        __u16 checksum = (__u16)~fold_checksum((__u64)sum);
        __builtin_memcpy(icmp + 2, &checksum, 2);
        __builtin_memcpy(ip, header, IPV6_HEADER_SIZE + ICMP_HEADER_SIZE);
    }

    /* The frame ends with the quote. */
    __u32 cut = packet->frame_length - packet->l3_offset - quote_size;
    if (cut > 0 && bpf_xdp_adjust_tail(ctx, -(int)cut))
        return 0;
    return 1;
}

#endif /* SLUICE_BPF_BALANCER_TOO_BIG_H */
