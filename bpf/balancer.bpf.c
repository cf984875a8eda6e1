/* sluice_balancer: the XDP load balancer. It runs the steps of sluice::Pipeline::process
 * (dataplane/core/src/pipeline.cc) in the same order, with the same drop reasons and the
 * same output bytes: parse, classify, look up the flow, pick a backend from the VIP's Maglev
 * table, encapsulate (IP-in-IP or GUE) and count. Frames that are not for a VIP go to the kernel
 * with XDP_PASS. tests/bpf/parity_test.cc runs both data planes on one corpus of frames.
 *
 * The loader (balancer_loader.cc) fills the maps from a sluice::Snapshot; balancer_abi.h
 * defines their keys and values.
 */
#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

#include "balancer_abi.h"
#include "balancer_encap.h"
#include "balancer_parse.h"
#include "balancer_too_big.h"

/* The kernel checks this string only before allowing GPL-only helpers, and the program
 * calls none. TODO: replace with the project's license once it has one. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct sluice_lb_options);
} sl_lb_options SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32); /* ifindex of the receiving interface */
    __type(value, struct sluice_lb_egress);
} sl_lb_egress SEC(".maps");

/* Three entries per VIP at most: its EXACT entry, and the FRAGMENT and ADDRESS entries of its
 * address. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 3 * SLUICE_MAX_VIPS);
    __type(key, struct sluice_lb_vip_key);
    __type(value, struct sluice_lb_vip);
} sl_lb_vips SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, SLUICE_MAX_BACKENDS);
    __type(key, __u32);
    __type(value, struct sluice_lb_backend);
} sl_lb_backends SEC(".maps");

/* One Maglev table per VIP slot. BPF_F_INNER_MAP lets inner arrays of different sizes share
 * the outer map, so each VIP keeps its own prime table size. The size here is a placeholder
 * that the loader never uses. */
struct maglev_table {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, SLUICE_MAGLEV_MIN_SIZE);
    __uint(map_flags, BPF_F_INNER_MAP);
    __type(key, __u32);
    __type(value, __u32); /* backend slot, or SLUICE_LB_NO_BACKEND */
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, SLUICE_MAX_VIPS);
    __type(key, __u32);
    __array(values, struct maglev_table);
} sl_lb_maglev SEC(".maps");

/* The flow table: one LRU hash shared by every CPU, with per-CPU LRU lists
 * (BPF_F_NO_COMMON_LRU, as Katran uses). A shared table keeps a flow on its backend when
 * RSS moves it to another CPU, and stores each flow once rather than once per CPU as
 * LRU_PERCPU_HASH would. The per-CPU lists spare the lock of a common LRU list, at a price:
 * each CPU inserts into and evicts from its own max_entries / CPUs share, so a CPU that
 * receives more flows than its share evicts them even while other shares have room. The
 * loader sets max_entries from Balancer::load. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __uint(map_flags, BPF_F_NO_COMMON_LRU);
    __type(key, struct sluice_flow_key);
    __type(value, struct sluice_lb_flow);
} sl_lb_flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct sluice_lb_counters);
} sl_lb_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, SLUICE_MAX_VIPS);
    __type(key, __u32);
    __type(value, struct sluice_lb_vip_counters);
} sl_lb_vip_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, SLUICE_MAX_BACKENDS);
    __type(key, __u32);
    __type(value, struct sluice_lb_backend_counters);
} sl_lb_be_stats SEC(".maps");

/* The backend chosen for a packet. */
struct selection {
    __u32 backend;  /* backend slot, or SLUICE_LB_NO_BACKEND */
    __u32 new_flow; /* a TCP SYN that created or changed an entry, or a new UDP flow */
};

static __always_inline int drop_packet(struct sluice_lb_counters *counters, __u32 reason)
{
    if (reason < SLUICE_DROP_COUNT)
        counters->drops[reason]++;
    return XDP_DROP;
}

/* Step 2, classify: the VIP entry of `kind` for the packet's destination. */
static __always_inline struct sluice_lb_vip *lookup_vip(const struct sluice_flow_key *key, __u16 port,
                                                        __u8 kind)
{
    struct sluice_lb_vip_key vip_key;

    __builtin_memset(&vip_key, 0, sizeof(vip_key));
    __builtin_memcpy(vip_key.address, key->dst, sizeof(vip_key.address));
    vip_key.port = port;
    vip_key.protocol = key->protocol;
    vip_key.family = key->family;
    vip_key.kind = kind;
    return bpf_map_lookup_elem(&sl_lb_vips, &vip_key);
}

/* The VIP of a packet: (address, port, protocol), then the port-0 VIP of that address and
 * protocol. Fragments carry no ports, so they take the one VIP that every fragment of a
 * datagram reaches, as sluice::Snapshot::find_fragment_vip does. */
static __always_inline struct sluice_lb_vip *find_vip(const struct parsed_packet *packet)
{
    if (packet->fragment)
        return lookup_vip(&packet->key, 0, SLUICE_LB_VIP_FRAGMENT);

    struct sluice_lb_vip *vip = lookup_vip(&packet->key, packet->key.dst_port, SLUICE_LB_VIP_EXACT);
    if (vip)
        return vip;
    return lookup_vip(&packet->key, 0, SLUICE_LB_VIP_EXACT);
}

/* The backend slot in the VIP's Maglev table for `hash`, or SLUICE_LB_NO_BACKEND when the
 * VIP has no table or the entry is empty. */
static __always_inline __u32 pick_from_table(const struct sluice_lb_vip *vip, __u32 hash)
{
    __u32 vip_slot = vip->slot;
    __u32 size = vip->table_size;
    if (size == 0)
        return SLUICE_LB_NO_BACKEND;

    void *table = bpf_map_lookup_elem(&sl_lb_maglev, &vip_slot);
    if (!table)
        return SLUICE_LB_NO_BACKEND;
    __u32 index = sluice_maglev_slot(hash, size);
    __u32 *backend = bpf_map_lookup_elem(table, &index);
    if (!backend || *backend >= SLUICE_MAX_BACKENDS)
        return SLUICE_LB_NO_BACKEND;
    return *backend;
}

static __always_inline __u32 backend_uid(__u32 slot)
{
    struct sluice_lb_backend *backend = bpf_map_lookup_elem(&sl_lb_backends, &slot);
    return backend ? backend->uid : 0;
}

/* Returns whether a flow entry still points at a backend that may serve it: the slot
 * contains the same backend (uid), and that backend is live or drained. */
static __always_inline int backend_accepts_flow(__u32 slot, __u32 uid)
{
    struct sluice_lb_backend *backend = bpf_map_lookup_elem(&sl_lb_backends, &slot);
    if (!backend || backend->uid != uid)
        return 0;
    return backend->state == SLUICE_LB_BACKEND_LIVE || backend->state == SLUICE_LB_BACKEND_DRAINED;
}

/* The flow's entry, or NULL when it has none or the entry has expired. The LRU reclaims
 * expired entries, so they are not deleted here. */
static __always_inline struct sluice_lb_flow *find_flow(const struct sluice_flow_key *key, __u64 now_ns)
{
    struct sluice_lb_flow *entry = bpf_map_lookup_elem(&sl_lb_flows, key);
    if (entry && entry->expires_ns <= now_ns)
        return NULL;
    return entry;
}

/* The flood guard's count of the current one-second window, per CPU as each worker's is. */
struct flood_window {
    __u64 start_ns;
    __u64 inserts;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct flood_window);
} sl_lb_flood SEC(".maps");

/* As Pipeline::admit_new_entry: at most options->new_flow_limit new entries per second on
 * this CPU, so that a flood of new flows cannot evict established ones. */
static __always_inline int admit_new_entry(const struct sluice_lb_options *options,
                                           struct sluice_lb_counters *counters, __u64 now_ns)
{
    if (options->new_flow_limit == 0)
        return 1;
    __u32 zero_key = 0;
    struct flood_window *window = bpf_map_lookup_elem(&sl_lb_flood, &zero_key);
    if (!window)
        return 1; /* not reached: a one-entry array always has its entry */
    if (now_ns - window->start_ns >= 1000000000ull) {
        window->start_ns = now_ns;
        window->inserts = 0;
    }
    if (window->inserts >= options->new_flow_limit) {
        counters->new_flows_limited++;
        return 0;
    }
    window->inserts++;
    return 1;
}

static __always_inline void insert_flow(const struct sluice_flow_key *key, __u32 backend,
                                        __u64 expires_ns, __u32 flags)
{
    struct sluice_lb_flow entry = {
        .expires_ns = expires_ns,
        .backend = backend,
        .backend_uid = backend_uid(backend),
        .flags = flags,
    };
    /* NOTE: a failed insert is not counted. The packet still goes to the chosen backend,
     * and the flow's next packet takes the path of a missing entry. */
    bpf_map_update_elem(&sl_lb_flows, key, &entry, BPF_ANY);
}

/* Step 3 for TCP, as Pipeline::select_tcp_backend. */
static __always_inline struct selection select_tcp_backend(const struct sluice_lb_vip *vip,
                                                           const struct parsed_packet *packet,
                                                           __u32 hash,
                                                           const struct sluice_lb_options *options,
                                                           struct sluice_lb_counters *counters,
                                                           __u64 now_ns)
{
    struct selection selection = {SLUICE_LB_NO_BACKEND, 0};
    int closing = (packet->tcp_flags & (TCP_FIN | TCP_RST)) != 0;
    struct sluice_lb_flow *entry = find_flow(&packet->key, now_ns);

    /* A SYN always takes the current table's choice, so a client that reuses a source port
     * never sticks to the backend of an older connection. A retransmitted SYN that finds its
     * own entry unchanged is not a new flow. */
    if ((packet->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN) {
        selection.backend = pick_from_table(vip, hash);
        if (selection.backend == SLUICE_LB_NO_BACKEND)
            return selection;
        __u32 uid = backend_uid(selection.backend);
        selection.new_flow = !entry || entry->backend != selection.backend || entry->backend_uid != uid ||
                             (entry->flags & SLUICE_LB_FLOW_CLOSING) != 0;
        if (!entry && !admit_new_entry(options, counters, now_ns))
            return selection;
        insert_flow(&packet->key, selection.backend, now_ns + options->tcp_timeout_ns, 0);
        return selection;
    }

    if (entry && backend_accepts_flow(entry->backend, entry->backend_uid)) {
        if (closing)
            entry->flags |= SLUICE_LB_FLOW_CLOSING;
        int closed = (entry->flags & SLUICE_LB_FLOW_CLOSING) != 0;
        entry->expires_ns = now_ns + (closed ? options->tcp_closing_timeout_ns : options->tcp_timeout_ns);
        selection.backend = entry->backend;
        return selection;
    }

    /* A non-SYN packet without a valid entry: another load balancer or an earlier run served
     * the flow, the LRU evicted it, or its backend went away. The table's choice is what
     * every instance with the same backends picks. */
    counters->non_syn_misses++;
    selection.backend = pick_from_table(vip, hash);
    if (selection.backend == SLUICE_LB_NO_BACKEND)
        return selection;
    if (!admit_new_entry(options, counters, now_ns))
        return selection;
    __u64 timeout = closing ? options->tcp_closing_timeout_ns : options->tcp_timeout_ns;
    insert_flow(&packet->key, selection.backend, now_ns + timeout, closing ? SLUICE_LB_FLOW_CLOSING : 0);
    return selection;
}

/* Step 3 for UDP and the other protocols, as Pipeline::select_backend. */
static __always_inline struct selection select_backend(const struct sluice_lb_vip *vip,
                                                       const struct parsed_packet *packet, __u32 hash,
                                                       const struct sluice_lb_options *options,
                                                       struct sluice_lb_counters *counters, __u64 now_ns)
{
    if (packet->protocol == IPPROTO_TCP)
        return select_tcp_backend(vip, packet, hash, options, counters, now_ns);

    struct selection selection = {SLUICE_LB_NO_BACKEND, 0};
    __u64 expires_ns = now_ns + options->udp_timeout_ns;
    struct sluice_lb_flow *entry = find_flow(&packet->key, now_ns);
    if (entry && backend_accepts_flow(entry->backend, entry->backend_uid)) {
        entry->expires_ns = expires_ns;
        selection.backend = entry->backend;
        return selection;
    }

    selection.backend = pick_from_table(vip, hash);
    if (selection.backend == SLUICE_LB_NO_BACKEND)
        return selection;
    selection.new_flow = 1;
    if (!admit_new_entry(options, counters, now_ns))
        return selection;
    insert_flow(&packet->key, selection.backend, expires_ns, 0);
    return selection;
}

/* Returns whether the packet's destination is the address of some VIP, whatever its port and
 * protocol, as Snapshot::is_vip_address. */
static __always_inline int is_vip_address(const struct parsed_packet *packet)
{
    struct sluice_lb_vip_key vip_key;

    __builtin_memset(&vip_key, 0, sizeof(vip_key));
    __builtin_memcpy(vip_key.address, packet->key.dst, sizeof(vip_key.address));
    vip_key.family = packet->key.family;
    vip_key.kind = SLUICE_LB_VIP_ADDRESS;
    return bpf_map_lookup_elem(&sl_lb_vips, &vip_key) != NULL;
}

/* Updates a 16-bit checksum for one word that changes: HC' = ~(~HC + ~m + m') (RFC 1624). */
static __always_inline void update_checksum(__u8 *checksum, __u16 old_word, __u16 new_word)
{
    __u32 sum = (__u16)~load_be16(checksum) + (__u16)~old_word + (__u32)new_word;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    __u16 folded = (__u16)~sum;
    checksum[0] = folded >> 8;
    checksum[1] = folded & 0xff;
}

/* As write_echo_reply in icmp_reply.cc: the request becomes its reply in place. Returns 0,
 * changing nothing, for IPv4 with options or IPv6 with extension headers. */
static __always_inline int write_echo_reply(struct xdp_md *ctx, const struct parsed_packet *packet,
                                            const __u8 source_mac[ETH_ALEN])
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    int v4 = packet->family == 4;
    __u32 l3 = packet->l3_offset & HEADER_OFFSET_MASK;
    if (packet->l4_offset != l3 + (v4 ? IPV4_HEADER_SIZE : IPV6_HEADER_SIZE))
        return 0;
    __u8 *frame = data;
    __u8 *ip = frame + l3;
    if ((void *)(ip + IPV6_HEADER_SIZE + ICMP_HEADER_SIZE) > data_end && !v4)
        return 0;
    if ((void *)(ip + IPV4_HEADER_SIZE + ICMP_HEADER_SIZE) > data_end)
        return 0;
    if ((void *)(frame + ETHERNET_HEADER_SIZE) > data_end)
        return 0;

    __builtin_memcpy(frame, frame + 6, 6);
    __builtin_memcpy(frame + 6, source_mac, 6);
    __u8 *icmp;
    if (v4) {
        __u8 address[4];
        __builtin_memcpy(address, ip + 12, 4);
        __builtin_memcpy(ip + 12, ip + 16, 4);
        __builtin_memcpy(ip + 16, address, 4);
        __u16 old_ttl_word = load_be16(ip + 8);
        ip[8] = 64;
        update_checksum(ip + 10, old_ttl_word, load_be16(ip + 8));
        icmp = ip + IPV4_HEADER_SIZE;
    } else {
        if ((void *)(ip + IPV6_HEADER_SIZE + ICMP_HEADER_SIZE) > data_end)
            return 0;
        __u8 address[16];
        __builtin_memcpy(address, ip + 8, 16);
        __builtin_memcpy(ip + 8, ip + 24, 16);
        __builtin_memcpy(ip + 24, address, 16);
        ip[7] = 64;
        icmp = ip + IPV6_HEADER_SIZE;
    }
    if ((void *)(icmp + ICMP_HEADER_SIZE) > data_end)
        return 0;
    __u16 old_type_word = load_be16(icmp);
    icmp[0] = v4 ? 0 : 129;
    update_checksum(icmp + 2, old_type_word, load_be16(icmp));
    return 1;
}

static __always_inline int is_zero_mac(const __u8 mac[ETH_ALEN])
{
    return (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) == 0;
}

static __always_inline void count_backend(__u32 slot, __u64 bytes, __u32 new_flow)
{
    struct sluice_lb_backend_counters *counters = bpf_map_lookup_elem(&sl_lb_be_stats, &slot);
    if (!counters)
        return;
    counters->packets++;
    counters->bytes += bytes;
    if (new_flow)
        counters->new_flows++;
}

SEC("xdp")
int sluice_balancer(struct xdp_md *ctx)
{
    __u32 zero = 0;
    struct sluice_lb_counters *counters = bpf_map_lookup_elem(&sl_lb_stats, &zero);
    struct sluice_lb_options *options = bpf_map_lookup_elem(&sl_lb_options, &zero);
    if (!counters || !options)
        return XDP_PASS; /* not reached: a one-entry array always has its entry */
    counters->received++;

    struct parsed_packet packet;
    __builtin_memset(&packet, 0, sizeof(packet));
    __u32 drop = parse_packet(ctx, &packet);
    if (drop != SLUICE_DROP_NONE)
        return drop_packet(counters, drop);

    /* The load balancer replies to an echo request to a VIP's address, whatever the VIP's
     * port and protocol. The reply leaves through the interface the request came in on. */
    if (packet.icmp_echo_request && !packet.fragment && is_vip_address(&packet)) {
        __u32 ingress = ctx->ingress_ifindex;
        struct sluice_lb_egress *port = bpf_map_lookup_elem(&sl_lb_egress, &ingress);
        if (!port)
            return drop_packet(counters, SLUICE_DROP_NoEgress);
        if (write_echo_reply(ctx, &packet, port->source_mac)) {
            counters->icmp_echo_replies++;
            return XDP_TX;
        }
    }

    /* Traffic that is not for a VIP (ARP, the host's own addresses, ICMP) belongs to the
     * kernel. An ICMP error about a VIP flow carries that flow's key, so it finds the VIP. */
    struct sluice_lb_vip *vip = packet.family != 0 ? find_vip(&packet) : NULL;
    if (!vip) {
        counters->to_kernel++;
        return XDP_PASS;
    }
    __u32 vip_slot = vip->slot;
    struct sluice_lb_vip_counters *vip_counters = bpf_map_lookup_elem(&sl_lb_vip_stats, &vip_slot);
    if (vip_counters) {
        vip_counters->packets++;
        vip_counters->bytes += packet.frame_length;
    }

    /* The flow hash goes into the outer header. It also picks the backend, unless the VIP has
     * client persistence, where the hash of the client's address alone does. */
    __u32 hash = sluice_flow_hash(&packet.key, options->seed);
    __u32 select_hash = vip->persistence == SLUICE_PERSISTENCE_CLIENT ? sluice_client_hash(&packet.key, options->seed)
                                                                       : hash;
    struct selection selection = {SLUICE_LB_NO_BACKEND, 0};
    if (packet.fragment) {
        /* Stateless: a fragment's key has no ports, so every fragment of a datagram hashes
         * on (source, destination, protocol) to the same backend. */
        counters->fragments++;
        selection.backend = pick_from_table(vip, select_hash);
    } else if (packet.icmp_error) {
        /* Step 6, as Pipeline::select_for_icmp_error: the flow's entry wins over the table,
         * and the error neither creates nor refreshes an entry. */
        counters->icmp_errors++;
        struct sluice_lb_flow *entry = find_flow(&packet.key, bpf_ktime_get_ns());
        if (entry && backend_accepts_flow(entry->backend, entry->backend_uid))
            selection.backend = entry->backend;
        else
            selection.backend = pick_from_table(vip, select_hash);
    } else {
        selection = select_backend(vip, &packet, select_hash, options, counters, bpf_ktime_get_ns());
    }
    __u32 backend_slot = selection.backend;
    struct sluice_lb_backend *backend = bpf_map_lookup_elem(&sl_lb_backends, &backend_slot);
    if (selection.backend == SLUICE_LB_NO_BACKEND || !backend)
        return drop_packet(counters, SLUICE_DROP_NoBackend);
    if (is_zero_mac(options->next_hop_mac))
        return drop_packet(counters, SLUICE_DROP_NoNextHop);

    /* Step 4: where the packet leaves. The DPDK data plane has one egress port per worker;
     * here each receiving interface names its own. */
    __u32 ingress_ifindex = ctx->ingress_ifindex;
    struct sluice_lb_egress *egress = bpf_map_lookup_elem(&sl_lb_egress, &ingress_ifindex);
    if (!egress)
        return drop_packet(counters, SLUICE_DROP_NoEgress);

    struct encapsulation params = {options, backend, egress, hash, vip->encapsulation == SLUICE_ENCAP_GUE};
    drop = encapsulate(ctx, &packet, &params);
    if (drop != SLUICE_DROP_NONE) {
        /* Step 5: a packet too big for the link after encapsulation gets an ICMP error, as in
         * Pipeline::forward. The reply goes back out of the receiving interface. */
        if (drop == SLUICE_DROP_TooBigAfterEncapsulation &&
            write_too_big_reply(ctx, &packet, egress->source_mac,
                                egress->mtu - encapsulation_overhead(backend->family, params.gue))) {
            counters->icmp_too_big_replies++;
            return XDP_TX;
        }
        return drop_packet(counters, drop);
    }

    count_backend(backend_slot, (__u64)(ctx->data_end - ctx->data), selection.new_flow);
    counters->forwarded++;
    if (egress->redirect_ifindex != 0)
        return bpf_redirect(egress->redirect_ifindex, 0);
    return XDP_TX;
}
