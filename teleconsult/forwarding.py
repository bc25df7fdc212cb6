"""Who the client is behind reverse proxies: the right-most address that no trusted proxy vouches for.

Each proxy appends the address it received the request from to ``X-Forwarded-For`` (or adds a ``for=`` element to
``Forwarded``), so the list reads client, proxy 1, proxy 2... and the socket's peer is the last proxy. Everything
left of a hop that is not one of ours was written by the client and can be forged: walking from the right, the
first address that is not a trusted proxy is the client. Only the peer's own header is read, and only when the
peer is trusted; only one header kind is read (the one the proxy is configured to set), since a proxy that
rewrites ``X-Forwarded-For`` passes a client's forged ``Forwarded`` through untouched. Pure code.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
UNKNOWN = "unknown"
#: More hops than this in one request is not a real chain of proxies.
MAX_HOPS = 32
_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)', re.IGNORECASE)


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``127.0.0.1``, ``10.0.0.0/8``, ``::1``... (raises ``ValueError`` on anything else)."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip())


def parse_ip(value: str) -> Address | None:
    """An address from a header hop: ``1.2.3.4``, ``1.2.3.4:5678``, ``[2001:db8::1]:443``, ``2001:db8::1``."""
    text = value.strip().strip('"')
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]  # IPv4 with a port
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(address: str, networks: Sequence[Network]) -> bool:
    ip = parse_ip(address)
    return ip is not None and any(ip in network for network in networks)


def x_forwarded_for_hops(values: Iterable[str]) -> list[str]:
    return [hop.strip() for value in values for hop in value.split(",") if hop.strip()]


def forwarded_hops(values: Iterable[str]) -> list[str]:
    """The ``for=`` of each element of RFC 7239 ``Forwarded`` headers, in order."""
    hops = []
    for value in values:
        for element in value.split(","):
            match = _FOR.search(element)
            hops.append(match.group(1).strip('"') if match else UNKNOWN)
    return hops


def client_address(peer: str | None, hops: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address: the peer itself unless it is a trusted proxy; then the right-most hop that is not a
    trusted proxy (``unknown`` if that hop is no address, such as ``for=_hidden``); the left-most hop when all of
    them are trusted."""
    if peer is None:
        return UNKNOWN
    if not hops or not in_networks(peer, trusted):
        return _normal(peer)
    chain = list(hops)[-MAX_HOPS:]
    for hop in reversed(chain):
        if not in_networks(hop, trusted):
            return _normal(hop)
    return _normal(chain[0])


def _normal(value: str) -> str:
    ip = parse_ip(value)
    return str(ip) if ip is not None else UNKNOWN
