#!/usr/bin/python3
"""Backend failure, recovery, drain and addition under continuous client traffic.

Brings the test bed up with the chosen data plane and one spare backend, and keeps a client
opening new connections to the VIP of the chosen address family all the time. Then:
- stops sl-be2's HTTP server: within fall x interval + 1 s it gets no new connections, and
  after that window no request fails;
- starts it again: it returns after `rise` passing checks;
- drains the backend that serves a long transfer: the transfer completes and new connections
  go to the others;
- adds the spare sl-be4: it receives new connections and no request fails.
The test bed is removed at the end, also on failure.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

from testbed_addresses import FAMILIES, backend_address, backend_index, vip_key, vip_url

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTBED = os.path.join(REPO, "tools", "testbed")
SLUICECTL = os.path.join(REPO, "build", "bin", "sluicectl")
SOCKET = "/run/sluice-testbed/sluiced.sock"
# The test bed's health check: interval 500 ms, rise 2, fall 2.
INTERVAL_S, RISE, FALL = 0.5, 2, 2
FAIL_WINDOW_S = FALL * INTERVAL_S + 1.0
WAIT_S = 15


def run(*args, check=True):
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise RuntimeError("%s failed with %d:\n%s%s" % (" ".join(args), result.returncode,
                                                         result.stdout, result.stderr))
    return result


def ctl(*args):
    return run(SLUICECTL, "--socket", SOCKET, *args)


def health():
    out = ctl("--json", "health").stdout
    return {b["backend"]: b["health"] for b in json.loads(out)["backends"]}


def wait_for(backend, state):
    deadline = time.time() + WAIT_S
    while time.time() < deadline:
        if health().get(backend) == state:
            return time.time()
        time.sleep(0.05)
    raise RuntimeError("backend %s did not become %s within %d s: %s" % (backend, state, WAIT_S, health()))


class Traffic(threading.Thread):
    """Opens one new connection after another from sl-client to URL and records (start, end,
    backend), where backend is the name in the response, or None for a failed request.
    Bounded to 180 s and 20000 requests."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.records = []
        self.stopping = threading.Event()

    def run(self):
        deadline = time.time() + 180
        while not self.stopping.is_set() and time.time() < deadline and len(self.records) < 20000:
            start = time.time()
            result = subprocess.run(["ip", "netns", "exec", "sl-client", "curl", "-s", "-m", "2", self.url],
                                    capture_output=True, text=True, timeout=10)
            answer = result.stdout.strip() if result.returncode == 0 else None
            self.records.append((start, time.time(), answer))

    def since(self, moment):
        """Returns the backends of the requests that started at or after `moment`."""
        return [answer for start, _, answer in self.records if start >= moment]


def summary(answers):
    counts = {}
    for answer in answers:
        counts[answer or "failed"] = counts.get(answer or "failed", 0) + 1
    return counts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataplane", default="dpdk", choices=["dpdk", "xdp"])
    parser.add_argument("--encapsulation", default="ipip", choices=["ipip", "gue"],
                        help="how sluiced reaches the backends")
    parser.add_argument("--family", type=int, default=4, choices=FAMILIES,
                        help="address family of the VIP and backends under test (default 4)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("FAIL: this test needs root (network namespaces, DPDK and XDP)")
    vip = vip_key(args.family)
    be2 = backend_address(args.family, 2)
    be4 = backend_address(args.family, 4)

    failures = []

    def check(condition, message):
        print(("ok: " if condition else "FAIL: ") + message)
        if not condition:
            failures.append(message)

    traffic = Traffic(vip_url(args.family))
    try:
        run(TESTBED, "up", "--dataplane", args.dataplane, "--spare-backends", "1",
            "--encapsulation", args.encapsulation)
        traffic.start()
        time.sleep(1.5)
        first = summary(traffic.since(0))
        check(first.get("failed", 0) == 0 and len(first) == 3, "three backends answer: %s" % first)

        # Failure: sl-be2's server stops.
        stopped = time.time()
        run(TESTBED, "stop-server", "sl-be2")
        marked = wait_for(be2, "down")
        print("sl-be2 marked down %.2f s after its server stopped" % (marked - stopped))
        time.sleep(FAIL_WINDOW_S + 1.5 - (time.time() - stopped))
        after = traffic.since(stopped + FAIL_WINDOW_S)
        check(len(after) > 0 and "sl-be2" not in after,
              "no new connection reaches sl-be2 after %.1f s: %s" % (FAIL_WINDOW_S, summary(after)))
        check(None not in after, "no request fails after the window: %s" % summary(after))
        metrics = run("ip", "netns", "exec", "sl-lb", "curl", "-s", "-m", "2",
                      "http://127.0.0.1:9810/metrics").stdout
        check('sluice_backend_health{vip="%s",backend="%s",check="http"} 0' % (vip, be2) in metrics,
              "metrics show sl-be2's health as 0")
        check('sluice_backend_serving{vip="%s",backend="%s"} 0' % (vip, be2) in metrics,
              "metrics show sl-be2 not serving")

        # Recovery: the server starts again and sl-be2 returns after `rise` passes.
        started = time.time()
        run(TESTBED, "start-server", "sl-be2")
        up = wait_for(be2, "up")
        print("sl-be2 up %.2f s after its server started" % (up - started))
        check(up - started <= RISE * INTERVAL_S + 1.5,
              "sl-be2 returns within rise x interval + 1.5 s (%.2f s)" % (up - started))
        time.sleep(1.5)
        check("sl-be2" in traffic.since(up + 0.2), "sl-be2 gets new connections again: %s" % summary(traffic.since(up + 0.2)))

        # Drain while a long transfer runs from the drained backend.
        transfer = subprocess.Popen(["ip", "netns", "exec", "sl-client", "curl", "-s", "-m", "20",
                                     vip_url(args.family, "/slow?seconds=4&kib=512")],
                                    stdout=subprocess.PIPE)
        serving = transfer.stdout.readline().decode().strip()
        address = backend_address(args.family, backend_index(serving))
        drained = time.time()
        ctl("backend", "drain", vip, address)
        body = transfer.stdout.read()
        code = transfer.wait(timeout=30)
        check(code == 0 and len(body) == 512 * 1024 - (512 * 1024) % 50,
              "the long transfer from drained %s completes (curl %d, %d bytes)" % (serving, code, len(body)))
        after = traffic.since(drained + 0.2)
        check(len(after) > 0 and serving not in after and None not in after,
              "new connections avoid the drained %s: %s" % (serving, summary(after)))

        # Addition: the spare sl-be4 joins and gets traffic once its first check passes.
        ctl("backend", "add", vip, be4)
        added = wait_for(be4, "up")
        time.sleep(1.5)
        after = traffic.since(added + 0.2)
        check("sl-be4" in after and None not in after, "the added sl-be4 gets new connections: %s" % summary(after))

        stats = json.loads(ctl("--json", "stats").stdout)
        check(stats["alerts"]["all_backends_down"] == 0, "no all-backends-down alert: %s" % stats["alerts"])
        print("%d requests in all: %s" % (len(traffic.records), summary(traffic.since(0))))
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        failures.append(str(error))
        print("FAIL:", error)
        log = "/run/sluice-testbed/sluiced.log"
        if os.path.exists(log):
            print("---- sluiced.log ----\n" + open(log).read()[-4000:])
    finally:
        traffic.stopping.set()
        if traffic.is_alive():
            traffic.join(timeout=15)
        run(TESTBED, "down", check=False)

    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
