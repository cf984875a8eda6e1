/* The record that flow_hash_probe.bpf.c reads from the start of a test frame and completes,
 * shared by the program and balancer_test.cc. */
#ifndef SLUICE_TESTS_FLOW_HASH_PROBE_H
#define SLUICE_TESTS_FLOW_HASH_PROBE_H

#include "sluice/flow_hash.h"

struct sluice_flow_hash_probe {
    struct sluice_flow_key key; /* input */
    sluice_u32 seed;            /* input */
    sluice_u32 table_size;      /* input */
    sluice_u32 hash;            /* output: sluice_flow_hash(&key, seed) */
    sluice_u32 slot;            /* output: sluice_maglev_slot(hash, table_size) */
};

#endif /* SLUICE_TESTS_FLOW_HASH_PROBE_H */
