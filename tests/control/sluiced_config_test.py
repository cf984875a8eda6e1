#!/usr/bin/python3
"""Feeds sluiced invalid configs and checks that each is rejected with exit code 2 and a
message that names the field path and the reason. A valid config passes --check-config."""
import argparse
import os
import subprocess
import sys
import tempfile

VALID = """
dataplane:
  type: dpdk
  dpdk:
    worker_lcores: [1]
    eal_args: ["--no-huge", "-m", "256", "--no-shconf"]
    ports:
      - device: "net_af_packet0,iface=eth0"
    exception:
      interface: sl-exc0
lb:
  ipv4: 198.51.100.2
  next_hop:
    ipv4: 198.51.100.1
seed: 0x51ce
vips:
  - address: 203.0.113.10
    port: 80
    protocol: tcp
    table_size: 65537
    backends:
      - address: 198.51.100.130
        weight: 1
      - address: 198.51.100.131
        weight: 0
"""

# (name, text to replace, replacement, expected fragments of the error message)
CASES = [
    ("table size not prime", "table_size: 65537", "table_size: 65536",
     ["vips[0].table_size", "65536 is not prime", "65537"]),
    ("bad VIP address", "address: 203.0.113.10", "address: 300.1.1.1",
     ["vips[0].address", "300.1.1.1"]),
    ("bad IPv6 backend", "address: 198.51.100.130", "address: \"[2001:db8::1\"",
     ["vips[0].backends[0].address", "[2001:db8::1"]),
    ("negative weight", "weight: 1", "weight: -1", ["vips[0].backends[0].weight", "-1"]),
    ("weight not a number", "weight: 1", "weight: heavy", ["vips[0].backends[0].weight", "heavy"]),
    ("duplicate backend", "address: 198.51.100.131", "address: 198.51.100.130",
     ["vips[0].backends[1].address", "listed twice"]),
    ("unknown protocol", "protocol: tcp", "protocol: sctp", ["vips[0].protocol", "sctp"]),
    ("port out of range", "port: 80", "port: 70000", ["vips[0].port", "70000"]),
    ("unknown field", "table_size: 65537", "tabel_size: 65537", ["vips[0].tabel_size", "unknown field"]),
    ("missing next hop", "  next_hop:\n    ipv4: 198.51.100.1\n", "", ["lb.next_hop", "missing"]),
    ("IPv6 backend without IPv6 source", "address: 198.51.100.131", "address: 2001:db8::131",
     ["lb.ipv6", "missing", "needs an IPv6 outer source address"]),
    ("IPv4 backend of an IPv6 VIP", "address: 203.0.113.10", "address: 2001:db8::10",
     ["vips[0].backends[0].address", "an IPv6 VIP needs IPv6 backends"]),
    ("unknown encapsulation", "table_size: 65537", "table_size: 65537\n    encapsulation: gre",
     ["vips[0].encapsulation", "'gre' is not an encapsulation (use ipip or gue)"]),
    ("GUE port 0", "  ipv4: 198.51.100.2\n", "  ipv4: 198.51.100.2\n  gue_port: 0\n",
     ["lb.gue_port", "0"]),
    ("egress MTU below 1280", "iface=eth0\"", "iface=eth0\"\n        egress_mtu: 1000",
     ["dataplane.dpdk.ports[0].egress_mtu", "1000"]),
    ("worker on main lcore", "worker_lcores: [1]", "worker_lcores: [0]",
     ["dataplane.dpdk.worker_lcores[0]", "used twice"]),
    ("lcores in eal_args", "\"--no-shconf\"]", "\"--no-shconf\", \"-l\"]",
     ["dataplane.dpdk.eal_args[4]", "set by sluiced"]),
    ("no-huge with in-memory", "\"--no-shconf\"", "\"--in-memory\"",
     ["dataplane.dpdk.eal_args", "cannot be combined"]),
    ("unknown data plane", "type: dpdk", "type: vpp", ["dataplane.type", "'vpp' is not a data plane"]),
    ("xdp section missing", "type: dpdk", "type: xdp", ["dataplane.xdp", "missing"]),
    ("xdp without interfaces", "type: dpdk\n", "type: xdp\n  xdp:\n    mode: native\n",
     ["dataplane.xdp.interfaces", "non-empty list"]),
    ("xdp mode unknown", "type: dpdk\n", "type: xdp\n  xdp:\n    interfaces: [eth0]\n    mode: fast\n",
     ["dataplane.xdp.mode", "'fast' is not an XDP mode"]),
    ("broken YAML", "vips:", "vips: [", ["invalid YAML", "line"]),
    ("next hop given twice", "    ipv4: 198.51.100.1\n", "    ipv4: 198.51.100.1\n    mac: \"02:00:00:00:00:01\"\n",
     ["lb.next_hop", "not both"]),
    ("multicast VIP", "address: 203.0.113.10", "address: 224.0.0.1",
     ["vips[0].address", "multicast"]),
    ("backend is the VIP", "address: 198.51.100.131", "address: 203.0.113.10",
     ["vips[0].backends[1].address", "VIP's own address"]),
    ("IPv6 as the IPv4 source", "ipv4: 198.51.100.2", "ipv4: \"2001:db8::2\"",
     ["lb.ipv4", "not an IPv4 address"]),
    ("closing timeout too long", "seed: 0x51ce", "seed: 0x51ce\nflow_table:\n  tcp_timeout_s: 60\n  tcp_closing_timeout_s: 600",
     ["flow_table.tcp_closing_timeout_s", "longer than tcp_timeout_s"]),
    ("lcore not on this machine", "worker_lcores: [1]", "worker_lcores: [1000]",
     ["dataplane.dpdk.worker_lcores[0]", "CPU 1000", "available"]),
    ("worker CPUs miscounted", "worker_lcores: [1]", "worker_lcores: [1, 2]\n    worker_cpus: [1]",
     ["dataplane.dpdk.worker_cpus", "one CPU for each of the 2"]),
]


def run(sluiced, text, workdir):
    path = os.path.join(workdir, "sluiced.yaml")
    with open(path, "w") as f:
        f.write(text)
    return subprocess.run([sluiced, "--config", path, "--check-config"], capture_output=True,
                          text=True, timeout=30)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sluiced", required=True)
    args = parser.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="sluice-config-") as workdir:
        result = run(args.sluiced, VALID, workdir)
        if result.returncode != 0:
            print("FAIL: valid config rejected:", result.stderr)
            failures += 1
        for name, old, new, fragments in CASES:
            if old not in VALID:
                print("FAIL: %s: the case's text %r is not in the valid config" % (name, old))
                failures += 1
                continue
            result = run(args.sluiced, VALID.replace(old, new, 1), workdir)
            output = result.stderr + result.stdout
            missing = [f for f in fragments if f not in output]
            if result.returncode != 2 or missing:
                print("FAIL: %s: exit code %d (expected 2), missing %s in: %s" %
                      (name, result.returncode, missing, output.strip()))
                failures += 1
            else:
                print("ok: %s: %s" % (name, output.strip().splitlines()[-1]))
    total = len(CASES) + 1
    print("%d passed, %d failed" % (total - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
