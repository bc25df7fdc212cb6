"""What a bus does: deliver bytes published on a channel to the handlers subscribed to it, on every node; and, for
a cluster, what a lease store does (which node holds which room)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

#: A handler must not block: it enqueues (e.g. onto a connection's send queue) and returns.
Handler = Callable[[bytes], None]


class Bus(Protocol):
    async def publish(self, channel: str, data: bytes) -> int:
        """Deliver ``data`` to the channel's subscribers; returns how many received it (handlers on one node,
        subscribed nodes on Redis). Raises ``TeleconsultError(UNAVAILABLE)`` when the bus cannot be reached."""

    def post(self, channel: str, data: bytes) -> None:
        """Publish without waiting, in order with ``publish``; lost (like a frame to a dead socket) when the bus is
        unreachable."""

    async def subscribe(self, channel: str, handler: Handler) -> None: ...

    async def unsubscribe(self, channel: str, handler: Handler) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class Leases(Protocol):
    """Keys held by one owner at a time, each until it expires unless renewed (a room's owner node)."""

    async def acquire(self, key: str, owner: str, ttl_ms: int) -> str | None:
        """Take the key if nobody holds it; returns who holds it now (``owner`` if taken), None if unknown."""

    async def renew(self, keys: list[str], owner: str, ttl_ms: int) -> list[bool]:
        """Extend each key ``owner`` holds (taking it again if it expired meanwhile); False where another holds it."""

    async def release(self, key: str, owner: str) -> None:
        """Give the key up if ``owner`` still holds it."""

    async def holder(self, key: str) -> str | None: ...
