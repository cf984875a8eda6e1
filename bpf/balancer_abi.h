/* Map layouts and constants of the XDP balancer, shared by balancer.bpf.c and its C++
 * loader (balancer_loader.cc). Both sides compile this header, so a key, a value or a
 * constant has one definition.
 *
 * It is plain C with fixed-width kernel types. Every struct spells out its padding, so clang
 * for the BPF target and the host compiler lay it out the same way, and the static asserts
 * at the end pin the sizes. Addresses and ports are in network byte order. An IPv4 address
 * fills word 0 of a 4-word field and leaves the rest zero, as in struct sluice_flow_key.
 */
#ifndef SLUICE_BPF_BALANCER_ABI_H
#define SLUICE_BPF_BALANCER_ABI_H

#include <linux/types.h>

#include "sluice/dataplane_abi.h"
#include "sluice/flow_hash.h"

/* Values of sluice_lb_vip_key.kind. A packet that is not a fragment looks up an EXACT entry
 * for (address, port, protocol), then one for (address, 0, protocol). A fragment looks up
 * the FRAGMENT entry for (address, 0, protocol), which names the port-0 VIP of that address
 * and protocol if there is one, else the VIP with the lowest port. */
#define SLUICE_LB_VIP_EXACT 0
#define SLUICE_LB_VIP_FRAGMENT 1
#define SLUICE_LB_VIP_ADDRESS 2 /* port 0, protocol 0: the address of some VIP, for echo replies */

/* Values of sluice_lb_backend.state, the numbers of sluice::BackendState. */
#define SLUICE_LB_BACKEND_REMOVED 0
#define SLUICE_LB_BACKEND_LIVE 1
#define SLUICE_LB_BACKEND_DRAINED 2
#define SLUICE_LB_BACKEND_DOWN 3

/* A Maglev table entry with no backend (sluice::kMaglevEmpty). */
#define SLUICE_LB_NO_BACKEND 0xffffffffu

/* sluice_lb_flow.flags: a FIN or RST has been seen, so the entry uses the closing timeout. */
#define SLUICE_LB_FLOW_CLOSING 1u

/* Key of the VIP hash map (sl_lb_vips). Writers zero the whole key, padding included. */
struct sluice_lb_vip_key {
    __u32 address[4];
    __u16 port; /* network byte order; 0 for a port-0 VIP and in FRAGMENT entries */
    __u8 protocol;
    __u8 family; /* 4 or 6 */
    __u8 kind;   /* SLUICE_LB_VIP_EXACT, SLUICE_LB_VIP_FRAGMENT or SLUICE_LB_VIP_ADDRESS */
    __u8 pad[3];
};

/* Value of the VIP hash map. */
struct sluice_lb_vip {
    __u32 slot;       /* VIP slot: index of its counters and of its Maglev table */
    __u32 table_size; /* entries in the slot's Maglev table; 0 when the VIP has none */
    __u8 persistence;   /* enum sluice_persistence */
    __u8 encapsulation; /* enum sluice_encapsulation */
    __u8 pad[2];
};

/* Value of the backend array (sl_lb_backends), indexed by backend slot. */
struct sluice_lb_backend {
    __u32 address[4];
    __u32 uid;   /* changes whenever the slot is given to another backend */
    __u8 family; /* 4 or 6; 0 for a slot without an address */
    __u8 state;  /* SLUICE_LB_BACKEND_* */
    __u8 pad[2];
};

/* The one entry of the options array (sl_lb_options). Until the loader writes it, every
 * field is zero: no next hop, so VIP traffic is dropped as no_next_hop. */
struct sluice_lb_options {
    __u64 tcp_timeout_ns;         /* established TCP, idle */
    __u64 tcp_closing_timeout_ns; /* after a FIN or RST */
    __u64 udp_timeout_ns;         /* UDP and other protocols, idle */
    __u32 seed;                   /* flow hash seed */
    __u32 source_ipv4;            /* outer source address for IPv4 backends */
    __u32 source_ipv6[4];         /* outer source address for IPv6 backends */
    __u8 source_ipv4_family;      /* 4, or 0 when no IPv4 source is set */
    __u8 source_ipv6_family;      /* 6, or 0 when no IPv6 source is set */
    __u8 next_hop_mac[6];         /* destination MAC of forwarded frames; all zero: unknown */
    __u32 new_flow_limit;         /* new flow entries per second per CPU; 0: no limit */
    __u16 gue_port;               /* GUE's outer UDP destination port, network byte order */
    __u16 pad;
};

/* Value of the egress hash map (sl_lb_egress), keyed by the receiving interface's ifindex
 * (__u32). A VIP packet that arrives on an interface without an entry is dropped as
 * no_egress. */
struct sluice_lb_egress {
    __u8 source_mac[6];
    __u8 pad[2];
    __u32 mtu;              /* L3 MTU of the interface that sends the packet */
    __u32 redirect_ifindex; /* 0: XDP_TX out of the receiving interface; else bpf_redirect */
};

/* Value of the flow table (sl_lb_flows), keyed by struct sluice_flow_key. */
struct sluice_lb_flow {
    __u64 expires_ns; /* bpf_ktime_get_ns() time from which the entry counts as absent */
    __u32 backend;    /* backend slot */
    __u32 backend_uid;
    __u32 flags; /* SLUICE_LB_FLOW_CLOSING */
    __u32 pad;
};

/* Per-CPU counters, each in a PERCPU_ARRAY. Their meaning is that of the fields with the
 * same names in sluice::PipelineCounters. */
struct sluice_lb_vip_counters {
    __u64 packets;
    __u64 bytes; /* as received, Ethernet padding included */
};

struct sluice_lb_backend_counters {
    __u64 packets;
    __u64 bytes; /* as sent, after encapsulation */
    __u64 new_flows;
};

/* The one entry of sl_lb_stats. */
struct sluice_lb_counters {
    __u64 received;
    __u64 forwarded;
    __u64 to_kernel;
    __u64 non_syn_misses;
    __u64 fragments;
    __u64 icmp_errors;       /* ICMP and ICMPv6 errors about a VIP flow, sent to its backend */
    __u64 icmp_echo_replies; /* echo replies sent for requests to a VIP address */
    __u64 icmp_too_big_replies; /* fragmentation needed / packet too big sent to clients */
    __u64 new_flows_limited; /* new flows forwarded without an entry: the limit was reached */
    __u64 drops[SLUICE_DROP_COUNT]; /* indexed by enum sluice_drop_reason; entry 0 stays 0 */
};

#ifdef __cplusplus
#define SLUICE_LB_STATIC_ASSERT(condition, message) static_assert(condition, message)
#else
#define SLUICE_LB_STATIC_ASSERT(condition, message) _Static_assert(condition, message)
#endif

SLUICE_LB_STATIC_ASSERT(sizeof(struct sluice_flow_key) == 40, "flow key layout");
SLUICE_LB_STATIC_ASSERT(sizeof(struct sluice_lb_vip_key) == 24, "VIP key layout");
SLUICE_LB_STATIC_ASSERT(sizeof(struct sluice_lb_vip) == 12, "VIP layout");
SLUICE_LB_STATIC_ASSERT(sizeof(struct sluice_lb_backend) == 24, "backend layout");
SLUICE_LB_STATIC_ASSERT(sizeof(struct sluice_lb_options) == 64, "options layout");
SLUICE_LB_STATIC_ASSERT(sizeof(struct sluice_lb_egress) == 16, "egress layout");
SLUICE_LB_STATIC_ASSERT(sizeof(struct sluice_lb_flow) == 24, "flow entry layout");
SLUICE_LB_STATIC_ASSERT(sizeof(struct sluice_lb_counters) == 8 * (9 + SLUICE_DROP_COUNT),
                        "counters layout");

#endif /* SLUICE_BPF_BALANCER_ABI_H */
