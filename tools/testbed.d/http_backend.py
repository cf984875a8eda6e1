#!/usr/bin/python3
"""HTTP server for a test bed backend: every GET returns the backend's name and a newline.

The test bed runs one per backend namespace, on every IPv4 and IPv6 address of the namespace
(the VIPs on its loopback and its own addresses for health checks), so the body of a response
shows the client which backend served its connection. GET /slow?seconds=S&kib=K sends the name line
and then K KiB spread over S seconds, a long transfer for drain tests (S at most 30, K at most
10240).
"""

import argparse
import http.server
import ipaddress
import signal
import socket
import socketserver
import sys
import time
import urllib.parse


class NameHandler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0 closes the connection after each response, so every request is its own flow.
    protocol_version = "HTTP/1.0"
    server_version = "sluice-testbed"
    body = b""

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/slow":
            self.send_slow(urllib.parse.parse_qs(url.query))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def send_slow(self, query):
        try:
            seconds = min(30.0, max(0.0, float(query.get("seconds", ["5"])[0])))
            kib = min(10240, max(1, int(query.get("kib", ["1024"])[0])))
        except ValueError:
            self.send_error(400, "seconds and kib must be numbers")
            return
        chunks = 50
        chunk = b"x" * (kib * 1024 // chunks)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body) + len(chunk) * chunks))
        self.end_headers()
        self.wfile.write(self.body)
        for _ in range(chunks):
            time.sleep(seconds / chunks)
            self.wfile.write(chunk)

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()

    def log_message(self, format, *args):
        # One line per request on stderr, which the test bed sends to this backend's log file.
        sys.stderr.write("%s %s\n" % (self.client_address[0], format % args))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 drops SYNs when a load generator opens connections quickly.
    request_queue_size = 128


class DualStackServer(Server):
    """HTTP server on an IPv6 address. Bound to ::, it accepts IPv4 connections too, from
    IPv4-mapped addresses such as ::ffff:198.51.100.2."""

    address_family = socket.AF_INET6

    def server_bind(self):
        # The default of IPV6_V6ONLY comes from the sysctl net.ipv6.bindv6only, so it is set here.
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def make_server(address, port):
    if ipaddress.ip_address(address).version == 6:
        return DualStackServer((address, port), NameHandler)
    return Server((address, port), NameHandler)


def listen_address(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 or IPv6 address")
    return text


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="backend name returned in every body, e.g. sl-be2")
    parser.add_argument("--address", required=True, type=listen_address,
                        help="address to listen on: 0.0.0.0 for every IPv4 address, :: for every IPv4 and "
                             "IPv6 address, or one address")
    parser.add_argument("--port", type=int, default=80, help="TCP port to listen on (default 80)")
    return parser.parse_args()


def main():
    args = parse_args()
    NameHandler.body = (args.name + "\n").encode()
    host = f"[{args.address}]" if ":" in args.address else args.address
    endpoint = f"{host}:{args.port}"

    try:
        server = make_server(args.address, args.port)
    except OSError as error:
        sys.exit(f"http_backend: cannot listen on {endpoint}: {error}")

    # SIGTERM ends serve_forever() through the KeyboardInterrupt path, so the socket closes cleanly.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    # tools/testbed waits for this line to know that the socket is bound.
    sys.stderr.write(f"http_backend: {args.name} listening on {endpoint}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sys.stderr.write(f"http_backend: {args.name} stopped\n")


if __name__ == "__main__":
    main()
