"""The billing acts and the record built when a consultation ends, as pure code."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from teleconsult.billing import ACTS, act, build_record
from teleconsult.domain import Consultation, ConsultationCore, Doctor, Participant
from teleconsult.ids import ConsultationId, DoctorId, ParticipantId
from teleconsult.rooms import Role

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DOCTOR = Doctor(DoctorId("d_1"), "dr@example.org", "Dr Alice Martin", "10101010101", None)


def seat(role: str, name: str, *, admitted: bool) -> Participant:
    return Participant(
        id=ParticipantId(f"u_{role}"),
        consultation_id=ConsultationId("c_1"),
        role=role,
        name=name,
        email=None,
        consent_at=None,
        joined_at=START,
        admitted_at=START if admitted else None,
        left_at=None,
        pre_admitted=False,
        peer_id=None,
        away_since=None,
        created_at=START,
    )


def consultation(*participants: Participant, started_at: datetime | None = START) -> Consultation:
    core = ConsultationCore(
        id=ConsultationId("c_1"),
        doctor_id=DOCTOR.id,
        status="in_progress",
        reason=None,
        language="fr",
        scheduled_at=None,
        created_at=START,
        started_at=started_at,
        ended_at=None,
    )
    return Consultation.of(core, participants=participants, invitations=(), mails=(), billing=None)


def test_a_doctor_alone_bills_the_doctors_act_for_the_time_spent() -> None:
    patient = seat("patient", "Jeanne Dupont", admitted=True)
    record = build_record(
        consultation(patient),
        DOCTOR,
        ended_at=START + timedelta(minutes=12, seconds=34.6),
        doctor_act="TCG",
        nurse_act="TLS",
    )
    assert [(a.role, a.act_code, a.amount_cents, a.performer_name) for a in record.acts] == [
        ("doctor", "TCG", 2500, "Dr Alice Martin")
    ]
    assert record.total_cents == 2500 and record.currency == "EUR" and record.duration_s == 755
    assert record.patient_name == "Jeanne Dupont" and record.doctor_rpps == "10101010101"


@pytest.mark.parametrize(("code", "cents"), [("TLS", 1000), ("TLL", 1200), ("TLD", 1500)])
def test_an_admitted_nurse_adds_her_act(code: str, cents: int) -> None:
    people = (seat("patient", "Jeanne", admitted=True), seat("nurse", "Inès Robert", admitted=True))
    record = build_record(consultation(*people), DOCTOR, ended_at=START, doctor_act="TCG", nurse_act=code)
    assert [a.act_code for a in record.acts] == ["TCG", code]
    assert record.acts[1].performer_name == "Inès Robert" and record.total_cents == 2500 + cents


def test_a_nurse_who_was_never_admitted_is_not_billed() -> None:
    people = (seat("patient", "Jeanne", admitted=True), seat("nurse", "Inès", admitted=False))
    record = build_record(consultation(*people), DOCTOR, ended_at=START, doctor_act="TCG", nurse_act="TLS")
    assert [a.act_code for a in record.acts] == ["TCG"]


def test_a_consultation_that_never_started_lasts_zero_seconds() -> None:
    record = build_record(consultation(started_at=None), DOCTOR, ended_at=START, doctor_act="TCG", nurse_act="TLS")
    assert record.duration_s == 0 and record.started_at == record.ended_at and record.patient_name == ""


def test_an_act_belongs_to_one_role() -> None:
    assert act("TCG", Role.DOCTOR).amount_cents == 2500
    with pytest.raises(ValueError, match="not a nurse act"):
        act("TCG", Role.NURSE)
    with pytest.raises(ValueError, match="not a doctor act"):
        act("TLS", Role.DOCTOR)
    with pytest.raises(ValueError):
        act("XYZ", Role.DOCTOR)
    assert {a.code for a in ACTS.values() if a.role is Role.NURSE} == {"TLS", "TLL", "TLD"}


def test_records_are_values() -> None:
    record = build_record(consultation(), DOCTOR, ended_at=START, doctor_act="TCG", nurse_act="TLS")
    with pytest.raises(AttributeError):
        record.total_cents = 0  # type: ignore[misc]
    assert replace(record, total_cents=0).total_cents == 0 and record.total_cents == 2500
