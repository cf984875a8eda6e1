// An XDP program that passes every packet. The test bed attaches it to the router's end of
// the load balancer's veth. A veth delivers the frames that its peer sends with XDP_TX only
// when an XDP program is attached on the receiving end; GRO alone did not do it on 6.18.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int sluice_xdp_pass(struct xdp_md *ctx) {
  (void)ctx;
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
