"""Outages under a live call (issue 17, point 4 and point 3 with real media).

PostgreSQL stopped and started again under a live call, on a PostgreSQL server of the test's own (never the
machine's): one node, and two nodes on Redis. ``kill -9`` of the node holding the room while two aiortc peers
exchange video peer to peer (their signaling through the cluster): both resume on the other node, the video never
stops, and the consultation ends with one billing entry."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.peers import MediaPeer, negotiate_until
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.store import Database
from teleconsult.store.models import BillingEntry
from tests import test_cluster
from tests.conftest import DOCTOR_EMAIL, DOCTOR_PASSWORD, DOCTOR_RPPS
from tests.helpers import Peer
from tests.postgres_server import PostgresServer, own_postgres
from tests.redis_server import RedisServer, own_redis
from tests.test_cluster import Cluster, Node, _env, call_across, connect, join, log_in, relays

pytestmark = pytest.mark.postgres

# The cluster's fixtures: nodes on the machine's PostgreSQL and a Redis of the test's own, HTTP clients.
cluster_of = test_cluster.cluster_of
browsers = test_cluster.browsers

#: A frame that needs the database gets its error within this (no hang).
BOUNDED_S = 10.0
#: /healthz says the database is down within this.
HEALTH_WITHIN_S = 5.0


# --- PostgreSQL stopped and started again ---------------------------------------------------------------------


async def entries_of(database_url: str, consultation_id: str) -> list[bool]:
    """The billing entries of a consultation: whether each says video connected."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            query = select(BillingEntry.video_connected).where(BillingEntry.consultation_id == consultation_id)
            return [bool(v) for v in (await conn.execute(query)).scalars()]
    finally:
        await engine.dispose()


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[PostgresServer]:
    server = own_postgres()
    yield server
    server.remove()


def create_doctor(data_dir: Path, database_url: str, redis_url: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "teleconsult",
            "--data-dir",
            str(data_dir),
            "--database-url",
            database_url,
            "create-doctor",
            "--email",
            DOCTOR_EMAIL,
            "--name",
            "Dr Alice Martin",
            "--rpps",
            DOCTOR_RPPS,
            "--password",
            DOCTOR_PASSWORD,
        ],
        check=True,
        capture_output=True,
        env=_env(redis_url),
        timeout=60,
    )


@pytest.fixture
async def nodes_on(tmp_path: Path, own_database: PostgresServer) -> AsyncIterator[Any]:
    """A factory: ``n`` nodes on the test's own PostgreSQL (migrated, with a doctor), on a Redis of the test's own
    when ``n`` > 1 (one node has no Redis: the in-process bus)."""
    started: list[Node] = []
    servers: list[RedisServer] = []

    async def make(n: int) -> list[Node]:
        database = Database(own_database.url)
        try:
            await database.upgrade()
        finally:
            await database.close()
        redis_url = ""
        if n > 1:
            servers.append(own_redis(tmp_path / "redis"))
            redis_url = servers[-1].url
        data_dir = tmp_path / "var"
        await asyncio.to_thread(create_doctor, data_dir, own_database.url, redis_url)
        for i in range(n):
            node = Node(chr(ord("a") + i), data_dir, own_database.url, redis_url)
            started.append(node)
            await asyncio.to_thread(node.start)
        return started[-n:]

    yield make
    for node in started:
        node.stop()
    for server in servers:
        server.stop()
    for node in started:
        if node.log.exists():
            print(f"--- node {node.name} ---\n{node.log.read_text(errors='replace')[-4000:]}")
    print(f"--- postgres ---\n{own_database.log.read_text(errors='replace')[-2000:]}")


async def health(http: aiohttp.ClientSession, node: Node) -> tuple[int, dict[str, Any]]:
    async with asyncio.timeout(HEALTH_WITHIN_S):
        response = await http.get(f"{node.url}/healthz")
        return response.status, dict(await response.json())


async def until_health(http: aiohttp.ClientSession, node: Node, status: int, within_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while True:
        code, body = await health(http, node)
        if code == status:
            return body
        assert time.monotonic() < deadline, f"/healthz on {node.name} still {code} {body}"
        await asyncio.sleep(0.1)


async def refused_unavailable(response: aiohttp.ClientResponse) -> None:
    assert response.status == 503, await response.text()
    assert response.content_type == "application/json"
    assert (await response.json())["error"] == "unavailable"


async def error_within(peer: Peer, ref: str | None) -> dict[str, Any]:
    started = time.monotonic()
    error = await peer.expect("error", timeout=BOUNDED_S)
    assert error["code"] == "unavailable" and error.get("ref") == ref, error
    assert time.monotonic() - started < BOUNDED_S
    return error


@pytest.mark.parametrize("n", [1, 2], ids=["one-node", "two-nodes"])
async def test_postgresql_stopped_under_a_live_call_then_back(
    n: int, nodes_on: Any, own_database: PostgresServer, browsers: Any
) -> None:
    nodes = await nodes_on(n)
    a, b = nodes[0], nodes[-1]
    call = await call_across(browsers, a, b)  # the doctor on A, the patient on B (the same node when n == 1)
    await relays(call.patient_ws, call.doctor_ws)
    # Made before the outage: a second consultation, its patient link and a doctor's ticket for its room.
    second = await call.doctor.consultation(a)
    ticket = await call.doctor.ticket(b, second["id"])
    http = browsers()
    for node in nodes:
        assert (await health(http, node))[0] == 200

    own_database.stop()
    for node in nodes:
        body = await until_health(http, node, 503, HEALTH_WITHIN_S)
        assert body["database"] is False and body["bus"] is True, body

    # What needs no database goes on: chat, and the relay of offers, answers and candidates between admitted peers.
    await relays(call.patient_ws, call.doctor_ws, "sans base de données")
    await relays(call.doctor_ws, call.patient_ws, "toujours là")

    # What needs it gets a clear error, in bounded time, and nothing is applied.
    async with asyncio.timeout(BOUNDED_S):
        await refused_unavailable(
            await call.doctor.http.post(
                f"{b.url}/api/consultations",
                json={"patient_name": "Paul Durand", "patient_email": "paul@example.org"},
                headers=call.doctor.headers,
            )
        )
    newcomer = browsers()
    async with asyncio.timeout(BOUNDED_S):
        await refused_unavailable(
            await newcomer.post(
                f"{a.url}/api/join", json={"token": second["patient_link"].rsplit("/j/", 1)[1], "consent": True}
            )
        )
    ws = await http.ws_connect(f"{a.url}/ws")
    await ws.send_str(json.dumps({"type": "hello", "v": 1, "ticket": ticket, "id": "h1"}))
    await error_within(Peer(ws, {}), "h1")
    await ws.close()
    await call.doctor_ws.send(type="end", id="e1")
    await error_within(call.doctor_ws, "e1")
    async with asyncio.timeout(BOUNDED_S):
        await refused_unavailable(await call.doctor.end(b, call.consultation["id"]))
    await relays(call.patient_ws, call.doctor_ws, "pas fini")  # the call was not ended
    for node in nodes:
        assert node.process is not None and node.process.poll() is None, f"node {node.name} died"

    own_database.start()
    for node in nodes:
        body = await until_health(http, node, 200, 20.0)
        assert body["database"] is True and all(body["loops"].values()), body

    # The same actions now succeed, on the same nodes (nothing restarted).
    third = await call.doctor.consultation(b)
    assert third["id"]
    joined = await join(newcomer, a, second["patient_link"])
    patient2 = await connect(newcomer, a, ticket=joined["ticket"])
    assert patient2.welcome["state"] == "waiting"
    doctor2 = await connect(call.doctor.http, b, ticket=ticket)  # the ticket refused while down was not spent
    assert doctor2.welcome["state"] == "admitted"
    lobby = await doctor2.expect("lobby", waiting=bool, timeout=10)
    assert lobby["waiting"][0]["peer_id"] == patient2.peer_id
    await relays(call.patient_ws, call.doctor_ws, "de retour")
    await call.doctor_ws.send(type="end", id="e2")
    for peer in (call.doctor_ws, call.patient_ws):
        ended = await peer.expect("ended", timeout=10)
        assert ended["consultation_id"] == call.consultation["id"]
    assert await entries_of(own_database.url, call.consultation["id"]) == [True]


async def test_a_server_refusing_connections_is_unavailable_not_a_crash(own_database: PostgresServer) -> None:
    """PostgreSQL saying it cannot take a connection now (too many connections, 53300; like "the database system is
    starting up" or "shutting down", 57P03, met while it restarts) is ``unavailable``, as a refused connection is."""
    admin = create_async_engine(own_database.url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text("CREATE ROLE crowded LOGIN CONNECTION LIMIT 0"))
    finally:
        await admin.dispose()
    database = Database(own_database.url.replace("postgres@", "crowded@", 1), bounded=True)
    try:
        with pytest.raises(TeleconsultError) as refused:
            async with database.transaction() as tx:
                await tx.execute(text("SELECT 1"))
        assert refused.value.code is ErrorCode.UNAVAILABLE
        assert await database.ping() is False
    finally:
        await database.close()


async def test_a_postgresql_that_does_not_answer_fails_fast_then_back(
    nodes_on: Any, own_database: PostgresServer, browsers: Any
) -> None:
    """The server frozen (SIGSTOP): connections accepted and never answered, as when the database's host is cut off
    the network. Nothing that needs the database may wait for it longer than the node's bounds."""
    (node,) = await nodes_on(1)
    call = await call_across(browsers, node, node)
    second = await call.doctor.consultation(node)
    ticket = await call.doctor.ticket(node, second["id"])
    http = browsers()
    own_database.freeze()
    try:
        body = await until_health(http, node, 503, HEALTH_WITHIN_S)
        assert body["database"] is False and body["bus"] is True, body
        await relays(call.patient_ws, call.doctor_ws, "la base ne répond plus")

        async def create() -> None:
            async with asyncio.timeout(BOUNDED_S):
                response = await call.doctor.http.post(
                    f"{node.url}/api/consultations",
                    json={"patient_name": "Paul Durand", "patient_email": "paul@example.org"},
                    headers=call.doctor.headers,
                )
                await refused_unavailable(response)

        async def hello() -> None:
            ws = await http.ws_connect(f"{node.url}/ws")
            await ws.send_str(json.dumps({"type": "hello", "v": 1, "ticket": ticket, "id": "h1"}))
            await error_within(Peer(ws, {}), "h1")
            await ws.close()

        async def end() -> None:
            await call.doctor_ws.send(type="end", id="e1")
            await error_within(call.doctor_ws, "e1")

        await asyncio.gather(create(), hello(), end())  # at once: each bounded, none waiting on another
        await relays(call.doctor_ws, call.patient_ws, "toujours en ligne")
        assert node.process is not None and node.process.poll() is None, "the node died"
    finally:
        own_database.thaw()

    body = await until_health(http, node, 200, 20.0)
    assert all(body["loops"].values()), body
    assert (await call.doctor.consultation(node))["id"]
    doctor2 = await connect(call.doctor.http, node, ticket=ticket)
    assert doctor2.welcome["state"] == "admitted"
    await call.doctor_ws.send(type="end", id="e2")
    for peer in (call.doctor_ws, call.patient_ws):
        assert (await peer.expect("ended", timeout=10))["consultation_id"] == call.consultation["id"]
    assert await entries_of(own_database.url, call.consultation["id"]) == [True]


# --- kill -9 of the node holding the room, under real media -----------------------------------------------------

#: The longest the video may pause on either side (the media path never went through a server).
MAX_GAP_S = 2.0


@dataclass
class Frames:
    """When each decoded frame of the remote video came out, on one side."""

    media: MediaPeer
    times: list[float] = field(default_factory=list)

    async def count(self) -> None:
        while True:
            frame = await self.media.video_frame()
            assert frame.width > 0
            self.times.append(time.monotonic())

    def between(self, start: float, end: float) -> int:
        return sum(1 for t in self.times if start <= t < end)

    def longest_gap(self, until: float) -> float:
        marks = [*self.times, until]
        return max(b - a for a, b in itertools.pairwise(marks))


async def until_frames(sides: list[Frames], count: int, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while any(len(s.times) < count for s in sides):
        assert time.monotonic() < deadline, [len(s.times) for s in sides]
        await asyncio.sleep(0.05)


@pytest.mark.webrtc
@pytest.mark.parametrize("split", [False, True], ids=["both-on-the-owner", "patient-on-the-other"])
async def test_kill_9_of_the_room_owner_under_real_media(split: bool, cluster_of: Any, browsers: Any) -> None:
    cluster: Cluster = cluster_of(2)
    a, b = cluster.nodes
    doctor = await log_in(browsers(), a)
    consultation = await doctor.consultation(a)
    doctor_ws = await connect(doctor.http, a, ticket=await doctor.ticket(a, consultation["id"]))  # A claims the room
    patient_http = browsers()
    patient_node = b if split else a
    joined = await join(patient_http, patient_node, consultation["patient_link"])
    patient_ws = await connect(patient_http, patient_node, ticket=joined["ticket"])
    await patient_ws.expect("waiting")
    await doctor_ws.send(type="admit", peer_id=(await doctor_ws.expect("lobby", waiting=bool))["waiting"][0]["peer_id"])
    assert [p["peer_id"] for p in (await patient_ws.expect("admitted", timeout=10))["peers"]] == [doctor_ws.peer_id]

    doctor_media, patient_media = MediaPeer("doctor"), MediaPeer("patient")
    sides = [Frames(doctor_media), Frames(patient_media)]
    counting: list[asyncio.Task[None]] = []
    try:
        async with asyncio.timeout(30):  # the patient, who came in later, offers; signaling through the cluster
            await patient_ws.send(type="offer", to=doctor_ws.peer_id, sdp=await patient_media.offer())
            await negotiate_until(doctor_ws, doctor_media, "offer")
            await negotiate_until(patient_ws, patient_media, "answer")
        counting = [asyncio.create_task(side.count()) for side in sides]
        await until_frames(sides, 10)
        await patient_ws.send(type="media", peer_id=doctor_ws.peer_id, video=True)  # what billing needs
        await patient_ws.send(type="ping", id="video")
        await patient_ws.expect("pong", timeout=10)
        await asyncio.sleep(1.0)

        killed = time.monotonic()
        a.kill()
        resumed_doctor = await connect(doctor.http, b, resume=doctor_ws.welcome["resume"])
        if split:
            resumed_patient = patient_ws  # its socket was on B all along
        else:
            resumed_patient = await connect(patient_http, b, resume=patient_ws.welcome["resume"])
        resumed = time.monotonic()
        assert resumed - killed < 15, "resumed within the grace period"
        for old, new in ((doctor_ws, resumed_doctor), (patient_ws, resumed_patient)):
            if new is not old:  # the same peer id, admitted, with the other in the room
                assert new.peer_id == old.peer_id and new.welcome["state"] == "admitted", new.welcome
        assert [p["peer_id"] for p in resumed_doctor.welcome["peers"]] == [patient_ws.peer_id]
        assert doctor_media.pc.connectionState == patient_media.pc.connectionState == "connected"
        await relays(resumed_patient, resumed_doctor, "toujours là")
        await asyncio.sleep(2.0)
        after = time.monotonic()
        for side in sides:
            before, during = side.between(0, killed), side.between(killed, resumed)
            print(
                "STATS",
                side.media.name,
                before,
                during,
                side.between(resumed, after),
                resumed - killed,
                side.longest_gap(after),
            )
            assert before >= 10 and during >= 1 and side.between(resumed, after) >= 10, (
                side.media.name,
                before,
                during,
                side.between(resumed, after),
                resumed - killed,
            )
            assert side.longest_gap(after) < MAX_GAP_S, (side.media.name, side.longest_gap(after))
    finally:
        for task in counting:
            task.cancel()
        await asyncio.gather(*counting, return_exceptions=True)
        await asyncio.gather(doctor_media.close(), patient_media.close())

    await resumed_doctor.send(type="end")
    for peer in (resumed_doctor, resumed_patient):
        assert (await peer.expect("ended", timeout=10))["consultation_id"] == consultation["id"]
    assert await cluster.billing_entries(consultation["id"]) == 1
    assert await entries_of(cluster.database_url, consultation["id"]) == [True]
