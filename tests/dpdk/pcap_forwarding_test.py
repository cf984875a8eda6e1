#!/usr/bin/python3
"""Runs sluiced's DPDK data plane on net_pcap and checks every output packet with scapy.

The input pcap contains TCP and UDP flows to IPv4 and IPv6 VIPs with IP-in-IP and GUE, an IPv4
VIP with IPv6 backends, IPv4 options, VLAN tags, packets too big for the egress MTU, packets
for the kernel and malformed packets. Each output packet is decoded independently of Sluice's
own code. The checks cover outer header fields, the IPv4 header checksum, GUE's UDP header,
the inner datagram byte for byte, and the ICMP replies to packets too big with their
checksums and MTU values. Every packet of a flow must reach the same backend. The stats file
must agree with the output, and the mempool's in-use count must return to its start value.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import shutil
import time
import zlib

from scapy.all import (ARP, ICMP, IP, IPv6, TCP, UDP, Dot1Q, Ether, ICMPv6PacketTooBig, Raw,  # noqa: E402
                       rdpcap, wrpcap)
from scapy.layers.inet import checksum

NEXT_HOP_MAC = "02:00:00:00:00:fe"
LB_IPV4 = "198.51.100.2"
LB_IPV6 = "2001:db8:100::2"
VIP4 = "203.0.113.10"
VIP4_UDP = "203.0.113.11"
VIP6 = "2001:db8:203::10"
VIP4_GUE = "203.0.113.20"     # GUE to the IPv4 backends
VIP6_GUE = "2001:db8:203::20"  # GUE to the IPv6 backends
VIP4_IN_6 = "203.0.113.21"    # IPv4 in IPv6 to the IPv6 backends
VIP4_GUE_6 = "203.0.113.22"   # GUE over IPv6 to the IPv6 backends
GUE_PORT = 6080
BACKENDS4 = ["198.51.100.130", "198.51.100.131", "198.51.100.132"]
BACKENDS6 = ["2001:db8:100::130", "2001:db8:100::131"]
FLOWS = 300
# The EAL's runtime directory, /var/run/dpdk/PREFIX, is this test's own and removed at the end.
DPDK_PREFIX = "sluice-pcap-%d" % os.getpid()

CONFIG = """
dataplane:
  type: dpdk
  dpdk:
    main_lcore: 0
    worker_lcores: {lcores}
    worker_cpus: {cpus}
    eal_args: ["--no-huge", "-m", "256", "--no-shconf", "--no-pci", "--no-telemetry",
               "--file-prefix", "{prefix}"]
    ports:
      - device: "net_pcap0,{pcaps}"
        egress_mtu: 1500
lb:
  ipv4: {lb4}
  ipv6: {lb6}
  next_hop:
    mac: "{mac}"
seed: 0x51ce
vips:
  - address: {vip4}
    port: 80
    protocol: tcp
    backends: [{b4}]
  - address: {vip4udp}
    port: 53
    protocol: udp
    backends: [{b4}]
  - address: {vip6}
    port: 80
    protocol: tcp
    backends: [{b6}]
  - {{address: {vip4gue}, port: 80, protocol: tcp, encapsulation: gue, backends: [{b4}]}}
  - {{address: "{vip6gue}", port: 80, protocol: tcp, encapsulation: gue, backends: [{b6}]}}
  - {{address: {vip4in6}, port: 80, protocol: tcp, backends: [{b6}]}}
  - {{address: {vip4gue6}, port: 80, protocol: tcp, encapsulation: gue, backends: [{b6}]}}
"""

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def ether():
    return Ether(dst="02:70:63:61:70:00", src="02:00:00:00:00:01")


def build_input():
    """Returns (packets, expected) where expected[i] is None for packets that must not be
    forwarded, or (flow key, inner bytes) for packets that must."""
    packets, expected = [], []

    def forward(packet, flow):
        packets.append(packet)
        expected.append(flow)

    def no_forward(packet, reason):
        packets.append(packet)
        expected.append(reason)

    for i in range(FLOWS):
        client = "192.0.2.%d" % (2 + i % 250)
        sport = 30000 + i
        flow = ("tcp4", client, sport)
        forward(ether() / IP(src=client, dst=VIP4, flags="DF", id=i) / TCP(sport=sport, dport=80, flags="S"), flow)
        forward(ether() / IP(src=client, dst=VIP4, flags="DF", id=i + 1) / TCP(sport=sport, dport=80, flags="A") / Raw(b"GET / HTTP/1.1\r\n\r\n"), flow)
    # The same flows with IPv4 options (IHL 6 and 15) and VLAN tags reach the same backend.
    for i in range(0, FLOWS, 50):
        client = "192.0.2.%d" % (2 + i % 250)
        flow = ("tcp4", client, 30000 + i)
        forward(ether() / IP(src=client, dst=VIP4, options=[b"\x01\x01\x01\x01"]) / TCP(sport=30000 + i, dport=80, flags="A"), flow)
        forward(ether() / IP(src=client, dst=VIP4, options=[b"\x01" * 40]) / TCP(sport=30000 + i, dport=80, flags="A"), flow)
        forward(Ether(dst="02:70:63:61:70:00", src="02:00:00:00:00:01") / Dot1Q(vlan=100) / IP(src=client, dst=VIP4) / TCP(sport=30000 + i, dport=80, flags="A"), flow)
    for i in range(60):
        client = "192.0.2.%d" % (2 + i)
        forward(ether() / IP(src=client, dst=VIP4_UDP) / UDP(sport=5000 + i, dport=53) / Raw(b"q" * 20), ("udp4", client, 5000 + i))
    for i in range(60):
        client = "2001:db8:c::%x" % (i + 2)
        forward(ether() / IPv6(src=client, dst=VIP6, tc=0x28) / TCP(sport=40000 + i, dport=80, flags="S"), ("tcp6", client, 40000 + i))

    # GUE over both families, and IPv4 VIPs with IPv6 backends.
    for i in range(40):
        client = "192.0.2.%d" % (2 + i)
        client6 = "2001:db8:c::%x" % (i + 2)
        forward(ether() / IP(src=client, dst=VIP4_GUE, flags="DF", id=i, tos=0x10) / TCP(sport=31000 + i, dport=80, flags="S"),
                ("gue4", client, 31000 + i))
        forward(ether() / IP(src=client, dst=VIP4_GUE, id=i + 7) / TCP(sport=31000 + i, dport=80, flags="A") / Raw(b"x" * i),
                ("gue4", client, 31000 + i))
        forward(ether() / IPv6(src=client6, dst=VIP6_GUE, tc=0x20) / TCP(sport=41000 + i, dport=80, flags="S"),
                ("gue6", client6, 41000 + i))
        forward(ether() / IP(src=client, dst=VIP4_IN_6, tos=0xb8) / TCP(sport=32000 + i, dport=80, flags="S"),
                ("ipip4in6", client, 32000 + i))
        forward(ether() / IP(src=client, dst=VIP4_GUE_6) / TCP(sport=33000 + i, dport=80, flags="S"),
                ("gue4in6", client, 33000 + i))
    forward(Ether(dst="02:70:63:61:70:00", src="02:00:00:00:00:01") / Dot1Q(vlan=200) / IP(src="192.0.2.9", dst=VIP4_IN_6) /
            TCP(sport=32999, dport=80, flags="S"), ("ipip4in6", "192.0.2.9", 32999))

    # 1500-byte packets on a 1500-byte link: ICMP fragmentation needed or packet too big with
    # the MTU left after each encapsulation, back to the client.
    payload = Raw(b"\xab" * 1460)
    for vip, mtu in ((VIP4, 1480), (VIP4_GUE, 1472), (VIP4_IN_6, 1460), (VIP4_GUE_6, 1452)):
        forward(ether() / IP(src="192.0.2.77", dst=vip, flags="DF") / TCP(sport=34000, dport=80, flags="A") / payload,
                ("too_big4", "192.0.2.77", mtu))
    forward(Ether(dst="02:70:63:61:70:00", src="02:00:00:00:00:01") / Dot1Q(vlan=300) /
            IP(src="192.0.2.78", dst=VIP4, flags="DF") / TCP(sport=34001, dport=80, flags="A") / payload,
            ("too_big4", "192.0.2.78", 1480))
    payload6 = Raw(b"\xcd" * 1440)
    for vip, mtu in ((VIP6, 1460), (VIP6_GUE, 1452)):
        forward(ether() / IPv6(src="2001:db8:c::77", dst=vip) / TCP(sport=34002, dport=80, flags="A") / payload6,
                ("too_big6", "2001:db8:c::77", mtu))
    no_forward(ether() / IP(src="192.0.2.79", dst=VIP4) / TCP(sport=34003, dport=80, flags="A") / payload,
               "too_big_after_encapsulation")  # no DF: no error may be sent, only the drop counted

    no_forward(ether() / ARP(psrc="198.51.100.1", pdst=LB_IPV4), "to_kernel")
    no_forward(ether() / IP(src="192.0.2.2", dst="203.0.113.99") / TCP(sport=1, dport=80), "to_kernel")
    no_forward(ether() / IP(src="192.0.2.2", dst=VIP4) / TCP(sport=1, dport=81), "to_kernel")
    short_ihl = bytearray(bytes(ether() / IP(src="192.0.2.2", dst=VIP4) / TCP(sport=2, dport=80)))
    short_ihl[14] = 0x44
    no_forward(Ether(bytes(short_ihl)), "ipv4_header_too_short")
    truncated = bytes(ether() / IP(src="192.0.2.2", dst=VIP4, proto=6, len=30) / Raw(b"\x00" * 10))
    no_forward(Ether(truncated), "truncated_tcp")
    # Decode every packet from its bytes, so lengths and checksums are filled in.
    return [Ether(bytes(p)) for p in packets], expected


def inner_datagram(packet):
    layer = packet[IP] if IP in packet else packet[IPv6]
    raw = bytes(layer)
    length = layer.len if IP in packet else 40 + layer.plen
    return raw[:length]


def run_sluiced(sluiced, workdir, input_paths, output_paths, expected_received):
    """Runs sluiced with one worker per input pcap; worker N reads queue N. Every worker
    shares CPU 1 with the others, so the test needs two CPUs whatever the worker count."""
    config_path = os.path.join(workdir, "sluiced.yaml")
    stats_path = os.path.join(workdir, "stats.json")
    workers = len(input_paths)
    pcaps = ",".join("rx_pcap=%s" % p for p in input_paths) + "," + \
        ",".join("tx_pcap=%s" % p for p in output_paths)
    with open(config_path, "w") as f:
        f.write(CONFIG.format(prefix=DPDK_PREFIX, pcaps=pcaps, lcores=list(range(1, workers + 1)), cpus=[1] * workers,
                              lb4=LB_IPV4, lb6=LB_IPV6,
                              mac=NEXT_HOP_MAC, vip4=VIP4, vip4udp=VIP4_UDP, vip6=VIP6,
                              vip4gue=VIP4_GUE, vip6gue=VIP6_GUE, vip4in6=VIP4_IN_6, vip4gue6=VIP4_GUE_6,
                              b4=", ".join("{address: %s}" % b for b in BACKENDS4),
                              b6=", ".join("{address: \"%s\"}" % b for b in BACKENDS6)))
    log_path = os.path.join(workdir, "sluiced.log")
    with open(log_path, "w") as log:
        process = subprocess.Popen([sluiced, "--config", config_path, "--stats-file", stats_path,
                                    "--api-socket", os.path.join(workdir, "sluiced.sock"),
                                    "--metrics-listen", "none"],
                                   stdout=log, stderr=subprocess.STDOUT)
    stats = None
    try:
        deadline = time.time() + 30
        while time.time() < deadline and process.poll() is None:
            time.sleep(0.2)
            try:
                with open(stats_path) as f:
                    stats = json.load(f)
            except (OSError, ValueError):
                continue
            if stats["received"] >= expected_received:
                break
        if process.poll() is not None:
            print(open(log_path).read())
            sys.exit("sluiced exited early with code %d" % process.returncode)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    check(code == 0, "sluiced exited with %d after SIGTERM, expected 0" % code)
    with open(stats_path) as f:
        return json.load(f), open(log_path).read()


def check_ipv4_output(packet, original, flow):
    outer = packet[IP]
    header = bytes(outer)[:20]
    check(outer.version == 4 and outer.ihl == 5, "%s: outer IPv4 version/IHL wrong" % (flow,))
    check(checksum(header) == 0, "%s: outer IPv4 checksum invalid" % (flow,))
    check(outer.ttl == 64, "%s: outer TTL %d, expected 64" % (flow, outer.ttl))
    check(outer.proto == 4, "%s: outer protocol %d, expected 4" % (flow, outer.proto))
    check(outer.src == LB_IPV4, "%s: outer source %s" % (flow, outer.src))
    check(outer.dst in BACKENDS4, "%s: outer destination %s is no backend" % (flow, outer.dst))
    inner = original[IP]
    check(outer.len == 20 + inner.len, "%s: outer length %d, inner %d" % (flow, outer.len, inner.len))
    check((outer.flags.DF) == (inner.flags.DF), "%s: DF not copied" % (flow,))
    check(outer.id == inner.id, "%s: outer ID %d, inner %d" % (flow, outer.id, inner.id))
    check(outer.tos == inner.tos, "%s: TOS not copied" % (flow,))
    check(bytes(outer.payload)[:inner.len] == inner_datagram(original),
          "%s: inner datagram changed" % (flow,))
    return outer.dst


def check_gue_header(udp, inner_bytes, flow):
    """GUE variant 1: the flow's source port in the dynamic range, the GUE port, checksum 0,
    and the inner datagram as the UDP payload."""
    check(udp.dport == GUE_PORT, "%s: GUE destination port %d" % (flow, udp.dport))
    check(udp.sport >= 49152, "%s: GUE source port %d is below 49152" % (flow, udp.sport))
    check(udp.chksum == 0, "%s: GUE UDP checksum %#x, expected 0" % (flow, udp.chksum))
    check(udp.len == 8 + len(inner_bytes), "%s: UDP length %d" % (flow, udp.len))
    check(bytes(udp.payload)[:len(inner_bytes)] == inner_bytes, "%s: inner datagram changed" % (flow,))


def check_gue4_output(packet, original, flow):
    outer = packet[IP]
    inner = original[IP]
    check(checksum(bytes(outer)[:20]) == 0, "%s: outer IPv4 checksum invalid" % (flow,))
    check(outer.proto == 17 and outer.ttl == 64, "%s: outer protocol %d, TTL %d" % (flow, outer.proto, outer.ttl))
    check(outer.src == LB_IPV4 and outer.dst in BACKENDS4, "%s: outer %s -> %s" % (flow, outer.src, outer.dst))
    check(outer.len == 28 + inner.len, "%s: outer length %d, inner %d" % (flow, outer.len, inner.len))
    check(outer.id == inner.id and outer.tos == inner.tos and outer.flags.DF == inner.flags.DF,
          "%s: ID, TOS or DF not copied" % (flow,))
    check_gue_header(outer[UDP], inner_datagram(original), flow)
    return outer.dst, outer[UDP].sport


def check_ipv6_outer(packet, original, flow, next_header, overhead):
    """An IPv6 outer header around `original`'s datagram (IPv4 or IPv6), `overhead` bytes
    of it before the datagram."""
    outer = packet[IPv6]
    inner_bytes = inner_datagram(original)
    check(outer.nh == next_header, "%s: outer next header %d, expected %d" % (flow, outer.nh, next_header))
    check(outer.hlim == 64, "%s: outer hop limit %d" % (flow, outer.hlim))
    check(outer.src == LB_IPV6 and outer.dst in BACKENDS6, "%s: outer %s -> %s" % (flow, outer.src, outer.dst))
    check(outer.plen == overhead - 40 + len(inner_bytes), "%s: outer payload length %d" % (flow, outer.plen))
    inner_class = original[IP].tos if IP in original else original[IPv6].tc
    check(outer.tc == inner_class, "%s: traffic class not copied" % (flow,))
    if next_header == 17:
        check_gue_header(outer[UDP], inner_bytes, flow)
    else:
        check(bytes(outer.payload) == inner_bytes, "%s: inner datagram changed" % (flow,))
    return outer.dst


def check_too_big_reply(packet, original, flow):
    """The reply goes back where the packet came from, from the VIP, with the MTU and a quote
    of the first 548 (IPv4) or 1232 (IPv6) bytes, and valid checksums."""
    check(packet.dst == original.src and packet.src == "02:70:63:61:70:00",
          "%s: reply MACs %s -> %s" % (flow, packet.src, packet.dst))
    if Dot1Q in original:
        check(Dot1Q in packet and packet[Dot1Q].vlan == original[Dot1Q].vlan, "%s: VLAN tag lost" % (flow,))
    datagram = inner_datagram(original)
    if flow[0] == "too_big4":
        ip, inner = packet[IP], original[IP]
        check(ip.src == inner.dst and ip.dst == inner.src, "%s: reply %s -> %s" % (flow, ip.src, ip.dst))
        check(checksum(bytes(ip)[:20]) == 0, "%s: reply IPv4 checksum invalid" % (flow,))
        check(ip.len == 576 and ip.proto == 1 and ip.frag == 0 and not ip.flags.MF,
              "%s: reply length %d, protocol %d, fragment field %d" % (flow, ip.len, ip.proto, ip.frag))
        icmp = ip[ICMP]
        check(icmp.type == 3 and icmp.code == 4, "%s: ICMP type %d code %d" % (flow, icmp.type, icmp.code))
        check(icmp.nexthopmtu == flow[2], "%s: MTU %d, expected %d" % (flow, icmp.nexthopmtu, flow[2]))
        check(checksum(bytes(icmp)[:ip.len - 20]) == 0, "%s: ICMP checksum invalid" % (flow,))
        check(bytes(icmp)[8:ip.len - 20] == datagram[:548], "%s: quote is not the packet's first 548 bytes" % (flow,))
    else:
        ip, inner = packet[IPv6], original[IPv6]
        check(ip.src == inner.dst and ip.dst == inner.src, "%s: reply %s -> %s" % (flow, ip.src, ip.dst))
        check(ip.plen == 1240 and ip.nh == 58, "%s: reply payload length %d, next header %d" % (flow, ip.plen, ip.nh))
        too_big = ip[ICMPv6PacketTooBig]
        check(too_big.mtu == flow[2], "%s: MTU %d, expected %d" % (flow, too_big.mtu, flow[2]))
        sent = too_big.cksum
        recomputed = ICMPv6PacketTooBig(bytes(too_big))
        recomputed.cksum = None
        recomputed = IPv6(src=ip.src, dst=ip.dst, nh=58) / recomputed
        check(IPv6(bytes(recomputed))[ICMPv6PacketTooBig].cksum == sent, "%s: ICMPv6 checksum invalid" % (flow,))
        check(bytes(too_big)[8:] == datagram[:1232], "%s: quote is not the packet's first 1232 bytes" % (flow,))


def check_ipv6_output(packet, original, flow):
    outer = packet[IPv6]
    inner = original[IPv6]
    check(outer.nh == 41, "%s: outer next header %d, expected 41" % (flow, outer.nh))
    check(outer.hlim == 64, "%s: outer hop limit %d" % (flow, outer.hlim))
    check(outer.src == LB_IPV6, "%s: outer source %s" % (flow, outer.src))
    check(outer.dst in BACKENDS6, "%s: outer destination %s is no backend" % (flow, outer.dst))
    check(outer.plen == 40 + inner.plen, "%s: outer payload length %d" % (flow, outer.plen))
    check(outer.tc == inner.tc, "%s: traffic class not copied" % (flow,))
    check(bytes(outer.payload) == inner_datagram(original), "%s: inner datagram changed" % (flow,))
    return outer.dst


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sluiced", required=True)
    parser.add_argument("--workers", type=int, default=1,
                        help="worker lcores, each reading its own queue of the pcap port")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("FAIL: this test needs root (DPDK's EAL and net_pcap run as root)")

    try:
        return check_run(args)
    finally:
        shutil.rmtree(os.path.join("/var/run/dpdk", DPDK_PREFIX), ignore_errors=True)


def check_run(args):
    with tempfile.TemporaryDirectory(prefix="sluice-pcap-") as workdir:
        packets, expected = build_input()
        # Each flow goes to one queue, so each worker receives a flow's packets in order.
        queues = [[] for _ in range(args.workers)]
        for packet, flow in zip(packets, expected):
            queue = zlib.crc32(repr(flow).encode()) % args.workers if isinstance(flow, tuple) else 0
            queues[queue].append((packet, flow))
        input_paths = [os.path.join(workdir, "in%d.pcap" % q) for q in range(args.workers)]
        output_paths = [os.path.join(workdir, "out%d.pcap" % q) for q in range(args.workers)]
        for path, queue in zip(input_paths, queues):
            wrpcap(path, [packet for packet, _ in queue])
        stats, log = run_sluiced(args.sluiced, workdir, input_paths, output_paths, len(packets))

        pairs = []
        for path, queue in zip(output_paths, queues):
            outputs = list(rdpcap(path)) if os.path.getsize(path) > 0 else []
            forwarded = [(p, e) for p, e in queue if isinstance(e, tuple)]
            check(len(outputs) == len(forwarded),
                  "%s: %d packets out, expected %d" % (os.path.basename(path), len(outputs), len(forwarded)))
            check(len(forwarded) > 0, "%s: the test sent this queue nothing" % os.path.basename(path))
            pairs.extend(zip(outputs, forwarded))

        backend_of_flow = {}
        per_backend = {}
        gue_source_ports = set()
        for output, (original, flow) in pairs:
            if flow[0].startswith("too_big"):
                check_too_big_reply(output, original, flow)
                continue
            check(output.dst == NEXT_HOP_MAC, "%s: destination MAC %s" % (flow, output.dst))
            check(output.src == "02:70:63:61:70:00", "%s: source MAC %s" % (flow, output.src))
            if Dot1Q in original:
                check(Dot1Q in output and output[Dot1Q].vlan == original[Dot1Q].vlan,
                      "%s: VLAN tag lost" % (flow,))
            if flow[0] == "gue4":
                backend, source_port = check_gue4_output(output, original, flow)
                gue_source_ports.add(source_port)
            elif flow[0] == "gue6":
                backend = check_ipv6_outer(output, original, flow, 17, 48)
            elif flow[0] == "ipip4in6":
                backend = check_ipv6_outer(output, original, flow, 4, 40)
            elif flow[0] == "gue4in6":
                backend = check_ipv6_outer(output, original, flow, 17, 48)
            elif flow[0].endswith("4"):
                backend = check_ipv4_output(output, original, flow)
            else:
                backend = check_ipv6_output(output, original, flow)
            per_backend[backend] = per_backend.get(backend, 0) + 1
            if flow in backend_of_flow:
                check(backend_of_flow[flow] == backend,
                      "%s: reached %s and %s" % (flow, backend_of_flow[flow], backend))
            backend_of_flow[flow] = backend

        tcp4_backends = {b for f, b in backend_of_flow.items() if f[0] == "tcp4"}
        check(tcp4_backends == set(BACKENDS4), "TCP flows reached only %s" % sorted(tcp4_backends))
        tcp6_backends = {b for f, b in backend_of_flow.items() if f[0] == "tcp6"}
        check(tcp6_backends == set(BACKENDS6), "IPv6 flows reached only %s" % sorted(tcp6_backends))
        for kind, backends in (("gue4", BACKENDS4), ("gue6", BACKENDS6), ("ipip4in6", BACKENDS6), ("gue4in6", BACKENDS6)):
            used = {b for f, b in backend_of_flow.items() if f[0] == kind}
            check(used == set(backends), "%s flows reached only %s" % (kind, sorted(used)))
        check(len(gue_source_ports) > 30, "40 GUE flows used only %d source ports" % len(gue_source_ports))

        check(stats["received"] == len(packets), "stats: received %d, sent %d" % (stats["received"], len(packets)))
        too_big_total = sum(1 for e in expected if isinstance(e, tuple) and e[0].startswith("too_big"))
        forwarded_total = sum(1 for e in expected if isinstance(e, tuple)) - too_big_total
        check(stats["icmp_too_big_replies"] == too_big_total,
              "stats: icmp_too_big_replies %d, expected %d" % (stats["icmp_too_big_replies"], too_big_total))
        check(stats["forwarded"] == forwarded_total, "stats: forwarded %d, expected %d" % (stats["forwarded"], forwarded_total))
        for reason in ("ipv4_header_too_short", "truncated_tcp", "too_big_after_encapsulation"):
            check(stats["drops"][reason] == 1, "stats: drops.%s is %d, expected 1" % (reason, stats["drops"][reason]))
        check(stats["to_kernel"] == 3, "stats: to_kernel %d, expected 3" % stats["to_kernel"])
        lb_per_backend = {}
        for vip in stats["vips"]:
            for backend in vip["backends"]:
                lb_per_backend[backend["address"]] = lb_per_backend.get(backend["address"], 0) + backend["packets"]
        for backend, count in per_backend.items():
            check(lb_per_backend.get(backend) == count,
                  "stats: backend %s counted %s packets, the output has %d" % (backend, lb_per_backend.get(backend), count))
        mbufs = stats["mbufs"]
        check(mbufs["in_use"] == mbufs["in_use_at_start"],
              "mempool: %d mbufs in use after the run, %d at start" % (mbufs["in_use"], mbufs["in_use_at_start"]))

        if failures:
            print(log)
            for failure in failures[:40]:
                print("FAIL:", failure)
            print("%d checks failed" % len(failures))
            return 1
        print("%d worker(s), %d packets in, %d forwarded and checked, per backend: %s" %
              (args.workers, len(packets), len(pairs), dict(sorted(per_backend.items()))))
        return 0


if __name__ == "__main__":
    sys.exit(main())
