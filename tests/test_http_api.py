"""The HTTP API: login, sessions, CSRF, consultations, join links, and what never leaks."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import text

from teleconsult.api.keys import DOCTORS
from teleconsult.app import DATABASE
from teleconsult.logging import RedactingFilter
from tests.conftest import Running, make_settings, start_server
from tests.helpers import create_consultation, join, login, token_of, upcoming

APPOINTMENT = upcoming()


async def test_wrong_password_is_refused_with_a_clear_error(clients: Any) -> None:
    client = await clients()
    response = await client.post("/api/login", json={"email": "dr.martin@example.org", "password": "nope"})
    assert response.status == 401
    assert (await response.json())["error"] == "invalid_credentials"
    unknown = await client.post("/api/login", json={"email": "who@example.org", "password": "nope"})
    assert (await unknown.json())["error"] == "invalid_credentials"
    me = await client.get("/api/me")
    assert me.status == 401


async def test_repeated_failures_are_throttled(clients: Any) -> None:
    client = await clients()
    for _ in range(5):
        await client.post("/api/login", json={"email": "dr.martin@example.org", "password": "bad guess"})
    response = await client.post(
        "/api/login", json={"email": "dr.martin@example.org", "password": "correct horse battery"}
    )
    assert response.status == 429
    assert (await response.json())["error"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0


async def test_session_cookie_flags_and_logout(clients: Any) -> None:
    client = await clients()
    response = await client.post(
        "/api/login", json={"email": "DR.Martin@example.org ", "password": "correct horse battery"}
    )
    assert response.status == 200
    cookie = response.cookies["tc_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP on loopback; Secure behind TLS (next test)
    csrf = (await response.json())["csrf_token"]
    assert (await (await client.get("/api/me")).json())["rpps"] == "10101010101"
    refused = await client.post("/api/logout")
    assert refused.status == 403 and (await refused.json())["error"] == "csrf"
    assert (await client.post("/api/logout", headers={"X-CSRF-Token": csrf})).status == 200
    assert (await client.get("/api/me")).status == 401


async def test_cookies_are_secure_behind_a_tls_proxy(tmp_path: Any) -> None:
    from aiohttp import ClientSession

    live = await start_server(make_settings(tmp_path, behind_proxy=True, public_url="https://tc.example.org"))
    try:
        async with ClientSession() as session:
            response = await session.post(
                f"{live.url}/api/login", json={"email": live.doctor_email, "password": live.doctor_password}
            )
            cookie = response.cookies["__Host-tc_session"]  # the prefix a browser enforces over HTTPS
            assert cookie["secure"] and cookie["path"] == "/" and not cookie["domain"]
    finally:
        await live.server.close()


async def test_csrf_and_origin_checks(clients: Any) -> None:
    client = await clients()
    csrf = await login(client)
    body = {"patient_name": "Jeanne Dupont", "patient_email": "jeanne@example.org"}
    assert (await client.post("/api/consultations", json=body)).status == 403
    assert (await client.post("/api/consultations", json=body, headers={"X-CSRF-Token": "0" * 64})).status == 403
    foreign = await client.post(
        "/api/consultations", json=body, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    )
    assert foreign.status == 403
    login_from_elsewhere = await client.post("/api/login", json={}, headers={"Origin": "https://evil.example"})
    assert login_from_elsewhere.status == 403
    ok = await client.post("/api/consultations", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status == 201


async def test_cross_origin_websocket_is_refused(clients: Any) -> None:
    from aiohttp import WSServerHandshakeError

    client = await clients()
    with pytest.raises(WSServerHandshakeError) as info:
        await client.ws_connect("/ws", headers={"Origin": "https://evil.example"})
    assert info.value.status == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"patient_name": "", "patient_email": "a@b.fr"}, "patient_name"),
        ({"patient_name": "Jeanne", "patient_email": "not-an-email"}, "patient_email"),
        ({"patient_name": "Jeanne", "patient_email": "a@b.fr", "nurse_name": "Inès"}, "nurse_email"),
        ({"patient_name": "Jeanne", "patient_email": "a@b.fr", "scheduled_at": upcoming().iso[:19]}, "scheduled_at"),
        ({"patient_name": "Jeanne"}, "patient_email"),
        ({"patient_name": ["x"], "patient_email": "a@b.fr"}, "patient_name"),
    ],
)
async def test_invalid_consultations_are_refused_with_a_reason(clients: Any, body: dict[str, Any], field: str) -> None:
    client = await clients()
    csrf = await login(client)
    response = await client.post("/api/consultations", json=body, headers={"X-CSRF-Token": csrf})
    assert response.status == 400
    payload = await response.json()
    assert payload["error"] == "bad_request" and payload["field"] == field and payload["message"]


async def test_malformed_json_bodies(clients: Any) -> None:
    client = await clients()
    for raw in (b"", b"{", b"[]", b"null", b'{"email": 1}'):
        response = await client.post("/api/login", data=raw, headers={"Content-Type": "application/json"})
        assert response.status == 400, raw
    huge = await client.post(
        "/api/login", data=b"{" + b" " * 70_000 + b"}", headers={"Content-Type": "application/json"}
    )
    assert huge.status == 413


async def test_consultation_lifecycle_and_listing(clients: Any) -> None:
    client = await clients()
    csrf = await login(client)
    created = await create_consultation(
        client, csrf, scheduled_at=APPOINTMENT.iso, nurse_name="Inès Robert", nurse_email="ines@example.org"
    )
    assert created["status"] == "scheduled"
    assert created["scheduled_at"] == APPOINTMENT.utc_z
    assert created["patient_link"].startswith(f"http://127.0.0.1:{client.port}/j/")
    assert created["nurse_link"] != created["patient_link"]
    second = await create_consultation(client, csrf, patient_name="Paul Leroy")
    listing = await (await client.get("/api/consultations")).json()
    assert [c["id"] for c in listing["items"]] == [second["id"], created["id"]]
    page = await (await client.get("/api/consultations?limit=1")).json()
    assert [c["id"] for c in page["items"]] == [second["id"]] and page["next"]
    rest = await (await client.get("/api/consultations", params={"limit": 1, "before": page["next"]})).json()
    assert [c["id"] for c in rest["items"]] == [created["id"]]
    detail = await (await client.get(f"/api/consultations/{created['id']}")).json()
    assert {p["role"] for p in detail["participants"]} == {"doctor", "patient", "nurse"}
    assert detail["billing"] is None


async def test_doctors_cannot_see_each_others_consultations(clients: Any, running: Running) -> None:
    await running.app[DOCTORS].create_doctor(
        email="dr.b@example.org", name="Dr B", rpps="20202020202", password="another long password"
    )
    alice, bob = await clients(), await clients()
    alice_csrf = await login(alice)
    bob_csrf = await login(bob, "dr.b@example.org", "another long password")
    consultation = await create_consultation(alice, alice_csrf)
    cid = consultation["id"]
    assert (await bob.get(f"/api/consultations/{cid}")).status == 404
    assert (await bob.post(f"/api/consultations/{cid}/ticket", headers={"X-CSRF-Token": bob_csrf})).status == 404
    assert (await bob.post(f"/api/consultations/{cid}/end", headers={"X-CSRF-Token": bob_csrf})).status == 404
    assert (await (await bob.get("/api/consultations")).json())["items"] == []


async def test_opening_a_link_consumes_nothing(clients: Any) -> None:
    doctor, scanner, patient = await clients(), await clients(), await clients()
    csrf = await login(doctor)
    consultation = await create_consultation(doctor, csrf)
    path = "/j/" + token_of(consultation["patient_link"])
    for _ in range(3):
        page = await scanner.get(path)
        assert page.status == 200
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert (await scanner.head(path)).status == 200
    detail = await (await doctor.get(f"/api/consultations/{consultation['id']}")).json()
    assert detail["status"] == "scheduled"
    assert all(p["joined_at"] is None and p["consent_at"] is None for p in detail["participants"])
    joined = await join(patient, consultation["patient_link"])
    assert joined["role"] == "patient" and joined["doctor_name"] == "Dr Alice Martin"


async def test_join_errors(clients: Any) -> None:
    doctor, patient = await clients(), await clients()
    csrf = await login(doctor)
    consultation = await create_consultation(doctor, csrf)
    token = token_of(consultation["patient_link"])
    no_consent = await patient.post("/api/join", json={"token": token, "consent": False})
    assert no_consent.status == 400 and (await no_consent.json())["error"] == "consent_required"
    for bad in ("x" * 43, "short", token[:-1] + ("A" if token[-1] != "A" else "B"), "../../etc/passwd"):
        response = await patient.post("/api/join", json={"token": bad, "consent": True})
        assert response.status == 404 and (await response.json())["error"] == "link_invalid", bad
    page = await patient.get("/j/" + "x" * 43)
    assert page.status == 404 and "plus valable" in await page.text()  # a friendly page, with an honest status


async def test_participant_cookie_and_ticket(clients: Any) -> None:
    doctor, patient, stranger = await clients(), await clients(), await clients()
    csrf = await login(doctor)
    consultation = await create_consultation(doctor, csrf)
    cid = consultation["id"]
    response = await patient.post("/api/join", json={"token": token_of(consultation["patient_link"]), "consent": True})
    joined = await response.json()
    cookie = response.cookies[f"tc_p_{cid}"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    again = await patient.post(f"/api/consultations/{cid}/ticket", headers={"X-CSRF-Token": joined["csrf_token"]})
    assert again.status == 200 and (await again.json())["ticket"] != joined["ticket"]
    assert (await stranger.post(f"/api/consultations/{cid}/ticket")).status == 401
    assert (await patient.get(f"/api/consultations/{cid}")).status == 401  # the doctor's view only


async def test_tokens_are_stored_hashed_and_never_logged(
    clients: Any, running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    doctor, patient = await clients(), await clients()
    login_response = await doctor.post(
        "/api/login", json={"email": running.doctor_email, "password": running.doctor_password}
    )
    session_token = login_response.cookies["tc_session"].value
    csrf = (await login_response.json())["csrf_token"]
    consultation = await create_consultation(doctor, csrf)
    link_token = token_of(consultation["patient_link"])
    await patient.get(f"/j/{link_token}")
    joined = await join(patient, consultation["patient_link"])
    await patient.post("/api/join", json={"token": "y" * 43, "consent": True})
    secrets_ = [session_token, link_token, joined["ticket"], running.doctor_password]
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("teleconsult"))
    # What the configured handler writes: the redaction filter also covers third-party records (access log).
    redactor = RedactingFilter()
    emitted = "\n".join(r.getMessage() for r in caplog.records if redactor.filter(r))
    for secret in secrets_:
        assert secret not in ours
        assert secret not in emitted
    async with running.app[DATABASE].engine.connect() as conn:
        for table in ("doctor_sessions", "invitations", "tickets", "participants", "doctors", "audit_events"):
            rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()
            dump = repr(rows)
            for secret in secrets_:
                assert secret not in dump, table


async def test_security_headers_on_pages_and_api(clients: Any) -> None:
    client = await clients()
    for path in ("/login", "/api/me", "/healthz"):
        response = await client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert (await client.get("/api/me")).headers["Cache-Control"] == "no-store"


async def test_healthz_reports_database_and_bus(clients: Any) -> None:
    client = await clients()
    response = await client.get("/healthz")
    assert response.status == 200
    body = await response.json()
    assert body["database"] is True and body["bus"] is True and body["status"] == "ok"


async def test_healthz_is_503_when_the_database_is_gone(tmp_path: Any) -> None:
    from aiohttp import ClientSession

    live = await start_server(
        make_settings(tmp_path, database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none"), with_doctor=False
    )
    try:
        async with ClientSession() as session:
            response = await session.get(f"{live.url}/healthz")
            assert response.status == 503 and (await response.json())["database"] is False
            login_response = await session.post(f"{live.url}/api/login", json={"email": "a@b.fr", "password": "x"})
            assert login_response.status == 503 and (await login_response.json())["error"] == "unavailable"
    finally:
        await live.server.close()
