#!/usr/bin/python3
"""Send HTTP GET requests to one URL, each on a new TCP connection, and count the responses by body.

The test bed's backends return their own name as the body, so the counts show how the load
balancer spread the connections. The run is bounded twice: each request has its own timeout,
and the whole run has a deadline after which the remaining requests are counted as failed.
"""

import argparse
import collections
import http.client
import json
import sys
import time
import urllib.parse


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True,
                        help="http:// URL to request, e.g. http://203.0.113.10/ or http://[2001:db8:203::10]/")
    parser.add_argument("--requests", type=int, default=1000, help="number of requests (default 1000)")
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds allowed for each request, connect to last byte (default 2)")
    parser.add_argument("--deadline", type=float,
                        help="seconds allowed for the whole run (default: requests × timeout)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args()

    if args.requests < 1:
        parser.error(f"--requests must be at least 1, got {args.requests}")
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout}")
    if args.deadline is None:
        args.deadline = args.requests * args.timeout
    if args.deadline <= 0:
        parser.error(f"--deadline must be positive, got {args.deadline}")

    url = urllib.parse.urlsplit(args.url)
    if url.scheme != "http" or not url.hostname:
        parser.error(f"--url must be an http:// URL with a host, got {args.url!r}")
    return args, url


def fetch(url, timeout):
    """Return the response body of one GET on a new connection, or raise on any failure."""
    connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)
    try:
        # The socket timeout applies per operation, so a slow trickle could outlast it: the caller
        # also checks the elapsed time of the whole request.
        connection.request("GET", url.path or "/", headers={"Connection": "close"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP status {response.status}")
        return body.decode(errors="replace").strip()
    finally:
        connection.close()


def run(args, url):
    per_backend = collections.Counter()
    errors = collections.Counter()
    failed = 0
    started = time.monotonic()

    for sent in range(args.requests):
        if time.monotonic() - started > args.deadline:
            not_sent = args.requests - sent
            failed += not_sent
            errors[f"deadline of {args.deadline:g} s passed"] += not_sent
            break

        request_started = time.monotonic()
        try:
            name = fetch(url, args.timeout)
        except (OSError, http.client.HTTPException, RuntimeError) as error:
            failed += 1
            errors[f"{type(error).__name__}: {error}"] += 1
            continue

        if time.monotonic() - request_started > args.timeout:
            failed += 1
            errors[f"request took longer than {args.timeout:g} s"] += 1
        elif not name:
            failed += 1
            errors["empty body"] += 1
        else:
            per_backend[name] += 1

    return {
        "url": args.url,
        "requests": args.requests,
        "answered": sum(per_backend.values()),
        "failed": failed,
        "per_backend": dict(sorted(per_backend.items())),
        "errors": dict(errors.most_common()),
        "elapsed_s": round(time.monotonic() - started, 3),
    }


def print_text(result):
    print(f"{result['answered']} of {result['requests']} requests answered, "
          f"{result['failed']} failed, in {result['elapsed_s']} s")
    for name, count in result["per_backend"].items():
        print(f"  {name}: {count}")
    for error, count in result["errors"].items():
        print(f"  failed {count}×: {error}")


def main():
    args, url = parse_args()
    result = run(args, url)
    if args.json:
        print(json.dumps(result))
    else:
        print_text(result)
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
