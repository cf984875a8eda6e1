#!/usr/bin/python3
"""Backend failure, recovery and drain through the test bed, with real TCP connections.

Brings the test bed up with the chosen data plane, stops one backend's HTTP server and
checks that sluiced's health checks take it out (no request fails or reaches it), starts it
again and checks that it serves again, then drains another backend with sluicectl and checks
that new connections avoid it. The test bed is removed at the end, also on failure.
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTBED = os.path.join(REPO, "tools", "testbed")
SLUICECTL = os.path.join(REPO, "build", "bin", "sluicectl")
SOCKET = "/run/sluice-testbed/sluiced.sock"
VIP = "203.0.113.10:80/tcp"
WAIT_S = 15


def run(*args, check=True):
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise RuntimeError("%s failed with %d:\n%s%s" % (" ".join(args), result.returncode,
                                                         result.stdout, result.stderr))
    return result


def health():
    out = run(SLUICECTL, "--socket", SOCKET, "--json", "health").stdout
    return {b["backend"]: b["health"] for b in json.loads(out)["backends"]}


def wait_for(backend, state):
    deadline = time.time() + WAIT_S
    while time.time() < deadline:
        if health().get(backend) == state:
            return
        time.sleep(0.2)
    raise RuntimeError("backend %s did not become %s within %d s: %s" % (backend, state, WAIT_S, health()))


def requests(count):
    """Sends `count` requests, each on a new connection; returns answers per backend and failures."""
    answers, failed = {}, 0
    for _ in range(count):
        result = subprocess.run(["ip", "netns", "exec", "sl-client", "curl", "-s", "-m", "2",
                                 "http://203.0.113.10/"], capture_output=True, text=True, timeout=10)
        if result.returncode != 0:
            failed += 1
        else:
            name = result.stdout.strip()
            answers[name] = answers.get(name, 0) + 1
    return answers, failed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataplane", default="dpdk", choices=["dpdk", "xdp"])
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("FAIL: this test needs root (network namespaces, DPDK and XDP)")

    failures = []

    def check(condition, message):
        print(("ok: " if condition else "FAIL: ") + message)
        if not condition:
            failures.append(message)

    try:
        run(TESTBED, "up", "--dataplane", args.dataplane)
        answers, failed = requests(60)
        check(failed == 0 and len(answers) == 3, "all three backends answer: %s, %d failed" % (answers, failed))

        started = time.time()
        run(TESTBED, "stop-server", "sl-be2")
        wait_for("198.51.100.131", "down")
        print("sl-be2 marked down %.1f s after its server stopped" % (time.time() - started))
        answers, failed = requests(60)
        check(failed == 0, "no request fails while sl-be2 is down (%d failed)" % failed)
        check("sl-be2" not in answers, "no request reaches the stopped sl-be2: %s" % answers)
        metrics = run("ip", "netns", "exec", "sl-lb", "curl", "-s", "-m", "2",
                      "http://127.0.0.1:9810/metrics").stdout
        health_line = 'sluice_backend_health{vip="203.0.113.10:80/tcp",backend="198.51.100.131",check="http"} 0'
        check(health_line in metrics, "metrics show sl-be2's health as 0")
        check('sluice_backend_serving{vip="203.0.113.10:80/tcp",backend="198.51.100.131"} 0' in metrics,
              "metrics show sl-be2 not serving")
        check("sluice_backend_packets_total{" in metrics and "sluice_drops_total{reason=" in metrics,
              "metrics have per-backend packets and drops by reason")
        backends = json.loads(run(SLUICECTL, "--socket", SOCKET, "--json", "vip", "list").stdout)
        states = {b["address"]: b["state"] for b in backends["vips"][0]["backends"]}
        check(states.get("198.51.100.131") == "down", "vip list shows sl-be2 down: %s" % states)

        run(TESTBED, "start-server", "sl-be2")
        wait_for("198.51.100.131", "up")
        answers, failed = requests(60)
        check(failed == 0 and answers.get("sl-be2", 0) > 0, "sl-be2 serves again: %s, %d failed" % (answers, failed))

        run(SLUICECTL, "--socket", SOCKET, "backend", "drain", VIP, "198.51.100.132")
        answers, failed = requests(60)
        check(failed == 0 and "sl-be3" not in answers, "new connections avoid the drained sl-be3: %s, %d failed" % (answers, failed))

        stats = json.loads(run(SLUICECTL, "--socket", SOCKET, "--json", "stats").stdout)
        check(stats["alerts"]["all_backends_down"] == 0, "no all-backends-down alert: %s" % stats["alerts"])
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        failures.append(str(error))
        print("FAIL:", error)
        log = "/run/sluice-testbed/sluiced.log"
        if os.path.exists(log):
            print("---- sluiced.log ----\n" + open(log).read()[-4000:])
    finally:
        run(TESTBED, "down", check=False)

    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
