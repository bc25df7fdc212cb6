"""Every protocol error code the server uses, over a real WebSocket; the server stays up after each."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from aiohttp import WSMsgType

from teleconsult.signaling import SignalingService
from tests.conftest import Running
from tests.helpers import admitted_call, connect, create_consultation, doctor_in_room, doctor_ticket, drop, join, login


async def hello_error(client: Any, frame: object) -> tuple[dict[str, Any], Any]:
    ws = await client.ws_connect("/ws")
    await ws.send_str(frame if isinstance(frame, str) else json.dumps(frame))
    reply = json.loads((await ws.receive(timeout=5)).data)
    assert reply["type"] == "error"
    return reply, ws


async def test_hello_needs_a_valid_ticket(clients: Any) -> None:
    client = await clients()
    for frame in (
        {"type": "hello", "v": 1},
        {"type": "hello", "v": 1, "ticket": "forged-" + "x" * 36},
        {"type": "hello", "v": 1, "resume": "r" * 43},
        {"type": "ping"},
    ):
        reply, ws = await hello_error(client, frame)
        assert reply["code"] == "unauthorized"
        msg = await ws.receive(timeout=5)
        assert msg.type == WSMsgType.CLOSE and ws.close_code == 4401


async def test_a_ticket_is_single_use(clients: Any) -> None:
    client = await clients()
    csrf = await login(client)
    consultation = await create_consultation(client, csrf)
    ticket = await doctor_ticket(client, csrf, consultation["id"])
    await connect(client, ticket)
    reply, _ = await hello_error(client, {"type": "hello", "v": 1, "ticket": ticket, "id": "again"})
    assert reply == {"type": "error", "code": "unauthorized", "message": reply["message"], "ref": "again"}


async def test_errors_before_hello_keep_the_socket_open(clients: Any) -> None:
    client = await clients()
    csrf = await login(client)
    consultation = await create_consultation(client, csrf)
    ws = await client.ws_connect("/ws")
    for frame, code in (
        ("nope", "bad_message"),
        ('{"type":"dance","id":"d"}', "unknown_type"),
        ('{"type":"hello","v":2}', "unsupported_version"),
    ):
        await ws.send_str(frame)
        reply = json.loads((await ws.receive(timeout=5)).data)
        assert reply["code"] == code
    assert reply.get("ref") is None
    await ws.send_str(
        json.dumps({"type": "hello", "v": 1, "ticket": await doctor_ticket(client, csrf, consultation["id"])})
    )
    assert json.loads((await ws.receive(timeout=5)).data)["type"] == "welcome"


async def test_hello_timeout_closes(tmp_path: Any) -> None:
    from tests.conftest import make_settings, start_server

    live: Running = await start_server(make_settings(tmp_path, hello_timeout_s=0.3))
    try:
        from aiohttp import ClientSession

        async with ClientSession() as session, session.ws_connect(f"{live.url}/ws") as ws:
            reply = json.loads((await ws.receive(timeout=5)).data)
            assert reply["code"] == "unauthorized"
            assert (await ws.receive(timeout=5)).type == WSMsgType.CLOSE
            assert ws.close_code == 4401
    finally:
        await live.server.close()


async def test_a_hello_sent_in_time_is_read_even_when_the_server_was_too_busy_to_read_it_in_time(
    tmp_path: Any,
) -> None:
    """The server's loop (here, this test's) is held past the hello deadline with the hello already in its socket:
    that client said hello in time and is welcomed, not refused with 4401."""
    from aiohttp.test_utils import TestClient

    from tests.conftest import make_settings, start_server

    live: Running = await start_server(make_settings(tmp_path, hello_timeout_s=0.3))
    client: TestClient[Any, Any] = TestClient(live.server)
    await client.start_server()
    try:
        csrf = await login(client)
        ticket = await doctor_ticket(client, csrf, (await create_consultation(client, csrf))["id"])
        ws = await client.ws_connect("/ws")
        await ws.send_str(json.dumps({"type": "hello", "v": 1, "ticket": ticket}))
        time.sleep(0.6)  # noqa: ASYNC251 - the point: the loop is busy past the deadline
        assert json.loads((await ws.receive(timeout=5)).data)["type"] == "welcome"
    finally:
        await client.close()
        await live.server.close()


async def test_errors_inside_a_room_carry_ref_and_keep_the_connection(clients: Any) -> None:
    call = await admitted_call(clients)
    cases = [
        ({"type": "admit", "peer_id": call.doctor.peer_id, "id": "a"}, call.patient, "forbidden"),
        ({"type": "end", "id": "e"}, call.patient, "forbidden"),
        ({"type": "offer", "to": "p_nobody", "sdp": "x", "id": "o"}, call.patient, "not_found"),
        ({"type": "admit", "peer_id": "p_nobody", "id": "n"}, call.doctor, "not_found"),
        ({"type": "offer", "to": call.doctor.peer_id, "sdp": 5, "id": "b"}, call.patient, "bad_message"),
        ({"type": "hello", "v": 1, "ticket": "x", "id": "h"}, call.patient, "forbidden"),
        ({"type": "whatever", "id": "w"}, call.doctor, "unknown_type"),
    ]
    for frame, sender, code in cases:
        await sender.send(**frame)
        reply = await sender.expect("error")
        assert (reply["code"], reply["ref"]) == (code, frame["id"]), frame
    await call.patient.send(type="ping", id="still-here")
    assert (await call.patient.expect("pong"))["ref"] == "still-here"


async def test_binary_frames_are_refused_politely(clients: Any) -> None:
    call = await admitted_call(clients)
    await call.patient.ws.send_bytes(b"\x00\x01")
    assert (await call.patient.expect("error"))["code"] == "bad_message"
    await call.patient.send(type="ping")
    await call.patient.expect("pong")


async def test_text_is_utf8_or_the_socket_fails_with_1007_and_the_client_may_resume(clients: Any) -> None:
    call = await admitted_call(clients)
    text = "Bérénice, vous m’entendez ? 😀"
    await call.patient.send(type="chat", text=text)
    assert (await call.doctor.expect("chat"))["text"] == text
    # Invalid UTF-8 inside a JSON string, which a JSON parser fed bytes might let through: RFC 6455 fails it.
    await call.patient.ws.send_frame(b'{"type":"chat","text":"\xed\xa0\x80"}', WSMsgType.TEXT)
    assert await call.patient.closed() == 1007
    back = await connect(call.patient_http, resume=call.patient.welcome["resume"])
    assert back.peer_id == call.patient.peer_id and back.welcome["state"] == "admitted"


async def test_a_hello_that_is_not_utf8_fails_the_socket_with_1007(clients: Any) -> None:
    client = await clients()
    ws = await client.ws_connect("/ws")
    await ws.send_frame(b'{"type":"hello","v":1,"ticket":"\xff"}', WSMsgType.TEXT)
    msg = await ws.receive(timeout=5)
    assert msg.type == WSMsgType.CLOSE and ws.close_code == 1007


async def test_a_waiting_patient_cannot_signal(clients: Any) -> None:
    _doctor_http, _csrf, consultation, doctor = await doctor_in_room(clients)
    patient_http = await clients()
    patient = await connect(patient_http, (await join(patient_http, consultation["patient_link"]))["ticket"])
    for frame in ({"type": "offer", "to": doctor.peer_id, "sdp": "x"}, {"type": "chat", "text": "hi"}):
        await patient.send(**frame)
        assert (await patient.expect("error"))["code"] == "forbidden"


async def test_too_large_closes_with_4413_and_the_client_may_resume(clients: Any) -> None:
    call = await admitted_call(clients)
    await call.patient.send(type="chat", text="x" * (70 * 1024))
    assert (await call.patient.expect("error"))["code"] == "too_large"
    assert await call.patient.closed() == 4413
    back = await connect(call.patient_http, resume=call.patient.welcome["resume"])
    assert back.peer_id == call.patient.peer_id and back.welcome["state"] == "admitted"


async def test_hello_after_the_end_says_ended(clients: Any) -> None:
    doctor_http, patient_http = await clients(), await clients()
    csrf = await login(doctor_http)
    consultation = await create_consultation(doctor_http, csrf)
    joined = await join(patient_http, consultation["patient_link"])
    end = await doctor_http.post(f"/api/consultations/{consultation['id']}/end", headers={"X-CSRF-Token": csrf})
    body = await end.json()
    assert body["status"] == "no_show" and body["billing"]["status"] == "no_show" and body["billing"]["acts"] == []
    reply, ws = await hello_error(patient_http, {"type": "hello", "v": 1, "ticket": joined["ticket"]})
    assert reply["code"] == "ended"
    await ws.close()
    again = await patient_http.post(
        "/api/join", json={"token": consultation["patient_link"].rsplit("/", 1)[1], "consent": True}
    )
    assert again.status == 409 and (await again.json())["error"] == "ended"


async def test_one_room_never_sees_another(clients: Any) -> None:
    first = await admitted_call(clients)
    second = await admitted_call(clients)
    await first.patient.send(type="offer", to=second.doctor.peer_id, sdp="x")
    assert (await first.patient.expect("error"))["code"] == "not_found"
    await first.patient.send(type="chat", text="only for room one")
    await first.doctor.expect("chat")
    await second.doctor.send(type="ping", id="p")
    seen = []
    while (frame := await second.doctor.recv())["type"] != "pong":
        seen.append(frame["type"])
    assert "chat" not in seen and frame["ref"] == "p"


async def test_a_second_device_waits_and_replaces_the_first_only_when_admitted(clients: Any) -> None:
    call = await admitted_call(clients)
    cid = call.consultation["id"]
    response = await call.patient_http.post(f"/api/consultations/{cid}/ticket", headers={"X-CSRF-Token": "wrong"})
    assert response.status == 403
    joined = await join(call.patient_http, call.consultation["patient_link"])
    newer = await connect(call.patient_http, joined["ticket"])
    assert newer.welcome["state"] == "waiting" and newer.welcome["peers"] == []  # admitted once is not enough
    lobby = await call.doctor.expect("lobby", waiting=bool)
    assert lobby["waiting"] == [
        {"peer_id": newer.peer_id, "role": "patient", "name": "Jeanne Dupont", "second_device": True}
    ]
    await call.patient.send(type="chat", text="still the patient")  # the first device is still in the call
    assert (await call.doctor.expect("chat"))["from"] == call.patient.peer_id
    await call.doctor.send(type="admit", peer_id=newer.peer_id)
    assert [p["role"] for p in (await newer.expect("admitted"))["peers"]] == ["doctor"]
    assert (await call.patient.expect("removed"))["reason"] == "replaced"
    assert (await call.doctor.expect("peer-left"))["peer_id"] == call.patient.peer_id
    assert (await call.doctor.expect("peer-joined"))["peer"]["peer_id"] == newer.peer_id
    await drop(newer)  # the device admitted last now holds the seat: it can resume
    resumed = await connect(call.patient_http, resume=newer.welcome["resume"])
    assert resumed.peer_id == newer.peer_id and resumed.welcome["state"] == "admitted"


async def test_a_denied_second_device_leaves_the_first_in_the_call(clients: Any) -> None:
    call = await admitted_call(clients)
    other_http = await clients()
    joined = await join(other_http, call.consultation["patient_link"])  # the link, forwarded
    intruder = await connect(other_http, joined["ticket"])
    lobby = await call.doctor.expect("lobby", waiting=bool)
    assert lobby["waiting"][0]["second_device"] is True
    await call.doctor.send(type="deny", peer_id=intruder.peer_id)
    await intruder.expect("denied")
    await call.patient.send(type="chat", text="still here")
    assert (await call.doctor.expect("chat"))["from"] == call.patient.peer_id
    await drop(call.patient)  # the seat is still the first device's, admission and resume token included
    resumed = await connect(call.patient_http, resume=call.patient.welcome["resume"])
    assert resumed.peer_id == call.patient.peer_id and resumed.welcome["state"] == "admitted"


async def test_a_fault_inside_the_server_is_logged_and_the_client_can_carry_on(
    clients: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    call = await admitted_call(clients)

    async def broken(*_args: Any) -> None:
        raise RuntimeError("a bug in the server")

    # Fault injection (no client can cause these): a frame whose handling fails gets `internal`, the socket stays.
    monkeypatch.setattr(SignalingService, "handle", broken)
    await call.patient.send(type="chat", text="hello", id="c1")
    assert (await call.patient.expect("error")) | {"message": ""} == {
        "type": "error",
        "code": "internal",
        "ref": "c1",
        "message": "",
    }
    # A hello whose handling fails is logged and closed with 1011; the client resumes once the server is well.
    monkeypatch.setattr(SignalingService, "hello", broken)
    again = await call.patient_http.ws_connect("/ws")
    await again.send_str(json.dumps({"type": "hello", "v": 1, "resume": call.patient.welcome["resume"]}))
    assert (await again.receive(timeout=5)).type is WSMsgType.CLOSE and again.close_code == 1011
    assert "unhandled error on a WebSocket" in caplog.text and "a bug in the server" in caplog.text
    monkeypatch.undo()
    await call.patient.ws.close()
    back = await connect(call.patient_http, resume=call.patient.welcome["resume"])
    assert (back.peer_id, back.welcome["state"]) == (call.patient.peer_id, "admitted")
    await back.send(type="chat", text="back")
    seen = [await call.doctor.recv()]
    while seen[-1]["type"] != "chat":
        seen.append(await call.doctor.recv())
    assert seen[-1]["text"] == "back" and not {"peer-left", "peer-joined"} & {f["type"] for f in seen}
