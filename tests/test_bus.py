"""The bus, on both backends (in-process and Redis); and Redis going away under a node: publishes fail at once with
``unavailable``, ``/healthz`` says ``bus: false`` (503), and everything comes back by itself, subscriptions included."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from teleconsult.bus import LocalBus
from teleconsult.bus.redis import HOLDERS_CHUNK, RedisBus, RedisLeases
from teleconsult.errors import ErrorCode, TeleconsultError
from tests.conftest import make_settings, start_server
from tests.redis_server import RedisServer, own_redis


async def settled(bus: Any) -> None:
    """Everything published so far has been delivered (Redis delivers one connection's publishes in order)."""
    if isinstance(bus, LocalBus):
        return
    arrived = asyncio.Event()

    def marker(_data: bytes) -> None:
        arrived.set()

    await bus.subscribe("test:settled", marker)
    await bus.publish("test:settled", b"")
    await asyncio.wait_for(arrived.wait(), 5)
    await bus.unsubscribe("test:settled", marker)


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.05)


async def test_publish_reaches_every_handler_in_order(bus: Any) -> None:
    first: list[bytes] = []
    second: list[bytes] = []
    await bus.subscribe("peer:a", first.append)
    await bus.subscribe("peer:a", second.append)
    await bus.subscribe("peer:b", second.append)
    for n in range(50):
        await bus.publish("peer:a", b"%d" % n)
    bus.post("peer:b", b"posted")
    await settled(bus)
    assert first == [b"%d" % n for n in range(50)]
    assert second == [*first, b"posted"]
    assert await bus.publish("peer:nobody", b"x") == 0
    assert await bus.publish("peer:a", b"x") >= 1
    assert await bus.ping()


async def test_unsubscribed_handlers_hear_nothing_more(bus: Any) -> None:
    got: list[bytes] = []
    await bus.subscribe("peer:a", got.append)
    await bus.publish("peer:a", b"1")
    await settled(bus)  # Redis has answered the publish; its delivery to our own subscriber may still be on the way
    await bus.unsubscribe("peer:a", got.append)
    await bus.unsubscribe("peer:a", got.append)  # twice: harmless
    await bus.publish("peer:a", b"2")
    await settled(bus)
    assert got == [b"1"] and bus.channels() == 0


async def test_a_failing_handler_does_not_stop_the_others(bus: Any) -> None:
    got: list[bytes] = []

    def broken(_data: bytes) -> None:
        raise RuntimeError("a bug in one handler")

    await bus.subscribe("peer:a", broken)
    await bus.subscribe("peer:a", got.append)
    await bus.publish("peer:a", b"1")
    await settled(bus)
    assert got == [b"1"]


async def test_a_room_has_one_live_holder_and_passes_on_when_its_node_lapses(tmp_path: Path) -> None:
    server = own_redis(tmp_path / "redis")
    bus = RedisBus(server.url)
    bus.start()
    try:
        await asyncio.wait_for(bus.connected.wait(), 10)
        leases = RedisLeases(bus)
        assert await leases.keep_alive("A", 300) is False  # new: nothing was alive before
        assert await leases.keep_alive("A", 300) is True
        assert await leases.claim("room:c:owner", "A") == "A"
        await leases.keep_alive("B", 60_000)
        assert await leases.claim("room:c:owner", "B") == "A"  # A is alive
        assert await leases.claim("room:c:owner", "A") == "A"  # claiming again what one holds
        await leases.release("room:c:owner", "B")  # not B's to release
        assert await leases.holder("room:c:owner") == "A"
        await asyncio.sleep(0.5)  # A stopped renewing its liveness: its room is nobody's
        assert await leases.holder("room:c:owner") is None
        assert await leases.holders(["room:c:owner", "room:none:owner"]) == ["A", None]  # what the key names
        assert await leases.claim("room:c:owner", "B") == "B"
        assert await leases.keep_alive("A", 300) is False  # A learns its liveness had lapsed
        assert await leases.claim("room:c:owner", "A") == "B"
        await leases.release("room:c:owner", "B")
        assert await leases.holder("room:c:owner") is None
    finally:
        await bus.close()
        server.stop()


async def test_holders_of_many_rooms_are_read_in_a_few_commands_in_order(tmp_path: Path) -> None:
    server = own_redis(tmp_path / "redis")
    bus = RedisBus(server.url)
    bus.start()
    try:
        await asyncio.wait_for(bus.connected.wait(), 10)
        leases = RedisLeases(bus)
        await leases.keep_alive("A", 60_000)
        await leases.keep_alive("B", 60_000)
        keys = [f"room:{i}:owner" for i in range(2 * HOLDERS_CHUNK + 7)]  # three MGETs
        await asyncio.gather(*(leases.claim(key, "AB"[i % 3 == 1]) for i, key in enumerate(keys) if i % 3 != 2))
        expected = [("A", "B", None)[i % 3] for i in range(len(keys))]
        assert await leases.holders(keys) == expected
        assert await leases.holders([]) == []
    finally:
        await bus.close()
        server.stop()


async def test_redis_going_away_fails_fast_and_comes_back_by_itself(tmp_path: Path) -> None:
    server = own_redis(tmp_path / "redis")
    bus = RedisBus(server.url)
    bus.start()
    got: list[bytes] = []
    try:
        await asyncio.wait_for(bus.connected.wait(), 10)
        await bus.subscribe("peer:a", got.append)
        server.stop()
        await eventually(lambda: _not(bus.ping()))
        started = time.monotonic()
        with pytest.raises(TeleconsultError) as refused:
            await bus.publish("peer:a", b"while down")
        assert refused.value.code is ErrorCode.UNAVAILABLE and time.monotonic() - started < 0.5
        bus.post("peer:a", b"lost")  # a post while down is dropped, never raised
        await bus.subscribe("peer:b", got.append)  # subscribed when Redis is back
        server.start()
        await eventually(bus.ping)
        await bus.publish("peer:a", b"back")
        await bus.publish("peer:b", b"new")
        await settled(bus)
        assert got == [b"back", b"new"]
    finally:
        await bus.close()
        server.stop()


async def _not(answer: Awaitable[bool]) -> bool:
    return not await answer


async def test_healthz_says_the_bus_is_down_then_recovers(tmp_path: Path) -> None:
    server: RedisServer = own_redis(tmp_path / "redis")
    live = await start_server(make_settings(tmp_path, redis_url=server.url), with_doctor=False)
    try:
        async with ClientSession() as http:

            async def status() -> tuple[int, Any]:
                response = await http.get(f"{live.url}/healthz")
                return response.status, await response.json()

            async def healthy() -> bool:
                return (await status())[0] == 200

            await eventually(healthy)
            server.stop()

            async def down() -> bool:
                code, body = await status()
                return code == 503 and body["bus"] is False and body["database"] is True

            await eventually(down)
            server.start()
            await eventually(healthy)
    finally:
        await live.server.close()
        server.stop()
