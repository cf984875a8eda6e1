"""The addresses that tools/testbed gives its VIPs and backends, per address family.

The test bed is dual-stack: sluiced serves one VIP of each family, and every backend has an
address of each family. tools/testbed sets them up, and this module only names them for the
tests.
"""

FAMILIES = (4, 6)

VIP_ADDRESSES = {4: "203.0.113.10", 6: "2001:db8:203::10"}
VIP_PORT = 80


def vip_key(family):
    """Return sluiced's name of the test bed's VIP, as in the API, stats and metrics."""
    address = VIP_ADDRESSES[family]
    host = address if family == 4 else "[%s]" % address
    return "%s:%d/tcp" % (host, VIP_PORT)


def vip_url(family, path="/"):
    """Return the http:// URL of PATH on the test bed's VIP."""
    address = VIP_ADDRESSES[family]
    host = address if family == 4 else "[%s]" % address
    return "http://%s%s" % (host, path)


def backend_address(family, index):
    """Return the address of backend sl-beINDEX: 198.51.100.(129 + INDEX) for IPv4, and for
    IPv6 2001:db8:100:1:: followed by the same decimal digits, such as 2001:db8:100:1::130."""
    if family == 4:
        return "198.51.100.%d" % (129 + index)
    return "2001:db8:100:1::%d" % (129 + index)


def backend_index(name):
    """Return N of a backend name sl-beN."""
    return int(name.replace("sl-be", ""))
