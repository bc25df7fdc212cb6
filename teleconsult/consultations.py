"""Consultations: creation with invitations, the doctor's list, tickets, the lifecycle, and ending with billing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeGuard

from teleconsult import billing
from teleconsult.batching import GroupCommit
from teleconsult.config import Settings
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import hash_token, looks_like_token, new_id
from teleconsult.invitations import invitation_expiry, issue_invitation, join_link
from teleconsult.lifecycle import CLOSED, Status, closing_status, sources
from teleconsult.notifications import Letter
from teleconsult.outbox import Outbox
from teleconsult.rooms import Role
from teleconsult.store import Database, Tx, audit
from teleconsult.store import billing as billing_store
from teleconsult.store import consultations as store
from teleconsult.store import doctors as doctor_store
from teleconsult.store import invitations as invitation_store
from teleconsult.store import outbox as outbox_store
from teleconsult.store.models import BillingRecord, Consultation, Doctor, Participant, utcnow
from teleconsult.tickets import consume_ticket, issue_ticket
from teleconsult.validation import appointment, display_name, invalid, mailbox, optional_text

PAGE_SIZE = 50
NOT_RESUMABLE = "Unknown, used or expired resume token."
#: The most callers one group-commit transaction serves (resumes, rooms rebuilt).
BATCH = 500
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
class Seat:
    """Who a consumed ticket or resume token lets in: plain values, so that a live connection (thousands per node)
    holds no ORM objects."""

    participant_id: str
    consultation_id: str
    doctor_id: str
    role: str
    name: str
    admitted_at: datetime | None
    pre_admitted: bool
    peer_id: str | None
    away_since: datetime | None

    @classmethod
    def of(cls, participant: Participant, consultation: Consultation) -> Seat:
        return cls(
            participant_id=participant.id,
            consultation_id=consultation.id,
            doctor_id=consultation.doctor_id,
            role=participant.role,
            name=participant.name,
            admitted_at=participant.admitted_at,
            pre_admitted=participant.pre_admitted,
            peer_id=participant.peer_id,
            away_since=participant.away_since,
        )


class ConsultationService:
    def __init__(self, db: Database, settings: Settings, outbox: Outbox):
        self._db = db
        self._settings = settings
        self._outbox = outbox
        self._resumes: GroupCommit[tuple[str, str], Seat] = GroupCommit(self._resume_batch, max_batch=BATCH)
        self._held: GroupCommit[str, list[Seat]] = GroupCommit(self._held_batch, max_batch=BATCH)

    async def create(self, doctor: Doctor, new: NewConsultation) -> Created:
        now = utcnow()
        new = new.validated(now)
        if len(new.guests) > self._settings.guest_seats:
            raise TeleconsultError(
                ErrorCode.BAD_REQUEST, f"This server allows {self._settings.guest_seats} guest(s) per consultation."
            )
        consultation = Consultation(
            id=new_id("c"),
            doctor_id=doctor.id,
            status=Status.SCHEDULED.value,
            reason=new.reason,
            scheduled_at=new.scheduled_at,
            language=new.language,
            created_at=now,
        )

        def seat(role: Role, name: str, email: str, **extra: object) -> Participant:
            return Participant(
                id=new_id("u"), consultation_id=consultation.id, role=role.value, name=name, email=email, **extra
            )

        doctor_seat = seat(Role.DOCTOR, doctor.name, doctor.email, doctor_id=doctor.id)
        patient = seat(Role.PATIENT, new.patient_name, new.patient_email)
        nurse = (
            seat(Role.NURSE, new.nurse_name, new.nurse_email, pre_admitted=new.nurse_pre_admitted)
            if new.nurse_name and new.nurse_email
            else None
        )
        guests = [seat(Role.GUEST, g.name, g.email) for g in new.guests]
        invited = [patient, *([nurse] if nurse else []), *guests]
        async with self._db.transaction() as tx:
            await store.add_consultation(tx, consultation, [doctor_seat, *invited])
            await tx.flush()
            await tx.refresh(consultation, ["participants"])
            links = {}
            for participant in invited:
                invitation, token = await issue_invitation(tx, self._settings, consultation, participant, now)
                links[participant.id] = join_link(self._settings, token)
                letter = Letter("invitation", consultation, doctor, participant, links[participant.id])
                await self._outbox.enqueue(tx, letter, invitation_id=invitation.id)
            await audit.add_event(
                tx, action="consultation.created", actor=f"doctor:{doctor.id}", consultation_id=consultation.id
            )
            await tx.flush()
            await tx.refresh(consultation, ["participants", "billing", "invitations", "mails"])
        self._outbox.wake()
        return Created(
            consultation, links[patient.id], links[nurse.id] if nurse else None, tuple(links[g.id] for g in guests)
        )

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

    async def ticket_for_participant(self, credential: str, consultation_id: str) -> str:
        async with self._db.transaction() as tx:
            participant = await store.participant_by_credential(tx, hash_token(credential))
            if participant is None or participant.consultation_id != consultation_id:
                raise TeleconsultError(ErrorCode.UNAUTHORIZED)
            consultation = await store.consultation_alone(tx, consultation_id)
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
            return await self._seat_of(tx, participant)

    async def _seat_of(self, tx: Tx, participant: Participant) -> Seat:
        consultation = await store.consultation_alone(tx, participant.consultation_id)
        if consultation is None:
            raise TeleconsultError(ErrorCode.NOT_FOUND)
        _require_open(consultation)
        return Seat.of(participant, consultation)

    # --- seats and the lifecycle, driven by the signaling service ----------------------------------------------

    async def seat_taken(self, seat: Seat, peer_id: str, resume_token: str, *, admitted: bool) -> None:
        """A connection now holds this seat; the resume token lets the same client come back after a drop."""
        now = utcnow()
        values: dict[str, object] = {
            "joined_at": now,
            "left_at": None,
            "peer_id": peer_id,
            "resume_hash": hash_token(resume_token),
            "away_since": None,
        }
        if admitted and seat.admitted_at is None:
            values["admitted_at"] = now
        async with self._db.transaction() as tx:
            await store.update_participant(tx, seat.participant_id, **values)
            if seat.role != Role.DOCTOR.value:
                await store.set_status(tx, seat.consultation_id, Status.WAITING, allowed_from=sources(Status.WAITING))

    async def resume_seat(self, resume_token: str, fresh_token: str) -> Seat:
        """The seat a resume token holds, if the consultation is open and the grace period has not run out.

        The token is spent in the same transaction (``fresh_token`` replaces it), so two sockets racing with one
        token cannot both resume. Resumes arriving together (a restarted node) share one transaction.
        """
        if not looks_like_token(resume_token):
            raise TeleconsultError(ErrorCode.UNAUTHORIZED, NOT_RESUMABLE)
        return await self._resumes((hash_token(resume_token), hash_token(fresh_token)))

    async def _resume_batch(self, spends: list[tuple[str, str]]) -> list[Seat | Exception]:
        """``(presented hash, fresh hash)`` each: the seat, or why it cannot be resumed."""
        deadline = utcnow() - timedelta(seconds=self._settings.resume_grace_s)
        outcomes: list[Seat | Exception] = []
        async with self._db.transaction() as tx:
            held = {p.resume_hash: (p, c) for p, c in await store.resumable(tx, [presented for presented, _ in spends])}
            changes = []
            for presented, fresh in spends:
                participant, consultation = held.pop(presented, (None, None))  # a token spent once per batch too
                try:
                    seat = _resumable(participant, consultation, deadline)
                except TeleconsultError as refused:
                    outcomes.append(refused)
                    continue
                changes.append((seat.participant_id, presented, fresh))
                outcomes.append(seat)
            await store.replace_resume_hashes(tx, changes)
        return outcomes

    async def seats_held(self, consultation_id: str) -> list[Seat]:
        """The seats with a live or resumable connection (rooms rebuilt together share one query)."""
        return await self._held(consultation_id)

    async def _held_batch(self, consultation_ids: list[str]) -> list[list[Seat] | Exception]:
        async with self._db.transaction() as tx:
            rows = await store.seats_held_in(tx, set(consultation_ids))
        seats: dict[str, list[Seat]] = {}
        for participant, consultation in rows:
            seats.setdefault(consultation.id, []).append(Seat.of(participant, consultation))
        return [seats.get(consultation_id, []) for consultation_id in consultation_ids]

    async def participants_away(self, participant_ids: list[str]) -> None:
        async with self._db.transaction() as tx:
            await store.mark_away(tx, participant_ids, utcnow())

    async def participant_admitted(self, participant_id: str, consultation_id: str, *, in_progress: bool) -> None:
        now = utcnow()
        async with self._db.transaction() as tx:
            await store.update_participant(tx, participant_id, admitted_at=now)
            if in_progress:
                await store.set_status(
                    tx, consultation_id, Status.IN_PROGRESS, allowed_from=sources(Status.IN_PROGRESS), started_at=now
                )

    async def participant_returned(self, participant_id: str) -> None:
        """Sent back to the waiting room: still connected, no longer admitted."""
        async with self._db.transaction() as tx:
            await store.update_participant(tx, participant_id, admitted_at=None, pre_admitted=False)

    async def seat_released(self, participant_id: str, *, sent_away: bool = False) -> None:
        """The connection is gone for good (left, timed out, denied or removed); denied or removed seats must be
        admitted again to come back."""
        values: dict[str, object] = {"left_at": utcnow(), "peer_id": None, "resume_hash": None, "away_since": None}
        if sent_away:
            values |= {"admitted_at": None, "pre_admitted": False}
        async with self._db.transaction() as tx:
            await store.update_participant(tx, participant_id, **values)

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
            await store.release_seats(tx, consultation_id)
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

    async def cancel(self, doctor: Doctor, consultation_id: str) -> Consultation:
        """Cancel before it took place: every link is revoked and the invited are told by mail."""
        now = utcnow()
        async with self._db.transaction() as tx:
            consultation = await self._owned(tx, doctor, consultation_id)
            if not await store.set_status(
                tx, consultation_id, Status.CANCELLED, allowed_from=sources(Status.CANCELLED), ended_at=now
            ):
                raise TeleconsultError(ErrorCode.CONFLICT, "Only a consultation that has not started can be cancelled.")
            await invitation_store.revoke(tx, consultation_id, now)
            await store.release_seats(tx, consultation_id)
            await outbox_store.cancel_queued(tx, consultation_id, None, now)
            await tx.refresh(consultation)
            for participant in consultation.participants:
                if participant.role != Role.DOCTOR.value and participant.email:
                    await self._outbox.enqueue(
                        tx, Letter("cancellation", consultation, doctor, participant, None, sequence=1)
                    )
            await audit.add_event(
                tx, action="consultation.cancelled", actor=f"doctor:{doctor.id}", consultation_id=consultation_id
            )
            await tx.flush()
            await tx.refresh(consultation, ["participants", "billing", "invitations", "mails"])
        self._outbox.wake()
        return consultation

    async def resend(
        self, doctor: Doctor, consultation_id: str, participant_id: str, *, email: str | None = None
    ) -> str:
        """A new link for one invited participant, mailed again; the old link stops working, and so does everything
        obtained with it."""
        now = utcnow()
        async with self._db.transaction() as tx:
            consultation = await self._owned(tx, doctor, consultation_id)
            _require_open(consultation)
            participant = next((p for p in consultation.participants if p.id == participant_id), None)
            if participant is None or participant.role == Role.DOCTOR.value:
                raise TeleconsultError(ErrorCode.NOT_FOUND, "No such invited participant.")
            if invitation_expiry(self._settings, consultation, now) <= now:
                raise TeleconsultError(
                    ErrorCode.CONFLICT, "The appointment is more than a day past: create a new consultation."
                )
            # A corrected address (the doctor fixes a typo), or the stored one, checked again: a row written before
            # addresses were checked strictly is refused here rather than sent.
            participant.email = mailbox(email if email is not None else participant.email or "", field="email")
            await invitation_store.revoke(tx, consultation_id, now, participant.id)
            # What the old link gave is taken back with it: the participant cookie, unused tickets, the right to
            # resume, and the admission (whoever comes with the new link waits for the doctor). The live socket
            # is cut by the signaling service (``link_revoked``).
            await store.update_participant(tx, participant.id, credential_hash=None, resume_hash=None, admitted_at=None)
            await invitation_store.revoke_tickets(tx, participant.id, now)
            await outbox_store.cancel_queued(tx, consultation_id, participant.id, now)
            invitation, token = await issue_invitation(tx, self._settings, consultation, participant, now)
            link = join_link(self._settings, token)
            await self._outbox.enqueue(
                tx, Letter("invitation", consultation, doctor, participant, link), invitation_id=invitation.id
            )
            await audit.add_event(
                tx,
                action="invitation.resent",
                actor=f"doctor:{doctor.id}",
                consultation_id=consultation_id,
                detail={"participant": participant.id, "address_changed": email is not None},
            )
        self._outbox.wake()
        return link

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


def _resumable(participant: Participant | None, consultation: Consultation | None, deadline: datetime) -> Seat:
    """The seat to resume; raises if the token is unknown or spent, its grace period is over, or the consultation
    has closed."""
    expired = participant is not None and participant.away_since is not None and participant.away_since <= deadline
    if participant is None or consultation is None or participant.peer_id is None or expired:
        raise TeleconsultError(ErrorCode.UNAUTHORIZED, NOT_RESUMABLE)
    _require_open(consultation)
    return Seat.of(participant, consultation)


def _require_open(consultation: Consultation) -> None:
    if Status(consultation.status) in CLOSED:
        raise TeleconsultError(ErrorCode.ENDED)
