#!/usr/bin/python3
"""Load balancers that announce the VIPs over BGP to a router with ECMP.

`announce` brings up one load balancer (tools/testbed up --lbs 1). sluiced must announce both
VIPs while a backend is live, withdraw them when every backend's HTTP server is stopped, and
announce them again when one comes back. On SIGTERM it must withdraw them first and keep
running for bgp.drain_time_s.

`kill` brings up a fleet (--lbs 2, each with the data plane that --dataplanes names, both
with the encapsulation that --encapsulation names) and keeps long TCP transfers and a stream
of new connections going through the VIP of --family while sl-lb1's
sluiced is killed with SIGKILL. Once the router has dropped sl-lb1's route, every transfer
must still finish (none reset) and every new connection must succeed. The moved flows reach
sl-lb2 without a flow entry, so sl-lb2 must count non-SYN misses: it served them from its
Maglev table, which picks the same backend as sl-lb1's. Then sl-lb1 starts again and must
take traffic, again without a reset. The test prints how long the router took to converge
and how many requests failed, and ends with one JSON line of these figures.

The test bed is built with SLUICE_TESTBED_PREFIX (default slf) so that it can run next to
the default test bed, and is removed at the end, also on failure.
"""
import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time

from testbed_addresses import VIP_ADDRESSES, VIP_PORT, vip_url

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTBED = os.path.join(REPO, "tools", "testbed")
SLUICECTL = os.path.join(REPO, "build", "bin", "sluicectl")
PREFIX = os.environ.get("SLUICE_TESTBED_PREFIX", "slf")
STATE_DIR = "/run/sluice-testbed" if PREFIX == "sl" else "/run/sluice-testbed-%s" % PREFIX
CLIENT = "%s-client" % PREFIX
ROUTER = "%s-router" % PREFIX
# The test bed's health checks: interval 500 ms, rise 2, fall 2; BGP hold time 3 s, drain 2 s.
INTERVAL_S, RISE, FALL = 0.5, 2, 2
HOLD_TIME_S, DRAIN_TIME_S = 3, 2
ROUTE_WAIT_S = 20
LONG_TRANSFERS = 24
TRANSFER_SECONDS = 12
TRANSFER_KIB = 512
REQUEST_INTERVAL_S = 0.05
REQUEST_TIMEOUT_S = 2.0
# Requests that start this long after the router converged must all succeed: one started just
# before may still wait on a SYN sent to the lost load balancer.
SETTLE_S = 0.5

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL:", message, flush=True)
    return condition


def environment():
    env = dict(os.environ)
    env["SLUICE_TESTBED_PREFIX"] = PREFIX
    return env


def run(*args, check_exit=True, timeout=180):
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=environment())
    if check_exit and result.returncode != 0:
        raise RuntimeError("%s failed with %d:\n%s%s" % (" ".join(args), result.returncode,
                                                         result.stdout, result.stderr))
    return result


def testbed(*args):
    result = run(TESTBED, *args)
    sys.stdout.write(result.stdout)
    return result


def lb_name(index):
    return "%s-lb%d" % (PREFIX, index)


def lb_socket(index):
    return os.path.join(STATE_DIR, "%s.sluiced.sock" % lb_name(index))


def lb_stats(index):
    """Return the counters that sluiced of load balancer INDEX wrote last (every second)."""
    with open(os.path.join(STATE_DIR, "%s.stats.json" % lb_name(index))) as f:
        return json.load(f)


def wait_for_announced(index, expected, limit_s=3):
    """Return the announced prefixes of load balancer INDEX once its stats file lists EXPECTED,
    or what it lists at LIMIT_S. The file is rewritten every second, so the router can learn a
    route before the file names it."""
    deadline = time.time() + limit_s
    while True:
        announced = sorted(lb_stats(index).get("bgp", {}).get("announced") or [])
        if announced == expected or time.time() >= deadline:
            return announced
        time.sleep(0.1)


def lb_pid(index):
    with open(os.path.join(STATE_DIR, "%s.sluiced.pid" % lb_name(index))) as f:
        return int(f.readline())


def next_hops(family):
    """Return the router's next hops for the VIP of FAMILY, as a sorted list."""
    out = run("ip", "-n", ROUTER, "-%d" % family, "route", "show", VIP_ADDRESSES[family]).stdout
    words = out.split()
    return sorted(words[i + 1] for i, word in enumerate(words) if word == "via")


def wait_for_next_hops(count, since, limit_s=ROUTE_WAIT_S):
    """Wait until both VIPs have COUNT next hops; return the seconds from SINCE, or None."""
    deadline = time.time() + limit_s
    while time.time() < deadline:
        if len(next_hops(4)) == count and len(next_hops(6)) == count:
            return time.time() - since
        time.sleep(0.02)
    return None


def sluicectl(index, *args):
    return run(SLUICECTL, "--socket", lb_socket(index), *args)


class RequestStream(threading.Thread):
    """Opens a new connection to the VIP of FAMILY every REQUEST_INTERVAL_S and records each
    outcome."""

    def __init__(self, family):
        super().__init__(daemon=True)
        self.url = vip_url(family)
        self.results = []  # (start time, error or None)
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        # The requests run in the client's namespace: one curl each, bounded by its timeout.
        while not self.stopping.is_set():
            started = time.time()
            result = subprocess.run(
                ["ip", "netns", "exec", CLIENT, "curl", "-s", "--globoff", "-o", "/dev/null", "-w", "%{http_code}",
                 "--max-time", str(REQUEST_TIMEOUT_S), self.url],
                capture_output=True, text=True)
            error = None
            if result.returncode != 0 or result.stdout.strip() != "200":
                error = "curl exit code %d, status %r" % (result.returncode, result.stdout.strip())
            with self.lock:
                self.results.append((started, error))
            time.sleep(max(0.0, REQUEST_INTERVAL_S - (time.time() - started)))

    def failed_between(self, start, end):
        with self.lock:
            return [(t, e) for t, e in self.results if start <= t < end and e is not None]

    def count_between(self, start, end):
        with self.lock:
            return sum(1 for t, _ in self.results if start <= t < end)

    def stop(self):
        self.stopping.set()
        self.join(timeout=REQUEST_TIMEOUT_S + 5)


TRANSFER_CLIENT = r"""
import http.client, json, sys, time
host, port, seconds, kib, source_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
result = {"source_port": source_port}
try:
    any_address = "::" if ":" in host else "0.0.0.0"
    connection = http.client.HTTPConnection(host, port, timeout=10, source_address=(any_address, source_port))
    connection.request("GET", "/slow?seconds=%s&kib=%s" % (seconds, kib))
    response = connection.getresponse()
    body = response.read()
    result["status"] = response.status
    result["backend"] = body.split(b"\n", 1)[0].decode()
    result["length"] = len(body)
    result["expected_length"] = int(response.getheader("Content-Length", "-1"))
except Exception as error:
    result["error"] = "%s: %s" % (type(error).__name__, error)
print(json.dumps(result))
"""


def start_transfers(count, family):
    """Start COUNT long transfers to the VIP of FAMILY from distinct source ports in the
    client's namespace."""
    ports = random.sample(range(20000, 30000), count)
    return [subprocess.Popen(["ip", "netns", "exec", CLIENT, "/usr/bin/python3", "-c", TRANSFER_CLIENT,
                              VIP_ADDRESSES[family], str(VIP_PORT), str(TRANSFER_SECONDS),
                              str(TRANSFER_KIB), str(port)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for port in ports]


def finish_transfers(processes, phase):
    """Wait for the transfers and check that each one received its whole body."""
    completed = 0
    for process in processes:
        try:
            out, _ = process.communicate(timeout=TRANSFER_SECONDS + 40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            check(False, "%s: a long transfer did not finish within %d s" % (phase, TRANSFER_SECONDS + 40))
            continue
        try:
            result = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            check(False, "%s: a transfer printed no result: %r" % (phase, out))
            continue
        ok = ("error" not in result and result.get("status") == 200 and
              result.get("length") == result.get("expected_length"))
        if check(ok, "%s: the transfer from port %s failed: %s" % (phase, result.get("source_port"), result)):
            completed += 1
    print("%s: %d of %d long transfers completed without a reset" % (phase, completed, len(processes)),
          flush=True)
    return completed


def scenario_announce(dataplane):
    testbed("up", "--lbs", "1", "--dataplane", dataplane)
    check(next_hops(4) == ["198.51.100.2"], "the IPv4 VIP's next hops are %s, expected [198.51.100.2]" % next_hops(4))
    check(next_hops(6) == ["2001:db8:100::2"], "the IPv6 VIP's next hops are %s, expected [2001:db8:100::2]" % next_hops(6))
    both_vips = ["2001:db8:203::10/128", "203.0.113.10/32"]
    announced = wait_for_announced(1, both_vips)
    check(announced == both_vips, "stats.json bgp.announced is %s, expected both VIPs" % announced)

    # Every backend down: no live backend, so the VIPs are withdrawn.
    for index in (1, 2, 3):
        testbed("stop-server", "%s-be%d" % (PREFIX, index))
    stopped = time.time()
    seconds = wait_for_next_hops(0, stopped, FALL * INTERVAL_S + 5)
    check(seconds is not None, "the router still has a route to the VIPs %d s after every backend stopped" %
          (FALL * INTERVAL_S + 5))
    if seconds is not None:
        print("withdrawn %.2f s after the last backend's server stopped" % seconds, flush=True)

    testbed("start-server", "%s-be2" % PREFIX)
    started = time.time()
    seconds = wait_for_next_hops(1, started, RISE * INTERVAL_S + 5)
    check(seconds is not None, "the VIPs were not announced again within %d s of a backend's return" %
          (RISE * INTERVAL_S + 5))
    if seconds is not None:
        print("announced again %.2f s after a backend's server started" % seconds, flush=True)

    # A graceful stop: the route goes first, and sluiced keeps running for the drain time.
    pid = lb_pid(1)
    stopper = subprocess.Popen([TESTBED, "stop-lb", lb_name(1)], env=environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    signalled = time.time()
    seconds = wait_for_next_hops(0, signalled, 5)
    still_running = os.path.exists("/proc/%d" % pid)
    check(seconds is not None and seconds < DRAIN_TIME_S,
          "after SIGTERM the route was withdrawn after %s s, expected within the %d s drain" % (seconds, DRAIN_TIME_S))
    check(still_running, "sluiced exited before the route was seen withdrawn; it must drain for %d s" % DRAIN_TIME_S)
    out, _ = stopper.communicate(timeout=30)
    stop_seconds = time.time() - signalled
    check(stop_seconds >= DRAIN_TIME_S - 0.2,
          "sluiced stopped %.2f s after SIGTERM, before the %d s drain ended:\n%s" % (stop_seconds, DRAIN_TIME_S, out))
    if seconds is not None:
        print("graceful stop: withdrawn after %.2f s, sluiced stopped after %.2f s" % (seconds, stop_seconds), flush=True)
    return {"scenario": "announce", "dataplane": dataplane}


def scenario_kill(dataplanes, family, encapsulation):
    testbed("up", "--lbs", "2", "--dataplanes", dataplanes, "--encapsulation", encapsulation)
    check(len(next_hops(4)) == 2 and len(next_hops(6)) == 2,
          "the router's next hops are %s and %s, expected two each" % (next_hops(4), next_hops(6)))
    digests = [json.loads(sluicectl(index, "--json", "digest").stdout)["digest"] for index in (1, 2)]
    check(digests[0] == digests[1], "the load balancers' table digests differ: %s" % digests)

    stream = RequestStream(family)
    stream.start()
    time.sleep(1)

    # Phase 1: sl-lb1 is killed while the transfers run.
    transfers = start_transfers(LONG_TRANSFERS, family)
    time.sleep(3)
    before = [lb_stats(1), lb_stats(2)]
    check(before[0]["forwarded"] > 0 and before[1]["forwarded"] > 0,
          "before the kill, forwarded packets per load balancer: %d and %d; both must carry traffic" %
          (before[0]["forwarded"], before[1]["forwarded"]))
    killed = time.time()
    os.kill(lb_pid(1), 9)
    print("sent SIGKILL to sluiced of %s" % lb_name(1), flush=True)
    converge_s = wait_for_next_hops(1, killed)
    check(converge_s is not None, "the router did not drop %s's route within %d s" % (lb_name(1), ROUTE_WAIT_S))
    converge_s = converge_s if converge_s is not None else float(ROUTE_WAIT_S)
    check(next_hops(4) == ["198.51.100.3"], "after the kill the IPv4 next hops are %s" % next_hops(4))
    print("router converged %.2f s after the SIGKILL" % converge_s, flush=True)
    finish_transfers(transfers, "kill")
    time.sleep(1.5)  # lets sl-lb2 write its counters
    after = lb_stats(2)
    moved = after["non_syn_misses"] - before[1]["non_syn_misses"]
    check(moved > 0, "sl-lb2 counted no non-SYN misses after the kill, so no connection moved to it")
    print("sl-lb2 served %d packets of moved connections from its Maglev table (non-SYN misses)" % moved,
          flush=True)
    # A request that started less than REQUEST_TIMEOUT_S before the kill was still in flight
    # when the instance died, so it belongs to the window too.
    kill_window = (killed - REQUEST_TIMEOUT_S, killed + converge_s + SETTLE_S)
    failed_during = stream.failed_between(*kill_window)
    late_failures = stream.failed_between(kill_window[1], time.time())
    check(not late_failures, "%d new connections failed after the router converged: %s" %
          (len(late_failures), late_failures[:5]))

    # Phase 2: sl-lb1 starts again and takes its share back while new transfers run.
    transfers = start_transfers(LONG_TRANSFERS, family)
    time.sleep(2)
    restarted = time.time()
    testbed("start-lb", lb_name(1))
    rejoin_s = wait_for_next_hops(2, restarted)
    check(rejoin_s is not None, "the router did not take %s back within %d s" % (lb_name(1), ROUTE_WAIT_S))
    rejoin_s = rejoin_s if rejoin_s is not None else float(ROUTE_WAIT_S)
    print("router took sl-lb1 back %.2f s after its restart began" % rejoin_s, flush=True)
    rejoined = time.time()
    finish_transfers(transfers, "rejoin")
    time.sleep(1.5)
    back = lb_stats(1)
    check(back["forwarded"] > 0, "sl-lb1 forwarded nothing after it came back")
    print("sl-lb1 after its return: forwarded %d packets, %d of them non-SYN misses" %
          (back["forwarded"], back["non_syn_misses"]), flush=True)
    stream.stop()
    rejoin_failures = stream.failed_between(restarted, time.time())
    check(not rejoin_failures, "%d new connections failed while sl-lb1 came back: %s" %
          (len(rejoin_failures), rejoin_failures[:5]))
    total = stream.count_between(0, time.time())
    all_failed = stream.failed_between(0, time.time())
    outside = [(t, e) for t, e in all_failed if not kill_window[0] <= t < kill_window[1]]
    check(not outside, "%d new connections failed outside the router's convergence after the kill "
          "(seconds after the kill, error): %s" % (len(outside), [(round(t - killed, 2), e) for t, e in outside[:5]]))
    print("new connections: %d, failed: %d (%d while the router converged after the kill)" %
          (total, len(all_failed), len(failed_during)), flush=True)
    return {"scenario": "kill", "dataplanes": dataplanes, "family": family,
            "encapsulation": encapsulation, "convergence_s": round(converge_s, 3),
            "rejoin_s": round(rejoin_s, 3), "requests": total, "failed": len(all_failed),
            "failed_while_converging": len(failed_during), "moved_non_syn_misses": moved,
            "long_transfers": 2 * LONG_TRANSFERS}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["announce", "kill"])
    parser.add_argument("--dataplane", choices=["dpdk", "xdp"], default="dpdk",
                        help="the data plane of the one load balancer of `announce`")
    parser.add_argument("--dataplanes", default="dpdk,dpdk",
                        help="the data planes of sl-lb1 and sl-lb2 in `kill`, such as dpdk,xdp")
    parser.add_argument("--family", type=int, choices=[4, 6], default=4,
                        help="the address family of the VIP that `kill` sends its traffic to")
    parser.add_argument("--encapsulation", choices=["ipip", "gue"], default="ipip",
                        help="the encapsulation of the fleet in `kill`")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("FAIL: this test needs root: it creates network namespaces and runs sluiced")
    if not os.access("/usr/sbin/bird", os.X_OK):
        sys.exit("FAIL: /usr/sbin/bird not found; the fleet test needs BIRD 2 (Debian package bird2, "
                 "installed by tools/install-deps)")

    summary = {}
    try:
        if args.scenario == "announce":
            summary = scenario_announce(args.dataplane)
        else:
            summary = scenario_kill(args.dataplanes, args.family, args.encapsulation)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        failures.append(str(error))
        print("FAIL:", error, flush=True)
    finally:
        if failures:
            for name in sorted(os.listdir(STATE_DIR)) if os.path.isdir(STATE_DIR) else []:
                if name.endswith(".log") and "be" not in name:
                    print("---- last lines of %s ----" % name)
                    with open(os.path.join(STATE_DIR, name)) as f:
                        print("".join(f.readlines()[-15:]))
        result = subprocess.run([TESTBED, "down"], capture_output=True, text=True, timeout=120,
                                env=environment())
        if result.returncode != 0:
            failures.append("tools/testbed down failed: %s" % result.stderr.strip())

    summary["failures"] = len(failures)
    print(json.dumps(summary))
    if failures:
        print("%d checks failed" % len(failures))
        sys.exit(1)
    print("PASSED")


if __name__ == "__main__":
    main()
