#!/usr/bin/python3
"""Drives a real sluiced through sluicectl.

sluiced runs its DPDK data plane on net_pcap: it reads a pcap of TCP SYNs to one VIP and
writes what it forwards to another pcap, so no packet reaches a network interface. Its API
socket is in a temporary directory. The test runs every sluicectl command against it and
checks the output, the exit code and the running state that `vip list --json` reports. Each
invalid input must fail with exit code 1 or 2 and a message that names the problem, and must
leave the running state (generation included) unchanged.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from scapy.all import IP, TCP, Ether, wrpcap

VIP4 = "203.0.113.10:80/tcp"
VIP6 = "[2001:db8::10]:443/udp"
BACKENDS4 = ["198.51.100.130", "198.51.100.131"]
SYN_PACKETS = 20

CONFIG = """
dataplane:
  type: dpdk
  dpdk:
    main_lcore: 0
    worker_lcores: [1]
    eal_args: ["--no-huge", "-m", "256", "--no-shconf", "--no-pci", "--no-telemetry",
               "--file-prefix", "sluice-ctl-{pid}"]
    ports:
      - device: "net_pcap0,rx_pcap={rx},tx_pcap={tx}"
lb:
  ipv4: 198.51.100.2
  ipv6: 2001:db8:100::2
  next_hop:
    mac: "02:00:00:00:00:fe"
vips:
  - address: 203.0.113.10
    port: 80
    protocol: tcp
    table_size: {table_size}
    backends:
{backends}
"""

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


class Sluicectl:
    """Runs sluicectl against one socket and returns (exit code, stdout, stderr)."""

    def __init__(self, binary, socket_path):
        self.binary = binary
        self.socket_path = socket_path

    def run(self, *args, socket_path=None):
        command = [self.binary, "--socket", socket_path or self.socket_path] + list(args)
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        return done.returncode, done.stdout, done.stderr

    def ok(self, *args):
        code, out, err = self.run(*args)
        check(code == 0, "sluicectl %s: exit code %d, expected 0; stderr: %s" %
              (" ".join(args), code, err.strip()))
        return out, err

    def state(self):
        code, out, err = self.run("--json", "vip", "list")
        if code != 0:
            failures.append("vip list --json failed with %d: %s" % (code, err.strip()))
            return None
        return json.loads(out)


def backend_lines(backends):
    return "\n".join("      - {address: %s, weight: %d}" % (address, weight)
                     for address, weight in backends)


def write_config(path, workdir, backends, table_size=65537):
    with open(path, "w") as f:
        f.write(CONFIG.format(pid=os.getpid(), rx=os.path.join(workdir, "in.pcap"),
                              tx=os.path.join(workdir, "out.pcap"),
                              table_size=table_size, backends=backend_lines(backends)))


def vip_of(state, name):
    for vip in state["vips"]:
        if vip["vip"] == name:
            return vip
    return None


def backends_of(state, name):
    vip = vip_of(state, name)
    return {b["address"]: b for b in vip["backends"]} if vip else {}


def start_sluiced(sluiced, workdir, ctl):
    """Starts sluiced, waits until its API responds, and returns the process and its log path."""
    wrpcap(os.path.join(workdir, "in.pcap"),
           [Ether(dst="02:70:63:61:70:00", src="02:00:00:00:00:01") /
            IP(src="192.0.2.%d" % (2 + i), dst="203.0.113.10") /
            TCP(sport=30000 + i, dport=80, flags="S") for i in range(SYN_PACKETS)])
    config_path = os.path.join(workdir, "sluiced.yaml")
    write_config(config_path, workdir, [(b, 1) for b in BACKENDS4])
    log_path = os.path.join(workdir, "sluiced.log")
    with open(log_path, "w") as log:
        process = subprocess.Popen([sluiced, "--config", config_path,
                                    "--api-socket", ctl.socket_path, "--metrics-listen", "none"],
                                   stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline and process.poll() is None:
        if os.path.exists(ctl.socket_path) and ctl.run("vip", "list")[0] == 0:
            return process, log_path
        time.sleep(0.2)
    return process, log_path


def test_vip_commands(ctl):
    out, _ = ctl.ok("vip", "list")
    check(out.splitlines()[0].split()[:3] == ["VIP", "TABLE", "SIZE"],
          "vip list: header is %r" % out.splitlines()[0])
    check(VIP4 in out, "vip list: %s missing from\n%s" % (VIP4, out))
    row = [line for line in out.splitlines() if line.startswith(VIP4)]
    check(row and row[0].split()[-2:] == ["ipip", "connection"],
          "vip list: %s should show ipip and connection last:\n%s" % (VIP4, out))

    out, _ = ctl.ok("vip", "add", VIP6, "--table-size", "251")
    check("added VIP %s" % VIP6 in out, "vip add: output %r" % out)
    vip = vip_of(ctl.state(), VIP6) or {}
    check(vip.get("table_size") == 251, "vip add: %s not listed with table_size 251: %s" % (VIP6, vip))

    out, err = ctl.ok("vip", "add", "203.0.113.20:53/udp", "--check", "http:/healthz")
    check(err == "", "vip add --check: unexpected stderr %r" % err)
    check(vip_of(ctl.state(), "203.0.113.20:53/udp") is not None, "vip add --check: VIP missing")
    config, _ = ctl.ok("config", "show")
    check("path: /healthz" in config, "vip add --check: the check is not in the config:\n%s" % config)
    out, _ = ctl.ok("vip", "del", "203.0.113.20:53/udp")
    check("deleted VIP 203.0.113.20:53/udp" in out, "vip del: output %r" % out)
    check(vip_of(ctl.state(), "203.0.113.20:53/udp") is None, "vip del: the VIP is still listed")

    out, _ = ctl.ok("vip", "add", "203.0.113.21:443/tcp", "--persistence", "client")
    vip = vip_of(ctl.state(), "203.0.113.21:443/tcp") or {}
    check(vip.get("persistence") == "client", "vip add --persistence client: listed as %s" % vip)
    check(vip_of(ctl.state(), VIP4).get("persistence") == "connection",
          "a VIP added without --persistence should have connection persistence")
    ctl.ok("vip", "del", "203.0.113.21:443/tcp")

    ctl.ok("vip", "add", "203.0.113.22:443/tcp", "--encapsulation", "gue")
    vip = vip_of(ctl.state(), "203.0.113.22:443/tcp") or {}
    check(vip.get("encapsulation") == "gue", "vip add --encapsulation gue: listed as %s" % vip)
    check(vip_of(ctl.state(), VIP4).get("encapsulation") == "ipip",
          "a VIP added without --encapsulation should use ipip")
    # An IPv6 backend behind an IPv4 VIP travels as IPv4 in IPv6.
    out, _ = ctl.ok("backend", "add", "203.0.113.22:443/tcp", "2001:db8:100::140")
    check("2001:db8:100::140" in out, "backend add of an IPv6 backend to an IPv4 VIP: output %r" % out)
    config, _ = ctl.ok("config", "show")
    check("encapsulation: gue" in config, "vip add --encapsulation: not in the config:\n%s" % config)
    ctl.ok("vip", "del", "203.0.113.22:443/tcp")

    # TCP and UDP on one address and port are two VIPs: adding one keeps the other, and
    # deleting one leaves the other.
    udp_twin = VIP4.replace("/tcp", "/udp")
    ctl.ok("vip", "add", udp_twin)
    state = ctl.state()
    check(vip_of(state, udp_twin) is not None and vip_of(state, VIP4) is not None,
          "vip add %s: both %s and %s should be listed" % (udp_twin, VIP4, udp_twin))
    ctl.ok("vip", "del", udp_twin)
    state = ctl.state()
    check(vip_of(state, udp_twin) is None and vip_of(state, VIP4) is not None,
          "vip del %s: %s should stay" % (udp_twin, VIP4))


def test_backend_commands(ctl):
    out, _ = ctl.ok("backend", "add", VIP6, "[2001:db8::20]", "--weight", "3")
    check("added backend 2001:db8::20 to VIP %s" % VIP6 in out, "backend add: output %r" % out)
    ctl.ok("backend", "add", VIP6, "2001:db8::21")
    backends = backends_of(ctl.state(), VIP6)
    check(set(backends) == {"2001:db8::20", "2001:db8::21"}, "backend add: backends %s" % list(backends))
    check(backends.get("2001:db8::20", {}).get("weight") == 3, "backend add --weight 3: %s" % backends)
    check(backends.get("2001:db8::21", {}).get("weight") == 1, "backend add: default weight %s" % backends)

    ctl.ok("backend", "weight", VIP6, "2001:db8::21", "7")
    check(backends_of(ctl.state(), VIP6)["2001:db8::21"]["weight"] == 7, "backend weight 7 not set")
    out, _ = ctl.ok("backend", "weight", VIP6, "2001:db8::21", "7")
    check("nothing changed" in out, "backend weight to the same value: output %r" % out)

    out, _ = ctl.ok("backend", "drain", VIP6, "2001:db8::20")
    check("drained backend 2001:db8::20" in out, "backend drain: output %r" % out)
    drained = backends_of(ctl.state(), VIP6)["2001:db8::20"]
    check(drained["weight"] == 0, "backend drain: weight %s, expected 0" % drained["weight"])
    check(drained["state"] == "drained", "backend drain: state %s" % drained["state"])
    check(drained["slots"] == 0, "backend drain: %s slots, expected 0" % drained["slots"])

    out, _ = ctl.ok("backend", "list", VIP6)
    rows = [line.split() for line in out.splitlines()[1:]]
    check(out.splitlines()[0].split() == ["VIP", "BACKEND", "WEIGHT", "STATE", "SLOTS", "SHARE"],
          "backend list: header %r" % out.splitlines()[0])
    check([VIP6, "2001:db8::20", "0", "drained", "0", "0.0%"] in rows, "backend list: rows %s" % rows)
    check([VIP6, "2001:db8::21", "7", "live", "251", "100.0%"] in rows, "backend list: rows %s" % rows)
    out, _ = ctl.ok("backend", "list")
    check(VIP4 in out, "backend list without VIP: %s missing from\n%s" % (VIP4, out))
    check(VIP6 in out, "backend list without VIP: %s missing from\n%s" % (VIP6, out))

    out, _ = ctl.ok("backend", "del", VIP6, "2001:db8::20")
    check("deleted backend 2001:db8::20" in out, "backend del: output %r" % out)
    check(set(backends_of(ctl.state(), VIP6)) == {"2001:db8::21"}, "backend del: still listed")


def test_lookup(ctl):
    out, _ = ctl.ok("--json", "lookup", VIP4, "192.0.2.2:40000")
    result = json.loads(out)
    check(result.get("backend") in BACKENDS4, "lookup --json: %s" % result)
    out, _ = ctl.ok("lookup", VIP4, "192.0.2.2:40000")
    check("goes to backend %s" % result.get("backend") in out, "lookup: output %r" % out)
    out, _ = ctl.ok("lookup", VIP6, "[2001:db8::99]:5353")
    check("goes to backend 2001:db8::21" in out, "lookup IPv6: output %r" % out)


def digest_of(ctl):
    out, _ = ctl.ok("--json", "digest")
    try:
        return json.loads(out)
    except ValueError:
        failures.append("digest --json: not JSON: %r" % out)
        return {}


def test_digest(ctl):
    """The digest changes with the tables and returns when they do, whatever the order."""
    before = digest_of(ctl)
    digest = before.get("digest", "")
    check(len(digest) == 16 and all(c in "0123456789abcdef" for c in digest),
          "digest: expected 16 hex digits, got %r" % digest)
    check(before.get("seed") == 0, "digest: seed %r, expected 0 (the config sets none)" %
          before.get("seed"))
    vips = {vip["vip"]: vip for vip in before.get("vips", [])}
    check(VIP4 in vips and vips[VIP4].get("table_size") == 65537,
          "digest: expected %s with table size 65537, got %s" % (VIP4, before))

    out, _ = ctl.ok("digest")
    check(digest in out and VIP4 in out and "TABLE SIZE" in out, "digest: output %r" % out)

    # A new backend changes the IPv4 VIP's table; removing it restores the same table.
    ctl.ok("backend", "add", VIP4, "198.51.100.140")
    added = digest_of(ctl)
    added_vips = {vip["vip"]: vip for vip in added.get("vips", [])}
    check(added.get("digest") != digest, "digest: unchanged after adding a backend")
    check(added_vips.get(VIP4, {}).get("digest") != vips.get(VIP4, {}).get("digest"),
          "digest: %s's digest unchanged after adding a backend to it" % VIP4)
    for name, vip in vips.items():
        if name != VIP4:
            check(added_vips.get(name, {}).get("digest") == vip.get("digest"),
                  "digest: %s changed when a backend was added to %s" % (name, VIP4))
    ctl.ok("backend", "del", VIP4, "198.51.100.140")
    after = digest_of(ctl)
    check(after.get("digest") == digest,
          "digest: %s after adding and removing a backend, expected the first %s" %
          (after.get("digest"), digest))
    check(after.get("generation") != before.get("generation"),
          "digest: generation did not change across two changes")


def test_stats(ctl):
    # net_pcap reads the whole input at start; wait until the counters show all of it.
    report = {}
    deadline = time.time() + 10
    while time.time() < deadline:
        out, _ = ctl.ok("--json", "stats")
        report = json.loads(out)
        if report.get("received") == SYN_PACKETS:
            break
        time.sleep(0.2)
    check(report.get("received") == SYN_PACKETS,
          "stats: received %s, expected %d" % (report.get("received"), SYN_PACKETS))
    check(report.get("forwarded") == SYN_PACKETS,
          "stats: forwarded %s, expected %d" % (report.get("forwarded"), SYN_PACKETS))
    vip = vip_of(report, VIP4) or {"backends": []}
    check(sum(b["packets"] for b in vip["backends"]) == SYN_PACKETS,
          "stats: backend packets of %s add up to %s" % (VIP4, [b["packets"] for b in vip["backends"]]))

    out, _ = ctl.ok("stats")
    check("packets: received %d, forwarded %d" % (SYN_PACKETS, SYN_PACKETS) in out,
          "stats: totals line missing from\n%s" % out)
    check("drops: none" in out, "stats: drops line missing from\n%s" % out)
    check("icmp: errors to backends 0, echo replies 0, too-big replies 0; new flows over the limit 0" in out,
          "stats: ICMP line missing from\n%s" % out)

    out, _ = ctl.ok("--json", "stats", VIP6)
    check([v["vip"] for v in json.loads(out)["vips"]] == [VIP6], "stats VIP: %s" % out)

    started = time.monotonic()
    out, _ = ctl.ok("stats", "--rate", "--json")
    elapsed = time.monotonic() - started
    rates = json.loads(out)
    check(elapsed >= 1.0, "stats --rate returned after %.2f s, expected two samples 1 s apart" % elapsed)
    check(0.9 <= rates.get("interval_seconds", 0) <= 2.0, "stats --rate: interval %s" % rates.get("interval_seconds"))
    check(rates.get("received") == 0.0, "stats --rate: %s packets/s received after the pcap ended" % rates.get("received"))
    out, _ = ctl.ok("stats", "--rate")
    check("per second over" in out, "stats --rate: interval line missing from\n%s" % out)
    check("PACKETS/S" in out, "stats --rate: rate table missing from\n%s" % out)


def test_health(ctl):
    # The test's VIPs have no health checks, so no backend is listed.
    code, out, err = ctl.run("health")
    check(code == 0, "health: exit code %d, expected 0 (stderr %r)" % (code, err))
    check("no backends with health checks" in out, "health: output %r" % out)
    code, out, err = ctl.run("--json", "health")
    check(code == 0 and json.loads(out) == {"backends": []}, "health --json: %d %r" % (code, out))


def test_config(ctl, workdir):
    out, _ = ctl.ok("config", "show")
    check("vips:" in out, "config show: no vips in\n%s" % out)
    check("address: 203.0.113.10" in out, "config show: VIP address missing from\n%s" % out)

    before = ctl.state()
    dry_path = os.path.join(workdir, "dry.yaml")
    write_config(dry_path, workdir, [(b, 4) for b in BACKENDS4])
    out, _ = ctl.ok("apply", "-f", dry_path, "--dry-run")
    check(out.startswith("dry run: %s is valid" % dry_path), "apply --dry-run: output %r" % out)
    check(ctl.state() == before, "apply --dry-run changed the running state")

    invalid_path = os.path.join(workdir, "invalid.yaml")
    write_config(invalid_path, workdir, [(b, 1) for b in BACKENDS4], table_size=65536)
    code, out, err = ctl.run("apply", "-f", invalid_path)
    check(code == 1, "apply of an invalid file: exit code %d, expected 1" % code)
    check("invalid.yaml: vips[0].table_size: 65536 is not prime" in err,
          "apply of an invalid file: stderr %r lacks the field path" % err)
    check(ctl.state() == before, "apply of an invalid file changed the running state")

    valid_path = os.path.join(workdir, "valid.yaml")
    write_config(valid_path, workdir, [(BACKENDS4[0], 1), (BACKENDS4[1], 2), ("198.51.100.132", 1)])
    out, _ = ctl.ok("apply", "-f", valid_path)
    check("applied" in out, "apply: output %r" % out)
    after = ctl.state()
    check(after["generation"] > before["generation"], "apply: generation did not advance")
    backends = backends_of(after, VIP4)
    check(set(backends) == set(BACKENDS4) | {"198.51.100.132"},
          "apply: backends of %s are %s" % (VIP4, list(backends)))
    check(backends.get(BACKENDS4[1], {}).get("weight") == 2,
          "apply: %s has %s, expected weight 2" % (BACKENDS4[1], backends.get(BACKENDS4[1])))
    # The file defines only the first VIP, so applying it removes the one added by the test.
    check(vip_of(after, VIP6) is None, "apply: %s should be gone after applying the file" % VIP6)
    out, _ = ctl.ok("apply", "-f", valid_path)
    check("nothing changed" in out, "apply of the running config: output %r" % out)


# (arguments, expected exit code, expected fragment of stderr)
BAD_INPUTS = [
    (["vip", "add", "203.0.113.30:80/tcp", "--table-size", "65536"], 2,
     "--table-size: 65536 is not prime"),
    (["backend", "add", VIP4, "[2001:db8::1"], 2, "ADDRESS: '[2001:db8::1' is not an IPv4 or IPv6"),
    (["backend", "add", VIP4, "300.1.1.1"], 2, "ADDRESS: '300.1.1.1' is not an IPv4 or IPv6"),
    (["vip", "add", VIP4], 1, "already exists"),
    (["backend", "weight", VIP4, BACKENDS4[0], "-1"], 2, "WEIGHT: '-1' is not a whole number from 0 to 65535"),
    (["backend", "weight", VIP4, BACKENDS4[0], "70000"], 2, "WEIGHT: 70000 is out of range (use 0 to 65535)"),
    (["backend", "add", VIP4, "198.51.100.140", "--weight", "70000"], 2, "--weight: 70000 is out of range"),
    (["vip", "del", "203.0.113.99:80/tcp"], 1, "vip 203.0.113.99:80/tcp not found (sluicectl vip list shows the VIPs)"),
    (["vip", "add", "203.0.113.10:80"], 2, "VIP: invalid VIP '203.0.113.10:80'"),
    (["vip", "del", "2001:db8::10:443/udp"], 2, "VIP: invalid VIP '2001:db8::10:443/udp'"),
    (["backend", "del", VIP4, "198.51.100.99"], 1, "not found"),
    (["backend", "add", VIP6, "198.51.100.5"], 1, "an IPv6 VIP needs IPv6 backends"),
    (["vip", "add", "203.0.113.30:80/tcp", "--encapsulation", "gre"], 2, "--encapsulation: gre not in"),
    (["lookup", VIP4, "192.0.2.2"], 2, "CLIENT: '192.0.2.2' is not ADDRESS:PORT"),
    (["vip", "add", "203.0.113.30:80/tcp", "--check", "http:healthz"], 2,
     "--check: 'http:healthz': the HTTP path must start with '/'"),
    (["vip", "add", "203.0.113.30:80/tcp", "--check", "icmp"], 2, "--check: 'icmp' is not a health check"),
    (["apply", "-f", "/nonexistent/sluice.yaml"], 2, "--file: cannot read '/nonexistent/sluice.yaml'"),
    (["vip", "add", "203.0.113.30:80/tcp", "--persistence", "sticky"], 2, "--persistence: sticky not in"),
]


def test_bad_inputs(ctl, workdir):
    before = ctl.state()
    for args, expected_code, fragment in BAD_INPUTS:
        code, out, err = ctl.run(*args)
        name = "sluicectl " + " ".join(args)
        check(code == expected_code, "%s: exit code %d, expected %d; stderr %r" % (name, code, expected_code, err))
        check(err.startswith("sluicectl: "), "%s: stderr does not start with 'sluicectl: ': %r" % (name, err))
        check(fragment in err, "%s: stderr %r lacks %r" % (name, err, fragment))
        check(out == "", "%s: printed %r to stdout" % (name, out))
    check(ctl.state() == before, "the invalid inputs changed the running state")

    missing = os.path.join(workdir, "missing.sock")
    code, out, err = ctl.run("vip", "list", socket_path=missing)
    check(code == 1, "missing socket: exit code %d, expected 1" % code)
    check("cannot connect to sluiced at %s" % missing in err, "missing socket: stderr %r lacks the path" % err)
    check("--socket" in err, "missing socket: stderr %r does not suggest --socket" % err)


def test_completion(sluicectl, completion_file):
    done = subprocess.run([sluicectl, "completion", "bash"], capture_output=True, text=True, timeout=30)
    check(done.returncode == 0, "completion bash: exit code %d" % done.returncode)
    with open(completion_file) as f:
        check(f.read() == done.stdout,
              "%s differs from `sluicectl completion bash`; regenerate it" % completion_file)
    script = done.stdout + """
complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _sluicectl; echo "${COMPREPLY[*]}"; }
complete_words sluicectl ba
complete_words sluicectl --socket /tmp/x backend ""
complete_words sluicectl vip add 203.0.113.10:80/tcp --check ""
complete_words sluicectl stats --r
"""
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    lines = done.stdout.splitlines()
    expected = ["backend", "add del weight drain list -h --help --socket --timeout --json",
                "tcp http: udp none", "--rate"]
    check(lines == expected, "completion: offered %s, expected %s (stderr %r)" % (lines, expected, done.stderr))


# sluiced's API closes a connection whose request has not arrived within this many seconds.
CLIENT_TIMEOUT_S = 5


def test_late_request(ctl, log_path):
    """Checks that sluiced closes a silent connection after its client timeout, logs it and
    serves the next client. Then checks that sluicectl sends its request again on a new
    connection when sluiced closed the first one before reading any of it."""
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        silent.connect(ctl.socket_path)
        silent.settimeout(CLIENT_TIMEOUT_S + 5)
        started = time.time()
        closed = silent.recv(1) == b""
        waited = time.time() - started
    finally:
        silent.close()
    check(closed, "a silent client's connection was not closed by sluiced")
    check(CLIENT_TIMEOUT_S - 0.5 <= waited <= CLIENT_TIMEOUT_S + 3,
          "sluiced closed a silent connection after %.1f s, expected about %d s" % (waited, CLIENT_TIMEOUT_S))
    check("timed out after %d s without a complete request" % CLIENT_TIMEOUT_S in open(log_path).read(),
          "sluiced did not log the silent connection it closed")
    ctl.ok("vip", "list")

    strace = shutil.which("strace")
    if not check(strace is not None, "strace is missing (Debian package strace; tools/install-deps installs it)"):
        return
    # The first sendto() of sluicectl waits past sluiced's client timeout, so sluiced has closed
    # that connection when the request goes out, as it would for a client held up that long.
    delay_us = (CLIENT_TIMEOUT_S + 1) * 1_000_000
    done = subprocess.run([strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=sendto",
                           "-e", "inject=sendto:delay_enter=%d:when=1" % delay_us,
                           ctl.binary, "--socket", ctl.socket_path, "--timeout", "20", "--json", "vip", "list"],
                          capture_output=True, text=True, timeout=60)
    check(done.returncode == 0, "sluicectl with a late first send: exit code %d, expected 0; stderr: %s" %
          (done.returncode, done.stderr.strip()))
    check(done.returncode != 0 or "vips" in json.loads(done.stdout),
          "sluicectl with a late first send printed %r" % done.stdout[:200])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sluiced", required=True)
    parser.add_argument("--sluicectl", required=True)
    parser.add_argument("--completion-file", required=True,
                        help="the checked-in bash completion script to compare")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("FAIL: this test needs root (it starts sluiced, whose DPDK EAL runs as root)")

    with tempfile.TemporaryDirectory(prefix="sluicectl-test-") as workdir:
        ctl = Sluicectl(args.sluicectl, os.path.join(workdir, "api.sock"))
        process, log_path = start_sluiced(args.sluiced, workdir, ctl)
        stop_code = None
        try:
            if process.poll() is not None or not os.path.exists(ctl.socket_path):
                print(open(log_path).read())
                sys.exit("FAIL: sluiced did not serve its API within 30 s (exit code %s)" % process.poll())
            test_vip_commands(ctl)
            test_backend_commands(ctl)
            test_lookup(ctl)
            test_digest(ctl)
            test_stats(ctl)
            test_health(ctl)
            test_late_request(ctl, log_path)
            test_bad_inputs(ctl, workdir)
            test_config(ctl, workdir)
            test_completion(args.sluicectl, args.completion_file)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    stop_code = process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            # The EAL's runtime directory of this test's sluiced.
            shutil.rmtree("/var/run/dpdk/sluice-ctl-%d" % os.getpid(), ignore_errors=True)
        check(stop_code == 0, "sluiced exited with %s after SIGTERM, expected 0" % stop_code)
        check(not os.path.exists(ctl.socket_path), "sluiced left its API socket behind")

        if failures:
            print(open(log_path).read())
            for failure in failures:
                print("FAIL:", failure)
            print("%d checks failed" % len(failures))
            return 1
    print("sluicectl: all commands and %d invalid inputs checked against sluiced" % len(BAD_INPUTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
