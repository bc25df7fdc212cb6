"""The Redis bus between nodes (scale-out), and the room leases kept in the same Redis. The home of redis.

Two connections per node. Commands (``PUBLISH``, the lease scripts, ``PING``) go through one connection, pipelined:
whatever is queued while a batch is being written goes in the next one, and each caller gets its own reply, so
publishes keep their order and a lone one costs one round trip. A second connection is subscribed to every channel
a handler listens on; one reader task dispatches what arrives.

When Redis goes away the node keeps running: publishes fail at once with ``unavailable`` (never a hang), a
supervisor reconnects with a doubling back-off and subscribes every channel again, and ``ping`` says false until
then (``/healthz``: ``bus: false``, 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from typing import Any

from redis.asyncio.connection import Connection, ConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from teleconsult.bus.base import Handler
from teleconsult.errors import ErrorCode, TeleconsultError

log = logging.getLogger(__name__)

#: The most commands written in one go.
BATCH = 1024
#: Channels named in one SUBSCRIBE when every channel is subscribed again after a reconnect.
SUBSCRIBE_CHUNK = 500
UNREACHABLE = "The message bus between servers (Redis) is unreachable; try again shortly."

Command = tuple[Any, ...]
Waiter = asyncio.Future[Any] | None
_CONNECTION_ERRORS = (RedisError, OSError, TimeoutError)


def unavailable() -> TeleconsultError:
    return TeleconsultError(ErrorCode.UNAVAILABLE, UNREACHABLE)


class RedisBus:
    def __init__(
        self,
        url: str,
        *,
        command_timeout_s: float = 2.0,
        backoff_s: tuple[float, float] = (0.05, 2.0),
        health_every_s: float = 2.0,
    ):
        self._pool = ConnectionPool.from_url(
            url,
            protocol=2,  # subscribed replies as plain arrays, read by our own reader
            socket_connect_timeout=command_timeout_s,
            socket_timeout=None,  # bounded by our own timeouts: a subscriber waits for messages indefinitely
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._timeout = command_timeout_s
        self._backoff = backoff_s
        self._health_every = health_every_s
        self._handlers: dict[str, list[Handler]] = {}
        self._queue: deque[tuple[Command, Waiter]] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._confirmations: dict[str, deque[asyncio.Future[None]]] = {}
        self._pub: Connection | None = None
        self._sub: Connection | None = None
        self._up = False
        self._lost = asyncio.Event()
        self._heard = 0.0
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        #: Set each time the bus (re)connects, for whoever must redo work after an outage.
        self.connected = asyncio.Event()

    # --- life ---------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (and keep reconnecting); the node serves meanwhile."""
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="redis-bus")

    async def close(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        await self._teardown()
        self._handlers.clear()
        await self._pool.disconnect()

    @property
    def up(self) -> bool:
        return self._up

    async def ping(self) -> bool:
        if not self._up:
            return False
        try:
            return bool(await self.execute("PING"))
        except TeleconsultError:
            return False

    # --- commands -----------------------------------------------------------------------------------------------

    async def execute(self, *args: Any) -> Any:
        """One command's reply; ``unavailable`` at once while Redis is unreachable, or if it stops answering."""
        if not self._up:
            raise unavailable()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(args, waiter)
        return await waiter

    async def publish(self, channel: str, data: bytes) -> int:
        return int(await self.execute("PUBLISH", channel, data))

    def post(self, channel: str, data: bytes) -> None:
        if self._up:
            self._enqueue(("PUBLISH", channel, data), None)

    def _enqueue(self, args: Command, waiter: Waiter) -> None:
        self._queue.append((args, waiter))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        batch: list[tuple[Command, Waiter]] = []
        try:
            while self._queue:
                conn = self._pub
                if conn is None or not self._up:
                    raise ConnectionError("not connected")
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                async with asyncio.timeout(self._timeout):
                    await conn.send_packed_command(conn.pack_commands([args for args, _ in batch]), check_health=False)
                    for _args, waiter in batch:
                        try:
                            reply: Any = await conn.read_response()
                        except ResponseError as refused:  # this command only; the connection is fine
                            if waiter is not None and not waiter.done():
                                waiter.set_exception(refused)
                            continue
                        if waiter is not None and not waiter.done():
                            waiter.set_result(reply)
                batch = []
        except _CONNECTION_ERRORS as exc:
            log.warning("Redis stopped answering commands (%s)", type(exc).__name__)
            self._fail(batch)
            self._lost.set()
        finally:
            self._flusher = None

    def _fail(self, batch: list[tuple[Command, Waiter]]) -> None:
        """Every command written or waiting gets ``unavailable``."""
        batch.extend(self._queue)
        self._queue.clear()
        for _args, waiter in batch:
            if waiter is not None and not waiter.done():
                waiter.set_exception(unavailable())

    # --- subscriptions ------------------------------------------------------------------------------------------

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Listen on ``channel``; once this returns, what is published there reaches ``handler`` (Redis has
        confirmed). While Redis is away the channel is subscribed when it comes back."""
        handlers = self._handlers.get(channel)
        if handlers is not None:
            handlers.append(handler)
            return
        self._handlers[channel] = [handler]
        sub = self._sub
        if not self._up or sub is None:
            return
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(channel, deque()).append(confirmed)
        try:
            async with asyncio.timeout(self._timeout):
                await sub.send_command("SUBSCRIBE", channel, check_health=False)
                await confirmed
        except _CONNECTION_ERRORS:
            self._lost.set()  # subscribed again with every other channel on reconnect

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        handlers = self._handlers.get(channel)
        if not handlers or handler not in handlers:
            return
        handlers.remove(handler)
        if handlers:
            return
        del self._handlers[channel]
        sub = self._sub
        if self._up and sub is not None:
            try:
                await sub.send_command("UNSUBSCRIBE", channel, check_health=False)
            except _CONNECTION_ERRORS:
                self._lost.set()

    def channels(self) -> int:
        return len(self._handlers)

    async def _read(self, sub: Connection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            reply = await sub.read_response(timeout=math.inf, disconnect_on_error=False)
            self._heard = loop.time()
            kind = reply[0]
            if kind == b"message":
                self._dispatch(reply[1].decode(), reply[2])
            elif kind == b"subscribe":
                waiting = self._confirmations.get(reply[1].decode())
                if waiting:
                    done = waiting.popleft()
                    if not waiting:
                        del self._confirmations[reply[1].decode()]
                    if not done.done():
                        done.set_result(None)

    def _dispatch(self, channel: str, data: bytes) -> None:
        for handler in list(self._handlers.get(channel, ())):
            try:
                handler(data)
            except Exception:
                log.exception("bus handler failed on channel %s", channel.split(":", 1)[0])

    # --- connecting again ---------------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        delay = self._backoff[0]
        said = False
        loop = asyncio.get_running_loop()
        while not self._closing:
            try:
                await self._connect()
            except _CONNECTION_ERRORS as exc:
                await self._teardown()
                if not said:
                    log.warning("Redis unreachable (%s): retrying in the background", type(exc).__name__)
                    said = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            assert self._sub is not None
            reader = asyncio.create_task(self._read(self._sub), name="redis-bus-reader")
            self._lost.clear()
            self._up = True
            self._heard = loop.time()
            self.connected.set()
            if said:
                log.info("Redis reachable again: channels subscribed again")
            said, delay = False, self._backoff[0]
            await self._watch(reader)
            self._up = False
            self.connected.clear()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await self._teardown()
            if not self._closing:
                log.warning("Redis connection lost: reconnecting")
                said = True

    async def _watch(self, reader: asyncio.Task[None]) -> None:
        """Until the reader fails or a command does; a silent subscriber connection is pinged, then given up."""
        loop = asyncio.get_running_loop()
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            while True:
                done, _ = await asyncio.wait({reader, lost}, timeout=self._health_every, return_when="FIRST_COMPLETED")
                if done:
                    return
                if loop.time() - self._heard > 2 * self._health_every:
                    log.warning("Redis subscriber connection silent: reconnecting")
                    return
                sub = self._sub
                try:
                    if sub is not None:
                        await sub.send_command("PING", check_health=False)  # its pong proves the reader hears
                except _CONNECTION_ERRORS:
                    return
        finally:
            lost.cancel()

    async def _connect(self) -> None:
        async with asyncio.timeout(self._timeout):
            pub = self._pub = self._new_connection()
            await pub.connect()  # type: ignore[no-untyped-call]
            sub = self._sub = self._new_connection()
            await sub.connect()  # type: ignore[no-untyped-call]
            channels = list(self._handlers)
            for start in range(0, len(channels), SUBSCRIBE_CHUNK):
                await sub.send_command("SUBSCRIBE", *channels[start : start + SUBSCRIBE_CHUNK], check_health=False)

    def _new_connection(self) -> Connection:
        conn: Connection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        return conn

    async def _teardown(self) -> None:
        self._up = False
        self._fail([])
        for waiting in self._confirmations.values():
            for confirmed in waiting:
                if not confirmed.done():
                    confirmed.set_result(None)  # subscribed again on reconnect; nobody waits for an outage
        self._confirmations.clear()
        for conn in (self._pub, self._sub):
            if conn is not None:
                with contextlib.suppress(*_CONNECTION_ERRORS):
                    await conn.disconnect(nowait=True)
        self._pub = self._sub = None


#: A node's liveness extended, or set again if it had expired (then 0: its rooms may have been claimed meanwhile).
KEEP_ALIVE = """
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 1 then
  return 1
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return 0
"""
#: A key is taken unless a live node other than the caller holds it; the holder is returned.
CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and redis.call('EXISTS', 'node:' .. holder .. ':alive') == 1 then
  return holder
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""
HOLDER = """
local holder = redis.call('GET', KEYS[1])
if holder and redis.call('EXISTS', 'node:' .. holder .. ':alive') == 1 then
  return holder
end
return false
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
#: A key outlives its holder by at most this long when nobody claims it after the holder died (a room all of whose
#: peers were on the dead node): no consultation lasts a day.
KEY_TTL_MS = 24 * 3600 * 1000
#: Keys read by one MGET.
HOLDERS_CHUNK = 1000


def alive_key(node: str) -> str:
    return f"node:{node}:alive"


class RedisLeases:
    """Leases as Redis keys: a room's key names its node (``SET room:<cid>:owner <node>``), valid while that node's
    liveness key (``node:<node>:alive``, renewed every third of its life) exists. Renewing is one command per node,
    however many rooms it holds. The scripts name the liveness key they read: one Redis server, not Redis Cluster."""

    def __init__(self, bus: RedisBus):
        self._bus = bus

    async def keep_alive(self, node: str, ttl_ms: int) -> bool:
        return bool(await self._bus.execute("EVAL", KEEP_ALIVE, 1, alive_key(node), ttl_ms))

    async def claim(self, key: str, node: str) -> str | None:
        holder = await self._bus.execute("EVAL", CLAIM, 1, key, node, KEY_TTL_MS)
        return holder.decode() if isinstance(holder, bytes) else None

    async def holder(self, key: str) -> str | None:
        holder = await self._bus.execute("EVAL", HOLDER, 1, key)
        return holder.decode() if isinstance(holder, bytes) else None

    async def holders(self, keys: list[str]) -> list[str | None]:
        chunks = [keys[start : start + HOLDERS_CHUNK] for start in range(0, len(keys), HOLDERS_CHUNK)]
        replies = await asyncio.gather(*(self._bus.execute("MGET", *chunk) for chunk in chunks))
        return [value.decode() if isinstance(value, bytes) else None for reply in replies for value in reply]

    async def release(self, key: str, node: str) -> None:
        await self._bus.execute("EVAL", RELEASE, 1, key, node)
