"""What a consultation bills, as pure rules: the proposal the doctor sees when ending, and the entry their choice
makes of it.

- The patient never joined, or was never admitted: ``no_show``, nothing billed.
- Video never flowed between the doctor and the patient (as their clients reported it): ``interrupted``, nothing
  billed (a teleconsultation is billed only by video); the doctor may instead mark it not billable.
- Otherwise ``completed``: the doctor's teleconsultation act for their profession (TCG for a generalist), the
  majorations they claim, and the nurse's act for where she was (TLS on a planned visit, TLL in a place dedicated to
  teleconsultation, TLD at the patient's home for a visit made for it) when a nurse was admitted.
- ``not_billable`` with a reason, or ``interrupted`` after a technical failure, whenever the doctor says so.

Every amount is the one in force on the consultation's day (Europe/Paris), not today's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from teleconsult.acts import ActCatalog, BilledBy, NursePlace, Tariff, UnknownAct
from teleconsult.clock import paris_date
from teleconsult.domain import (
    BillingAct,
    BillingRecord,
    BillingStatus,
    Consultation,
    Doctor,
    Modifier,
    Nurse,
)
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import BillingRecordId, new_id
from teleconsult.rooms import Role

#: Why nothing is billed, when the rules (not the doctor) decide it.
PATIENT_NEVER_JOINED = "patient_never_joined"
PATIENT_NEVER_ADMITTED = "patient_never_admitted"
VIDEO_NOT_CONNECTED = "video_not_connected"
TECHNICAL_FAILURE = "technical_failure"
#: The catalog has no confirmed act for the doctor's profession on that day (an operator's acts file can add it).
NO_ACT_IN_FORCE = "no_act_in_force"
DEFAULT_NURSE_PLACE = NursePlace.PLANNED_VISIT


@dataclass(frozen=True, slots=True)
class BillingChoice:
    """What the doctor decided when ending (or correcting); ``None`` keeps the proposal's value."""

    status: BillingStatus | None = None
    doctor_act: str | None = None
    majorations: tuple[str, ...] = ()
    nurse_place: NursePlace | None = None
    nurse_number: str | None = None
    reason: str | None = None
    patient_birth_date: date | None = None
    patient_nir: str | None = None


@dataclass(frozen=True, slots=True)
class Proposal:
    """The entry the consultation would get as things stand, and what the doctor may choose instead."""

    draft: BillingRecord
    doctor_acts: tuple[Tariff, ...]
    majorations: tuple[Tariff, ...]
    nurse_acts: tuple[tuple[NursePlace, Tariff], ...]
    statuses: tuple[BillingStatus, ...] = field(default=())


def billed_by(doctor: Doctor) -> BilledBy:
    return BilledBy.SPECIALIST if doctor.profession == BilledBy.SPECIALIST.value else BilledBy.GENERALIST


def act_day(consultation: Consultation, ended_at: datetime) -> date:
    """The consultation's day in Europe/Paris: when it started, else when it ended."""
    return paris_date(consultation.started_at or ended_at)


def propose(
    catalog: ActCatalog,
    consultation: Consultation,
    doctor: Doctor,
    *,
    ended_at: datetime,
    choice: BillingChoice | None = None,
    recorded_by: str,
    recorded_at: datetime | None = None,
    revision: int = 0,
    corrects: BillingRecordId | None = None,
) -> Proposal:
    """The proposal, with ``choice`` applied to its draft; a choice the rules refuse raises ``bad_request``."""
    choice = choice or BillingChoice()
    day = act_day(consultation, ended_at)
    profession = billed_by(doctor)
    doctor_acts = tuple(catalog.acts_for(profession, day))
    status, reason = _status(consultation, choice)
    acts: tuple[BillingAct, ...] = ()
    nurse = _nurse(consultation, choice)
    doctor_act = _doctor_act(doctor_acts, choice)
    if status is BillingStatus.COMPLETED and doctor_act is None:
        status, reason = BillingStatus.NOT_BILLABLE, NO_ACT_IN_FORCE
    if status is BillingStatus.COMPLETED and doctor_act is not None:
        acts = (_line(catalog, doctor_act, Role.DOCTOR, doctor.name, choice.majorations, day),)
        if nurse is not None:
            nurse_act = catalog.nurse_act(NursePlace(nurse.place), day)
            acts += (_line(catalog, nurse_act, Role.NURSE, nurse.name, (), day),)
    draft = _record(
        consultation,
        doctor,
        status=status,
        reason=reason,
        day=day,
        ended_at=ended_at,
        nurse=nurse,
        acts=acts,
        choice=choice,
        recorded_by=recorded_by,
        recorded_at=recorded_at or ended_at,
        revision=revision,
        corrects=corrects,
    )
    return Proposal(
        draft=draft,
        doctor_acts=doctor_acts,
        majorations=tuple(catalog.majorations_for(doctor_act.code, day)) if doctor_act else (),
        nurse_acts=tuple((place, catalog.nurse_act(place, day)) for place in NursePlace) if nurse else (),
        statuses=_choosable(consultation),
    )


def _status(consultation: Consultation, choice: BillingChoice) -> tuple[BillingStatus, str | None]:
    if consultation.started_at is None:  # the patient was never admitted: whatever the choice, nothing took place
        patient = consultation.seat(Role.PATIENT.value)
        joined = patient is not None and patient.joined_at is not None
        return BillingStatus.NO_SHOW, PATIENT_NEVER_ADMITTED if joined else PATIENT_NEVER_JOINED
    wanted = choice.status
    if wanted is BillingStatus.NO_SHOW:
        raise TeleconsultError(ErrorCode.BAD_REQUEST, "The patient joined: this is not a no-show.", field="status")
    if wanted is BillingStatus.NOT_BILLABLE:
        if not choice.reason:
            raise TeleconsultError(ErrorCode.BAD_REQUEST, "Say why it is not billable.", field="reason")
        return wanted, choice.reason
    if wanted is BillingStatus.INTERRUPTED:
        return wanted, choice.reason or TECHNICAL_FAILURE
    if consultation.video_at is None:
        if wanted is BillingStatus.COMPLETED:
            raise TeleconsultError(
                ErrorCode.BAD_REQUEST,
                "Video never connected between doctor and patient: a teleconsultation cannot be billed without it.",
                field="status",
                detail="video_not_connected",
            )
        return BillingStatus.INTERRUPTED, VIDEO_NOT_CONNECTED
    return BillingStatus.COMPLETED, None


def _choosable(consultation: Consultation) -> tuple[BillingStatus, ...]:
    if consultation.started_at is None:
        return (BillingStatus.NO_SHOW,)
    if consultation.video_at is None:
        return (BillingStatus.INTERRUPTED, BillingStatus.NOT_BILLABLE)
    return (BillingStatus.COMPLETED, BillingStatus.INTERRUPTED, BillingStatus.NOT_BILLABLE)


def _doctor_act(allowed: tuple[Tariff, ...], choice: BillingChoice) -> Tariff | None:
    if choice.doctor_act is None:
        return allowed[0] if allowed else None
    found = next((t for t in allowed if t.code == choice.doctor_act), None)
    if found is None:
        raise TeleconsultError(
            ErrorCode.BAD_REQUEST, "This act is not one your profession may bill.", field="doctor_act"
        )
    return found


def _nurse(consultation: Consultation, choice: BillingChoice) -> Nurse | None:
    seat = consultation.seat(Role.NURSE.value)
    if seat is None or seat.admitted_at is None:
        return None
    place = choice.nurse_place or DEFAULT_NURSE_PLACE
    return Nurse(name=seat.name, number=choice.nurse_number, place=place.value)


def _line(
    catalog: ActCatalog, tariff: Tariff, role: Role, performer: str, majorations: tuple[str, ...], day: date
) -> BillingAct:
    allowed = {t.code: t for t in catalog.majorations_for(tariff.code, day)}
    modifiers = []
    for code in dict.fromkeys(majorations):  # each once, in the order given
        found = allowed.get(code)
        if found is None:
            raise TeleconsultError(
                ErrorCode.BAD_REQUEST, "This majoration does not apply to this act.", field="majorations"
            )
        modifiers.append(Modifier(code=found.code, amount_cents=found.amount_cents, tariff_from=found.valid_from))
    return BillingAct(
        role=role.value,
        performer_name=performer,
        act_code=tariff.code,
        amount_cents=tariff.amount_cents,
        tariff_from=tariff.valid_from,
        modifiers=tuple(modifiers),
    )


def _record(
    consultation: Consultation,
    doctor: Doctor,
    *,
    status: BillingStatus,
    reason: str | None,
    day: date,
    ended_at: datetime,
    nurse: Nurse | None,
    acts: tuple[BillingAct, ...],
    choice: BillingChoice,
    recorded_by: str,
    recorded_at: datetime,
    revision: int,
    corrects: BillingRecordId | None,
) -> BillingRecord:
    patient = consultation.seat(Role.PATIENT.value)
    started_at = consultation.started_at
    duration = max(0, round((ended_at - started_at).total_seconds())) if started_at else 0
    return BillingRecord(
        id=BillingRecordId(new_id("b")),
        consultation_id=consultation.id,
        revision=revision,
        corrects=corrects,
        status=status,
        reason=reason,
        act_date=day,
        doctor_id=doctor.id,
        doctor_name=doctor.name,
        doctor_rpps=doctor.rpps,
        patient_name=patient.name if patient is not None else "",
        patient_birth_date=choice.patient_birth_date,
        patient_nir=choice.patient_nir,
        nurse=nurse,
        scheduled_at=consultation.scheduled_at,
        started_at=started_at,
        ended_at=ended_at,
        duration_s=duration,
        video_connected=consultation.video_at is not None,
        total_cents=sum(act.total_cents for act in acts),
        currency="EUR",
        acts=acts,
        recorded_at=recorded_at,
        recorded_by=recorded_by,
    )


__all__ = ["BillingChoice", "Proposal", "UnknownAct", "propose"]
