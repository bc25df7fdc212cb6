"""The ICE servers a peer is given, with TURN credentials in coturn's REST scheme (pure: the time is passed in).

coturn (``use-auth-secret``, ``static-auth-secret``) and Teleconsult share one secret and never talk to each other:
credentials are made here and checked there (draft-uberti-behave-turn-rest-00, the "TURN REST API"):

- username: ``"{expiry}:{peer_id}"``, the expiry in Unix seconds (coturn's ``rest-api-separator`` is ``:``);
- password: ``base64(HMAC-SHA1(secret, username))``.

coturn refuses an Allocate whose username's expiry has passed (401). An allocation made before the expiry lives on
(its refreshes, permissions and channels are accepted), so a call outlasts its credentials; only a new allocation
(an ICE restart, a new peer connection) needs fresh ones, which every ``welcome`` (a resume's too) carries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from teleconsult.config import IceServer, SignalingSettings


@dataclass(frozen=True, slots=True)
class TurnCredential:
    username: str
    password: str
    #: Unix seconds after which coturn refuses new allocations made with it.
    expires_at: int


def rest_password(secret: str, username: str) -> str:
    """base64(HMAC-SHA1(secret, username)): what coturn computes from its ``static-auth-secret``."""
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def turn_credential(secret: str, peer_id: str, *, now: datetime, ttl_s: int) -> TurnCredential:
    """A credential for ``peer_id`` valid ``ttl_s`` seconds from ``now`` (aware)."""
    expires_at = int(now.timestamp()) + ttl_s
    username = f"{expires_at}:{peer_id}"
    return TurnCredential(username, rest_password(secret, username), expires_at)


def ice_servers(settings: SignalingSettings, peer_id: str, now: datetime) -> tuple[IceServer, ...]:
    """What one peer's ``welcome`` carries: the operator's STUN servers (none unless configured: no public STUN
    server by default), the ICE servers configured as such, then the TURN URLs with a credential for this peer."""
    servers: list[IceServer] = []
    if settings.stun_urls:
        servers.append(IceServer(urls=settings.stun_urls))
    servers.extend(settings.ice_servers)
    if settings.turn_urls and settings.turn_secret:
        credential = turn_credential(settings.turn_secret, peer_id, now=now, ttl_s=settings.turn_ttl_s)
        servers.append(IceServer(urls=settings.turn_urls, username=credential.username, credential=credential.password))
    return tuple(servers)
