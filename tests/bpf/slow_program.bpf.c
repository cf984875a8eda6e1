/* slow_program: a test-only XDP program that runs for tens of milliseconds, so that a test can
 * call GracePeriod::wait() while it runs. It writes bpf_ktime_get_ns() (CLOCK_MONOTONIC)
 * into sl_slow_times[0] when it starts and into sl_slow_times[1] when it returns. */
#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} sl_slow_times SEC(".maps");

static long do_nothing(__u32 index, void *context)
{
    return 0;
}

SEC("xdp")
int slow_program(struct xdp_md *ctx)
{
    __u32 start_key = 0;
    __u32 end_key = 1;
    __u64 *start = bpf_map_lookup_elem(&sl_slow_times, &start_key);
    if (start)
        *start = bpf_ktime_get_ns();

    /* bpf_loop takes at most 1 << 23 iterations per call. */
    for (int i = 0; i < 8; i++)
        bpf_loop(1 << 23, do_nothing, NULL, 0);

    __u64 *end = bpf_map_lookup_elem(&sl_slow_times, &end_key);
    if (end)
        *end = bpf_ktime_get_ns();
    return XDP_PASS;
}
