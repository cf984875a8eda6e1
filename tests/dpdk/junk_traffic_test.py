#!/usr/bin/python3
"""10 million junk packets through sluiced's DPDK data plane, then normal traffic again.

sluiced runs as a net_memif server; sluice-pktgen connects as the client, three times:
  1. 1000 TCP ACKs to the VIP, which must all come back encapsulated; the mempool's in-use
     count afterwards is the baseline;
  2. 10,000,000 frames replayed from a pcap of junk. It contains bad IHL, truncated IPv4, TCP
     and UDP headers, TTL 1, zero-length UDP, and ICMP errors about unknown flows. It also
     contains frames for addresses that are not VIPs, and an IPv6 frame whose payload length
     runs past the frame;
  3. the 1000 ACKs again, which must all come back.
The mempool's in-use count must then equal the baseline (no mbuf leaked), and the drop
counters must have grown under the expected reasons.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from scapy.all import ICMP, IP, IPv6, TCP, UDP, Ether, Raw, wrpcap  # noqa: E402

VIP = "203.0.113.10"
JUNK_PACKETS = 10_000_000
NORMAL_PACKETS = 1000
PREFIX = "sluice-junk-%d" % os.getpid()

CONFIG = """
dataplane:
  type: dpdk
  dpdk:
    main_lcore: 0
    worker_lcores: [1]
    worker_cpus: [{worker_cpu}]
    eal_args: ["--no-huge", "-m", "512", "--no-pci", "--no-telemetry", "--file-prefix", "{prefix}-lb",
               "--log-level", "lib.eal:warning"]
    mbufs_per_worker: 16384
    ports:
      - device: "net_memif0,role=server,socket={socket}"
lb:
  ipv4: 198.51.100.2
  next_hop:
    mac: "02:00:00:00:00:fe"
seed: 0x51ce
vips:
  - address: {vip}
    port: 80
    protocol: tcp
    backends: [{{address: 198.51.100.130}}, {{address: 198.51.100.131}}, {{address: 198.51.100.132}}]
"""


def junk_frames():
    ether = Ether(dst="02:00:00:00:5c:02", src="02:00:00:00:5c:01")
    frames = []
    good = ether / IP(src="192.0.2.7", dst=VIP) / TCP(sport=40000, dport=80, flags="A")
    raw = bytes(good)
    bad_ihl = bytearray(raw)
    bad_ihl[14] = 0x43  # IHL 3
    frames.append(bytes(bad_ihl))
    frames.append(raw[:14 + 12])                      # truncated IPv4 header
    frames.append(raw[:14 + 20 + 10])                 # truncated TCP header (the total length is larger)
    short_tcp = ether / IP(src="192.0.2.7", dst=VIP, proto=6) / Raw(b"\0" * 10)
    frames.append(bytes(short_tcp))                   # TCP header cut short inside the datagram
    short_udp = ether / IP(src="192.0.2.7", dst=VIP, proto=17) / Raw(b"\0" * 4)
    frames.append(bytes(short_udp))                   # truncated UDP header
    frames.append(bytes(ether / IP(src="192.0.2.7", dst=VIP, ttl=1) / TCP(sport=40001, dport=80, flags="A")))
    frames.append(bytes(ether / IP(src="192.0.2.7", dst=VIP) / UDP(sport=40002, dport=80, len=8)))
    quoted = IP(src=VIP, dst="192.0.2.99") / TCP(sport=80, dport=41000)
    frames.append(bytes(ether / IP(src="198.51.100.1", dst=VIP) / ICMP(type=3, code=4) / bytes(quoted)[:28]))
    frames.append(bytes(ether / IP(src="192.0.2.7", dst="203.0.113.99") / TCP(sport=40003, dport=80)))
    frames.append(bytes(ether / IP(src="192.0.2.7", dst=VIP) / TCP(sport=40004, dport=443)))
    v6 = bytearray(bytes(ether / IPv6(src="2001:db8::7", dst="2001:db8::10") / TCP(sport=40005, dport=80)))
    v6[14 + 4:14 + 6] = (2000).to_bytes(2, "big")     # payload length past the frame
    frames.append(bytes(v6))
    frames.append(bytes(Ether(dst="02:00:00:00:5c:02", src="02:00:00:00:5c:01", type=0x0800)))  # no IP header
    return frames


class Run:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.socket = os.path.join(work, "memif.sock")
        self.stats = os.path.join(work, "stats.json")
        self.sluiced = None

    def pktgen(self, name, options):
        # NOTE: when the generator leaves, DPDK 22.11's memif server unmaps the shared memory
        # without waiting for a receive call in progress, so a sluiced crash here may be that race.
        prefix = "%s-gen-%s" % (PREFIX, name)
        command = [self.args.pktgen, "--lcores", "0@0", "--no-huge", "-m", "512", "--single-file-segments",
                   "--no-pci", "--no-telemetry", "--file-prefix", prefix, "--log-level", "lib.eal:warning",
                   "--vdev", "net_memif0,role=client,socket=%s,rsize=12,zero-copy=yes" % self.socket, "--",
                   "--vip", VIP + ":80/tcp", "--json", "--drain-ms", "300", "--link-timeout", "20"] + options
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        finally:
            shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
        if result.returncode != 0:
            raise RuntimeError("sluice-pktgen (%s) exited with %d: %s" % (name, result.returncode, result.stderr[-1500:]))
        return json.loads(result.stdout.strip().splitlines()[-1])["trials"][-1]

    def read_stats(self):
        before = os.stat(self.stats).st_mtime_ns if os.path.exists(self.stats) else 0
        self.sluiced.send_signal(signal.SIGUSR1)
        deadline = time.time() + 10
        while time.time() < deadline:
            if os.path.exists(self.stats) and os.stat(self.stats).st_mtime_ns != before:
                time.sleep(0.05)
                with open(self.stats) as f:
                    return json.load(f)
            time.sleep(0.02)
        raise RuntimeError("sluiced wrote no stats file after SIGUSR1")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sluiced", required=True)
    parser.add_argument("--pktgen", required=True)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("junk_traffic_test: needs root for DPDK's EAL; run it as root", file=sys.stderr)
        return 1
    args.worker_cpu = 1 if os.cpu_count() > 1 else 0

    failures = []

    def check(condition, message):
        print(("ok: " if condition else "FAIL: ") + message)
        if not condition:
            failures.append(message)

    work = tempfile.mkdtemp(prefix="sluice-junk-")
    run = Run(args, work)
    try:
        junk = os.path.join(work, "junk.pcap")
        wrpcap(junk, [Ether(frame) for frame in junk_frames()])
        config = os.path.join(work, "sluiced.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(worker_cpu=args.worker_cpu, prefix=PREFIX, socket=run.socket, vip=VIP))
        log = open(os.path.join(work, "sluiced.log"), "w")
        run.sluiced = subprocess.Popen([args.sluiced, "--config", config, "--stats-file", run.stats,
                                        "--api-socket", os.path.join(work, "api.sock"), "--metrics-listen", "none"],
                                       stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while not os.path.exists(os.path.join(work, "api.sock")):
            if run.sluiced.poll() is not None or time.time() > deadline:
                raise RuntimeError("sluiced did not start: " + open(os.path.join(work, "sluiced.log")).read()[-1500:])
            time.sleep(0.1)

        normal = ["--flows", "100", "--count", str(NORMAL_PACKETS), "--duration", "0"]
        first = run.pktgen("normal-1", normal)
        check(first["received"] == NORMAL_PACKETS, "normal traffic: %d of %d came back" % (first["received"], NORMAL_PACKETS))
        baseline = run.read_stats()

        started = time.time()
        sent = run.pktgen("junk", ["--pcap", junk, "--count", str(JUNK_PACKETS), "--duration", "0", "--retry"])
        print("junk: %d offered, %d sent in %.1f s" % (sent["offered"], sent["sent"], time.time() - started))
        check(sent["sent"] == JUNK_PACKETS, "junk: %d frames sent" % sent["sent"])

        second = run.pktgen("normal-2", normal)
        check(second["received"] == NORMAL_PACKETS, "normal traffic after the junk: %d of %d came back" % (
            second["received"], NORMAL_PACKETS))
        after = run.read_stats()

        check(after["mbufs"]["in_use"] == baseline["mbufs"]["in_use"],
              "mbufs in use: %d after, %d before the junk" % (after["mbufs"]["in_use"], baseline["mbufs"]["in_use"]))
        received = after["received"] - baseline["received"]
        check(received >= sent["sent"], "sluiced received %d packets, sluice-pktgen sent %d" % (received, sent["sent"]))
        grew = {k: after["drops"][k] - baseline["drops"][k] for k in after["drops"]
                if after["drops"][k] != baseline["drops"][k]}
        print("drops during the junk: %s" % grew)
        for reason in ("ipv4_header_too_short", "truncated_ipv4", "ipv4_total_length_past_frame",
                       "truncated_tcp", "truncated_udp", "ipv6_payload_length_past_frame"):
            check(grew.get(reason, 0) > 0, "drops counted as %s" % reason)
        check(after["icmp_errors"] > baseline["icmp_errors"], "ICMP errors about unknown flows went to backends")
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as error:
        failures.append(str(error))
        print("FAIL: %s" % error)
    finally:
        if run.sluiced is not None and run.sluiced.poll() is None:
            run.sluiced.send_signal(signal.SIGTERM)
            try:
                run.sluiced.wait(timeout=20)
            except subprocess.TimeoutExpired:
                run.sluiced.kill()
        shutil.rmtree("/var/run/dpdk/%s-lb" % PREFIX, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("PASSED: 10M junk frames, no mbuf leaked, forwarding works afterwards")
    return 0


if __name__ == "__main__":
    sys.exit(main())
