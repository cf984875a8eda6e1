#!/usr/bin/python3
"""Config churn under load: VIPs and backends added and removed 1000 times while traffic runs.

The test creates a network namespace with a veth pair, slch-lb and slch-peer. sluiced runs on
slch-lb with the chosen data plane: DPDK through net_af_packet with one worker, or the XDP
program attached in native mode, which sends packets back out of slch-lb with XDP_TX. From
slch-peer, one thread sends a steady, bounded stream of TCP and UDP packets over long-lived
flows to four VIPs, and another thread captures what sluiced sends back: IP-in-IP packets
whose outer destination is the backend.

Each cycle adds a backend, drains one now and then, removes one, and removes or adds a whole
VIP. Every 25th cycle also applies a whole config that moves a backend from one VIP to
another. Each change goes through the API (every 10th cycle's backend changes through
sluicectl). Once the API has acknowledged a change, the test sends a marker packet to a
marker VIP and waits until it sees the marker come back.

Why the markers make "after its removal was acknowledged" checkable: sluiced processes
the packets of one receive queue in order (one DPDK worker with one queue, or the XDP program
on a veth with one RX queue, which one CPU serves at a time). Both veth directions keep their
order here, so the capture has the order in which sluiced processed the packets. The API
acknowledges a change only once the data plane no longer uses older snapshots. A marker is
sent after the acknowledgement, so sluiced processed it, and everything captured after it,
with that change's snapshot or a newer one. The next change is requested only once the marker has been
seen, so everything captured before the next change's marker was processed with one of those
two snapshots. A packet captured between the markers of changes k and k+1 must therefore go
to a (VIP, backend) pair of config k or config k+1. Any other pair is reported, for example a
backend whose removal was acknowledged, or a backend of another VIP.

At the end the test checks that sluiced is alive and has reported no drops and no sanitizer
error. It checks that its RSS stopped growing (sampled every 100 cycles), that `sluicectl vip
list` shows what the last change left, and that SIGTERM stops it with exit code 0. The
namespace, sluiced and the EAL's runtime directory are removed at the end, even on failure.
"""
import argparse
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

# Documentation addresses only (RFC 5737).
LB_ADDRESS = "198.51.100.2"
LB_MAC = "02:5c:00:00:00:02"
PEER_MAC = "02:5c:00:00:00:01"
MARKER_VIP = ("203.0.113.250", 7, "udp")
MARKER_BACKEND = "198.51.100.250"
MARKER_CLIENT = ("192.0.2.250", 7000)
# A, B and C live for the whole test and have their backends churned; D is removed and added
# again. C is UDP, so the UDP flow table path is churned too.
CHURNED_VIPS = [("203.0.113.20", 80, "tcp"), ("203.0.113.21", 80, "tcp"), ("203.0.113.22", 53, "udp")]
TOGGLED_VIP = ("203.0.113.23", 443, "tcp")
BACKEND_POOL = ["198.51.100.%d" % i for i in range(130, 194)]
TABLE_SIZE = 1021  # a small prime keeps each Maglev build cheap
FLOWS_PER_VIP = 12
# After each change the test waits until half of the flows have sent a packet, or this long.
SEGMENT_TIMEOUT_S = 0.025
# The traffic and the capture stop by themselves after this long, within ctest's timeout.
MAX_TRAFFIC_SECONDS = 240
SYN_EVERY = 32  # every 32nd packet of a flow is a SYN again, which must take the table's choice
PROTOCOLS = {"tcp": 6, "udp": 17}
SOL_PACKET = 263  # <linux/socket.h>
PACKET_IGNORE_OUTGOING = 23  # <linux/if_packet.h>
PACKET_STATISTICS = 6
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1

CONFIG_HEAD_DPDK = """
dataplane:
  type: dpdk
  dpdk:
    main_lcore: 0
    worker_lcores: [1]
    worker_cpus: [{worker_cpu}]
    eal_args: ["--no-huge", "-m", "256", "--no-shconf", "--no-pci", "--no-telemetry",
               "--file-prefix", "{prefix}", "--log-level", "lib.eal:warning"]
    ports:
      - device: "net_af_packet0,iface=slch-lb,qpairs=1"
"""

CONFIG_HEAD_XDP = """
dataplane:
  type: xdp
  xdp:
    interfaces: [slch-lb]
    mode: native
    generic_fallback: false
"""

CONFIG_TAIL = """
lb:
  ipv4: {lb}
  next_hop:
    mac: "{peer_mac}"
seed: 0x51ce
flow_table:
  size: 65536
vips:
{vips}
"""


def vip_name(vip):
    return "%s:%d/%s" % vip


class Failure(Exception):
    """A check that ends the test at once, with its message."""


# ---------------------------------------------------------------------------------------------
# Namespace and processes


def run(*args, timeout=60):
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise Failure("%s exited with %d: %s" % (" ".join(args), result.returncode,
                                                  (result.stderr or result.stdout).strip()))
    return result.stdout


def setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise Failure("setns into a network namespace failed: %s" % os.strerror(error))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def remove_stale_namespaces():
    """Deletes namespaces that an earlier run of this test left when it was killed. Each name
    carries the PID of the test that created it, and only those whose PID is gone are removed.
    Their sluiced got SIGTERM when that test died (PR_SET_PDEATHSIG)."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        match = re.match(r"^(slch-(?:dpdk|xdp)-(\d+))\b", line)
        if match and not pid_alive(int(match.group(2))):
            subprocess.run(["ip", "netns", "delete", match.group(1)], capture_output=True)


class Namespace:
    """The test's namespace with the veth pair slch-lb (sluiced) and slch-peer (traffic)."""

    def __init__(self, name):
        self.name = name
        self.created = False

    def create(self, dataplane, xdp_pass):
        name = self.name
        run("ip", "netns", "add", name)
        self.created = True
        ip = ["ip", "-n", name]
        run(*ip, "link", "add", "slch-lb", "address", LB_MAC, "type", "veth", "peer", "name",
            "slch-peer", "address", PEER_MAC)
        for sysctl in ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"):
            run("ip", "netns", "exec", name, "sysctl", "-q", "-w", sysctl)
        # Offloads off: GRO on the capturing side could merge encapsulated TCP segments, and
        # a frame must leave sluiced exactly as it was built.
        for interface in ("slch-lb", "slch-peer"):
            run(*ip, "link", "set", interface, "up")
            run("ip", "netns", "exec", name, "ethtool", "-K", interface, "gro", "off", "tso", "off",
                "gso", "off", "tx", "off")
        if dataplane == "xdp":
            # A veth drops the frames that its peer sends with XDP_TX unless an XDP program is
            # attached on the receiving end.
            run(*ip, "link", "set", "dev", "slch-peer", "xdpdrv", "obj", xdp_pass, "sec", "xdp")

    def open_socket(self, *args):
        """Creates a socket inside the namespace; the rest of the test stays outside it."""
        original = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            setns(target)
            try:
                return socket.socket(*args)
            finally:
                setns(original)
        finally:
            os.close(original)
            os.close(target)

    def delete(self):
        if self.created:
            subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
            self.created = False


def set_parent_death_signal():
    """Runs in the child before exec: sluiced gets SIGTERM if the test dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Failure("no VmRSS line in /proc/%d/status" % pid)


# ---------------------------------------------------------------------------------------------
# Frames


def mac_bytes(text):
    return bytes(int(part, 16) for part in text.split(":"))


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_frame(client, sport, vip, flags, payload):
    """An Ethernet frame from `client`:`sport` to `vip`, with correct IPv4 and L4 checksums."""
    source = socket.inet_aton(client)
    destination = socket.inet_aton(vip[0])
    protocol = PROTOCOLS[vip[2]]
    if protocol == 6:
        header = struct.pack("!HHIIBBHHH", sport, vip[1], 1000, 1 if flags != "S" else 0, 5 << 4,
                             0x02 if flags == "S" else 0x10, 65535, 0, 0)
    else:
        header = struct.pack("!HHHH", sport, vip[1], 8 + len(payload), 0)
    segment = header + payload
    pseudo = source + destination + struct.pack("!BBH", 0, protocol, len(segment))
    l4_checksum = checksum(pseudo + segment)
    offset = 16 if protocol == 6 else 6
    segment = segment[:offset] + struct.pack("!H", l4_checksum) + segment[offset + 2:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 0, 0x4000, 64, protocol, 0,
                     source, destination)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return mac_bytes(LB_MAC) + mac_bytes(PEER_MAC) + b"\x08\x00" + ip + segment


def vip_key_bytes(vip):
    return socket.inet_aton(vip[0]) + struct.pack("!HB", vip[1], PROTOCOLS[vip[2]])


# ---------------------------------------------------------------------------------------------
# Traffic and capture


class Capture(threading.Thread):
    """Records, in order, every IP-in-IP packet that reaches slch-peer: ("data", VIP key bytes,
    backend address bytes, client address and port bytes) or ("marker", id). Bounded by its
    stop event and by `max_seconds`."""

    def __init__(self, sock, marker_key, max_seconds):
        super().__init__(daemon=True)
        self.sock = sock
        self.marker_key = marker_key
        self.max_seconds = max_seconds
        self.records = []
        self.other_frames = 0
        self.seen_markers = {}  # marker id -> its position in records
        self.condition = threading.Condition()
        self.stopping = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        self.sock.settimeout(0.1)
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                frame = self.sock.recv(2048)
            except socket.timeout:
                continue
            self.record(frame)

    def record(self, frame):
        # Ethernet, outer IPv4 with protocol 4 (IP-in-IP), inner IPv4, then TCP or UDP.
        if len(frame) < 14 + 20 + 20 + 8 or frame[12:14] != b"\x08\x00" or frame[23] != 4:
            self.other_frames += 1
            return
        outer_length = (frame[14] & 0x0F) * 4
        inner = 14 + outer_length
        inner_length = (frame[inner] & 0x0F) * 4
        l4 = inner + inner_length
        key = frame[inner + 16:inner + 20] + frame[l4 + 2:l4 + 4] + frame[inner + 9:inner + 10]
        backend = frame[30:34]
        if key == self.marker_key:
            marker_id = struct.unpack("!I", frame[l4 + 12:l4 + 16])[0]
            with self.condition:
                self.records.append(("marker", marker_id))
                self.seen_markers[marker_id] = len(self.records)
                self.condition.notify_all()
        else:
            flow = frame[inner + 12:inner + 16] + frame[l4:l4 + 2]  # client address and port
            self.records.append(("data", key, backend, flow))

    def wait_for_marker(self, marker_id, timeout):
        deadline = time.monotonic() + timeout
        with self.condition:
            while marker_id not in self.seen_markers:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.condition.wait(remaining)
        return True

    def wait_for_data(self, marker_id, count, timeout):
        """Waits until `count` data packets follow the marker, or `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.records) - self.seen_markers[marker_id] < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0005)
        return True

    def drops(self):
        """Frames the kernel dropped because this socket's buffer was full, since the last call."""
        stats = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        return struct.unpack("II", stats)[1]


class Traffic(threading.Thread):
    """Sends `rate` packets per second over long-lived flows, round robin. Each flow starts
    with a SYN (TCP) and then sends ACKs with a payload; every SYN_EVERY-th packet of a flow
    is a SYN again. Stops on its stop event, after `max_seconds` or after `max_packets`."""

    def __init__(self, sock, vips, rate, max_seconds, max_packets):
        super().__init__(daemon=True)
        self.sock = sock
        self.rate = rate
        self.max_seconds = max_seconds
        self.max_packets = max_packets
        self.sent = 0
        self.stopping = threading.Event()
        self.flows = []
        for v, vip in enumerate(vips):
            for f in range(FLOWS_PER_VIP):
                client = "192.0.2.%d" % (10 + f)
                sport = 40000 + v * 100 + f
                payload = b"SLCH" + struct.pack("!HH", v, f)
                self.flows.append((build_frame(client, sport, vip, "S", payload),
                                   build_frame(client, sport, vip, "A", payload)))

    def run(self):
        started = time.monotonic()
        sends_per_flow = [0] * len(self.flows)
        next_flow = 0
        # After a stall (a busy CPU), catch up on at most 50 ms of packets, not on all of them.
        backlog_limit = max(1, self.rate // 20)
        while not self.stopping.is_set() and self.sent < self.max_packets:
            now = time.monotonic()
            if now - started > self.max_seconds:
                break
            due = min(int((now - started) * self.rate), self.max_packets)
            if due - self.sent > backlog_limit:
                skipped = due - self.sent - backlog_limit
                started += skipped / self.rate
                due -= skipped
            while self.sent < due:
                syn, ack = self.flows[next_flow]
                frame = syn if sends_per_flow[next_flow] % SYN_EVERY == 0 else ack
                sends_per_flow[next_flow] += 1
                next_flow = (next_flow + 1) % len(self.flows)
                try:
                    self.sock.send(frame)
                except OSError:
                    pass  # ENOBUFS when the veth queue is full; counted as not sent
                else:
                    self.sent += 1
            time.sleep(0.001)


# ---------------------------------------------------------------------------------------------
# Control: the API over its Unix socket, and sluicectl


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class Api:
    def __init__(self, socket_path, sluicectl):
        self.socket_path = socket_path
        self.sluicectl = sluicectl

    def request(self, method, path, body=None, expected=(200, 201)):
        connection = UnixHTTPConnection(self.socket_path, timeout=30)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        if response.status not in expected:
            raise Failure("%s %s: status %d, expected %s: %s" % (method, path, response.status,
                                                                  expected, text.strip()))
        return json.loads(text) if text.strip().startswith("{") else text

    def ctl(self, *args):
        done = subprocess.run([self.sluicectl, "--socket", self.socket_path] + list(args),
                              capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise Failure("sluicectl %s: exit code %d: %s" % (" ".join(args), done.returncode,
                                                             done.stderr.strip()))
        return done.stdout


def query(vip, address=None):
    text = "vip=" + vip_name(vip).replace(":", "%3A").replace("/", "%2F")
    return text + ("&address=" + address if address else "")


# ---------------------------------------------------------------------------------------------
# The churn


class Model:
    """The config that the changes so far should have left: VIP -> {backend: weight}, in
    the order backends were added."""

    def __init__(self):
        self.vips = {}

    def pairs(self):
        return frozenset((vip_key_bytes(vip), socket.inet_aton(address))
                         for vip, backends in self.vips.items() for address in backends)


def vips_yaml(model):
    lines = []
    for vip, backends in model.vips.items():
        lines.append("  - {address: %s, port: %d, protocol: %s, table_size: %d, backends: [%s]}" % (
            vip[0], vip[1], vip[2], TABLE_SIZE,
            ", ".join("{address: %s, weight: %d}" % (a, w) for a, w in backends.items())))
    return "\n".join(lines)


class Churn:
    def __init__(self, args, api, capture, marker_socket, config_head):
        self.args = args
        self.api = api
        self.capture = capture
        self.marker_socket = marker_socket
        self.config_head = config_head
        self.model = Model()
        self.allowed = []        # allowed[k]: the (VIP, backend) pairs of config k
        self.descriptions = []   # descriptions[k]: change k
        self.marker_change = {}  # marker id -> change index
        self.next_marker = 0
        self.next_address = 0
        self.change_seconds = []
        self.via_sluicectl = 0
        self.segment_packets = 0  # set once the traffic runs
        self.short_segments = 0

    def config_text(self):
        return self.config_head + CONFIG_TAIL.format(lb=LB_ADDRESS, peer_mac=PEER_MAC,
                                                     vips=vips_yaml(self.model))

    def send_marker(self):
        marker_id = self.next_marker
        self.next_marker += 1
        self.marker_change[marker_id] = len(self.allowed) - 1
        frame = build_frame(MARKER_CLIENT[0], MARKER_CLIENT[1], MARKER_VIP, "",
                            b"MARK" + struct.pack("!I", marker_id))
        self.marker_socket.send(frame)
        return marker_id

    def settle(self, description):
        """Records the model as config k, then sends markers until one comes back."""
        self.allowed.append(self.model.pairs())
        self.descriptions.append(description)
        for _ in range(5):
            marker_id = self.send_marker()
            if self.capture.wait_for_marker(marker_id, timeout=2.0):
                # Let half a round of the flows through before the next change, so that most
                # backends of the config carry traffic between two changes.
                if not self.capture.wait_for_data(marker_id, self.segment_packets, SEGMENT_TIMEOUT_S):
                    self.short_segments += 1
                return
        raise Failure("no marker came back within 10 s after change %d (%s)" % (
            len(self.allowed) - 1, description))

    def fresh_address(self, avoid):
        for _ in range(len(BACKEND_POOL)):
            address = BACKEND_POOL[self.next_address % len(BACKEND_POOL)]
            self.next_address += 1
            if address not in avoid:
                return address
        raise Failure("the backend pool has no address left outside %s" % sorted(avoid))

    def in_use(self):
        return {a for backends in self.model.vips.values() for a in backends}

    def change(self, description, action):
        started = time.monotonic()
        action()
        self.change_seconds.append(time.monotonic() - started)
        self.settle(description)

    def add_backend(self, vip, use_sluicectl):
        address = self.fresh_address(self.in_use())

        def action():
            if use_sluicectl:
                self.api.ctl("backend", "add", vip_name(vip), address)
                self.via_sluicectl += 1
            else:
                self.api.request("POST", "/v1/backends?" + query(vip), json.dumps({"address": address}))
            self.model.vips[vip][address] = 1

        self.change("add backend %s to %s" % (address, vip_name(vip)), action)

    def drain_backend(self, vip, address):
        def action():
            self.api.request("POST", "/v1/backends/drain?" + query(vip, address))
            self.model.vips[vip][address] = 0

        self.change("drain backend %s of %s" % (address, vip_name(vip)), action)

    def remove_backend(self, vip, address, use_sluicectl):
        def action():
            if use_sluicectl:
                self.api.ctl("backend", "del", vip_name(vip), address)
                self.via_sluicectl += 1
            else:
                self.api.request("DELETE", "/v1/backends?" + query(vip, address))
            del self.model.vips[vip][address]

        self.change("remove backend %s from %s" % (address, vip_name(vip)), action)

    def toggle_vip(self, vip):
        if vip in self.model.vips:
            def action():
                self.api.request("DELETE", "/v1/vips?" + query(vip))
                del self.model.vips[vip]

            self.change("remove vip %s" % vip_name(vip), action)
            return
        used = self.in_use()
        backends = [self.fresh_address(used)]
        backends.append(self.fresh_address(used | set(backends)))

        def action():
            body = {"address": vip[0], "port": vip[1], "protocol": vip[2], "table_size": TABLE_SIZE,
                    "backends": [{"address": a} for a in backends]}
            self.api.request("POST", "/v1/vips", json.dumps(body))
            self.model.vips[vip] = {a: 1 for a in backends}

        self.change("add vip %s with %s" % (vip_name(vip), ", ".join(backends)), action)

    def move_backend(self, source, target):
        """One whole-config apply that removes a backend from `source` and adds a new one to
        `target`, so that one snapshot frees a backend slot and needs a new one."""
        removed = next(iter(self.model.vips[source]))
        added = self.fresh_address(self.in_use())

        def action():
            del self.model.vips[source][removed]
            self.model.vips[target][added] = 1
            self.api.request("PUT", "/v1/config", self.config_text())

        self.change("apply a config that removes %s from %s and adds %s to %s" % (
            removed, vip_name(source), added, vip_name(target)), action)

    def cycle(self, i):
        vip = CHURNED_VIPS[i % len(CHURNED_VIPS)]
        use_sluicectl = i % 10 == 0
        self.add_backend(vip, use_sluicectl)
        oldest = next(iter(self.model.vips[vip]))
        if i % 4 == 1:
            # A drained backend keeps its established flows, so only the flow table's
            # check of the backend slot's uid stops them once it is removed.
            self.drain_backend(vip, oldest)
        self.remove_backend(vip, oldest, use_sluicectl)
        self.toggle_vip(TOGGLED_VIP)
        if i % 25 == 24:
            self.move_backend(CHURNED_VIPS[0], CHURNED_VIPS[1])
            self.move_backend(CHURNED_VIPS[1], CHURNED_VIPS[0])


def initial_model():
    """Returns the model of the config file and the index of the first unused pool address."""
    model = Model()
    model.vips[MARKER_VIP] = {MARKER_BACKEND: 1}
    address = 0
    for vip in CHURNED_VIPS + [TOGGLED_VIP]:
        model.vips[vip] = {}
        for _ in range(3):
            model.vips[vip][BACKEND_POOL[address]] = 1
            address += 1
    return model, address


# ---------------------------------------------------------------------------------------------
# Checks on the capture


def check_capture(churn, records):
    """Checks the capture against the configs. A data packet after the first marker of change
    k and before the first marker of change k+1 must go to a pair of config k or k+1.

    Returns the violations and counts that show how much the check covered. One count is of
    the removed (VIP, backend) pairs that carried traffic in the segment before their removal.
    The other is of the backend removals after which, in the next segment, flows that the
    removed backend had served sent packets, which the flow table must send elsewhere."""
    names = {vip_key_bytes(vip): vip_name(vip) for vip in CHURNED_VIPS + [TOGGLED_VIP, MARKER_VIP]}
    violations = []
    first_violations = {}  # (VIP, backend) -> (change, client address and port) of its first packet
    change = None
    counts = {"data_packets": 0, "markers": 0}
    segments = {}  # change index -> the data records between its marker and the next
    for record in records:
        if record[0] == "marker":
            counts["markers"] += 1
            k = churn.marker_change[record[1]]
            if change is None or k > change:
                change = k
            continue
        if change is None:
            continue  # before the first marker: start-up traffic
        counts["data_packets"] += 1
        segments.setdefault(change, []).append(record)
        pair = (record[1], record[2])
        following = churn.allowed[change + 1] if change + 1 < len(churn.allowed) else frozenset()
        if pair not in churn.allowed[change] and pair not in following:
            first_violations.setdefault(pair, (change, record[3]))
            violations.append("a packet to %s went to backend %s after change %d (%s) was "
                              "acknowledged; change %d: %s" % (
                                  names.get(record[1], record[1].hex()), socket.inet_ntoa(record[2]),
                                  change, churn.descriptions[change], change + 1,
                                  churn.descriptions[change + 1] if change + 1 < len(churn.descriptions)
                                  else "none"))

    counts.update(removals=0, busy_removals=0, backend_removals=0, rerouted_removals=0,
                  rerouted_packets=0)
    for k in range(1, len(churn.allowed)):
        before = segments.get(k - 1, [])
        after = segments.get(k, [])
        remaining_vips = {vip for vip, _ in churn.allowed[k]}
        for vip, backend in churn.allowed[k - 1] - churn.allowed[k]:
            counts["removals"] += 1
            flows = {r[3] for r in before if r[1] == vip and r[2] == backend}
            if flows:
                counts["busy_removals"] += 1
            if vip not in remaining_vips:
                continue  # the VIP left too: its packets are no longer encapsulated
            counts["backend_removals"] += 1
            rerouted = [r for r in after if r[1] == vip and r[3] in flows]
            if rerouted:
                counts["rerouted_removals"] += 1
                counts["rerouted_packets"] += len(rerouted)
    return violations, counts, first_violations


def backend_histories(churn, first_violations, before=40, after=3):
    """Returns lines that describe the first packet of each pair outside the config: its
    flow, and for each change around it, the VIPs whose config had the backend's address.
    They show where the packet's backend came from."""
    names = {vip_key_bytes(vip): vip_name(vip) for vip in CHURNED_VIPS + [TOGGLED_VIP, MARKER_VIP]}
    lines = []
    for (vip, backend), (change, flow) in list(first_violations.items())[:3]:
        client = "%s:%d" % (socket.inet_ntoa(flow[:4]), struct.unpack("!H", flow[4:6])[0])
        lines.append("history of backend %s, first reached by client %s of %s after change %d:" % (
            socket.inet_ntoa(backend), client, names.get(vip, vip.hex()), change))
        for k in range(max(0, change - before), min(len(churn.allowed), change + after)):
            holders = sorted(names.get(v, v.hex()) for v, b in churn.allowed[k] if b == backend)
            lines.append("  change %d (%s): %s" % (k, churn.descriptions[k],
                                                   ", ".join(holders) if holders else "in no VIP"))
    return lines


# ---------------------------------------------------------------------------------------------


def wait_for_api(api, process, log_path, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Failure("sluiced exited with %d during start-up:\n%s" % (process.returncode,
                                                                          tail(log_path)))
        if os.path.exists(api.socket_path):
            try:
                api.request("GET", "/v1/vips")
                return
            except (OSError, Failure, http.client.HTTPException):
                pass
        time.sleep(0.1)
    raise Failure("sluiced did not answer on its API socket within %d s:\n%s" % (seconds, tail(log_path)))


def tail(path, lines=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


def check_prerequisites(args):
    if os.geteuid() != 0:
        raise Failure("this test needs root: it creates a network namespace and runs DPDK or XDP")
    for tool in ("ip", "ethtool", "sysctl"):
        if shutil.which(tool) is None:
            raise Failure("%s is not installed (Debian: iproute2, ethtool, procps)" % tool)
    if args.dataplane == "xdp" and not os.path.exists(args.xdp_pass):
        raise Failure("%s not found: build the sluice_xdp_pass target" % args.xdp_pass)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataplane", choices=["dpdk", "xdp"], required=True)
    parser.add_argument("--sluiced", required=True)
    parser.add_argument("--sluicectl", required=True)
    parser.add_argument("--xdp-pass", help="sluice_xdp_pass.bpf.o, for the XDP data plane")
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=12000, help="traffic in packets per second")
    parser.add_argument("--max-rss-growth-mib", type=float, default=8.0,
                        help="allowed RSS growth from the sample after 20%% of the cycles to the end")
    args = parser.parse_args()

    failures = []
    namespace = None
    process = None
    capture = None
    traffic = None
    name = "slch-%s-%d" % (args.dataplane, os.getpid())
    prefix = "slch-%d" % os.getpid()
    work = tempfile.mkdtemp(prefix="sluice-churn-")
    log_path = os.path.join(work, "sluiced.log")
    stop_code = None
    try:
        check_prerequisites(args)
        remove_stale_namespaces()
        namespace = Namespace(name)
        namespace.create(args.dataplane, args.xdp_pass)

        model, next_address = initial_model()
        if args.dataplane == "dpdk":
            head = CONFIG_HEAD_DPDK.format(worker_cpu=1 if os.cpu_count() > 1 else 0, prefix=prefix)
        else:
            head = CONFIG_HEAD_XDP
        config_path = os.path.join(work, "sluiced.yaml")
        with open(config_path, "w") as f:
            f.write(head + CONFIG_TAIL.format(lb=LB_ADDRESS, peer_mac=PEER_MAC, vips=vips_yaml(model)))

        api = Api(os.path.join(work, "api.sock"), args.sluicectl)
        with open(log_path, "w") as log:
            process = subprocess.Popen(["ip", "netns", "exec", name, args.sluiced, "--config", config_path,
                                        "--api-socket", api.socket_path, "--metrics-listen", "none"],
                                       stdout=log, stderr=subprocess.STDOUT,
                                       preexec_fn=set_parent_death_signal)
        wait_for_api(api, process, log_path)

        # ETH_P_IP in network byte order; PACKET_IGNORE_OUTGOING keeps the sent frames out.
        capture_socket = namespace.open_socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        capture_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        capture_socket.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        capture_socket.bind(("slch-peer", 0x0800))
        send_socket = namespace.open_socket(socket.AF_PACKET, socket.SOCK_RAW)
        send_socket.bind(("slch-peer", 0))
        capture = Capture(capture_socket, vip_key_bytes(MARKER_VIP), max_seconds=MAX_TRAFFIC_SECONDS)
        capture.start()

        churn = Churn(args, api, capture, send_socket, head)
        churn.model = model
        churn.next_address = next_address
        churn.settle("the config file")  # the data plane forwards: the first marker came back

        vips = list(CHURNED_VIPS) + [TOGGLED_VIP]
        traffic = Traffic(send_socket, vips, args.rate, max_seconds=MAX_TRAFFIC_SECONDS,
                          max_packets=args.rate * MAX_TRAFFIC_SECONDS)
        traffic.start()
        time.sleep(0.5)
        churn.segment_packets = len(traffic.flows) // 2

        rss = [(0, rss_kib(process.pid))]
        started = time.monotonic()
        for i in range(args.cycles):
            churn.cycle(i)
            if process.poll() is not None:
                raise Failure("sluiced exited with %d during cycle %d" % (process.returncode, i))
            if (i + 1) % 100 == 0:
                rss.append((i + 1, rss_kib(process.pid)))
        churn_seconds = time.monotonic() - started
        time.sleep(0.3)
        traffic.stopping.set()
        traffic.join()
        churn.settle("the end of the traffic")
        capture.stopping.set()
        capture.join()

        print("%d cycles, %d changes (%d through sluicectl) in %.1f s; a change took %.1f ms on "
              "average and %.1f ms at most until acknowledged" % (
                  args.cycles, len(churn.allowed) - 2, churn.via_sluicectl, churn_seconds,
                  1000 * sum(churn.change_seconds) / len(churn.change_seconds),
                  1000 * max(churn.change_seconds)))
        print("%d of %d changes were followed by less than half a round of the flows (%d packets) "
              "within %d ms" % (churn.short_segments, len(churn.allowed), churn.segment_packets,
                                1000 * SEGMENT_TIMEOUT_S))
        violations, counts, first_violations = check_capture(churn, capture.records)
        capture_drops = capture.drops()
        print("traffic: %d packets sent; captured %d encapsulated data packets and %d markers "
              "(%d other frames, %d dropped by the capture socket)" % (
                  traffic.sent, counts["data_packets"], counts["markers"], capture.other_frames,
                  capture_drops))
        print("removals: %d (VIP, backend) pairs left a config; %d of them carried traffic in "
              "the segment right before their removal" % (counts["removals"], counts["busy_removals"]))
        print("backend removals: %d; in %d of them, flows of the removed backend sent %d packets "
              "in the segment right after the removal" % (
                  counts["backend_removals"], counts["rerouted_removals"], counts["rerouted_packets"]))
        for violation in violations[:20]:
            failures.append(violation)
        if len(violations) > 20:
            failures.append("... and %d more packets to pairs outside the config" % (len(violations) - 20))
        if violations:
            failures.extend(backend_histories(churn, first_violations))
        # The checks above prove little unless removed backends were busy and their flows
        # came back after the removal. Both were above 80% in runs on a 2-CPU VM.
        if counts["busy_removals"] < counts["removals"] // 2:
            failures.append("only %d of %d removed pairs carried traffic right before their removal" % (
                counts["busy_removals"], counts["removals"]))
        if counts["rerouted_removals"] < counts["backend_removals"] // 2:
            failures.append("only after %d of %d backend removals did flows of the removed backend "
                            "send packets in the next segment" % (counts["rerouted_removals"],
                                                                  counts["backend_removals"]))

        # Health at the end: alive, no drops, RSS flat, config as left by the last change.
        if process.poll() is not None:
            raise Failure("sluiced exited with %d after the churn" % process.returncode)
        stats = api.request("GET", "/v1/stats")
        drops = {reason: count for reason, count in stats["drops"].items() if count}
        print("sluiced: received %d, forwarded %d, to the kernel %d, non-SYN misses %d, drops %s" % (
            stats["received"], stats["forwarded"], stats["to_kernel"], stats["non_syn_misses"],
            drops or "none"))
        if drops:
            failures.append("sluiced counted drops: %s" % drops)
        # Every packet that sluiced counted as forwarded left through slch-lb. On a veth, a
        # frame sent with XDP_TX can still be lost when the peer's ring is full, and the kernel
        # counts that, not sluiced, so the XDP data plane may come up short.
        captured = len(capture.records)
        print("captured %d packets, sluiced forwarded %d" % (captured, stats["forwarded"]))
        if capture_drops == 0 and (captured > stats["forwarded"] or
                                   (args.dataplane == "dpdk" and captured != stats["forwarded"])):
            failures.append("the capture has %d packets from sluiced, but sluiced counted %d as "
                            "forwarded" % (captured, stats["forwarded"]))
        print("RSS of sluiced (KiB) after N cycles: %s" % ", ".join("%d: %d" % sample for sample in rss))
        baseline = [kib for cycles, kib in rss if cycles >= args.cycles // 5]
        if baseline:
            growth = (rss[-1][1] - baseline[0]) / 1024
            print("RSS growth from cycle %d to the end: %.1f MiB" % (
                next(c for c, _ in rss if c >= args.cycles // 5), growth))
            if growth > args.max_rss_growth_mib:
                failures.append("sluiced's RSS grew by %.1f MiB over the last 80%% of the cycles "
                                "(limit %.1f MiB)" % (growth, args.max_rss_growth_mib))

        listed = json.loads(api.ctl("--json", "vip", "list"))
        actual = {v["vip"]: {b["address"]: b["weight"] for b in v["backends"]} for v in listed["vips"]}
        expected = {vip_name(vip): dict(backends) for vip, backends in churn.model.vips.items()}
        if actual != expected:
            failures.append("sluicectl vip list shows %s, but the changes left %s" % (actual, expected))
        config_shown = api.ctl("config", "show")
        for vip in churn.model.vips:
            if "address: %s" % vip[0] not in config_shown:
                failures.append("sluicectl config show lacks VIP %s" % vip_name(vip))
    except (Failure, OSError, subprocess.TimeoutExpired, http.client.HTTPException) as error:
        failures.append(str(error))
    finally:
        if traffic is not None:
            traffic.stopping.set()
            traffic.join(timeout=5)
        if capture is not None:
            capture.stopping.set()
            capture.join(timeout=5)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                stop_code = process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                failures.append("sluiced did not stop within 20 s of SIGTERM")
        elif process is not None:
            stop_code = process.returncode
        if namespace is not None:
            namespace.delete()
        shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)

    if process is not None:
        if stop_code != 0 and not failures:
            failures.append("sluiced exited with %s after SIGTERM, expected 0" % stop_code)
        with open(log_path, errors="replace") as f:
            log_text = f.read()
        for pattern in (r"ERROR: \w+Sanitizer", r"runtime error:", r"^\S+ (error|critical) \["):
            found = re.findall(".*(?:%s).*" % pattern, log_text, flags=re.MULTILINE)
            if found:
                failures.append("sluiced's log has %d line(s) like %r, the first: %s" % (
                    len(found), pattern, found[0]))
    if failures:
        if process is not None:
            print(tail(log_path, 60))
        for failure in failures:
            print("FAIL:", failure)
        shutil.rmtree(work, ignore_errors=True)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("PASSED: %d cycles of config churn under traffic on the %s data plane" % (args.cycles, args.dataplane))
    return 0


if __name__ == "__main__":
    sys.exit(main())
