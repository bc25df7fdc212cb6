"""The in-process bus: the embedded default for one node. A real backend, not a mock: delivery is immediate."""

from __future__ import annotations

import logging

from teleconsult.bus.base import Handler

log = logging.getLogger(__name__)


class LocalBus:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    async def publish(self, channel: str, data: bytes) -> int:
        handlers = self._handlers.get(channel, ())
        for handler in handlers:
            try:
                handler(data)
            except Exception:
                log.exception("bus handler failed on channel %s", channel.split(":", 1)[0])
        return len(handlers)

    def post(self, channel: str, data: bytes) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                handler(data)
            except Exception:
                log.exception("bus handler failed on channel %s", channel.split(":", 1)[0])

    async def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        handlers = self._handlers.get(channel)
        if handlers and handler in handlers:
            handlers.remove(handler)
            if not handlers:
                del self._handlers[channel]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._handlers.clear()

    def channels(self) -> int:
        return len(self._handlers)
