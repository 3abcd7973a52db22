"""Which IP addresses an outbound request to a user-given URL may reach.

A policy is a callable `(ip, port) -> reason | None`: None admits the address,
a short reason ("loopback", "private network") refuses it. The strict policy
admits only globally routable unicast addresses. `ipaddress.is_global` is the
base, but on its own it is not enough: it calls multicast, 6to4 (2002::/16),
NAT64 (64:ff9b::/96), IPv4-compatible (::a.b.c.d) and the new IPv6
documentation range (3fff::/20) "global", and its tables changed between
Python patch releases. So embedded IPv4 addresses are unwrapped and checked
recursively, and an explicit table of special-purpose ranges is checked first.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPolicy = Callable[[IPAddress, int], "str | None"]

# Special-purpose ranges (IANA IPv4/IPv6 special-purpose registries and RFC 6890),
# with the reason given when a request is refused. Order matters only for the message.
_REFUSED_V4: list[tuple[ipaddress.IPv4Network, str]] = [
    (ipaddress.IPv4Network(net), reason)
    for net, reason in [
        ("0.0.0.0/8", "unspecified or 'this network' address"),
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private network"),
        ("172.16.0.0/12", "private network"),
        ("192.168.0.0/16", "private network"),
        ("100.64.0.0/10", "shared address space (CGNAT)"),
        ("169.254.0.0/16", "link-local"),
        ("192.0.0.0/24", "IETF protocol assignment"),
        ("192.0.2.0/24", "documentation range"),
        ("198.51.100.0/24", "documentation range"),
        ("203.0.113.0/24", "documentation range"),
        ("198.18.0.0/15", "benchmarking range"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("255.255.255.255/32", "broadcast"),
    ]
]

_REFUSED_V6: list[tuple[ipaddress.IPv6Network, str]] = [
    (ipaddress.IPv6Network(net), reason)
    for net, reason in [
        ("::/128", "unspecified address"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only range"),
        ("2001:2::/48", "benchmarking range"),
        ("2001:10::/28", "ORCHID"),
        ("2001:20::/28", "ORCHIDv2"),
        ("2001:db8::/32", "documentation range"),
        ("3fff::/20", "documentation range"),
        ("fc00::/7", "private network (unique local)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    ]
]

# IPv6 forms that carry an IPv4 address; the embedded address decides.
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    embedded: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        embedded.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        embedded.append(ip.sixtofour)
    if ip.teredo is not None:
        embedded.extend(ip.teredo)
    if ip in _NAT64_WELL_KNOWN or ip in _IPV4_COMPATIBLE:
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return embedded


def strict_address_policy(ip: IPAddress, port: int) -> str | None:
    """Admit only globally routable unicast addresses; the port does not matter."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "scoped IPv6 address"
        for network, reason in _REFUSED_V6:
            if ip in network:
                return reason
        for embedded in _embedded_ipv4(ip):
            reason = strict_address_policy(embedded, port)
            if reason:
                return f"{reason} (embedded in an IPv6 address)"
    else:
        for network, reason in _REFUSED_V4:
            if ip in network:
                return reason
    # Belt and braces for anything the table misses (future registry entries).
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private or not ip.is_global:
        return "not a public address"
    return None


def private_allowed_policy(ip: IPAddress, port: int) -> str | None:
    """For admin-configured endpoints and tests: any unicast address is fine."""
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_multicast:
        return "multicast"
    if ip == ipaddress.IPv4Address("255.255.255.255"):
        return "broadcast"
    return None


def literal_ip(host: str) -> IPAddress | None:
    """The address a host string denotes by itself, in any spelling a resolver accepts.

    Besides dotted quads and IPv6 this covers what inet_aton (and so getaddrinfo)
    also accepts: 2130706433, 0x7f000001, 0177.0.0.1, 127.1. Returns None for names.
    Raises ValueError for something that looks like an IPv6 literal but is not one.
    """
    if ":" in host:
        return ipaddress.IPv6Address(host.replace("%25", "%"))
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None
