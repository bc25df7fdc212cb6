"""A cluster: real ``teleconsult serve`` processes on one PostgreSQL database and one Redis (a server of the test's
own, so that it may be stopped), every client on whichever node it reached. A doctor on node A and a patient on node
B in one room; a doctor's two tabs on two nodes; two nodes racing to end; ``kill -9`` of the node holding the room;
Redis stopped and restarted under a live call."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientSession, CookieJar
from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from teleconsult.store.models import BillingEntry
from tests.conftest import DOCTOR_EMAIL, DOCTOR_PASSWORD, DOCTOR_RPPS, free_port, truncate_all
from tests.helpers import Peer, token_of
from tests.redis_server import RedisServer, own_redis

pytestmark = pytest.mark.postgres
SECRET = "cluster-test-secret"


def _env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    return env | {"TELECONSULT_REDIS_URL": redis_url, "TELECONSULT_SECRET_KEY": SECRET}


@dataclass
class Node:
    """One ``teleconsult serve`` process; its output goes to a log file (shown when a test fails)."""

    name: str
    data_dir: Path
    database_url: str
    redis_url: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    def start(self) -> None:
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "teleconsult",
                "--data-dir",
                str(self.data_dir),
                "--database-url",
                self.database_url,
                "serve",
                "--port",
                str(self.port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(self.redis_url),
        )
        deadline = time.monotonic() + 30
        while b"running" not in self.log.read_bytes():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the node did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Cluster:
    nodes: list[Node]
    redis: RedisServer
    database_url: str

    async def billing_entries(self, consultation_id: str) -> int:
        engine = create_async_engine(self.database_url)
        try:
            async with engine.connect() as conn:
                query = select(func.count()).select_from(BillingEntry)
                query = query.where(BillingEntry.consultation_id == consultation_id)
                return int((await conn.execute(query)).scalar_one())
        finally:
            await engine.dispose()


@pytest.fixture
def cluster_of(tmp_path: Path, postgres_url: str) -> Iterator[Any]:
    """A factory: ``n`` nodes on a fresh database (with a doctor account) and a Redis of the test's own."""
    made: list[Cluster] = []

    def make(n: int) -> Cluster:
        from tests.conftest import in_thread

        in_thread(truncate_all(postgres_url))
        redis = own_redis(tmp_path / "redis")
        data_dir = tmp_path / "var"  # one data directory: the shared volume (keys, documents) of a deployment
        subprocess.run(
            [
                sys.executable,
                "-m",
                "teleconsult",
                "--data-dir",
                str(data_dir),
                "--database-url",
                postgres_url,
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
            env=_env(redis.url),
            timeout=60,
        )
        nodes = [Node(chr(ord("a") + i), data_dir, postgres_url, redis.url) for i in range(n)]
        for node in nodes:
            node.start()
        cluster = Cluster(nodes, redis, postgres_url)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        for node in cluster.nodes:
            node.stop()
        cluster.redis.stop()
        for node in cluster.nodes:
            if node.log.exists():
                print(f"--- node {node.name} ---\n{node.log.read_text(errors='replace')[-4000:]}")


# --- clients --------------------------------------------------------------------------------------------------


@pytest.fixture
async def browsers() -> AsyncIterator[Any]:
    """A factory of HTTP clients, each with its own cookie jar (a browser)."""
    made: list[ClientSession] = []

    def make() -> ClientSession:
        session = ClientSession(cookie_jar=CookieJar(unsafe=True))
        made.append(session)
        return session

    yield make
    for session in made:
        await session.close()


@dataclass
class Doctor:
    http: ClientSession
    csrf: str

    async def consultation(self, node: Node, **body: Any) -> dict[str, Any]:
        payload = {"patient_name": "Jeanne Dupont", "patient_email": "jeanne@example.org"} | body
        response = await self.http.post(f"{node.url}/api/consultations", json=payload, headers=self.headers)
        assert response.status == 201, await response.text()
        return dict(await response.json())

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    async def ticket(self, node: Node, consultation_id: str) -> str:
        response = await self.http.post(f"{node.url}/api/consultations/{consultation_id}/ticket", headers=self.headers)
        assert response.status == 200, await response.text()
        return str((await response.json())["ticket"])

    async def end(self, node: Node, consultation_id: str) -> aiohttp.ClientResponse:
        return await self.http.post(f"{node.url}/api/consultations/{consultation_id}/end", headers=self.headers)


async def log_in(http: ClientSession, node: Node) -> Doctor:
    response = await http.post(f"{node.url}/api/login", json={"email": DOCTOR_EMAIL, "password": DOCTOR_PASSWORD})
    assert response.status == 200, await response.text()
    return Doctor(http, str((await response.json())["csrf_token"]))


async def join(http: ClientSession, node: Node, link: str) -> dict[str, Any]:
    response = await http.post(f"{node.url}/api/join", json={"token": token_of(link), "consent": True})
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def connect(
    http: ClientSession, node: Node, *, ticket: str | None = None, resume: str | None = None, room: str | None = None
) -> Peer:
    ws = await http.ws_connect(f"{node.url}/ws" + (f"?room={room}" if room else ""))
    await ws.send_str(json.dumps({"type": "hello", "v": 1} | ({"resume": resume} if resume else {"ticket": ticket})))
    welcome = json.loads((await ws.receive(timeout=15)).data)
    assert welcome["type"] == "welcome", welcome
    return Peer(ws, welcome)


@dataclass
class Call:
    doctor: Doctor
    consultation: dict[str, Any]
    doctor_ws: Peer
    patient_http: ClientSession
    patient_join: dict[str, Any]
    patient_ws: Peer


async def call_across(browsers: Any, doctor_node: Node, patient_node: Node, *, hinted: bool = False) -> Call:
    """The doctor on one node, the patient on another: joined, admitted, video reported flowing. ``hinted``: the
    sockets name their room (``/ws?room=``), as the call page does."""
    doctor = await log_in(browsers(), doctor_node)
    consultation = await doctor.consultation(doctor_node)
    room = consultation["id"][-8:] if hinted else None
    ticket = await doctor.ticket(doctor_node, consultation["id"])
    # A browser opens a WebSocket on a connection of its own; aiohttp would reuse the one its requests went over.
    doctor_ws = await connect(browsers() if hinted else doctor.http, doctor_node, ticket=ticket, room=room)
    patient_http = browsers()
    joined = await join(patient_http, patient_node, consultation["patient_link"])
    patient_ws = await connect(browsers() if hinted else patient_http, patient_node, ticket=joined["ticket"], room=room)
    assert patient_ws.welcome["state"] == "waiting"
    await patient_ws.expect("waiting")
    lobby = await doctor_ws.expect("lobby", waiting=bool)
    assert lobby["waiting"][0]["peer_id"] == patient_ws.peer_id
    await doctor_ws.send(type="admit", peer_id=patient_ws.peer_id)
    admitted = await patient_ws.expect("admitted")
    assert [p["peer_id"] for p in admitted["peers"]] == [doctor_ws.peer_id]
    joined_frame = await doctor_ws.expect("peer-joined")
    assert joined_frame["peer"]["peer_id"] == patient_ws.peer_id
    await patient_ws.send(type="media", peer_id=doctor_ws.peer_id, video=True)
    await patient_ws.send(type="ping", id="video")
    await patient_ws.expect("pong")
    return Call(doctor, consultation, doctor_ws, patient_http, joined, patient_ws)


async def relays(a: Peer, b: Peer, text: str = "bonjour") -> None:
    """A chat from ``a`` reaches both; an offer, an answer and a candidate go from one to the other."""
    await a.send(type="chat", text=text)
    for peer in (a, b):
        chat = await peer.expect("chat", timeout=10)
        assert chat["text"] == text and chat["from"] == a.peer_id
    await b.send(type="offer", to=a.peer_id, sdp="v=0 offer")
    assert (await a.expect("offer", timeout=10)) == {"type": "offer", "from": b.peer_id, "sdp": "v=0 offer"}
    await a.send(type="answer", to=b.peer_id, sdp="v=0 answer")
    assert (await b.expect("answer", timeout=10))["sdp"] == "v=0 answer"
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
    await b.send(type="candidate", to=a.peer_id, candidate=candidate)
    assert (await a.expect("candidate", timeout=10))["candidate"] == candidate


# --- the tests ------------------------------------------------------------------------------------------------


async def test_a_doctor_and_a_patient_on_two_nodes_exchange_every_frame(cluster_of: Any, browsers: Any) -> None:
    cluster = cluster_of(2)
    a, b = cluster.nodes
    call = await call_across(browsers, a, b)
    await relays(call.patient_ws, call.doctor_ws)
    await relays(call.doctor_ws, call.patient_ws, "et vous ?")

    form = aiohttp.FormData()
    form.add_field("file", b"\x89PNG\r\n\x1a\n" + bytes(300), filename="photo.png", content_type="image/png")
    uploaded = await call.patient_http.post(
        f"{b.url}/api/consultations/{call.consultation['id']}/documents",
        data=form,
        headers={"X-CSRF-Token": call.patient_join["csrf_token"]},
    )
    assert uploaded.status == 201, await uploaded.text()
    document = await uploaded.json()
    frame = await call.doctor_ws.expect("document", timeout=10)  # uploaded on B, the doctor is on A
    assert frame["document"]["id"] == document["id"] and frame["document"]["from"] == call.patient_ws.peer_id
    download = await call.doctor.http.get(f"{a.url}/api/documents/{document['id']}")
    assert download.status == 200 and (await download.read()).startswith(b"\x89PNG")

    await call.doctor_ws.send(type="end")
    for peer in (call.doctor_ws, call.patient_ws):
        ended = await peer.expect("ended", timeout=10)
        assert ended["consultation_id"] == call.consultation["id"]
    assert await cluster.billing_entries(call.consultation["id"]) == 1


def publishes(redis: RedisServer) -> int:
    """How many PUBLISH commands Redis has run."""
    client = Redis.from_url(redis.url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get("cmdstat_publish", {}).get("calls", 0))


def listeners(redis: RedisServer, *peer_ids: str) -> list[int]:
    """How many nodes listen on each peer's channel."""
    client = Redis.from_url(redis.url)
    try:
        counts = client.pubsub_numsub(*(f"peer:{p}" for p in peer_ids))
    finally:
        client.close()
    return [int(n) for _channel, n in counts]


async def test_peers_on_their_rooms_owner_relay_without_redis_a_split_room_through_it(
    cluster_of: Any, browsers: Any
) -> None:
    cluster = cluster_of(2)
    a, b = cluster.nodes
    here = await call_across(browsers, a, a)
    before = publishes(cluster.redis)
    for n in range(10):
        await relays(here.patient_ws, here.doctor_ws, f"message {n}")
        await relays(here.doctor_ws, here.patient_ws, f"réponse {n}")
    assert publishes(cluster.redis) == before  # 80 frames relayed (and 40 chats echoed), none through Redis
    assert listeners(cluster.redis, here.doctor_ws.peer_id, here.patient_ws.peer_id) == [0, 0]  # no channel held

    split = await call_across(browsers, a, b)
    before = publishes(cluster.redis)
    await relays(split.patient_ws, split.doctor_ws)
    assert publishes(cluster.redis) >= before + 4  # each frame crossed: to the owner, or to the peer's node
    # The doctor's socket is on the owner (A): no channel; the patient's, on B, listens on its own.
    assert listeners(cluster.redis, split.doctor_ws.peer_id, split.patient_ws.peer_id) == [0, 1]


async def test_three_nodes_one_room(cluster_of: Any, browsers: Any) -> None:
    cluster = cluster_of(3)
    a, b, c = cluster.nodes
    doctor = await log_in(browsers(), a)
    consultation = await doctor.consultation(a, nurse_name="Inès", nurse_email="ines@example.org")
    doctor_ws = await connect(doctor.http, b, ticket=await doctor.ticket(b, consultation["id"]))
    peers = []
    for node, link in ((a, consultation["patient_link"]), (c, consultation["nurse_link"])):
        http = browsers()
        peer = await connect(http, node, ticket=(await join(http, node, link))["ticket"])
        await peer.expect("waiting")
        lobby = await doctor_ws.expect("lobby", waiting=lambda w, p=peer: any(x["peer_id"] == p.peer_id for x in w))
        assert lobby
        await doctor_ws.send(type="admit", peer_id=peer.peer_id)
        await peer.expect("admitted", timeout=10)
        peers.append(peer)
    patient, nurse = peers
    await patient.send(type="chat", text="trois nœuds")
    for peer in (doctor_ws, patient, nurse):
        assert (await peer.expect("chat", timeout=10))["text"] == "trois nœuds"
    await nurse.send(type="offer", to=patient.peer_id, sdp="nurse offer")
    assert (await patient.expect("offer", timeout=10))["from"] == nurse.peer_id


async def test_a_doctors_newer_tab_on_another_node_replaces_the_older(cluster_of: Any, browsers: Any) -> None:
    cluster = cluster_of(2)
    a, b = cluster.nodes
    doctor = await log_in(browsers(), a)
    consultation = await doctor.consultation(a)
    first = await connect(doctor.http, a, ticket=await doctor.ticket(a, consultation["id"]))
    second = await connect(doctor.http, b, ticket=await doctor.ticket(b, consultation["id"]))
    removed = await first.expect("removed", timeout=10)
    assert removed["reason"] == "replaced"
    await first.closed(timeout=10)  # and its socket is closed
    assert second.welcome["state"] == "admitted" and second.peer_id != first.peer_id
    await second.send(type="ping", id="still-here")
    assert (await second.expect("pong", timeout=10))["ref"] == "still-here"


async def test_two_nodes_racing_to_end_write_one_billing_entry(cluster_of: Any, browsers: Any) -> None:
    cluster = cluster_of(2)
    a, b = cluster.nodes
    call = await call_across(browsers, a, b)
    cid = call.consultation["id"]
    ends = await asyncio.gather(call.doctor.end(a, cid), call.doctor.end(b, cid))
    assert [r.status for r in ends] == [200, 200], [await r.text() for r in ends]
    bodies = [await r.json() for r in ends]
    assert bodies[0] == bodies[1]
    for peer in (call.doctor_ws, call.patient_ws):
        await peer.expect("ended", timeout=10)
    assert await cluster.billing_entries(cid) == 1


async def test_kill_9_of_the_node_holding_the_room_its_clients_resume_on_the_other(
    cluster_of: Any, browsers: Any
) -> None:
    cluster = cluster_of(2)
    a, b = cluster.nodes
    call = await call_across(browsers, a, b)  # the doctor's hello on A claimed the room: A holds it
    a.kill()
    started = time.monotonic()
    doctor_ws = await connect(call.doctor.http, b, resume=call.doctor_ws.welcome["resume"])
    assert time.monotonic() - started < 10
    assert doctor_ws.peer_id == call.doctor_ws.peer_id and doctor_ws.welcome["state"] == "admitted"
    assert [p["peer_id"] for p in doctor_ws.welcome["peers"]] == [call.patient_ws.peer_id]
    await relays(call.patient_ws, doctor_ws, "toujours là")  # the patient never left B, and never noticed
    await doctor_ws.send(type="end")
    await call.patient_ws.expect("ended", timeout=10)
    assert await cluster.billing_entries(call.consultation["id"]) == 1


async def test_kill_9_of_a_node_holding_only_sockets_their_clients_resume_elsewhere(
    cluster_of: Any, browsers: Any
) -> None:
    cluster = cluster_of(2)
    a, b = cluster.nodes
    call = await call_across(browsers, a, b)  # A holds the room, B only the patient's socket
    b.kill()
    await asyncio.sleep(2.5)  # the owner's lease loop finds B gone: the patient's seat is held for its grace
    patient_ws = await connect(call.patient_http, a, resume=call.patient_ws.welcome["resume"])
    assert patient_ws.peer_id == call.patient_ws.peer_id and patient_ws.welcome["state"] == "admitted"
    await relays(patient_ws, call.doctor_ws, "me revoilà")
    await call.doctor_ws.send(type="end")
    await patient_ws.expect("ended", timeout=10)
    assert await cluster.billing_entries(call.consultation["id"]) == 1


async def test_a_resume_the_rooms_owner_cannot_apply_leaves_its_token_usable(cluster_of: Any, browsers: Any) -> None:
    cluster = cluster_of(2)
    a, b = cluster.nodes
    call = await call_across(browsers, a, b)  # A owns the room
    token = call.patient_ws.welcome["resume"]
    await call.patient_ws.ws.close()
    assert a.process is not None
    a.process.send_signal(signal.SIGSTOP)  # alive (its channel heard) but not answering
    try:
        ws = await call.patient_http.ws_connect(f"{b.url}/ws")
        await ws.send_str(json.dumps({"type": "hello", "v": 1, "resume": token}))
        error = json.loads((await ws.receive(timeout=30)).data)
        assert error["type"] == "error" and error["code"] == "unavailable", error  # B spent the token, then this
        await ws.close()
    finally:
        a.process.send_signal(signal.SIGCONT)
    back = await connect(call.patient_http, b, resume=token)  # the token was given back: not refused
    assert back.peer_id == call.patient_ws.peer_id and back.welcome["state"] == "admitted"
    await relays(back, call.doctor_ws)


async def test_a_node_stopped_gracefully_hands_its_rooms_over_quietly(cluster_of: Any, browsers: Any) -> None:
    cluster = cluster_of(2)
    a, b = cluster.nodes
    call = await call_across(browsers, a, b)  # A owns the room; the patient's socket is on B
    a.stop()  # SIGTERM: a rolling restart
    reconnect = await call.doctor_ws.expect("reconnect", timeout=10)  # the doctor's socket was on A
    doctor = await connect(call.doctor.http, b, resume=call.doctor_ws.welcome["resume"])
    assert doctor.peer_id == call.doctor_ws.peer_id and reconnect["after_ms"] >= 0
    # The patient's socket on B never closed and heard nothing of the move: no reconnect, no one leaving.
    await call.patient_ws.send(type="ping", id="moved")
    assert (await call.patient_ws.recv(timeout=10)) == {"type": "pong", "ref": "moved"}
    await relays(call.patient_ws, doctor)
    await relays(doctor, call.patient_ws, "toujours là")
    assert not call.patient_ws.ws.closed


async def test_redis_stopped_under_a_live_call_then_back(cluster_of: Any, browsers: Any) -> None:
    cluster = cluster_of(2)
    a, b = cluster.nodes
    call = await call_across(browsers, a, b)
    http = browsers()

    async def health(node: Node) -> int:
        return (await http.get(f"{node.url}/healthz")).status

    cluster.redis.stop()
    for node in (a, b):
        await _until(lambda n=node: _is(health(n), 503))
    started = time.monotonic()
    await call.patient_ws.send(type="chat", text="personne ?", id="c1")
    error = await call.patient_ws.expect("error", timeout=10)
    assert error["code"] == "unavailable" and error["ref"] == "c1" and time.monotonic() - started < 5
    cluster.redis.start()
    for node in (a, b):
        await _until(lambda n=node: _is(health(n), 200))
    await relays(call.patient_ws, call.doctor_ws, "de retour")


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _until(check: Any, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.1)


# --- serve --workers N ----------------------------------------------------------------------------------------


def test_workers_without_redis_refuse_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "teleconsult",
            "--data-dir",
            str(tmp_path),
            "serve",
            "--port",
            str(free_port()),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2 and "--workers 2 needs redis_url (TELECONSULT_REDIS_URL)" in done.stderr


async def test_workers_share_one_port_and_its_rooms(cluster_of: Any, browsers: Any, tmp_path: Path) -> None:
    cluster = cluster_of(1)  # the database, Redis and a doctor; then one port served by two workers
    (single,) = cluster.nodes
    single.stop()
    port = free_port()
    log = tmp_path / "workers.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "teleconsult",
            "--data-dir",
            str(single.data_dir),
            "--database-url",
            cluster.database_url,
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=_env(cluster.redis.url),
    )
    try:
        deadline = time.monotonic() + 30
        while log.read_bytes().count(b"running") < 2:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.05)
        workers = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(workers) == 2
        node = Node("w", single.data_dir, cluster.database_url, cluster.redis.url, port=port)
        for hinted in (False, False, False, True, True, True, True):
            # Whichever worker each socket reaches, the room is one; sockets that name their room reach one worker,
            # so their frames never go through Redis.
            call = await call_across(browsers, node, node, hinted=hinted)
            before = publishes(cluster.redis)
            await relays(call.patient_ws, call.doctor_ws)
            await relays(call.doctor_ws, call.patient_ws)
            if hinted:
                assert publishes(cluster.redis) == before
            await call.doctor_ws.send(type="end")
            await call.patient_ws.expect("ended", timeout=10)
        # A connection that never finishes its request line holds nobody else up, and is served in the end.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /hea")
        await writer.drain()
        async with browsers().get(f"{node.url}/healthz") as health:
            assert health.status == 200
        writer.write(b"lthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0, log.read_text()
