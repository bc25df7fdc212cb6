"""What a bus does: deliver bytes published on a channel to the handlers subscribed to it, on every node; and, for
a cluster, what a lease store does (which node holds which room, while it lives)."""

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
    """Which node holds which key (a room), as long as that node is alive. A node proves it is alive by renewing
    one liveness lease of its own (``keep_alive``); the keys it holds need no renewal of their own, and a dead node's
    keys may be claimed by another once its liveness has expired."""

    async def keep_alive(self, node: str, ttl_ms: int) -> bool:
        """Extend (or start again) ``node``'s liveness for ``ttl_ms``; False if it had expired meanwhile, when
        other nodes may have claimed its keys."""

    async def claim(self, key: str, node: str) -> str | None:
        """Take the key unless a live node other than ``node`` holds it; returns who holds it now."""

    async def holder(self, key: str) -> str | None:
        """The node holding the key, if that node is alive."""

    async def holders(self, keys: list[str]) -> list[str | None]:
        """Who each key names, alive or not (after a lapse of liveness: which keys are still ours)."""

    async def release(self, key: str, node: str) -> None:
        """Give the key up if ``node`` still holds it."""
