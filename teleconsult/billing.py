"""Billing: the French acts a teleconsultation produces, and the record written when it ends.

Amounts follow the NGAP/convention tariffs at the time of writing (TCG for the doctor; TLS, TLL, TLD for a nurse
assisting the patient) and are kept in cents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from teleconsult.config import BillingSettings
from teleconsult.domain import BillingAct, BillingRecord, Consultation, Doctor
from teleconsult.ids import BillingRecordId, new_id
from teleconsult.rooms import Role
from teleconsult.store import Tx
from teleconsult.store import billing as store


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
) -> BillingRecord:
    """The record and its acts: the doctor's act, plus the nurse's when a nurse was admitted."""
    started_at = consultation.started_at or ended_at
    patient = consultation.seat(Role.PATIENT.value)
    acts = [_line(act(doctor_act, Role.DOCTOR), doctor.name)]
    nurse = consultation.seat(Role.NURSE.value)
    if nurse is not None and nurse.admitted_at is not None:
        acts.append(_line(act(nurse_act, Role.NURSE), nurse.name))
    return BillingRecord(
        id=BillingRecordId(new_id("b")),
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
        acts=tuple(acts),
    )


def _line(found: Act, performer: str) -> BillingAct:
    return BillingAct(
        role=found.role.value, performer_name=performer, act_code=found.code, amount_cents=found.amount_cents
    )


class BillingService:
    """Writes the billing record of a consultation that ends, inside the transaction that ends it."""

    def __init__(self, billing: BillingSettings):
        self._doctor_act = billing.doctor_act
        self._nurse_act = billing.nurse_act

    async def record(self, tx: Tx, consultation: Consultation, doctor: Doctor, *, ended_at: datetime) -> BillingRecord:
        built = build_record(
            consultation, doctor, ended_at=ended_at, doctor_act=self._doctor_act, nurse_act=self._nurse_act
        )
        return await store.add_billing_record(tx, built)

    async def existing(self, tx: Tx, consultation_id: str) -> BillingRecord | None:
        return await store.billing_for_consultation(tx, consultation_id)
