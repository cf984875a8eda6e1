#!/usr/bin/python3
"""Ping a VIP through the test bed: the load balancer itself replies to echo requests to the VIP.

Brings the test bed up with the chosen data plane, sends 5 echo requests from the client
namespace to the VIP of the chosen address family (203.0.113.10 or 2001:db8:203::10) with
ping, and checks that all 5 replies came back from the VIP and that sluiced counted them as
icmp_echo_replies. The test bed is removed at the end, even when the test fails.
"""
import argparse
import os
import re
import subprocess
import sys

from testbed_addresses import FAMILIES, VIP_ADDRESSES
from testbed_control import run, stats

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTBED = os.path.join(REPO, "tools", "testbed")
REQUESTS = 5


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataplane", default="dpdk", choices=["dpdk", "xdp"])
    parser.add_argument("--family", type=int, default=4, choices=FAMILIES,
                        help="address family of the VIP to ping (default 4)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("FAIL: this test needs root (network namespaces, DPDK and XDP)")
    vip = VIP_ADDRESSES[args.family]

    failures = []

    def check(condition, message):
        print(("ok: " if condition else "FAIL: ") + message)
        if not condition:
            failures.append(message)

    try:
        run(TESTBED, "up", "--dataplane", args.dataplane, "--backends", "1")
        before = stats()["icmp_echo_replies"]
        ping = run("ip", "netns", "exec", "sl-client", "ping", "-%d" % args.family, "-n", "-c", str(REQUESTS),
                   "-i", "0.2", "-W", "2", vip, check=False, timeout=30)
        print(ping.stdout.strip())
        received = re.search(r"(\d+) received", ping.stdout)
        check(received is not None and int(received.group(1)) == REQUESTS,
              "%d of %d echo requests answered" % (int(received.group(1)) if received else 0, REQUESTS))
        check("from %s" % vip in ping.stdout, "the replies come from the VIP %s" % vip)
        replies = stats()["icmp_echo_replies"] - before
        check(replies == REQUESTS, "sluiced counted %d echo replies" % replies)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as error:
        failures.append(str(error))
        print("FAIL: %s" % error)
    finally:
        run(TESTBED, "down", check=False)

    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("PASSED: ping %s through the %s data plane" % (vip, args.dataplane))
    return 0


if __name__ == "__main__":
    sys.exit(main())
