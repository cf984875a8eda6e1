#!/usr/bin/python3
"""Path MTU discovery through the load balancer, over the test bed.

Every link of the test bed has MTU 1600, so the client's full-size TCP segments (1600 bytes)
no longer fit once the load balancer adds its outer header. The test sends HTTP requests with
a 4000-byte header from the client namespace to the VIP of the chosen family, with IP-in-IP or
GUE. Each must get a response: the first full-size segment gets ICMP fragmentation needed (IPv4)
or ICMPv6 packet too big from the VIP, the client's kernel lowers its path MTU and sends
again. sluiced must have counted at least one icmp_too_big_replies and no
too_big_after_encapsulation drop. The test bed is removed at the end, even when the test fails.
"""
import argparse
import os
import subprocess
import sys

from testbed_addresses import FAMILIES, vip_url
from testbed_control import run, stats

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTBED = os.path.join(REPO, "tools", "testbed")
REQUESTS = 5
HEADER_BYTES = 4000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataplane", default="dpdk", choices=["dpdk", "xdp"])
    parser.add_argument("--family", type=int, default=4, choices=FAMILIES,
                        help="address family of the VIP (default 4)")
    parser.add_argument("--encapsulation", default="ipip", choices=["ipip", "gue"])
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("FAIL: this test needs root (network namespaces, DPDK and XDP)")

    failures = []

    def check(condition, message):
        print(("ok: " if condition else "FAIL: ") + message)
        if not condition:
            failures.append(message)

    try:
        run(TESTBED, "up", "--dataplane", args.dataplane, "--encapsulation", args.encapsulation)
        before = stats()
        answered = 0
        for request in range(REQUESTS):
            # curl gives up after 10 s. The client retransmits its segment in smaller pieces once
            # the ICMP error has lowered its path MTU.
            curl = run("ip", "netns", "exec", "sl-client", "curl", "-%d" % args.family, "-s", "-m", "10",
                       "-H", "X-Pad: " + "x" * HEADER_BYTES, vip_url(args.family), check=False, timeout=30)
            if curl.returncode == 0 and curl.stdout.startswith("sl-be"):
                answered += 1
            else:
                print("request %d: curl exited %d: %s" % (request, curl.returncode, curl.stderr.strip()))
        check(answered == REQUESTS, "%d of %d requests with a %d-byte header answered" %
              (answered, REQUESTS, HEADER_BYTES, ))
        after = stats()
        replies = after["icmp_too_big_replies"] - before["icmp_too_big_replies"]
        check(replies >= 1, "sluiced sent %d too-big replies" % replies)
        dropped = after["drops"]["too_big_after_encapsulation"] - before["drops"]["too_big_after_encapsulation"]
        check(dropped == 0, "sluiced dropped %d packets as too big without a reply" % dropped)
    except (RuntimeError, subprocess.TimeoutExpired, OSError, KeyError) as error:
        failures.append(str(error))
        print("FAIL: %s" % error)
    finally:
        run(TESTBED, "down", check=False)

    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("PASSED: path MTU discovery through the %s data plane over IPv%d with %s" %
          (args.dataplane, args.family, args.encapsulation))
    return 0


if __name__ == "__main__":
    sys.exit(main())
