"""The billing ledger over HTTP and the signaling: the proposal the doctor sees, ending with a choice, corrections
that keep the original, the month's summary, and video reported by the clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from teleconsult.api.keys import SIGNALING
from teleconsult.clock import SYSTEM
from tests.helpers import admitted_call, create_consultation, join, login, upcoming, video_flowing


async def end(call: Any, **choice: Any) -> Any:
    return await call.doctor_http.post(
        f"/api/consultations/{call.consultation['id']}/end", json=choice or None, headers={"X-CSRF-Token": call.csrf}
    )


async def test_the_proposal_shows_the_doctors_act_at_its_amount_and_what_may_be_chosen(clients: Any) -> None:
    call = await admitted_call(clients)
    response = await call.doctor_http.get(f"/api/consultations/{call.consultation['id']}/billing/proposal")
    assert response.status == 200
    body = await response.json()
    proposed = body["proposed"]
    assert proposed["status"] == "completed" and proposed["video_connected"] is True
    assert [(a["act_code"], a["amount_cents"], a["tariff_from"]) for a in proposed["acts"]] == [
        ("TCG", 2500, "2018-09-15")
    ]
    assert [a["code"] for a in body["doctor_acts"]] == ["TCG"]
    assert body["statuses"] == ["completed", "interrupted", "not_billable"]
    assert all(a["label"] for a in body["doctor_acts"])
    english = await call.doctor_http.get(f"/api/consultations/{call.consultation['id']}/billing/proposal?lang=en")
    assert (await english.json())["doctor_acts"][0]["label"] != body["doctor_acts"][0]["label"]


async def test_without_video_reports_the_proposal_is_interrupted_and_completed_is_refused(clients: Any) -> None:
    call = await admitted_call(clients, video=False)
    proposal = await (
        await call.doctor_http.get(f"/api/consultations/{call.consultation['id']}/billing/proposal")
    ).json()
    assert proposal["proposed"]["status"] == "interrupted" and proposal["proposed"]["acts"] == []
    refused = await end(call, status="completed")
    assert refused.status == 400 and (await refused.json())["field"] == "status"
    # Refused, nothing changed: the call is still on; video then flows, and the end bills.
    await video_flowing(call.doctor, call.patient)
    ended = await end(call)
    assert (await ended.json())["billing"]["status"] == "completed"


async def test_a_report_from_a_nurse_or_about_an_unknown_peer_does_not_count(clients: Any) -> None:
    call = await admitted_call(clients, video=False)
    await call.patient.send(type="media", peer_id="p_nobody", video=True)
    await call.patient.send(type="media", peer_id=call.patient.peer_id, video=True)  # itself
    await call.patient.send(type="ping", id="x")
    await call.patient.expect("pong")
    body = await (await end(call)).json()
    assert body["billing"]["status"] == "interrupted" and body["billing"]["video_connected"] is False


async def test_ending_with_a_changed_choice_bills_it_and_a_bad_choice_changes_nothing(clients: Any) -> None:
    call = await admitted_call(clients)
    refused = await end(call, doctor_act="TLD")
    assert refused.status == 400 and (await refused.json())["field"] == "doctor_act"
    bad_nir = await end(call, patient_nir="185057800608437")
    assert bad_nir.status == 400 and (await bad_nir.json())["field"] == "patient_nir"
    detail = await (await call.doctor_http.get(f"/api/consultations/{call.consultation['id']}")).json()
    assert detail["status"] == "in_progress" and detail["billing"] is None
    ended = await end(call, status="not_billable", reason="Renouvellement gratuit", patient_nir="1 85 05 78 006 084 91")
    assert ended.status == 200, await ended.text()
    billing = (await ended.json())["billing"]
    assert billing["status"] == "not_billable" and billing["reason"] == "Renouvellement gratuit"
    assert billing["acts"] == [] and billing["total_cents"] == 0 and billing["patient_nir"] == "185057800608491"
    await call.patient.expect("ended")


async def test_a_correction_is_a_new_entry_and_the_original_stays(clients: Any) -> None:
    call = await admitted_call(clients)
    cid = call.consultation["id"]
    original = (await (await end(call)).json())["billing"]
    assert original["revision"] == 0 and original["status"] == "completed"
    corrected = await call.doctor_http.post(
        f"/api/consultations/{cid}/billing/corrections",
        json={"status": "not_billable", "reason": "doublon"},
        headers={"X-CSRF-Token": call.csrf},
    )
    assert corrected.status == 201
    correction = await corrected.json()
    assert correction["revision"] == 1 and correction["corrects"] == original["id"] and correction["total_cents"] == 0
    entries = (await (await call.doctor_http.get(f"/api/consultations/{cid}/billing")).json())["items"]
    assert [e["id"] for e in entries] == [original["id"], correction["id"]]
    assert entries[0] == original  # untouched
    detail = await (await call.doctor_http.get(f"/api/consultations/{cid}")).json()
    assert detail["billing"]["id"] == correction["id"]  # the current entry
    again = await call.doctor_http.post(f"/api/consultations/{cid}/end", headers={"X-CSRF-Token": call.csrf})
    assert (await again.json())["billing"]["id"] == correction["id"]


async def test_a_no_show_is_recorded_with_its_reason_and_cannot_be_corrected_into_a_bill(clients: Any) -> None:
    doctor_http = await clients()
    csrf = await login(doctor_http)
    created = await create_consultation(doctor_http, csrf)
    ended = await doctor_http.post(f"/api/consultations/{created['id']}/end", headers={"X-CSRF-Token": csrf})
    body = await ended.json()
    assert body["status"] == "no_show"
    assert body["billing"]["status"] == "no_show" and body["billing"]["reason"] == "patient_never_joined"
    assert body["billing"]["acts"] == []
    correction = await doctor_http.post(
        f"/api/consultations/{created['id']}/billing/corrections", json={}, headers={"X-CSRF-Token": csrf}
    )
    assert correction.status == 409


async def test_a_nurse_beside_the_patient_bills_her_act_for_where_she_was(clients: Any) -> None:
    doctor_http = await clients()
    csrf = await login(doctor_http)
    created = await create_consultation(doctor_http, csrf, nurse_name="Inès Robert", nurse_email="ines@example.org")
    from tests.helpers import connect, doctor_ticket

    doctor = await connect(doctor_http, await doctor_ticket(doctor_http, csrf, created["id"]))
    peers = {}
    for role in ("patient", "nurse"):
        http = await clients()
        joined = await join(http, created[f"{role}_link"])
        peers[role] = await connect(http, joined["ticket"])
        await peers[role].expect("waiting")
        lobby = await doctor.expect("lobby", waiting=bool)
        waiting = next(p for p in lobby["waiting"] if p["role"] == role)
        await doctor.send(type="admit", peer_id=waiting["peer_id"])
        await peers[role].expect("admitted")
    await video_flowing(doctor, peers["patient"])
    proposal = await (await doctor_http.get(f"/api/consultations/{created['id']}/billing/proposal")).json()
    assert [a["act_code"] for a in proposal["proposed"]["acts"]] == ["TCG", "TLS"]
    assert {a["place"]: a["code"] for a in proposal["nurse_acts"]} == {
        "planned_visit": "TLS",
        "dedicated_place": "TLL",
        "home": "TLD",
    }
    ended = await doctor_http.post(
        f"/api/consultations/{created['id']}/end",
        json={"nurse_place": "home", "nurse_number": "10003456789"},
        headers={"X-CSRF-Token": csrf},
    )
    billing = (await ended.json())["billing"]
    assert [(a["act_code"], a["amount_cents"], a["performer"]) for a in billing["acts"]] == [
        ("TCG", 2500, "Dr Alice Martin"),
        ("TLD", 1500, "Inès Robert"),
    ]
    assert billing["nurse"] == {"name": "Inès Robert", "number": "10003456789", "place": "home"}
    assert billing["total_cents"] == 4000


async def test_the_month_summary_counts_statuses_and_acts(clients: Any) -> None:
    call = await admitted_call(clients)
    billing = (await (await end(call)).json())["billing"]
    cancelled = await create_consultation(call.doctor_http, call.csrf)
    response = await call.doctor_http.post(
        f"/api/consultations/{cancelled['id']}/cancel", headers={"X-CSRF-Token": call.csrf}
    )
    assert response.status == 200
    month = billing["act_date"][:7]
    summary = await (await call.doctor_http.get(f"/api/billing/summary?month={month}")).json()
    assert summary["statuses"]["completed"] == 1 and summary["statuses"]["cancelled"] == 1
    assert summary["statuses"]["no_show"] == 0
    assert summary["acts"] == [{"code": "TCG", "count": 1, "total_cents": 2500}] and summary["total_cents"] == 2500
    bad = await call.doctor_http.get("/api/billing/summary?month=2026-13")
    assert bad.status == 400


async def test_another_doctor_sees_no_billing_of_this_consultation(clients: Any) -> None:
    call = await admitted_call(clients)
    cid = call.consultation["id"]
    await end(call)
    from teleconsult.api.keys import DOCTORS

    other = await clients()
    app = other.server.app
    await app[DOCTORS].create_doctor(
        email="bob@example.org", name="Dr Bob", rpps="20202020202", password="another long password"
    )
    csrf = await login(other, "bob@example.org", "another long password")
    for path in (f"/api/consultations/{cid}/billing", f"/api/consultations/{cid}/billing/proposal"):
        assert (await other.get(path)).status == 404
    correction = await other.post(
        f"/api/consultations/{cid}/billing/corrections", json={}, headers={"X-CSRF-Token": csrf}
    )
    assert correction.status == 404
    summary = await (await other.get("/api/billing/summary?month=2026-01")).json()
    assert summary["total_cents"] == 0


async def test_an_appointment_the_patient_never_came_into_closes_as_a_no_show_after_the_grace(clients: Any) -> None:
    doctor_http = await clients()
    csrf = await login(doctor_http)
    soon = upcoming(days=1)
    created = await create_consultation(doctor_http, csrf, scheduled_at=soon.iso)
    later = await create_consultation(doctor_http, csrf, scheduled_at=upcoming(days=5).iso)
    app = doctor_http.server.app
    assert await app[SIGNALING].close_overdue(timedelta(hours=2)) == 0  # not yet
    shift = soon.when - datetime.now(UTC) + timedelta(hours=3)
    SYSTEM.advance(shift)
    try:
        assert await app[SIGNALING].close_overdue(timedelta(hours=2)) == 1
    finally:
        SYSTEM.advance(-shift)
    detail = await (await doctor_http.get(f"/api/consultations/{created['id']}")).json()
    assert detail["status"] == "no_show"
    billing = detail["billing"]
    assert billing["status"] == "no_show" and billing["reason"] == "patient_never_joined" and billing["acts"] == []
    assert billing["recorded_by"] == "system:no-show"
    untouched = await (await doctor_http.get(f"/api/consultations/{later['id']}")).json()
    assert untouched["status"] == "scheduled" and untouched["billing"] is None


async def test_an_export_is_an_audit_event_that_names_the_range_not_the_content(clients: Any) -> None:
    from sqlalchemy import select

    from teleconsult.app import DATABASE
    from teleconsult.store.models import AuditEvent

    call = await admitted_call(clients)
    await end(call)
    response = await call.doctor_http.get("/api/billing/export?from=2026-01-01&to=2026-12-31&format=csv")
    assert response.status == 200
    await response.read()
    app = call.doctor_http.server.app
    async with app[DATABASE].transaction() as tx:
        events = (await tx.execute(select(AuditEvent).where(AuditEvent.action == "billing.exported"))).scalars().all()
    assert len(events) == 1 and events[0].actor.startswith("doctor:")
    assert '"from": "2026-01-01"' in (events[0].detail or "") and "Jeanne" not in (events[0].detail or "")
