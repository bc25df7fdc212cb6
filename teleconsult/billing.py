"""Billing: the French acts a teleconsultation produces, and the record written when it ends.

Amounts follow the NGAP/convention tariffs at the time of writing (TCG for the doctor; TLS, TLL, TLD for a nurse
assisting the patient) and are kept in cents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from teleconsult.ids import new_id
from teleconsult.rooms import Role
from teleconsult.store.models import BillingAct, BillingRecord, Consultation, Doctor, Participant


@dataclass(frozen=True, slots=True)
class Act:
    code: str
    label_fr: str
    amount_cents: int
    role: Role


ACTS: dict[str, Act] = {
    act.code: act
    for act in (
        Act("TCG", "Téléconsultation du médecin généraliste", 2500, Role.DOCTOR),
        Act("TC", "Téléconsultation du médecin spécialiste", 2500, Role.DOCTOR),
        Act("TLS", "Accompagnement infirmier à la téléconsultation au décours d'un soin", 1000, Role.NURSE),
        Act("TLL", "Accompagnement infirmier à la téléconsultation à domicile, hors soin", 1200, Role.NURSE),
        Act("TLD", "Accompagnement infirmier à la téléconsultation dans un lieu dédié", 1500, Role.NURSE),
    )
}


def act(code: str, role: Role) -> Act:
    found = ACTS.get(code)
    if found is None or found.role is not role:
        raise ValueError(f"{code!r} is not a {role} act")
    return found


def build_record(
    consultation: Consultation,
    doctor: Doctor,
    *,
    ended_at: datetime,
    doctor_act: str,
    nurse_act: str,
) -> tuple[BillingRecord, list[BillingAct]]:
    """The record and its acts: the doctor's act, plus the nurse's when a nurse was admitted."""
    started_at = consultation.started_at or ended_at
    patient = _first(consultation.participants, Role.PATIENT)
    acts = [_line(act(doctor_act, Role.DOCTOR), doctor.name)]
    nurse = _first(consultation.participants, Role.NURSE)
    if nurse is not None and nurse.admitted_at is not None:
        acts.append(_line(act(nurse_act, Role.NURSE), nurse.name))
    record = BillingRecord(
        id=new_id("b"),
        consultation_id=consultation.id,
        doctor_id=doctor.id,
        doctor_name=doctor.name,
        doctor_rpps=doctor.rpps,
        patient_name=patient.name if patient is not None else "",
        started_at=started_at,
        ended_at=ended_at,
        duration_s=max(0, round((ended_at - started_at).total_seconds())),
        total_cents=sum(line.amount_cents for line in acts),
        currency="EUR",
    )
    return record, acts


def _line(found: Act, performer: str) -> BillingAct:
    return BillingAct(
        role=found.role.value, performer_name=performer, act_code=found.code, amount_cents=found.amount_cents
    )


def _first(participants: list[Participant], role: Role) -> Participant | None:
    return next((p for p in participants if p.role == role.value), None)
