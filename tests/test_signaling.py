"""Signaling in full: resume and grace, the waiting room both ways, readiness, roles and seats, limits."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from aiohttp import WSMsgType, WSServerHandshakeError

from teleconsult.api.connection import WsConnection
from teleconsult.api.keys import SIGNALING
from tests.helpers import (
    Peer,
    admitted_call,
    connect,
    create_consultation,
    doctor_in_room,
    doctor_ticket,
    drop,
    join,
    login,
)


async def nothing_arrives(peer: Peer, within: float = 0.3) -> None:
    with pytest.raises(asyncio.TimeoutError):
        frame = await peer.recv(timeout=within)
        pytest.fail(f"unexpected frame {frame}")


# --- resume ------------------------------------------------------------------------------------------------------


async def test_resume_within_grace_keeps_the_peer_and_delivers_what_it_missed(clients: Any) -> None:
    call = await admitted_call(clients)
    token = call.patient.welcome["resume"]
    await drop(call.patient)
    await asyncio.sleep(0.1)
    for n in range(3):
        await call.doctor.send(type="chat", text=f"message {n}")
    await call.doctor.send(type="candidate", to=call.patient.peer_id, candidate=None)  # the room still has it
    resumed = await connect(call.patient_http, resume=token)
    assert resumed.peer_id == call.patient.peer_id and resumed.welcome["state"] == "admitted"
    assert resumed.welcome["resume"] != token  # rotated
    assert [p["role"] for p in resumed.welcome["peers"]] == ["doctor"]
    texts = [(await resumed.expect("chat"))["text"] for _ in range(3)]
    assert texts == ["message 0", "message 1", "message 2"]
    assert (await resumed.expect("candidate"))["from"] == call.doctor.peer_id
    seen = []
    await call.doctor.send(type="ping", id="p")
    while (frame := await call.doctor.recv())["type"] != "pong":
        seen.append(frame["type"])
    assert "peer-left" not in seen and "peer-joined" not in seen


async def test_a_used_resume_token_is_refused(clients: Any) -> None:
    call = await admitted_call(clients)
    token = call.patient.welcome["resume"]
    await drop(call.patient)
    await connect(call.patient_http, resume=token)
    ws = await call.patient_http.ws_connect("/ws")
    await ws.send_str(json.dumps({"type": "hello", "v": 1, "resume": token}))
    assert json.loads((await ws.receive(timeout=5)).data)["code"] == "unauthorized"


async def test_one_resume_token_raced_on_two_sockets_resumes_one(clients: Any) -> None:
    call = await admitted_call(clients)
    token = call.patient.welcome["resume"]
    await drop(call.patient)
    sockets = [await call.patient_http.ws_connect("/ws") for _ in range(2)]
    hello = json.dumps({"type": "hello", "v": 1, "resume": token})
    await asyncio.gather(*(ws.send_str(hello) for ws in sockets))
    answers = [json.loads((await ws.receive(timeout=5)).data) for ws in sockets]
    assert sorted(a["type"] for a in answers) == ["error", "welcome"]
    assert next(a for a in answers if a["type"] == "error")["code"] == "unauthorized"


async def test_after_the_grace_period_the_peer_has_left(server_with: Any) -> None:
    _, clients = await server_with(resume_grace_s=0.4)
    call = await admitted_call(clients)
    token = call.patient.welcome["resume"]
    await drop(call.patient)
    left = await call.doctor.expect("peer-left", timeout=5)
    assert left["peer_id"] == call.patient.peer_id
    ws = await call.patient_http.ws_connect("/ws")
    await ws.send_str(json.dumps({"type": "hello", "v": 1, "resume": token}))
    assert json.loads((await ws.receive(timeout=5)).data)["code"] == "unauthorized"
    again = await join(call.patient_http, call.consultation["patient_link"])
    back = await connect(call.patient_http, again["ticket"])
    assert back.welcome["state"] == "waiting"  # only a resume token keeps an admission: the doctor admits again
    lobby = await call.doctor.expect("lobby", waiting=bool)
    assert lobby["waiting"][0]["peer_id"] == back.peer_id and "second_device" not in lobby["waiting"][0]


async def test_a_waiting_patient_resumes_into_the_waiting_room(clients: Any) -> None:
    _doctor_http, _csrf, consultation, doctor = await doctor_in_room(clients)
    patient_http = await clients()
    patient = await connect(patient_http, (await join(patient_http, consultation["patient_link"]))["ticket"])
    await doctor.expect("lobby", waiting=bool)
    await drop(patient)
    resumed = await connect(patient_http, resume=patient.welcome["resume"])
    assert resumed.welcome["state"] == "waiting" and resumed.peer_id == patient.peer_id
    await resumed.expect("waiting")
    await doctor.send(type="admit", peer_id=patient.peer_id)
    await resumed.expect("admitted")


# --- the waiting room, both ways -----------------------------------------------------------------------------------


async def test_the_doctor_sends_a_patient_back_to_the_waiting_room(clients: Any) -> None:
    call = await admitted_call(clients)
    await call.doctor.send(type="return-to-lobby", peer_id=call.patient.peer_id)
    await call.patient.expect("waiting")
    assert (await call.doctor.expect("peer-left"))["peer_id"] == call.patient.peer_id
    lobby = await call.doctor.expect("lobby", waiting=bool)
    assert lobby["waiting"][0]["peer_id"] == call.patient.peer_id
    await call.patient.send(type="chat", text="still there?")
    assert (await call.patient.expect("error"))["code"] == "forbidden"
    await call.doctor.send(type="return-to-lobby", peer_id=call.patient.peer_id, id="twice")
    assert (await call.doctor.expect("error"))["ref"] == "twice"
    await call.patient.send(type="return-to-lobby", peer_id=call.doctor.peer_id, id="p")
    assert (await call.patient.expect("error"))["code"] == "forbidden"
    await call.doctor.send(type="admit", peer_id=call.patient.peer_id)
    await call.patient.expect("admitted")
    detail = await (await call.doctor_http.get(f"/api/consultations/{call.consultation['id']}")).json()
    assert next(p for p in detail["participants"] if p["role"] == "patient")["admitted_at"]


async def test_ready_checks_reach_the_doctors_lobby(clients: Any) -> None:
    _doctor_http, _csrf, consultation, doctor = await doctor_in_room(clients)
    patient_http = await clients()
    patient = await connect(patient_http, (await join(patient_http, consultation["patient_link"]))["ticket"])
    await doctor.expect("lobby", waiting=bool)
    checks = {"camera": True, "microphone": True, "network": "good", "rtt_ms": 42}
    await patient.send(type="ready", checks=checks)
    lobby = await doctor.expect("lobby", waiting=lambda w: bool(w) and "ready" in w[0])
    assert lobby["waiting"][0]["ready"] == checks
    await patient.send(type="ready", checks={f"k{i}": i for i in range(17)}, id="big")
    assert (await patient.expect("error"))["code"] == "bad_message"


async def test_polite_flags_are_consistent_between_every_pair(clients: Any) -> None:
    doctor_http, patient_http, nurse_http = await clients(), await clients(), await clients()
    csrf = await login(doctor_http)
    consultation = await create_consultation(
        doctor_http, csrf, nurse_name="Inès Robert", nurse_email="ines@example.org", nurse_pre_admitted=True
    )
    doctor = await connect(doctor_http, await doctor_ticket(doctor_http, csrf, consultation["id"]))
    nurse = await connect(nurse_http, (await join(nurse_http, consultation["nurse_link"], consent=False))["ticket"])
    assert nurse.welcome["state"] == "admitted" and nurse.welcome["role"] == "nurse"  # pre-admitted
    assert nurse.welcome["peers"] == [
        {"peer_id": doctor.peer_id, "role": "doctor", "name": "Dr Alice Martin", "polite": False}
    ]
    joined = await doctor.expect("peer-joined")
    assert joined["peer"]["peer_id"] == nurse.peer_id and joined["peer"]["polite"] is True
    patient = await connect(patient_http, (await join(patient_http, consultation["patient_link"]))["ticket"])
    await doctor.send(type="admit", peer_id=patient.peer_id)
    admitted = await patient.expect("admitted")
    towards = {p["role"]: p["polite"] for p in admitted["peers"]}
    from_nurse = (await nurse.expect("peer-joined"))["peer"]["polite"]
    assert towards["doctor"] is False and towards["nurse"] is (not from_nurse)


# --- roles and seats ----------------------------------------------------------------------------------------------


async def test_guest_seats_and_room_full(server_with: Any) -> None:
    _, clients = await server_with(guest_seats=1)
    doctor_http, guest_http = await clients(), await clients()
    csrf = await login(doctor_http)
    too_many = await doctor_http.post(
        "/api/consultations",
        headers={"X-CSRF-Token": csrf},
        json={
            "patient_name": "J",
            "patient_email": "j@example.org",
            "guests": [{"name": "A", "email": "a@example.org"}, {"name": "B", "email": "b@example.org"}],
        },
    )
    assert too_many.status == 400
    consultation = await create_consultation(
        doctor_http, csrf, guests=[{"name": "Marc (interprète)", "email": "marc@example.org"}]
    )
    (link,) = consultation["guest_links"]
    guest = await connect(guest_http, (await join(guest_http, link, consent=False))["ticket"])
    assert guest.welcome["role"] == "guest" and guest.welcome["state"] == "waiting"
    doctor = await connect(doctor_http, await doctor_ticket(doctor_http, csrf, consultation["id"]))
    lobby = await doctor.expect("lobby", waiting=bool)
    assert lobby["waiting"][0]["role"] == "guest"


async def test_room_full_over_the_wire(server_with: Any) -> None:
    live, clients = await server_with()
    from teleconsult.api.keys import SIGNALING

    _doctor_http, _csrf, consultation, doctor = await doctor_in_room(clients)
    session = live.app[SIGNALING].session(doctor.peer_id)
    assert session is not None
    session.room.capacity = type(session.room.capacity)(patient=0)  # a room configured with no patient seat
    patient_http = await clients()
    ws = await patient_http.ws_connect("/ws")
    ticket = (await join(patient_http, consultation["patient_link"]))["ticket"]
    await ws.send_str(json.dumps({"type": "hello", "v": 1, "ticket": ticket, "id": "h"}))
    assert json.loads((await ws.receive(timeout=5)).data) | {"message": ""} == {
        "type": "error",
        "code": "room_full",
        "message": "",
        "ref": "h",
    }


# --- limits ---------------------------------------------------------------------------------------------------------


async def test_flooding_is_rate_limited_then_closed(server_with: Any) -> None:
    _, clients = await server_with(rate_per_s=20, rate_burst=10, rate_sustained_s=0.5)
    call = await admitted_call(clients)
    for _ in range(15):  # a burst: 10 pass, 5 are dropped (under the 10 refusals that make a flood)
        await call.patient.send(type="ping")
    codes = []
    while (frame := await call.patient.recv())["type"] != "error":
        codes.append(frame["type"])
    assert frame["code"] == "rate_limited" and codes.count("pong") <= 11
    await asyncio.sleep(0.6)
    await call.patient.send(type="ping", id="calm")
    assert (await call.patient.expect("pong"))["ref"] == "calm"  # the burst was forgiven
    for _ in range(200):
        if call.patient.ws.closed:
            break
        await call.patient.send(type="ping")
        await asyncio.sleep(0.005)
    assert await call.patient.closed() == 4429


async def test_a_normal_pace_is_never_limited(server_with: Any) -> None:
    _, clients = await server_with(rate_per_s=50, rate_burst=20)
    call = await admitted_call(clients)
    for n in range(60):
        await call.patient.send(type="ping", id=str(n))
        assert (await call.patient.expect("pong"))["ref"] == str(n)
        await asyncio.sleep(0.025)


async def test_too_many_sockets_before_hello_from_one_address(server_with: Any) -> None:
    _, clients = await server_with(max_pending_per_ip=3, hello_timeout_s=5)
    client = await clients()
    idle = [await client.ws_connect("/ws") for _ in range(3)]
    with pytest.raises(WSServerHandshakeError) as info:
        await client.ws_connect("/ws")
    assert info.value.status == 429
    await idle[0].close()
    await asyncio.sleep(0.1)
    extra = await client.ws_connect("/ws")  # a place was freed
    await extra.close()
    for ws in idle[1:]:
        await ws.close()


async def test_a_dead_connection_is_noticed_by_heartbeat(server_with: Any) -> None:
    _, clients = await server_with(heartbeat_s=0.3, resume_grace_s=0.2)
    _doctor_http, _csrf, consultation, doctor = await doctor_in_room(clients)
    patient_http = await clients()
    silent = await patient_http.ws_connect("/ws", autoping=False)
    joined = await join(patient_http, consultation["patient_link"])
    await silent.send_str(json.dumps({"type": "hello", "v": 1, "ticket": joined["ticket"]}))
    silent_id = json.loads((await silent.receive(timeout=5)).data)["peer_id"]
    await doctor.expect("lobby", waiting=bool)
    await doctor.send(type="admit", peer_id=silent_id)
    await doctor.expect("peer-joined")
    # The client answers no ping: the server closes it, and after the grace period the room is told.
    left = await doctor.expect("peer-left", timeout=5)
    assert left["peer_id"] == silent_id


async def test_quiet_clients_that_answer_pings_are_kept(server_with: Any) -> None:
    live, clients = await server_with(heartbeat_s=0.2, resume_grace_s=0.2)
    call = await admitted_call(clients)
    # Both keep reading (an aiohttp client answers pings as it reads; a browser always does) and say nothing.
    doctor_hears = asyncio.create_task(call.doctor.expect("chat", timeout=10))
    patient_hears = asyncio.create_task(call.patient.expect("chat", timeout=10))
    raw = await (await clients()).ws_connect("/ws", autoping=False)
    ping = await raw.receive(timeout=1)
    assert ping.type is WSMsgType.PING  # the server asks a quiet socket; this one never answers, and is cut
    assert (await raw.receive(timeout=2)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)
    await asyncio.sleep(1.5)  # fifteen ticks without a frame from the doctor or the patient
    assert len(live.app[SIGNALING].peer_ids()) == 2  # neither was dropped
    await call.patient.send(type="chat", text="still here")
    assert (await doctor_hears)["text"] == (await patient_hears)["text"] == "still here"


async def test_a_clients_ping_gets_a_pong(clients: Any) -> None:
    client = await clients()
    ws = await client.ws_connect("/ws", autoping=False)
    await ws.ping(b"are you there")
    pong = await ws.receive(timeout=5)
    assert (pong.type, pong.data) == (WSMsgType.PONG, b"are you there")
    await ws.send_str(json.dumps({"type": "hello", "v": 1, "ticket": "not-a-ticket"}))
    error = json.loads((await ws.receive(timeout=5)).data)
    assert error["code"] == "unauthorized"  # the ping did not stand in for the hello


FRAMES = 150


async def test_a_client_that_reads_late_gets_every_frame_in_order(server_with: Any) -> None:
    live, clients = await server_with(send_queue_frames=FRAMES, rate_per_s=10_000, rate_burst=10_000)
    call = await admitted_call(clients)
    transport = call.patient.ws._response.connection.transport  # type: ignore[union-attr]
    # A small receive buffer, so that what follows is more than the socket buffers hold: the server must queue.
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    transport.pause_reading()
    big = "x" * 59_000  # with its number, within the protocol's 60,000 characters of SDP
    for n in range(FRAMES):  # 9 MB, twice what loopback buffers hold for a reader that reads nothing
        await call.doctor.send(type="offer", to=call.patient.peer_id, sdp=f"{n:03d}{big}")
    await call.doctor.send(type="ping", id="sync")
    await call.doctor.expect("pong")  # every offer has been handled by the server
    session = live.app[SIGNALING].session(call.patient.peer_id)
    assert session is not None and isinstance(session.conn, WsConnection)
    assert session.conn.queued > 0, "the socket buffers took everything: the back-pressure path was not exercised"
    transport.resume_reading()
    received = [int((await call.patient.expect("offer", timeout=10))["sdp"][:3]) for _ in range(FRAMES)]
    assert received == list(range(FRAMES))
    assert session.conn.queued == 0
    await call.patient.send(type="chat", text="caught up")
    assert (await call.doctor.expect("chat"))["text"] == "caught up"


async def test_a_client_that_stops_reading_is_dropped_and_its_neighbours_stay_fast(server_with: Any) -> None:
    _, clients = await server_with(send_queue_frames=64, rate_per_s=10_000, rate_burst=10_000)
    stalled = await admitted_call(clients)
    neighbour = await admitted_call(clients)
    transport = stalled.patient.ws._response.connection.transport  # type: ignore[union-attr]
    transport.pause_reading()  # the patient's app freezes: it reads nothing more
    big = "x" * 60_000
    loop = asyncio.get_running_loop()
    for n in range(200):
        await stalled.doctor.send(type="offer", to=stalled.patient.peer_id, sdp=big)
        if n % 20 == 0:
            start = loop.time()
            await neighbour.doctor.send(type="ping", id=str(n))
            await neighbour.doctor.expect("pong")
            assert loop.time() - start < 0.5  # generous: a stall would be seconds
    await neighbour.patient.send(type="chat", text="all good")
    assert (await neighbour.doctor.expect("chat"))["text"] == "all good"
    transport.resume_reading()
    while True:
        msg = await stalled.patient.ws.receive(timeout=10)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
            break
