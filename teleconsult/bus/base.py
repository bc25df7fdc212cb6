"""What a bus does: deliver bytes published on a channel to the handlers subscribed to it, on every node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

#: A handler must not block: it enqueues (e.g. onto a connection's send queue) and returns.
Handler = Callable[[bytes], None]


class Bus(Protocol):
    async def publish(self, channel: str, data: bytes) -> None: ...

    async def subscribe(self, channel: str, handler: Handler) -> None: ...

    async def unsubscribe(self, channel: str, handler: Handler) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
