"""Consultations: creation with invitations, the doctor's list, tickets, the lifecycle, and ending with billing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from teleconsult import billing
from teleconsult.config import Settings
from teleconsult.doctors import EMAIL, normalise_email
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import hash_token, new_id
from teleconsult.invitations import issue_invitation, join_link
from teleconsult.lifecycle import CLOSED, Status, closing_status, sources
from teleconsult.rooms import Role
from teleconsult.store import Database, Tx, audit
from teleconsult.store import billing as billing_store
from teleconsult.store import consultations as store
from teleconsult.store import doctors as doctor_store
from teleconsult.store.models import BillingRecord, Consultation, Doctor, Participant, utcnow
from teleconsult.tickets import consume_ticket, issue_ticket

PAGE_SIZE = 50
NAME_MAX = 200


@dataclass(frozen=True, slots=True)
class NewConsultation:
    patient_name: str
    patient_email: str
    scheduled_at: datetime | None = None
    reason: str | None = None
    nurse_name: str | None = None
    nurse_email: str | None = None
    language: str = "fr"

    def validated(self) -> NewConsultation:
        patient_name = self.patient_name.strip()
        if not patient_name or len(patient_name) > NAME_MAX:
            raise TeleconsultError(ErrorCode.BAD_REQUEST, "The patient's name is required.")
        patient_email = normalise_email(self.patient_email)
        if not EMAIL.match(patient_email):
            raise TeleconsultError(ErrorCode.BAD_REQUEST, "The patient's email address is invalid.")
        nurse_name = (self.nurse_name or "").strip() or None
        nurse_email = normalise_email(self.nurse_email) if self.nurse_email else None
        if (nurse_name is None) != (nurse_email is None):
            raise TeleconsultError(ErrorCode.BAD_REQUEST, "A nurse needs both a name and an email address.")
        if nurse_email is not None and not EMAIL.match(nurse_email):
            raise TeleconsultError(ErrorCode.BAD_REQUEST, "The nurse's email address is invalid.")
        if self.scheduled_at is not None and self.scheduled_at.tzinfo is None:
            raise TeleconsultError(ErrorCode.BAD_REQUEST, "scheduled_at needs a time zone offset.")
        if self.language not in ("fr", "en"):
            raise TeleconsultError(ErrorCode.BAD_REQUEST, "language is fr or en.")
        return NewConsultation(
            patient_name, patient_email, self.scheduled_at, self.reason, nurse_name, nurse_email, self.language
        )


@dataclass(frozen=True, slots=True)
class Created:
    consultation: Consultation
    patient_link: str
    nurse_link: str | None


@dataclass(frozen=True, slots=True)
class Seat:
    """Who a consumed ticket lets in."""

    participant: Participant
    consultation: Consultation
    doctor_name: str


class ConsultationService:
    def __init__(self, db: Database, settings: Settings):
        self._db = db
        self._settings = settings

    async def create(self, doctor: Doctor, new: NewConsultation) -> Created:
        new = new.validated()
        now = utcnow()
        consultation = Consultation(
            id=new_id("c"),
            doctor_id=doctor.id,
            status=Status.SCHEDULED.value,
            reason=new.reason,
            scheduled_at=new.scheduled_at,
            language=new.language,
            created_at=now,
        )
        seats = [
            Participant(
                id=new_id("u"),
                consultation_id=consultation.id,
                role=Role.DOCTOR.value,
                name=doctor.name,
                email=doctor.email,
                doctor_id=doctor.id,
            ),
            Participant(
                id=new_id("u"),
                consultation_id=consultation.id,
                role=Role.PATIENT.value,
                name=new.patient_name,
                email=new.patient_email,
            ),
        ]
        if new.nurse_name and new.nurse_email:
            seats.append(
                Participant(
                    id=new_id("u"),
                    consultation_id=consultation.id,
                    role=Role.NURSE.value,
                    name=new.nurse_name,
                    email=new.nurse_email,
                )
            )
        async with self._db.transaction() as tx:
            await store.add_consultation(tx, consultation, seats)
            links = {
                seat.role: join_link(
                    self._settings, await issue_invitation(tx, self._settings, consultation, seat, now)
                )
                for seat in seats
                if seat.role != Role.DOCTOR.value
            }
            await audit.add_event(
                tx, action="consultation.created", actor=f"doctor:{doctor.id}", consultation_id=consultation.id
            )
            await tx.refresh(consultation, ["participants", "billing"])
        return Created(consultation, links[Role.PATIENT.value], links.get(Role.NURSE.value))

    async def list_for_doctor(
        self, doctor: Doctor, *, limit: int = PAGE_SIZE, before: tuple[datetime, str] | None = None
    ) -> list[Consultation]:
        async with self._db.transaction() as tx:
            return list(await store.consultations_for_doctor(tx, doctor.id, limit=limit, before=before))

    async def get_for_doctor(self, doctor: Doctor, consultation_id: str) -> Consultation:
        async with self._db.transaction() as tx:
            return await self._owned(tx, doctor, consultation_id)

    async def ticket_for_doctor(self, doctor: Doctor, consultation_id: str) -> str:
        async with self._db.transaction() as tx:
            consultation = await self._owned(tx, doctor, consultation_id)
            _require_open(consultation)
            seat = await store.doctor_participant(tx, consultation.id)
            if seat is None:
                raise TeleconsultError(ErrorCode.NOT_FOUND)
            return await issue_ticket(tx, self._settings, seat.id, utcnow())

    async def participant_for_credential(self, credential: str, consultation_id: str) -> Participant:
        async with self._db.transaction() as tx:
            participant = await store.participant_by_credential(tx, hash_token(credential))
        if participant is None or participant.consultation_id != consultation_id:
            raise TeleconsultError(ErrorCode.UNAUTHORIZED)
        return participant

    async def ticket_for_participant(self, credential: str, consultation_id: str) -> str:
        participant = await self.participant_for_credential(credential, consultation_id)
        async with self._db.transaction() as tx:
            consultation = await store.consultation_by_id(tx, consultation_id)
            if consultation is None:
                raise TeleconsultError(ErrorCode.NOT_FOUND)
            _require_open(consultation)
            return await issue_ticket(tx, self._settings, participant.id, utcnow())

    async def open_ticket(self, ticket: str) -> Seat:
        """Consume a ticket (single use) and say whose seat it opens."""
        async with self._db.transaction() as tx:
            participant_id = await consume_ticket(tx, ticket, utcnow())
            participant = await store.participant_by_id(tx, participant_id) if participant_id else None
            if participant is None:
                raise TeleconsultError(ErrorCode.UNAUTHORIZED, "Unknown, expired or already used ticket.")
            consultation = await store.consultation_by_id(tx, participant.consultation_id)
            if consultation is None:
                raise TeleconsultError(ErrorCode.NOT_FOUND)
            _require_open(consultation)
            doctor = await doctor_store.doctor_by_id(tx, consultation.doctor_id)
        return Seat(participant, consultation, doctor.name if doctor else "")

    # --- lifecycle, driven by the signaling service --------------------------------------------------------------

    async def participant_joined(self, participant: Participant) -> None:
        now = utcnow()
        async with self._db.transaction() as tx:
            await store.update_participant(tx, participant.id, joined_at=now, left_at=None)
            if participant.role != Role.DOCTOR.value:
                await store.set_status(
                    tx, participant.consultation_id, Status.WAITING, allowed_from=sources(Status.WAITING)
                )

    async def participant_admitted(self, participant_id: str, consultation_id: str, *, in_progress: bool) -> None:
        now = utcnow()
        async with self._db.transaction() as tx:
            await store.update_participant(tx, participant_id, admitted_at=now)
            if in_progress:
                await store.set_status(
                    tx, consultation_id, Status.IN_PROGRESS, allowed_from=sources(Status.IN_PROGRESS), started_at=now
                )

    async def participant_sent_away(self, participant_id: str) -> None:
        """Denied or removed: the seat must be admitted again to come back."""
        async with self._db.transaction() as tx:
            await store.update_participant(tx, participant_id, admitted_at=None, left_at=utcnow())

    async def participant_left(self, participant_id: str) -> None:
        async with self._db.transaction() as tx:
            await store.update_participant(tx, participant_id, left_at=utcnow())

    async def end(self, consultation_id: str, doctor_id: str) -> BillingRecord | None:
        """End the consultation; the billing record is written once, in the same transaction.

        Ending twice returns the same record. A consultation the patient never joined closes as ``no_show``
        and bills nothing.
        """
        now = utcnow()
        async with self._db.transaction() as tx:
            consultation = await store.consultation_by_id(tx, consultation_id)
            if consultation is None or consultation.doctor_id != doctor_id:
                raise TeleconsultError(ErrorCode.NOT_FOUND)
            target = closing_status(started=consultation.status == Status.IN_PROGRESS)
            won = await store.set_status(tx, consultation_id, target, allowed_from=sources(target), ended_at=now)
            if not won:
                return await self._existing_record(tx, consultation_id)
            await tx.refresh(consultation)
            record = None
            if target is Status.ENDED:
                doctor = await doctor_store.doctor_by_id(tx, doctor_id)
                assert doctor is not None  # a consultation's doctor cannot be deleted (foreign key)
                built, acts = billing.build_record(
                    consultation,
                    doctor,
                    ended_at=now,
                    doctor_act=self._settings.doctor_act,
                    nurse_act=self._settings.nurse_act,
                )
                record = await billing_store.add_billing_record(tx, built, acts)
            await audit.add_event(
                tx, action=f"consultation.{target.value}", actor=f"doctor:{doctor_id}", consultation_id=consultation_id
            )
            return record

    async def _existing_record(self, tx: Tx, consultation_id: str) -> BillingRecord | None:
        consultation = await store.consultation_by_id(tx, consultation_id)
        assert consultation is not None
        await tx.refresh(consultation)
        if Status(consultation.status) not in CLOSED:
            raise TeleconsultError(ErrorCode.CONFLICT)
        return await billing_store.billing_for_consultation(tx, consultation_id)

    async def _owned(self, tx: Tx, doctor: Doctor, consultation_id: str) -> Consultation:
        consultation = await store.consultation_by_id(tx, consultation_id)
        if consultation is None or consultation.doctor_id != doctor.id:
            raise TeleconsultError(ErrorCode.NOT_FOUND)  # never tell another doctor's consultation exists
        return consultation


def _require_open(consultation: Consultation) -> None:
    if Status(consultation.status) in CLOSED:
        raise TeleconsultError(ErrorCode.ENDED)
