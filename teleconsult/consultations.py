"""Consultations: creation with their invitations, the doctor's list and view, cancelling, and ending (which the
billing service records in the same transaction)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeGuard

from teleconsult.billing import BillingChoice, BillingService
from teleconsult.clock import now as clock_now
from teleconsult.domain import BillingRecord, Consultation, ConsultationCore, Doctor, Participant
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import ConsultationId, ParticipantId, new_id
from teleconsult.invitations import Links
from teleconsult.lifecycle import CLOSED, Status, closing_status, sources
from teleconsult.notifications import Letter
from teleconsult.outbox import Outbox
from teleconsult.rooms import Role
from teleconsult.store import Database, Tx, audit
from teleconsult.store import consultations as store
from teleconsult.store import doctors as doctor_store
from teleconsult.store import invitations as invitation_store
from teleconsult.store import outbox as outbox_store
from teleconsult.store.billing import AlreadyRecorded
from teleconsult.validation import appointment, display_name, invalid, mailbox, optional_text

PAGE_SIZE = 50
REASON_MAX = 2000


@dataclass(frozen=True, slots=True)
class Invitee:
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class NewConsultation:
    patient_name: str
    patient_email: str
    scheduled_at: datetime | None = None
    reason: str | None = None
    nurse_name: str | None = None
    nurse_email: str | None = None
    language: str = "fr"
    #: The nurse skips the waiting room (she is beside the patient, expected).
    nurse_pre_admitted: bool = False
    #: Extra seats: a relative, an interpreter (up to the server's ``guest_seats``).
    guests: tuple[Invitee, ...] = ()

    def validated(self, now: datetime) -> NewConsultation:
        """Names as display text, addresses as single mailboxes, the time as a real future appointment."""
        patient_name = display_name(self.patient_name, field="patient_name")
        patient_email = mailbox(self.patient_email, field="patient_email")
        nurse_name = display_name(self.nurse_name, field="nurse_name") if _given(self.nurse_name) else None
        nurse_email = mailbox(self.nurse_email, field="nurse_email") if _given(self.nurse_email) else None
        if (nurse_name is None) != (nurse_email is None):
            raise invalid(
                "nurse_email" if nurse_email is None else "nurse_name",
                "nurse_incomplete",
                "A nurse needs both a name and an email address.",
            )
        if self.language not in ("fr", "en"):
            raise invalid("language", "language", "language is fr or en.")
        if self.nurse_pre_admitted and nurse_name is None:
            raise invalid("nurse_pre_admitted", "nurse_incomplete", "nurse_pre_admitted needs a nurse.")
        return dataclasses.replace(
            self,
            patient_name=patient_name,
            patient_email=patient_email,
            nurse_name=nurse_name,
            nurse_email=nurse_email,
            scheduled_at=appointment(self.scheduled_at, field="scheduled_at", now=now),
            reason=optional_text(self.reason, field="reason", max_length=REASON_MAX),
            guests=tuple(_invitee(g, n) for n, g in enumerate(self.guests)),
        )


def _given(value: str | None) -> TypeGuard[str]:
    return bool(value and value.strip())


def _invitee(guest: Invitee, position: int) -> Invitee:
    return Invitee(
        display_name(guest.name, field=f"guests[{position}].name"),
        mailbox(guest.email, field=f"guests[{position}].email"),
    )


@dataclass(frozen=True, slots=True)
class Created:
    consultation: Consultation
    patient_link: str
    nurse_link: str | None
    guest_links: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ended:
    status: Status
    billing: BillingRecord | None


class ConsultationService:
    def __init__(self, db: Database, links: Links, outbox: Outbox, billing: BillingService, *, guest_seats: int):
        self._db = db
        self._links = links
        self._outbox = outbox
        self._billing = billing
        self._guest_seats = guest_seats

    async def create(self, doctor: Doctor, new: NewConsultation) -> Created:
        now = clock_now()
        new = new.validated(now)
        if len(new.guests) > self._guest_seats:
            raise TeleconsultError(
                ErrorCode.BAD_REQUEST,
                f"This server allows {self._guest_seats} guest(s) per consultation.",
            )
        core = ConsultationCore(
            id=ConsultationId(new_id("c")),
            doctor_id=doctor.id,
            status=Status.SCHEDULED.value,
            reason=new.reason,
            language=new.language,
            scheduled_at=new.scheduled_at,
            created_at=now,
            started_at=None,
            ended_at=None,
            video_at=None,
        )

        def seat(role: Role, name: str, email: str, *, pre_admitted: bool = False) -> Participant:
            return _new_participant(core, role, name, email, now, pre_admitted=pre_admitted)

        patient = seat(Role.PATIENT, new.patient_name, new.patient_email)
        nurse = (
            seat(Role.NURSE, new.nurse_name, new.nurse_email, pre_admitted=new.nurse_pre_admitted)
            if new.nurse_name and new.nurse_email
            else None
        )
        guests = [seat(Role.GUEST, g.name, g.email) for g in new.guests]
        invited = [patient, *([nurse] if nurse else []), *guests]
        async with self._db.transaction() as tx:
            await store.add_consultation(tx, core, [seat(Role.DOCTOR, doctor.name, doctor.email), *invited])
            consultation = await _reload(tx, core.id)
            links = {}
            for participant in invited:
                invitation_id, links[participant.id] = await self._links.issue(tx, consultation, participant, now)
                letter = Letter("invitation", consultation, doctor, participant, links[participant.id])
                await self._outbox.enqueue(tx, letter, invitation_id=invitation_id)
            await audit.add_event(
                tx, action="consultation.created", actor=f"doctor:{doctor.id}", consultation_id=consultation.id
            )
            consultation = await _reload(tx, core.id)
        self._outbox.wake()
        return Created(
            consultation, links[patient.id], links[nurse.id] if nurse else None, tuple(links[g.id] for g in guests)
        )

    async def list_for_doctor(
        self, doctor: Doctor, *, limit: int = PAGE_SIZE, before: tuple[datetime, str] | None = None
    ) -> list[Consultation]:
        async with self._db.transaction() as tx:
            return await store.consultations_for_doctor(tx, doctor.id, limit=limit, before=before)

    async def get_for_doctor(self, doctor: Doctor, consultation_id: str) -> Consultation:
        async with self._db.transaction() as tx:
            return await owned(tx, doctor, consultation_id)

    async def overdue(self, grace: timedelta, limit: int = 100) -> list[tuple[str, str]]:
        """Appointments whose time passed ``grace`` ago and that never started: ``(consultation id, doctor id)``."""
        async with self._db.transaction() as tx:
            return await store.overdue_appointments(tx, clock_now() - grace, limit)

    async def end(
        self,
        consultation_id: str,
        doctor_id: str,
        choice: BillingChoice | None = None,
        *,
        by: str | None = None,
    ) -> Ended:
        """End the consultation; its billing entry is written once, in the same transaction.

        Ending twice returns the same entry; a choice the billing rules refuse changes nothing. A consultation the
        patient never came into closes as ``no_show`` with an entry that bills nothing and says why.
        """
        now = clock_now()
        try:
            async with self._db.transaction() as tx:
                core = await store.consultation_core(tx, consultation_id)
                if core is None or core.doctor_id != doctor_id:
                    raise TeleconsultError(ErrorCode.NOT_FOUND)
                if Status(core.status) in CLOSED:
                    return await self._already_closed(tx, consultation_id)
                consultation = await _reload(tx, consultation_id)
                doctor = await doctor_store.doctor_by_id(tx, doctor_id)
                assert doctor is not None  # a consultation's doctor cannot be deleted (foreign key)
                draft = self._billing.draft(
                    consultation, doctor, ended_at=now, choice=choice, recorded_by=by or f"doctor:{doctor_id}"
                )
                target = closing_status(started=core.status == Status.IN_PROGRESS)
                won = await store.set_status(tx, consultation_id, target, allowed_from=sources(target), ended_at=now)
                if not won:
                    return await self._already_closed(tx, consultation_id)
                await store.release_seats(tx, consultation_id)
                record = await self._billing.record(tx, draft)
                await audit.add_event(
                    tx,
                    action=f"consultation.{target.value}",
                    actor=by or f"doctor:{doctor_id}",
                    consultation_id=consultation_id,
                )
                return Ended(target, record)
        except AlreadyRecorded:  # another node's end won between our read and our write: theirs stands
            async with self._db.transaction() as tx:
                return await self._already_closed(tx, consultation_id)

    async def video_connected(self, consultation_id: str, actor: str, source: str) -> None:
        """Video flowed between the doctor and the patient: kept once (the first report), for billing."""
        async with self._db.transaction() as tx:
            if await store.set_video_at(tx, consultation_id, clock_now()):
                await audit.add_event(
                    tx,
                    action="media.video_connected",
                    actor=actor,
                    consultation_id=consultation_id,
                    detail={"from": source},
                )

    async def cancel(self, doctor: Doctor, consultation_id: str) -> Consultation:
        """Cancel before it took place: every link is revoked and the invited are told by mail."""
        now = clock_now()
        async with self._db.transaction() as tx:
            await owned(tx, doctor, consultation_id)
            if not await store.set_status(
                tx, consultation_id, Status.CANCELLED, allowed_from=sources(Status.CANCELLED), ended_at=now
            ):
                raise TeleconsultError(ErrorCode.CONFLICT, "Only a consultation that has not started can be cancelled.")
            await invitation_store.revoke(tx, consultation_id, now)
            await store.release_seats(tx, consultation_id)
            await outbox_store.cancel_queued(tx, consultation_id, None, now)
            consultation = await _reload(tx, consultation_id)
            for participant in consultation.participants:
                if participant.role != Role.DOCTOR.value and participant.email:
                    await self._outbox.enqueue(
                        tx, Letter("cancellation", consultation, doctor, participant, None, sequence=1)
                    )
            await audit.add_event(
                tx, action="consultation.cancelled", actor=f"doctor:{doctor.id}", consultation_id=consultation_id
            )
            consultation = await _reload(tx, consultation_id)
        self._outbox.wake()
        return consultation

    async def _already_closed(self, tx: Tx, consultation_id: str) -> Ended:
        consultation = await store.consultation_core(tx, consultation_id)
        assert consultation is not None
        if Status(consultation.status) not in CLOSED:
            raise TeleconsultError(ErrorCode.CONFLICT)
        return Ended(Status(consultation.status), await self._billing.existing(tx, consultation_id))


async def owned(tx: Tx, doctor: Doctor, consultation_id: str) -> Consultation:
    """The doctor's consultation; another doctor's is ``not_found`` (never tell it exists)."""
    consultation = await store.consultation_by_id(tx, consultation_id)
    if consultation is None or consultation.doctor_id != doctor.id:
        raise TeleconsultError(ErrorCode.NOT_FOUND)
    return consultation


async def _reload(tx: Tx, consultation_id: str) -> Consultation:
    consultation = await store.consultation_by_id(tx, consultation_id)
    assert consultation is not None  # written in this transaction
    return consultation


def _new_participant(
    consultation: ConsultationCore, role: Role, name: str, email: str, now: datetime, *, pre_admitted: bool
) -> Participant:
    return Participant(
        id=ParticipantId(new_id("u")),
        consultation_id=consultation.id,
        role=role.value,
        name=name,
        email=email,
        consent_at=None,
        joined_at=None,
        admitted_at=None,
        left_at=None,
        pre_admitted=pre_admitted,
        peer_id=None,
        away_since=None,
        created_at=now,
    )
