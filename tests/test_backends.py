"""The durable rules, on SQLite and on PostgreSQL: one billing record, single-use tickets, racing joins."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import ClientSession, ClientWebSocketResponse, CookieJar
from sqlalchemy import func, insert, select

from teleconsult.api.keys import CONSULTATIONS, DOCTORS, SEATS, SIGNALING
from teleconsult.app import DATABASE, OUTBOX
from teleconsult.config import AccessSettings, SignalingSettings
from teleconsult.consultations import Ended, NewConsultation
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import ParticipantId, hash_token, new_token
from teleconsult.seats import SeatService
from teleconsult.store import Database
from teleconsult.store import consultations as store
from teleconsult.store.models import AuditEvent, BillingEntry, Consultation, Doctor, Participant
from tests.conftest import Running, make_settings, start_server
from tests.helpers import admitted_call, create_consultation, login, token_of, upcoming

APPOINTMENT = upcoming()


def browser(live: Running) -> ClientSession:
    """A client with its own cookie jar (``unsafe``: the server is on an IP address)."""
    return ClientSession(base_url=live.url, cookie_jar=CookieJar(unsafe=True))


async def _session(live: Running) -> tuple[ClientSession, str]:
    session = browser(live)
    response = await session.post("/api/login", json={"email": live.doctor_email, "password": live.doctor_password})
    assert response.status == 200
    return session, (await response.json())["csrf_token"]


async def test_full_consultation_on_each_backend(running_any_db: Running) -> None:
    live = running_any_db
    doctor, csrf = await _session(live)
    patient = browser(live)
    try:
        created = await (
            await doctor.post(
                "/api/consultations",
                headers={"X-CSRF-Token": csrf},
                json={
                    "patient_name": "Jeanne Dupont",
                    "patient_email": "jeanne@example.org",
                    "scheduled_at": APPOINTMENT.iso,
                    "nurse_name": "Inès",
                    "nurse_email": "ines@example.org",
                },
            )
        ).json()
        ticket = (
            await (
                await doctor.post(f"/api/consultations/{created['id']}/ticket", headers={"X-CSRF-Token": csrf})
            ).json()
        )["ticket"]
        doctor_ws = await doctor.ws_connect("/ws")
        await doctor_ws.send_json({"type": "hello", "v": 1, "ticket": ticket})
        welcome = await doctor_ws.receive_json(timeout=5)
        assert welcome["type"] == "welcome"
        joined = await (
            await patient.post("/api/join", json={"token": token_of(created["patient_link"]), "consent": True})
        ).json()
        patient_ws = await patient.ws_connect("/ws")
        await patient_ws.send_json({"type": "hello", "v": 1, "ticket": joined["ticket"]})
        assert (await patient_ws.receive_json(timeout=5))["state"] == "waiting"
        while not (frame := await doctor_ws.receive_json(timeout=5)).get("waiting"):
            pass
        await doctor_ws.send_json({"type": "admit", "peer_id": frame["waiting"][0]["peer_id"]})
        while (await patient_ws.receive_json(timeout=5))["type"] != "admitted":
            pass
        await patient_ws.send_json({"type": "media", "peer_id": welcome["peer_id"], "video": True})
        await patient_ws.send_json({"type": "ping", "id": "after-media"})
        while (await patient_ws.receive_json(timeout=5))["type"] != "pong":
            pass
        await doctor_ws.send_json({"type": "end"})
        while (await patient_ws.receive_json(timeout=5))["type"] != "ended":
            pass
        detail = await (await doctor.get(f"/api/consultations/{created['id']}")).json()
        assert detail["status"] == "ended" and detail["scheduled_at"] == APPOINTMENT.utc_z
        assert [a["act_code"] for a in detail["billing"]["acts"]] == ["TCG"]  # the nurse never came
        patient_seat = next(p for p in detail["participants"] if p["role"] == "patient")
        assert patient_seat["consent_at"] and patient_seat["admitted_at"] and patient_seat["joined_at"]
        async with live.app[DATABASE].transaction() as tx:
            actions = [e.action for e in (await tx.execute(select(AuditEvent).order_by(AuditEvent.seq))).scalars()]
        assert [a for a in actions if not a.startswith("mail.")] == [  # mails: whenever the sender gets to them
            "invitation.issued",
            "invitation.issued",
            "consultation.created",
            "participant.joined",
            "invitation.redeemed",
            "participant.joined",
            "participant.admitted",
            "consultation.started",
            "media.video_connected",
            "billing.recorded",
            "consultation.ended",
        ]
    finally:
        await doctor.close()
        await patient.close()


async def _started_consultation(live: Running) -> tuple[str, str]:
    """A consultation with doctor and patient admitted, made through the services (no sockets)."""
    app = live.app
    doctor = await app[DOCTORS].doctor_by_email(live.doctor_email)
    assert doctor is not None
    created = await app[CONSULTATIONS].create(doctor, NewConsultation("Jeanne", "jeanne@example.org"))
    async with app[DATABASE].transaction() as tx:
        seats = (
            (await tx.execute(select(Participant).where(Participant.consultation_id == created.consultation.id)))
            .scalars()
            .all()
        )
    for seat in seats:
        await app[SEATS].participant_admitted(seat.id, created.consultation.id, in_progress=True)
    await app[CONSULTATIONS].video_connected(created.consultation.id, "patient:u_test", "p_doctor")
    return created.consultation.id, doctor.id


@pytest.mark.parametrize("racers", [2, 10])
async def test_racing_ends_write_exactly_one_billing_record(running_any_db: Running, racers: int) -> None:
    app = running_any_db.app
    consultation_id, doctor_id = await _started_consultation(running_any_db)
    results = await asyncio.gather(
        *(app[SIGNALING].end_consultation(consultation_id, doctor_id) for _ in range(racers)), return_exceptions=True
    )
    records = [r.billing for r in results if isinstance(r, Ended) and r.billing is not None]
    assert len(records) == racers, results
    assert len({r.id for r in records}) == 1
    assert records[0].status.value == "completed" and [a.act_code for a in records[0].acts] == ["TCG"]
    async with app[DATABASE].transaction() as tx:
        count = (await tx.execute(select(func.count()).select_from(BillingEntry))).scalar_one()
    assert count == 1


async def test_a_ticket_opens_once_under_contention(running_any_db: Running) -> None:
    app = running_any_db.app
    doctor = await app[DOCTORS].doctor_by_email(running_any_db.doctor_email)
    assert doctor is not None
    created = await app[CONSULTATIONS].create(doctor, NewConsultation("Jeanne", "jeanne@example.org"))
    ticket = await app[SEATS].ticket_for_doctor(doctor, created.consultation.id)
    results = await asyncio.gather(*(app[SEATS].open_ticket(ticket) for _ in range(20)), return_exceptions=True)
    outcomes = Counter("ok" if not isinstance(r, BaseException) else r.code for r in results)  # type: ignore[attr-defined]
    assert outcomes == {"ok": 1, ErrorCode.UNAUTHORIZED: 19}


async def test_fifty_concurrent_joins_of_one_link_make_one_participant(tmp_path: Any, database_url: str) -> None:
    # Fifty joins from one address exceed the link rate limit (test_hardening.py); this test is about the race.
    live = await start_server(make_settings(tmp_path, database_url=database_url, link_rate_per_min=1000))
    doctor, csrf = await _session(live)
    sessions = [browser(live) for _ in range(50)]
    try:
        created = await (
            await doctor.post(
                "/api/consultations",
                headers={"X-CSRF-Token": csrf},
                json={"patient_name": "Jeanne", "patient_email": "jeanne@example.org"},
            )
        ).json()
        body = {"token": token_of(created["patient_link"]), "consent": True}
        responses = await asyncio.gather(*(s.post("/api/join", json=body) for s in sessions))
        assert all(r.status == 200 for r in responses), [r.status for r in responses]
        detail = await (await doctor.get(f"/api/consultations/{created['id']}")).json()
        assert [p["role"] for p in detail["participants"]].count("patient") == 1
    finally:
        await doctor.close()
        for session in sessions:
            await session.close()
        await live.server.close()


async def test_times_come_back_in_utc(running_any_db: Running) -> None:
    app = running_any_db.app
    doctor = await app[DOCTORS].doctor_by_email(running_any_db.doctor_email)
    assert doctor is not None
    when = upcoming().when.astimezone(UTC)
    created = await app[CONSULTATIONS].create(doctor, NewConsultation("J", "j@example.org", scheduled_at=when))
    again = await app[CONSULTATIONS].get_for_doctor(doctor, created.consultation.id)
    assert again.scheduled_at == when and again.scheduled_at.tzinfo is not None
    assert again.created_at.tzinfo is not None


async def test_creating_a_doctor_twice_is_a_conflict(running_any_db: Running) -> None:
    with pytest.raises(TeleconsultError) as info:
        await running_any_db.app[DOCTORS].create_doctor(
            email=running_any_db.doctor_email.upper(), name="Dr A", rpps="10101010101", password="x" * 12
        )
    assert info.value.code is ErrorCode.CONFLICT


async def test_housekeeping_purges_spent_tickets_and_expired_sessions(running_any_db: Running) -> None:
    from datetime import timedelta

    from teleconsult import housekeeping
    from teleconsult.store.models import DoctorSession, Ticket

    app = running_any_db.app
    doctor = await app[DOCTORS].doctor_by_email(running_any_db.doctor_email)
    assert doctor is not None
    created = await app[CONSULTATIONS].create(doctor, NewConsultation("Jeanne", "jeanne@example.org"))
    fresh = await app[SEATS].ticket_for_doctor(doctor, created.consultation.id)
    await app[SEATS].ticket_for_doctor(doctor, created.consultation.id)
    await app[DOCTORS].login(running_any_db.doctor_email, running_any_db.doctor_password, client="t")
    long_ago = datetime.now(UTC) - timedelta(days=1)
    async with app[DATABASE].transaction() as tx:
        tickets = (await tx.execute(select(Ticket))).scalars().all()
        tickets[1].expires_at = long_ago
        (await tx.execute(select(DoctorSession))).scalars().one().expires_at = long_ago
    await housekeeping.purge(app[DATABASE])
    async with app[DATABASE].transaction() as tx:
        assert len((await tx.execute(select(Ticket))).scalars().all()) == 1
        assert (await tx.execute(select(DoctorSession))).scalars().all() == []
    await app[SEATS].open_ticket(fresh)  # the live ticket survived


async def test_two_nodes_sending_mail_deliver_each_mail_once(database_url: str, smtp: Any, server_with: Any) -> None:
    smtp.stop()
    settings = {"database_url": database_url, "smtp_url": smtp.url, "mail_retry_base_s": 0.1}
    first, clients = await server_with(**settings)
    second, _ = await server_with(with_doctor=False, **settings)
    doctor = await clients()
    csrf = await login(doctor)
    for n in range(12):
        await create_consultation(doctor, csrf, patient_email=f"p{n}@example.org")
    smtp.start()
    senders = [live.app[OUTBOX] for live in (first, second)]
    async with asyncio.timeout(20):
        while len(smtp.inbox.messages) < 12:  # both nodes claim the same due mails at the same moment
            await asyncio.gather(*(sender.deliver_due() for sender in senders for _ in range(2)))
            await asyncio.sleep(0.02)
    await asyncio.sleep(1.0)  # a duplicate would have arrived by now
    recipients = Counter(str(message["To"]) for message in smtp.inbox.messages)
    assert recipients == Counter(f"Jeanne Dupont <p{n}@example.org>" for n in range(12))


async def test_a_restarted_node_takes_back_every_client_at_once(database_url: str, server_with: Any) -> None:
    """Twenty clients resume together after a restart (one group-commit batch); one token is presented twice."""
    settings = {"database_url": database_url, "max_pending_per_ip": 50}  # the test's clients share one address
    first, clients = await server_with(**settings)
    calls = [await admitted_call(clients) for _ in range(10)]
    welcomes = [peer.welcome for call in calls for peer in (call.doctor, call.patient)]
    await first.server.close()  # graceful: every seat is marked away and stays resumable
    second, _ = await server_with(with_doctor=False, **settings)
    async with ClientSession(base_url=second.url) as http:
        tokens = [welcome["resume"] for welcome in welcomes] + [welcomes[0]["resume"]]  # the first one, twice
        sockets_and_replies = await asyncio.gather(*(_resume(http, token) for token in tokens))
        replies = [reply for _, reply in sockets_and_replies]  # the sockets stay open until the checks are done
        back = [reply for reply in replies if reply["type"] == "welcome"]
        assert len(back) == len(welcomes)  # everyone once; the second use of the doubled token is refused
        assert sorted((r["peer_id"], r["state"]) for r in back) == sorted((w["peer_id"], "admitted") for w in welcomes)
        refused = [reply for reply in replies if reply["type"] != "welcome"]
        assert [(r["type"], r["code"]) for r in refused] == [("error", "unauthorized")]
        async with second.app[DATABASE].transaction() as tx:
            away = await tx.scalar(select(func.count()).where(Participant.away_since.is_not(None)))
        assert away == 0  # every seat is held by a live socket again


async def _resume(http: ClientSession, token: str) -> tuple[ClientWebSocketResponse, dict[str, Any]]:
    ws = await http.ws_connect("/ws")
    await ws.send_json({"type": "hello", "v": 1, "resume": token})
    return ws, dict(await ws.receive_json(timeout=10))


SEATS_OF_A_BIG_NODE = 33_000


async def test_a_whole_node_of_seats_is_marked_away_at_once(database_url: str) -> None:
    """More seats than one statement may carry parameters for (PostgreSQL caps them at 32,767): each seat is a
    parameter set of its own."""
    database = Database(database_url)
    if database.is_sqlite:
        await database.upgrade()
    now = datetime.now(UTC)
    try:
        async with database.transaction() as tx:
            doctor = Doctor(id="d_many", email="many@example.org", name="Dr M", rpps="12312312312", password_hash="!")
            tx.add(doctor)
            await tx.flush()
            consultation = Consultation(id="c_many", doctor_id=doctor.id, status="scheduled", language="fr")
            consultation.created_at = now
            tx.add(consultation)
            await tx.flush()
            seats = [
                {
                    "id": f"u_{n}",
                    "consultation_id": "c_many",
                    "role": "guest",
                    "name": f"G{n}",
                    "peer_id": f"p_{n}",
                    "resume_hash": f"h_{n}",
                }
                for n in range(SEATS_OF_A_BIG_NODE)
            ]
            await tx.execute(insert(Participant), seats)
        async with database.transaction() as tx:
            await store.mark_away(tx, [(seat["id"], seat["resume_hash"]) for seat in seats], now)
        async with database.transaction() as tx:
            away = await tx.scalar(select(func.count()).where(Participant.away_since.is_not(None)))
        assert away == SEATS_OF_A_BIG_NODE
    finally:
        await database.close()


async def test_a_drop_written_after_the_resume_that_followed_it_leaves_the_seat_resumed(database_url: str) -> None:
    """A socket drops on one node and its client resumes on another at once: the resume's transaction may commit
    before the drop's (each is a group commit of its own). The late drop must not mark the resumed seat away: its
    grace period would then run from the drop, and a takeover or restart past it would refuse the client."""
    database = Database(database_url)
    if database.is_sqlite:
        await database.upgrade()
    seats = SeatService(database, AccessSettings(), SignalingSettings(resume_grace_s=30))
    dropped, resumed = new_token(), new_token()
    try:
        async with database.transaction() as tx:
            tx.add(Doctor(id="d_race", email="race@example.org", name="Dr R", rpps="32132132132", password_hash="!"))
            await tx.flush()
            consultation = Consultation(id="c_race", doctor_id="d_race", status="in_progress", language="fr")
            consultation.created_at = datetime.now(UTC)
            tx.add(consultation)
            await tx.flush()
            seat = {"id": "u_race", "consultation_id": "c_race", "role": "patient", "name": "P", "peer_id": "p_race"}
            await tx.execute(insert(Participant), [seat | {"resume_hash": hash_token(dropped)}])
        back = await seats.resume_seat(dropped, resumed)  # the resume, written first
        assert back.peer_id == "p_race" and back.away_since is None
        await seats.participant_away(ParticipantId("u_race"), hash_token(dropped))  # the drop, written after it

        async def away_since() -> datetime | None:
            async with database.transaction() as tx:
                return await tx.scalar(select(Participant.away_since).where(Participant.id == "u_race"))

        assert await away_since() is None
        await seats.participant_away(ParticipantId("u_race"), hash_token(resumed))  # the resumed socket drops
        assert await away_since() is not None
        assert (await seats.resume_seat(resumed, new_token())).peer_id == "p_race"  # within its grace period
    finally:
        await database.close()
