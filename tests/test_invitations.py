"""Invitations that arrive: real SMTP delivery, French mails with a calendar file, retries, links' lifetimes."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar
from sqlalchemy import select, text, update

from teleconsult.app import DATABASE
from teleconsult.store.models import AuditEvent, Consultation, Invitation
from tests.helpers import connect, create_consultation, join, login, token_of, upcoming

APPOINTMENT = upcoming()

LINK = re.compile(r"https?://\S+/j/[A-Za-z0-9_-]{43}")


def link_in(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    found = LINK.search(body.get_content())
    assert found, "no join link in the mail"
    return found.group(0)


def parts(message: EmailMessage) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for part in message.walk():
        if part.get_content_maintype() != "multipart":
            found[part.get_content_type()] = part.get_content()
    return found


async def detail(client: Any, consultation_id: str) -> dict[str, Any]:
    return dict(await (await client.get(f"/api/consultations/{consultation_id}")).json())


async def wait_mail_status(client: Any, consultation_id: str, role: str, status: str) -> dict[str, Any]:
    for _ in range(200):
        view = next(i for i in (await detail(client, consultation_id))["invitations"] if i["role"] == role)
        if view["mail"] and view["mail"]["status"] == status:
            return dict(view)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the {role}'s mail never became {status}: {view}")


async def test_the_patient_and_the_nurse_receive_french_mails_with_a_calendar_file(server_with: Any, smtp: Any) -> None:
    _, clients = await server_with(smtp_url=smtp.url)
    doctor_http, patient_http = await clients(), await clients()
    csrf = await login(doctor_http)
    created = await create_consultation(
        doctor_http,
        csrf,
        scheduled_at=APPOINTMENT.iso,
        reason="douleur thoracique",
        nurse_name="Inès Robert",
        nurse_email="ines@example.org",
    )
    await smtp.inbox.wait_for(2)
    (patient_mail,) = smtp.inbox.to("jeanne@example.org")
    (nurse_mail,) = smtp.inbox.to("ines@example.org")

    assert patient_mail["Subject"] == f"Votre téléconsultation avec Dr Alice Martin le {APPOINTMENT.paris_fr}"
    assert patient_mail["Content-Language"] == "fr"
    assert "dr.martin@example.org" in patient_mail["Reply-To"]
    content = parts(patient_mail)
    assert {"text/plain", "text/html", "text/calendar"} <= set(content)
    plain, html = content["text/plain"], content["text/html"]
    assert "Dr Alice Martin vous propose une téléconsultation" in plain and "10:30 (heure de Paris)" in plain
    assert "Rejoindre la consultation" in html and '<html lang="fr">' in html
    for body in (plain, html):
        assert "thoracique" not in body  # nothing medical in a mail
    link = link_in(patient_mail)
    assert link == created["patient_link"] and link in html

    calendar = Calendar.from_ical(content["text/calendar"])
    (event,) = calendar.walk("VEVENT")
    assert event.decoded("dtstart") == APPOINTMENT.when
    assert str(calendar["method"]) == "REQUEST" and link in str(event["url"])
    assert str(event["summary"]) == "Téléconsultation avec Dr Alice Martin"

    assert link_in(nurse_mail) == created["nurse_link"] != link
    assert "vous invite à accompagner Jeanne Dupont" in parts(nurse_mail)["text/plain"]

    joined = await join(patient_http, link)  # the link in the mail joins
    assert joined["role"] == "patient"
    status = await wait_mail_status(doctor_http, created["id"], "patient", "sent")
    assert status["mail"]["attempts"] == 1 and status["link"] == "used"


async def test_an_english_consultation_sends_an_english_mail(server_with: Any, smtp: Any) -> None:
    _, clients = await server_with(smtp_url=smtp.url)
    doctor_http = await clients()
    csrf = await login(doctor_http)
    await create_consultation(doctor_http, csrf, language="en")
    (mail,) = await smtp.inbox.wait_for(1)
    assert mail["Subject"] == "Your video consultation with Dr Alice Martin"
    assert "You can join the consultation now." in parts(mail)["text/plain"]
    assert "text/calendar" not in parts(mail)  # unscheduled: no calendar file


async def test_smtp_down_then_back_delivers_every_mail_once(server_with: Any, smtp: Any) -> None:
    smtp.stop()
    _, clients = await server_with(smtp_url=smtp.url, mail_retry_base_s=0.2)
    doctor_http = await clients()
    csrf = await login(doctor_http)
    started = asyncio.get_running_loop().time()
    created = [await create_consultation(doctor_http, csrf, patient_email=f"p{n}@example.org") for n in range(6)]
    assert asyncio.get_running_loop().time() - started < 5  # creating never waits on SMTP
    view = await wait_mail_status(doctor_http, created[0]["id"], "patient", "queued")
    await asyncio.sleep(0.5)
    view = next(i for i in (await detail(doctor_http, created[0]["id"]))["invitations"] if i["role"] == "patient")
    assert view["mail"]["attempts"] >= 1 and view["mail"]["error"]  # it tried, and says why it failed
    smtp.start()
    await smtp.inbox.wait_for(6, timeout=15)
    await asyncio.sleep(1.0)  # any duplicate would have arrived by now
    recipients = sorted(str(m["To"]) for m in smtp.inbox.messages)
    assert recipients == sorted(f"Jeanne Dupont <p{n}@example.org>" for n in range(6))
    for consultation in created:
        await wait_mail_status(doctor_http, consultation["id"], "patient", "sent")


async def test_a_4xx_answer_is_retried(server_with: Any, smtp: Any) -> None:
    smtp.inbox.temporary_failures = 2
    _, clients = await server_with(smtp_url=smtp.url, mail_retry_base_s=0.1)
    doctor_http = await clients()
    created = await create_consultation(doctor_http, await login(doctor_http))
    await smtp.inbox.wait_for(1, timeout=10)
    view = await wait_mail_status(doctor_http, created["id"], "patient", "sent")
    assert view["mail"]["attempts"] == 3 and smtp.inbox.attempts == 3 and len(smtp.inbox.messages) == 1


async def test_a_refused_mail_fails_at_once_and_the_doctor_corrects_the_address(server_with: Any, smtp: Any) -> None:
    smtp.inbox.refuse = True
    _, clients = await server_with(smtp_url=smtp.url)
    doctor_http = await clients()
    csrf = await login(doctor_http)
    created = await create_consultation(doctor_http, csrf, patient_email="jeane@exmaple.org")
    view = await wait_mail_status(doctor_http, created["id"], "patient", "failed")
    assert "550" in view["mail"]["error"] and view["mail"]["attempts"] == 1 and view["mail"]["reason"] == "rejected"
    smtp.inbox.refuse = False
    bad = await doctor_http.post(
        f"/api/consultations/{created['id']}/invitations",
        headers={"X-CSRF-Token": csrf},
        json={"participant_id": view["participant_id"], "email": "not an address"},
    )
    assert bad.status == 400
    fixed = await doctor_http.post(
        f"/api/consultations/{created['id']}/invitations",
        headers={"X-CSRF-Token": csrf},
        json={"participant_id": view["participant_id"], "email": "jeanne@example.org"},
    )
    assert fixed.status == 201
    (mail,) = await smtp.inbox.wait_for(1)
    assert "jeanne@example.org" in mail["To"]
    view = await wait_mail_status(doctor_http, created["id"], "patient", "sent")
    assert view["email"] == "jeanne@example.org" and view["mail"]["reason"] is None


async def move_appointment(live: Any, consultation_id: str, when: datetime) -> None:
    """Put a consultation's appointment in the past, with the links as they would have been issued for it (a test
    cannot move time, and the API refuses past times)."""
    expiry = when + timedelta(seconds=live.settings.access.invitation_ttl_after_scheduled_s)
    async with live.app[DATABASE].transaction() as tx:
        await tx.execute(update(Consultation).where(Consultation.id == consultation_id).values(scheduled_at=when))
        await tx.execute(
            update(Invitation).where(Invitation.consultation_id == consultation_id).values(expires_at=expiry)
        )


async def test_no_resend_long_after_the_appointment(server_with: Any) -> None:
    live, clients = await server_with()
    doctor_http = await clients()
    csrf = await login(doctor_http)
    past = await create_consultation(doctor_http, csrf, scheduled_at=APPOINTMENT.iso)
    await move_appointment(live, past["id"], datetime.now(UTC) - timedelta(days=2))
    response = await doctor_http.post(
        f"/api/consultations/{past['id']}/invitations", json={"role": "patient"}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 409 and "new consultation" in (await response.json())["message"]


async def test_an_unreachable_server_is_given_up_after_the_configured_time(server_with: Any, smtp: Any) -> None:
    smtp.stop()
    _, clients = await server_with(smtp_url=smtp.url, mail_retry_base_s=0.1, mail_give_up_s=1)
    doctor_http = await clients()
    created = await create_consultation(doctor_http, await login(doctor_http))
    view = await wait_mail_status(doctor_http, created["id"], "patient", "failed")
    assert view["mail"]["error"].startswith("gave up after")


async def test_resend_issues_a_new_link_and_revokes_the_old(server_with: Any, smtp: Any) -> None:
    _, clients = await server_with(smtp_url=smtp.url)
    doctor_http, patient_http = await clients(), await clients()
    csrf = await login(doctor_http)
    created = await create_consultation(doctor_http, csrf)
    await smtp.inbox.wait_for(1)
    response = await doctor_http.post(
        f"/api/consultations/{created['id']}/invitations", json={"role": "patient"}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 201
    fresh = (await response.json())["link"]
    await smtp.inbox.wait_for(2)
    assert link_in(smtp.inbox.messages[1]) == fresh != created["patient_link"]
    old = await patient_http.post("/api/join", json={"token": token_of(created["patient_link"]), "consent": True})
    assert old.status == 404 and (await old.json())["error"] == "link_invalid"
    page = await (await patient_http.get("/j/" + token_of(created["patient_link"]))).text()
    assert 'data-testid="practice-contact"' in page and "dr.martin@example.org" in page
    assert (await join(patient_http, fresh))["role"] == "patient"
    unknown = await doctor_http.post(
        f"/api/consultations/{created['id']}/invitations", json={"role": "nurse"}, headers={"X-CSRF-Token": csrf}
    )
    assert unknown.status == 404


async def test_cancel_revokes_every_link_tells_the_patient_and_empties_the_waiting_room(
    server_with: Any, smtp: Any
) -> None:
    _, clients = await server_with(smtp_url=smtp.url)
    doctor_http, patient_http = await clients(), await clients()
    csrf = await login(doctor_http)
    created = await create_consultation(doctor_http, csrf, scheduled_at=APPOINTMENT.iso)
    await smtp.inbox.wait_for(1)
    patient = await connect(patient_http, (await join(patient_http, created["patient_link"]))["ticket"])
    await patient.expect("waiting")
    response = await doctor_http.post(f"/api/consultations/{created['id']}/cancel", headers={"X-CSRF-Token": csrf})
    assert response.status == 200 and (await response.json())["status"] == "cancelled"
    await patient.expect("ended")
    (_, cancellation) = await smtp.inbox.wait_for(2)
    assert cancellation["Subject"].startswith(f"Téléconsultation annulée : {APPOINTMENT.paris_fr}")
    content = parts(cancellation)
    assert "ne fonctionne plus" in content["text/plain"]
    assert str(Calendar.from_ical(content["text/calendar"])["method"]) == "CANCEL"
    for _ in range(100):  # the dashboard can tell the cancellation notice went out
        (view,) = (await detail(doctor_http, created["id"]))["invitations"]
        if view["cancellation"] and view["cancellation"]["status"] == "sent":
            break
        await asyncio.sleep(0.05)
    assert view["cancellation"]["status"] == "sent" and view["link"] == "revoked"
    again = await patient_http.post("/api/join", json={"token": token_of(created["patient_link"]), "consent": True})
    assert again.status == 409 and (await again.json())["error"] == "ended"
    twice = await doctor_http.post(f"/api/consultations/{created['id']}/cancel", headers={"X-CSRF-Token": csrf})
    assert twice.status == 409


async def test_links_expire(server_with: Any) -> None:
    live, clients = await server_with(invitation_ttl_unscheduled_s=1)
    doctor_http, patient_http = await clients(), await clients()
    csrf = await login(doctor_http)
    now = await create_consultation(doctor_http, csrf)
    past = await create_consultation(doctor_http, csrf, scheduled_at=APPOINTMENT.iso)
    await move_appointment(live, past["id"], datetime.now(UTC) - timedelta(days=2))
    response = await patient_http.post("/api/join", json={"token": token_of(past["patient_link"]), "consent": True})
    assert response.status == 404  # more than 24 h after its time
    await asyncio.sleep(1.2)
    response = await patient_http.post("/api/join", json={"token": token_of(now["patient_link"]), "consent": True})
    assert response.status == 404 and (await response.json())["error"] == "link_invalid"
    page = await (await patient_http.get("/j/" + token_of(now["patient_link"]))).text()
    assert "plus valable" in page and "dr.martin@example.org" in page
    unknown = await (await patient_http.get("/j/" + "z" * 43)).text()
    assert "plus valable" in unknown and "practice-contact" not in unknown


async def test_every_redemption_is_audited_with_address_and_browser(server_with: Any) -> None:
    live, clients = await server_with()
    doctor_http, patient_http = await clients(), await clients()
    created = await create_consultation(doctor_http, await login(doctor_http))
    for _ in range(2):
        await patient_http.post(
            "/api/join",
            json={"token": token_of(created["patient_link"]), "consent": True},
            headers={"User-Agent": "Mozilla/5.0 (Test phone)"},
        )
    async with live.app[DATABASE].transaction() as tx:
        events = (await tx.execute(select(AuditEvent).where(AuditEvent.action == "invitation.redeemed"))).scalars()
        redeemed = list(events)
    assert len(redeemed) == 2
    assert all(e.ip == "127.0.0.1" and e.user_agent == "Mozilla/5.0 (Test phone)" for e in redeemed)
    assert all(e.consultation_id == created["id"] and e.actor.startswith("patient:") for e in redeemed)


async def test_without_a_mail_server_mails_go_to_the_outbox_directory(
    server_with: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    live, clients = await server_with()
    doctor_http = await clients()
    created = await create_consultation(doctor_http, await login(doctor_http))
    outbox: Path = live.settings.server.data_dir / "outbox"
    for _ in range(100):
        files = list(outbox.glob("*.eml"))
        if files:
            break
        await asyncio.sleep(0.05)
    (file,) = files
    assert created["patient_link"] in file.read_text()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert str(file) in logged and token_of(created["patient_link"]) not in logged


async def test_a_queued_mail_keeps_its_link_sealed(server_with: Any, smtp: Any) -> None:
    smtp.stop()
    live, clients = await server_with(smtp_url=smtp.url, mail_retry_base_s=60)
    doctor_http = await clients()
    created = await create_consultation(doctor_http, await login(doctor_http))
    token = token_of(created["patient_link"])
    async with live.app[DATABASE].engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM outgoing_mails"))).all()
    assert rows and all(token.encode() not in repr(row).encode() for row in rows)
    assert all(b"Jeanne" not in bytes(row.sealed_message) for row in rows)  # sealed, not merely stored
