"""Test helpers speaking the HTTP API and protocol v1 as a client would."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient

from tests.conftest import DOCTOR_EMAIL, DOCTOR_PASSWORD

Client = TestClient[Any, Any]


async def login(client: Client, email: str = DOCTOR_EMAIL, password: str = DOCTOR_PASSWORD) -> str:
    """Log in; returns the CSRF token to send with later unsafe requests."""
    response = await client.post("/api/login", json={"email": email, "password": password})
    assert response.status == 200, await response.text()
    return str((await response.json())["csrf_token"])


async def create_consultation(client: Client, csrf: str, **body: Any) -> dict[str, Any]:
    payload = {"patient_name": "Jeanne Dupont", "patient_email": "jeanne@example.org"} | body
    response = await client.post("/api/consultations", json=payload, headers={"X-CSRF-Token": csrf})
    assert response.status == 201, await response.text()
    return dict(await response.json())


def token_of(link: str) -> str:
    return link.rsplit("/j/", 1)[1]


async def join(client: Client, link: str, consent: bool = True) -> dict[str, Any]:
    response = await client.post("/api/join", json={"token": token_of(link), "consent": consent})
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def doctor_ticket(client: Client, csrf: str, consultation_id: str) -> str:
    response = await client.post(f"/api/consultations/{consultation_id}/ticket", headers={"X-CSRF-Token": csrf})
    assert response.status == 200, await response.text()
    return str((await response.json())["ticket"])


@dataclass
class Peer:
    """A protocol v1 client over a real WebSocket."""

    ws: ClientWebSocketResponse
    welcome: dict[str, Any]

    @property
    def peer_id(self) -> str:
        return str(self.welcome["peer_id"])

    async def send(self, **frame: Any) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == WSMsgType.TEXT, f"expected a text frame, got {msg.type} {msg.data!r}"
        return dict(json.loads(msg.data))

    async def expect(self, kind: str, timeout: float = 5.0, **where: Any) -> dict[str, Any]:
        """Read frames until one of ``kind`` arrives (other frames, such as lobby updates, may come first).

        ``where`` names a predicate per field: ``waiting=bool`` waits for a lobby with someone in it. An ``error``
        frame on the way fails the test (unless an error is what is expected): a refusal is never skipped over.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"no {kind!r} frame in time"
            frame = await self.recv(left)
            if frame["type"] == "error" and kind != "error":
                raise AssertionError(f"an error frame came while waiting for {kind!r}: {frame}")
            if frame["type"] == kind and all(test(frame.get(key)) for key, test in where.items()):
                return frame

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Drain until the server closes; returns the close code."""
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                return self.ws.close_code


async def drop(peer: Peer) -> None:
    """The network goes away: close the socket without a goodbye."""
    await peer.ws.close()


async def connect(client: Client, ticket: str | None = None, *, resume: str | None = None) -> Peer:
    """Open a socket and say hello with a ticket, or resume with a resume token."""
    ws = await client.ws_connect("/ws")
    hello = {"type": "hello", "v": 1} | ({"resume": resume} if resume else {"ticket": ticket})
    await ws.send_str(json.dumps(hello))
    msg = await ws.receive(timeout=5)
    assert msg.type == WSMsgType.TEXT, msg
    welcome = json.loads(msg.data)
    assert welcome["type"] == "welcome", welcome
    return Peer(ws, welcome)


@dataclass
class Call:
    doctor_http: Client
    patient_http: Client
    csrf: str
    consultation: dict[str, Any]
    doctor: Peer
    patient: Peer


async def doctor_in_room(clients: Any, **consultation: Any) -> tuple[Client, str, dict[str, Any], Peer]:
    """A doctor logged in, with a new consultation (``consultation`` fields as the API takes them), connected to its
    room: ``(http client, csrf token, the consultation as created, the doctor's socket)``."""
    doctor_http = await clients()
    csrf = await login(doctor_http)
    created = await create_consultation(doctor_http, csrf, **consultation)
    doctor = await connect(doctor_http, await doctor_ticket(doctor_http, csrf, created["id"]))
    return doctor_http, csrf, created, doctor


async def video_flowing(doctor: Peer, patient: Peer) -> None:
    """The patient's client reports the doctor's video decoded (what billing needs), and the server has taken it
    (frames of one socket are handled in order: the pong comes after)."""
    await patient.send(type="media", peer_id=doctor.peer_id, video=True)
    await patient.send(type="ping", id="video")
    await patient.expect("pong")


async def admitted_call(clients: Any, *, video: bool = True) -> Call:
    """Doctor logged in and connected, patient joined and admitted (and, unless ``video`` is False, video
    reported flowing between them)."""
    doctor_http, csrf, consultation, doctor = await doctor_in_room(clients)
    patient_http = await clients()
    joined = await join(patient_http, consultation["patient_link"])
    patient = await connect(patient_http, joined["ticket"])
    await patient.expect("waiting")
    lobby = await doctor.expect("lobby", waiting=bool)
    await doctor.send(type="admit", peer_id=lobby["waiting"][0]["peer_id"])
    await patient.expect("admitted")
    await doctor.expect("peer-joined")
    if video:
        await video_flowing(doctor, patient)
    return Call(doctor_http, patient_http, csrf, consultation, doctor, patient)


@dataclass(frozen=True)
class Appointment:
    """A Paris wall-clock time some days ahead (tests never hard-code a date that will one day be past)."""

    when: datetime

    @property
    def iso(self) -> str:
        return self.when.isoformat()

    @property
    def utc_z(self) -> str:
        return self.when.astimezone(UTC).isoformat().replace("+00:00", "Z")

    @property
    def paris_fr(self) -> str:
        return self.when.strftime("%d/%m/%Y à %H:%M")


def upcoming(days: int = 30, hour: int = 10, minute: int = 30) -> Appointment:
    day = (datetime.now(UTC) + timedelta(days=days)).date()
    return Appointment(datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo("Europe/Paris")))
