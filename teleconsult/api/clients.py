"""The client's address for throttles, caps and audit: the socket's peer, or behind ``--behind-proxy`` the address
the trusted proxies report (``teleconsult/forwarding.py``)."""

from __future__ import annotations

from aiohttp import web

from teleconsult.api.keys import LINK_RATE, SETTINGS
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.forwarding import UNKNOWN, client_address, forwarded_hops, x_forwarded_for_hops


def client_ip(request: web.Request) -> str:
    settings = request.app[SETTINGS]
    if not settings.server.behind_proxy:
        address = client_address(request.remote, (), ())
    elif settings.server.forwarded_header == "forwarded":
        address = client_address(
            request.remote, forwarded_hops(request.headers.getall("Forwarded", ())), settings.server.trusted_networks
        )
    else:
        address = client_address(
            request.remote,
            x_forwarded_for_hops(request.headers.getall("X-Forwarded-For", ())),
            settings.server.trusted_networks,
        )
    return address or UNKNOWN


def limit_links(request: web.Request) -> None:
    """Guessing links is slow: each client address has ``link_rate_per_min`` tries a minute."""
    wait = request.app[LINK_RATE].take(client_ip(request))
    if wait > 0:
        raise TeleconsultError(ErrorCode.RATE_LIMITED, "Too many attempts; wait a moment.", retry_after=wait)
