/* flow_hash_probe: a test-only XDP program that runs the BPF build of sluice/flow_hash.h on
 * input from the frame, so a test compares it with the C++ build of the same header. The
 * frame starts with a struct sluice_flow_hash_probe; the program fills in its outputs and
 * returns XDP_PASS, or XDP_ABORTED when the frame is too short. */
#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

#include "flow_hash_probe.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int flow_hash_probe(struct xdp_md *ctx)
{
    struct sluice_flow_hash_probe *probe = (void *)(long)ctx->data;
    if ((void *)(probe + 1) > (void *)(long)ctx->data_end)
        return XDP_ABORTED;

    struct sluice_flow_key key;
    __builtin_memcpy(&key, &probe->key, sizeof(key));
    probe->hash = sluice_flow_hash(&key, probe->seed);
    probe->slot = sluice_maglev_slot(probe->hash, probe->table_size);
    return XDP_PASS;
}
