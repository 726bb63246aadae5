"""The client address behind trusted reverse proxies (``trusted_proxies``).

``X-Forwarded-For`` is only believed when the TCP peer is a trusted proxy; each trusted
proxy appends the address it saw, so the chain is walked from the right and the first hop
that is not a trusted proxy is the client. Whatever an untrusted party wrote further left is
never used, so a spoofed header cannot move a client to another throttle bucket.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_hop(text: str) -> Address | None:
    """An address from one forwarded hop (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``); None if none."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def is_trusted(addr: Address, trusted: Sequence[Network]) -> bool:
    """True when ``addr`` lies in one of the ``trusted`` networks."""
    return any(addr.version == net.version and addr in net for net in trusted)


def forwarded_client(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]
) -> str | None:
    """The client address of a request from ``peer`` carrying these ``X-Forwarded-For`` values.

    The peer itself unless it is a trusted proxy; then the right-most hop that is not one.
    A hop that is not an address stops the walk at the last trusted hop before it, and a
    chain made only of trusted proxies yields its left-most hop.
    """
    if peer is None or not trusted:
        return peer
    current = parse_hop(peer)
    if current is None or not is_trusted(current, trusted):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        addr = parse_hop(hop)
        if addr is None:
            break  # garbage in the chain: keep the last address a trusted proxy vouched for
        current = addr
        if not is_trusted(addr, trusted):
            break
    return str(current)
