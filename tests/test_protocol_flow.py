"""Protocol v1 over a real WebSocket: the happy path of a consultation."""

from __future__ import annotations

from typing import Any

from tests.helpers import admitted_call, connect, doctor_in_room, join


async def test_doctor_admits_patient_and_they_exchange_signaling(clients: Any) -> None:
    call = await admitted_call(clients)
    assert call.doctor.welcome["role"] == "doctor" and call.doctor.welcome["polite"] is True
    assert call.patient.welcome["state"] == "waiting" and call.patient.welcome["polite"] is False
    assert call.doctor.welcome["ice_servers"] == []

    await call.patient.send(type="offer", to=call.doctor.peer_id, sdp="v=0 offer", id="o1")
    offer = await call.doctor.expect("offer")
    assert offer == {"type": "offer", "from": call.patient.peer_id, "sdp": "v=0 offer"}
    await call.doctor.send(type="answer", to=call.patient.peer_id, sdp="v=0 answer")
    assert (await call.patient.expect("answer"))["from"] == call.doctor.peer_id
    candidate = {"candidate": "candidate:1 1 udp 1 10.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
    await call.doctor.send(type="candidate", to=call.patient.peer_id, candidate=candidate)
    got = await call.patient.expect("candidate")
    assert got["candidate"] == candidate and got["from"] == call.doctor.peer_id
    await call.doctor.send(type="candidate", to=call.patient.peer_id, candidate=None)
    assert (await call.patient.expect("candidate"))["candidate"] is None

    await call.patient.send(type="chat", text="Bonjour docteur")
    for side in (call.doctor, call.patient):
        chat = await side.expect("chat")
        assert chat["text"] == "Bonjour docteur" and chat["from"] == call.patient.peer_id
        assert chat["ts"].endswith("Z") and chat["msg_id"]

    await call.doctor.send(type="ping", id="k")
    assert await call.doctor.expect("pong") == {"type": "pong", "ref": "k"}


async def test_end_writes_one_billing_record_and_closes_everyone(clients: Any) -> None:
    call = await admitted_call(clients)
    cid = call.consultation["id"]
    await call.doctor.send(type="end")
    for side in (call.doctor, call.patient):
        assert (await side.expect("ended"))["consultation_id"] == cid
        assert await side.closed() == 1000
    response = await call.doctor_http.get(f"/api/consultations/{cid}")
    body = await response.json()
    assert body["status"] == "ended"
    billing = body["billing"]
    assert billing["doctor"]["rpps"] == "10101010101" and billing["patient_name"] == "Jeanne Dupont"
    assert [a["act_code"] for a in billing["acts"]] == ["TCG"] and billing["total_cents"] == 2500
    assert billing["duration_s"] >= 0 and billing["started_at"] <= billing["ended_at"]
    again = await call.doctor_http.post(f"/api/consultations/{cid}/end", headers={"X-CSRF-Token": call.csrf})
    assert (await again.json())["billing"]["id"] == billing["id"]


async def test_patient_left_is_announced(clients: Any) -> None:
    call = await admitted_call(clients)
    await call.patient.send(type="leave")
    left = await call.doctor.expect("peer-left")
    assert left["peer_id"] == call.patient.peer_id
    assert await call.patient.closed() == 1000


async def test_denied_patient_is_told_and_closed(clients: Any) -> None:
    _doctor_http, _csrf, consultation, doctor = await doctor_in_room(clients)
    patient_http = await clients()
    patient = await connect(patient_http, (await join(patient_http, consultation["patient_link"]))["ticket"])
    lobby = await doctor.expect("lobby", waiting=bool)
    await doctor.send(type="deny", peer_id=lobby["waiting"][0]["peer_id"])
    denied = await patient.expect("denied")
    assert set(denied) == {"type"}  # nothing about the room reaches someone turned away
    assert await patient.closed() == 1000
    assert (await doctor.expect("lobby"))["waiting"] == []
