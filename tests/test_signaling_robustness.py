"""Signaling under stress: a graceful restart, racing actions, and arbitrary frames from a hostile client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar, WSMsgType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from teleconsult.api.keys import SIGNALING
from teleconsult.errors import ErrorCode
from tests.conftest import free_port, make_settings, start_server
from tests.helpers import Peer, admitted_call, token_of

# --- SIGTERM with live rooms -------------------------------------------------------------------------------------


def start(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "teleconsult", "--data-dir", str(data_dir), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "running" in process.stdout.readline():
            return process
    process.kill()
    raise AssertionError("the server did not start")


async def hello(session: ClientSession, url: str, **frame: Any) -> tuple[Any, dict[str, Any]]:
    ws = await session.ws_connect(f"{url}/ws")
    await ws.send_json({"type": "hello", "v": 1} | frame)
    return ws, await ws.receive_json(timeout=5)


async def read_until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        frame = await ws.receive_json(timeout=5)
        if frame["type"] == kind:
            return dict(frame)


async def test_sigterm_tells_clients_to_reconnect_and_they_resume_after_restart(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "teleconsult",
            "--data-dir",
            str(tmp_path),
            "create-doctor",
            "--email",
            "dr@example.org",
            "--name",
            "Dr A",
            "--rpps",
            "12345678901",
            "--password",
            "a long password",
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=60,
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start(tmp_path, port)
    doctor = ClientSession(cookie_jar=CookieJar(unsafe=True))
    patient = ClientSession(cookie_jar=CookieJar(unsafe=True))
    try:
        login = await (
            await doctor.post(f"{url}/api/login", json={"email": "dr@example.org", "password": "a long password"})
        ).json()
        headers = {"X-CSRF-Token": login["csrf_token"]}
        created = await (
            await doctor.post(
                f"{url}/api/consultations",
                headers=headers,
                json={"patient_name": "Jeanne", "patient_email": "jeanne@example.org"},
            )
        ).json()
        ticket = (await (await doctor.post(f"{url}/api/consultations/{created['id']}/ticket", headers=headers)).json())[
            "ticket"
        ]
        doctor_ws, doctor_welcome = await hello(doctor, url, ticket=ticket)
        joined = await (
            await patient.post(f"{url}/api/join", json={"token": token_of(created["patient_link"]), "consent": True})
        ).json()
        patient_ws, patient_welcome = await hello(patient, url, ticket=joined["ticket"])
        await doctor_ws.send_json({"type": "admit", "peer_id": patient_welcome["peer_id"]})
        await read_until(patient_ws, "admitted")

        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        for ws in (doctor_ws, patient_ws):
            reconnect = await read_until(ws, "reconnect")
            assert reconnect["after_ms"] > 0
            assert (await ws.receive(timeout=10)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
            assert ws.close_code == 1012
        assert server.wait(timeout=15) == 0
        assert time.monotonic() - started < 10

        server = start(tmp_path, port)
        doctor_ws, doctor_back = await hello(doctor, url, resume=doctor_welcome["resume"])
        patient_ws, patient_back = await hello(patient, url, resume=patient_welcome["resume"])
        assert (doctor_back["peer_id"], patient_back["peer_id"]) == (
            doctor_welcome["peer_id"],
            patient_welcome["peer_id"],
        )
        assert patient_back["state"] == "admitted"
        await patient_ws.send_json({"type": "chat", "text": "toujours là"})
        assert (await read_until(doctor_ws, "chat"))["text"] == "toujours là"
        detail = await (await doctor.get(f"{url}/api/consultations/{created['id']}")).json()
        assert detail["status"] == "in_progress"
    finally:
        await doctor.close()
        await patient.close()
        server.terminate()
        server.wait(timeout=15)


# --- races ------------------------------------------------------------------------------------------------------


async def test_racing_actions_leave_the_room_consistent(server_with: Any) -> None:
    live, clients = await server_with(rate_per_s=10_000, rate_burst=10_000)
    for round_ in range(8):
        call = await admitted_call(clients)
        signaling = live.app[SIGNALING]
        patient_id = call.patient.peer_id
        actions = [
            call.doctor.send(type="remove", peer_id=patient_id),
            call.doctor.send(type="return-to-lobby", peer_id=patient_id),
            call.patient.send(type="leave"),
            call.doctor.send(type="admit", peer_id=patient_id),
            call.doctor.send(type="deny", peer_id=patient_id),
            call.patient.ws.close(),
        ]
        if round_ % 2:
            actions.append(call.doctor.send(type="end"))
        await asyncio.gather(*actions, return_exceptions=True)
        await asyncio.sleep(0.3)
        doctor_session = signaling.session(call.doctor.peer_id)
        patient_session = signaling.session(patient_id)
        if round_ % 2:
            assert doctor_session is None and patient_session is None  # ended: nobody is left behind
            detail = await (await call.doctor_http.get(f"/api/consultations/{call.consultation['id']}")).json()
            assert detail["status"] == "ended" and detail["billing"] is not None
            continue
        assert doctor_session is not None
        room = doctor_session.room
        in_room = {p.peer_id for p in room}
        # Whatever won, a session exists exactly for the peers in the room, and the patient is in it at most once.
        assert all(signaling.session(pid) is not None for pid in in_room)
        assert patient_session is None or patient_id in in_room
        assert sum(1 for p in room if p.role.value == "patient") <= 1


# --- hostile frames -----------------------------------------------------------------------------------------------


class Background:
    """A server and two admitted rooms living on their own loop, so hypothesis can drive them synchronously."""

    def __init__(self, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.tmp_path = tmp_path

    def run(self, coroutine: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def setup(self) -> None:
        self.live = await start_server(make_settings(self.tmp_path, rate_per_s=1e6, rate_burst=1e6))
        self.sessions: list[ClientSession] = []

        async def client() -> Any:
            session = ClientSession(base_url=self.live.url, cookie_jar=CookieJar(unsafe=True))
            self.sessions.append(session)
            return session

        self.victim = await admitted_call(client)
        self.bystander = await admitted_call(client)
        for call in (self.victim, self.bystander):  # start from quiet sockets: set-up frames are not the test's
            for peer in (call.doctor, call.patient):
                await drain(peer, "setup")

    async def teardown(self) -> None:
        for session in self.sessions:
            await session.close()
        await self.live.server.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def background(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    world = Background(tmp_path_factory.mktemp("fuzz"))
    world.run(world.setup())
    yield world
    world.run(world.teardown())
    world.stop()


async def drain(peer: Peer, ref: str) -> list[dict[str, Any]]:
    await peer.send(type="ping", id=ref)
    frames = []
    while (frame := await peer.recv(timeout=10))["type"] != "pong" or frame.get("ref") != ref:
        frames.append(frame)
    return frames


KNOWN_CODES = {code.value for code in ErrorCode}
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
frame_types = st.sampled_from(
    [
        "offer",
        "answer",
        "candidate",
        "chat",
        "admit",
        "deny",
        "remove",
        "ready",
        "return-to-lobby",
        "hello",
        "ping",
        "nope",
        "",
    ]
)
frames = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda kind, body: json.dumps({"type": kind, **body}),
        frame_types,
        st.dictionaries(
            st.sampled_from(["to", "sdp", "text", "peer_id", "candidate", "checks", "v", "id"]), json_value, max_size=4
        ),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(frames, min_size=1, max_size=5))
def test_arbitrary_frames_never_crash_or_cross_rooms(background: Background, batch: list[str]) -> None:
    async def exercise() -> None:
        attacker = background.victim.patient
        for raw in batch:
            await attacker.ws.send_str(raw)
        for frame in await drain(attacker, "fuzz"):
            assert isinstance(frame, dict) and isinstance(frame.get("type"), str)
            if frame["type"] == "error":
                assert frame["code"] in KNOWN_CODES and frame["code"] != "internal"
                assert isinstance(frame["message"], str)
        await drain(background.victim.doctor, "fuzz-d")
        bystanders = await drain(background.bystander.doctor, "b") + await drain(background.bystander.patient, "b")
        assert bystanders == []

    background.run(exercise())
