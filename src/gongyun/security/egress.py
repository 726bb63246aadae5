"""Outbound requests to URLs that users configure: refused when they would reach a private address.

The platform posts to endpoints an engineer sets (a partner's node, its resolver). Without a
guard such a URL turns the server into a proxy into its own network (server-side request
forgery): the loopback admin ports, the cloud metadata service at 169.254.169.254, the
databases on 10.0.0.0/8. A target is refused unless every address its host resolves to is a
global (public) address or lies in ``outbound_allow`` (the setting that lets a deployment reach
partners on its own network). A URL with credentials in it (``user:pass@``) is refused too, so
secrets travel only in the fields meant for them. Check when the URL is configured and again
before every request: the name may resolve elsewhere by then.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from urllib.parse import urlsplit

from gongyun.errors import ValidationFailed

Network = IPv4Network | IPv6Network


class OutboundTargetRefused(ValidationFailed):
    """A configured URL would make the server reach a private address (or is not http(s))."""

    code = "outbound_target_refused"
    title = "Outbound target refused"


def _public(addr: IPv4Address | IPv6Address, allow: Sequence[Network]) -> bool:
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global or any(addr in net for net in allow if net.version == addr.version)


def redact(url: str) -> str:
    """``url`` without credentials (``user:pw@``), fit for a log or the audit trail."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<not a URL>"
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def check_url(url: str, allow: Sequence[Network] = (), field: str = "url") -> tuple[str, int]:
    """The host and port of an http(s) URL, refused when it names a private address literally."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OutboundTargetRefused(f"{field}: not a URL", field=field) from None
    host = parts.hostname or ""
    if parts.scheme not in {"http", "https"} or not host:
        raise OutboundTargetRefused(f"{field}: only http(s) URLs with a host are allowed", field=field)
    if parts.username is not None or parts.password is not None:
        raise OutboundTargetRefused(f"{field}: credentials do not belong in the URL", field=field)
    try:
        addr = ip_address(host)
    except ValueError:
        return host, port
    if not _public(addr, allow):
        raise OutboundTargetRefused(
            f"{field}: {addr} is not a public address (outbound_allow lists the networks allowed)",
            field=field,
        )
    return host, port


async def check_target(url: str, allow: Sequence[Network] = (), field: str = "url") -> None:
    """Refuse ``url`` unless every address its host resolves to is public or allowed.

    A name that does not resolve passes: a request to it cannot connect anywhere either."""
    host, port = check_url(url, allow, field)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return
    for info in infos:
        addr = ip_address(str(info[4][0]).split("%", 1)[0])
        if not _public(addr, allow):
            raise OutboundTargetRefused(
                f"{field}: {host} resolves to {addr}, not a public address "
                "(outbound_allow lists the networks allowed)",
                field=field,
            )
