#!/usr/bin/python3
"""sluice-pktgen on DPDK's net_pcap, checked with scapy as an independent decoder.

- Built frames: scapy decodes every frame that sluice-pktgen writes. The test checks the MACs,
  the VIPs and client prefixes, the kind sequence of the mix, and the frame sizes (IMIX, and
  the growth of small IPv6 frames). It also checks the flow count, the IPv4 and L4 checksums,
  and the trailing timestamp.
- Counts: the number of frames in the TX pcap equals the `sent` figure of the report, and the
  `received` figure equals the number of frames in the RX pcap that net_pcap replays to it.
- Replay: --pcap sends the file's frames unchanged, in order, in a loop.
- Hold: with --hold the report comes out at once, and the process stays until its standard
  input closes, then exits 0.
- Bad arguments exit with status 2 and a message that names the argument.
"""
import argparse
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile

from scapy.all import IP, IPv6, TCP, UDP, Ether, Raw, rdpcap, wrpcap  # noqa: E402

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def eal(prefix, device):
    return ["--no-huge", "-m", "512", "--no-pci", "--no-telemetry", "--file-prefix", prefix,
            "--log-level", "lib.eal:warning", "--vdev", device, "--"]


def run_pktgen(binary, work, name, device, options):
    prefix = "sluice-pktgen-test-%d-%s" % (os.getpid(), name)
    try:
        return subprocess.run([binary] + eal(prefix, device) + options, capture_output=True, text=True,
                              timeout=60)
    finally:
        shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)


def empty_pcap(path):
    # A pcap file header (version 2.4, snaplen 65535, Ethernet) and no records.
    with open(path, "wb") as f:
        f.write(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))


def report_of(result, test):
    if result.returncode != 0:
        failures.append("%s: sluice-pktgen exited with %d: %s" % (test, result.returncode, result.stderr[-1500:]))
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def l4_checksum_ok(packet):
    layer = packet[TCP] if TCP in packet else packet[UDP]
    original = layer.chksum
    copy = packet.copy()
    copied = copy[TCP] if TCP in copy else copy[UDP]
    del copied.chksum
    return original == Ether(bytes(copy))[type(layer)].chksum


def test_built_frames(binary, work):
    tx = os.path.join(work, "built.pcap")
    rx = os.path.join(work, "empty.pcap")
    empty_pcap(rx)
    count = 1200
    flows = 51  # odd, so that every flow index also receives UDP packets, 1 in 4
    result = run_pktgen(binary, work, "built", "net_pcap0,tx_pcap=%s,rx_pcap=%s" % (tx, rx), [
        "--vip", "203.0.113.10:80/tcp", "--vip", "203.0.113.11:443/tcp", "--vip", "203.0.113.12:53/udp",
        "--vip", "[2001:db8:203::10]:80/tcp",
        "--client", "192.0.2.0/24", "--client", "2001:db8:c::/64",
        "--flows", str(flows), "--mix", "ack=2,syn=1,udp=1", "--size", "imix",
        "--src-mac", "02:00:00:00:aa:01", "--dst-mac", "02:00:00:00:bb:02",
        "--count", str(count), "--duration", "0", "--drain-ms", "1", "--json"])
    report = report_of(result, "built frames")
    if report is None:
        return
    frames = rdpcap(tx)
    check(len(frames) == count, "built frames: the TX pcap holds %d frames, expected %d" % (len(frames), count))
    check(report["trials"][0]["sent"] == len(frames),
          "built frames: the report says %d sent, the pcap holds %d" % (report["trials"][0]["sent"], len(frames)))

    imix = [64, 594, 64, 594, 64, 1518, 64, 594, 64, 594, 64, 64]
    # ack=2,syn=1,udp=1: every aligned window of 4 frames contains 2 ACKs, 1 SYN and 1 UDP.
    window = []
    tuples = set()
    tcp_vips = {("203.0.113.10", 80), ("203.0.113.11", 443), ("2001:db8:203::10", 80)}
    for i, frame in enumerate(frames):
        where = "frame %d" % i
        check(frame[Ether].src == "02:00:00:00:aa:01" and frame[Ether].dst == "02:00:00:00:bb:02",
              where + ": MACs %s -> %s" % (frame[Ether].src, frame[Ether].dst))
        ip = frame[IP] if IP in frame else frame[IPv6]
        expected_size = imix[i % len(imix)] - 4
        ip_size = 20 if IP in frame else 40
        l4_size = 8 if UDP in frame else 20
        header = 14 + ip_size + l4_size + 6
        check(len(frame) == max(expected_size, header),
              where + ": %d bytes, expected %d" % (len(frame), max(expected_size, header)))
        if UDP in frame:
            window.append("udp")
            check(ip.dst == "203.0.113.12" and frame[UDP].dport == 53,
                  where + ": UDP not to the UDP VIP 203.0.113.12:53: %r" % frame.summary())
        else:
            check(TCP in frame, where + ": neither TCP nor UDP: %r" % frame.summary())
            flags = str(frame[TCP].flags) if TCP in frame else "?"
            check(flags in ("A", "S"), where + ": TCP flags %s, expected A or S" % flags)
            window.append("ack" if flags == "A" else "syn")
            check(TCP in frame and (ip.dst, frame[TCP].dport) in tcp_vips,
                  where + ": not to a TCP VIP: %s" % frame.summary())
        if len(window) == 4:
            check(sorted(window) == ["ack", "ack", "syn", "udp"],
                  "frames %d-%d: kinds %s, expected 2 ack, 1 syn, 1 udp" % (i - 3, i, window))
            window = []
        client = ipaddress.ip_address(ip.src)
        prefix = ipaddress.ip_network("192.0.2.0/24" if client.version == 4 else "2001:db8:c::/64")
        check(client in prefix and client != prefix.network_address,
              where + ": client %s outside %s or its first address" % (client, prefix))
        if IP in frame:
            copy = frame[IP].copy()
            del copy.chksum
            check(IP(bytes(copy)).chksum == frame[IP].chksum, where + ": bad IPv4 header checksum")
        check(l4_checksum_ok(frame), where + ": bad L4 checksum")
        layer = frame[TCP] if TCP in frame else frame[UDP]
        tuples.add((ip.src, layer.sport, ip.dst, layer.dport, type(layer).__name__))
        stamp = int.from_bytes(bytes(frame)[-6:], "big")
        check(stamp > 0, where + ": no timestamp in the last 6 bytes")
    # A flow index gives one 5-tuple per protocol.
    for protocol in ("TCP", "UDP"):
        count = len([t for t in tuples if t[4] == protocol])
        check(count == flows, "built frames: %d distinct %s 5-tuples, expected %d" % (count, protocol, flows))


def test_received_count(binary, work):
    """net_pcap replays an RX pcap of encapsulated frames once; the report must count each."""
    rx = os.path.join(work, "returned.pcap")
    tx = os.path.join(work, "ignored.pcap")
    inner = IP(src="192.0.2.7", dst="203.0.113.10") / TCP(sport=1234, dport=80, flags="A") / Raw(b"\0" * 6)
    returned = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:fe") /
                IP(src="198.51.100.2", dst="198.51.100.130", proto=4) / inner for _ in range(137)]
    wrpcap(rx, returned)
    result = run_pktgen(binary, work, "received", "net_pcap0,tx_pcap=%s,rx_pcap=%s" % (tx, rx), [
        "--vip", "203.0.113.10:80/tcp", "--count", "64", "--duration", "0", "--drain-ms", "200", "--json"])
    report = report_of(result, "received count")
    if report is None:
        return
    trial = report["trials"][0]
    check(trial["received"] == len(returned),
          "received count: the report says %d received, the RX pcap held %d" % (trial["received"], len(returned)))
    check(trial["sent"] == len(rdpcap(tx)), "received count: sent %d but the TX pcap holds %d" % (
        trial["sent"], len(rdpcap(tx))))


def test_replay(binary, work):
    source = os.path.join(work, "source.pcap")
    tx = os.path.join(work, "replayed.pcap")
    rx = os.path.join(work, "empty.pcap")
    frames = [Ether() / IP(src="192.0.2.%d" % (i + 1), dst="203.0.113.10") / UDP(sport=1000 + i, dport=53) /
              Raw(bytes([i]) * (10 + i)) for i in range(5)]
    wrpcap(source, frames)
    result = run_pktgen(binary, work, "replay", "net_pcap0,tx_pcap=%s,rx_pcap=%s" % (tx, rx), [
        "--pcap", source, "--vip", "203.0.113.10:53/udp", "--count", "12", "--duration", "0", "--drain-ms", "1",
        "--json"])
    if report_of(result, "replay") is None:
        return
    sent = rdpcap(tx)
    check(len(sent) == 12, "replay: %d frames sent, expected 12" % len(sent))
    for i, frame in enumerate(sent):
        check(bytes(frame) == bytes(frames[i % 5]), "replay: frame %d differs from source frame %d" % (i, i % 5))


def test_hold(binary, work):
    rx = os.path.join(work, "empty.pcap")
    tx = os.path.join(work, "held.pcap")
    prefix = "sluice-pktgen-test-%d-hold" % os.getpid()
    command = [binary] + eal(prefix, "net_pcap0,tx_pcap=%s,rx_pcap=%s" % (tx, rx)) + [
        "--vip", "203.0.113.10:80/tcp", "--count", "10", "--duration", "0", "--drain-ms", "1", "--json", "--hold"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        # With --json each trial prints a line of its own, then the report follows. Each
        # readline() blocks until its line is flushed.
        trial = process.stdout.readline()
        report = process.stdout.readline()
        check('"trial"' in trial, "hold: the first line of output is not the trial: %r" % trial[:200])
        check("max_received_pps" in report, "hold: the second line of output is not the report: %r" % report[:200])
        try:
            process.wait(timeout=1.5)
            failures.append("hold: sluice-pktgen exited with %d while its standard input was open: %s" % (
                process.returncode, process.stderr.read()[-500:]))
        except subprocess.TimeoutExpired:
            pass
        process.stdin.close()
        try:
            check(process.wait(timeout=20) == 0, "hold: exit status %d after standard input closed, expected 0"
                  % process.returncode)
        except subprocess.TimeoutExpired:
            failures.append("hold: sluice-pktgen did not exit within 20 s after its standard input closed")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)


def test_bad_arguments(binary, work):
    rx = os.path.join(work, "empty.pcap")
    tx = os.path.join(work, "bad.pcap")
    device = "net_pcap0,tx_pcap=%s,rx_pcap=%s" % (tx, rx)
    cases = [
        (["--size", "63"], "--size"),
        (["--size", "1519"], "--size"),
        (["--size", "jumbo"], "--size"),
        (["--mix", "fin=1"], "--mix"),
        (["--mix", "ack=0"], "--mix"),
        (["--vip", "203.0.113.10:80"], "--vip"),
        (["--vip", "300.1.1.1:80/tcp"], "--vip"),
        (["--client", "192.0.2.0"], "--client"),
        (["--rate", "-5"], "rate"),
        (["--rate", "fast"], "rate"),
        (["--flows", "0"], "flows"),
        (["--client", "192.0.2.0/30", "--flows", "200000"], "room for"),
        (["--mix", "udp=1"], "UDP"),
        (["--tx-port", "7"], "port 7"),
        (["--bogus"], "sluice-pktgen: The following argument was not expected: --bogus"),
    ]
    for extra, expected in cases:
        options = ["--count", "1", "--duration", "0"]
        if not any(o == "--vip" for o in extra):
            options += ["--vip", "203.0.113.10:80/tcp"]
        result = run_pktgen(binary, work, "bad", device, options + extra)
        message = result.stderr + result.stdout
        check(result.returncode == 2, "bad arguments %s: exit status %d, expected 2" % (extra, result.returncode))
        check(expected in message, "bad arguments %s: the message does not mention %r: %s" % (
            extra, expected, message.strip()[-300:]))


def test_options_before_eal(binary):
    """Checks that --help and bad options are handled before the EAL starts, with no EAL options
    given. Had the EAL started, it would have needed hugepages and created /var/run/dpdk/rte."""
    runtime_dir = "/var/run/dpdk/rte"
    existed = os.path.exists(runtime_dir)
    for extra in (["--help"], ["--", "--help"]):
        result = subprocess.run([binary] + extra, capture_output=True, text=True, timeout=30)
        check(result.returncode == 0, "help %s: exit status %d, expected 0: %s" % (
            extra, result.returncode, result.stderr[-300:]))
        check("Usage: sluice-pktgen [EAL options] -- [OPTIONS]" in result.stdout,
              "help %s: no usage line in %r" % (extra, result.stdout[:300]))
        check("--vip" in result.stdout, "help %s: --vip is not listed" % extra)
    result = subprocess.run([binary, "--", "--vip", "203.0.113.10:80/tcp", "--size", "63"],
                            capture_output=True, text=True, timeout=30)
    check(result.returncode == 2, "--size 63 without EAL options: exit status %d, expected 2" % result.returncode)
    check(result.stderr.startswith("sluice-pktgen: --size:"),
          "--size 63 without EAL options: the EAL ran or the message changed: %r" % result.stderr[:300])
    if not existed:
        check(not os.path.exists(runtime_dir), "--help or a bad option created %s: the EAL ran" % runtime_dir)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pktgen", required=True)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("pktgen_test: needs root for DPDK's EAL; run it as root", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="sluice-pktgen-test-")
    try:
        empty_pcap(os.path.join(work, "empty.pcap"))
        test_built_frames(args.pktgen, work)
        test_received_count(args.pktgen, work)
        test_replay(args.pktgen, work)
        test_hold(args.pktgen, work)
        test_bad_arguments(args.pktgen, work)
        test_options_before_eal(args.pktgen)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for failure in failures[:40]:
        print("FAIL: " + failure)
    if failures:
        print("%d failures" % len(failures))
        return 1
    print("sluice-pktgen: built frames, counts, replay, hold, bad arguments and help without the EAL all checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
