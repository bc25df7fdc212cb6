"""Invitation links: issued with a consultation, shown once, stored hashed, exchanged at /api/join.

Opening a link (GET) changes nothing: mail scanners prefetch links. Only ``redeem`` (POST /api/join) acts, and the
doctor still admits from the lobby.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from teleconsult.clock import now as clock_now
from teleconsult.config import AccessSettings
from teleconsult.domain import ConsultationCore, Doctor, Invitation, Participant
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import ConsultationId, InvitationId, ParticipantId, hash_token, looks_like_token, new_id, new_token
from teleconsult.lifecycle import OPEN, Status
from teleconsult.notifications import Letter
from teleconsult.outbox import Outbox
from teleconsult.rooms import Role
from teleconsult.seats import require_open
from teleconsult.store import Database, Tx, audit
from teleconsult.store import consultations as consultation_store
from teleconsult.store import doctors as doctor_store
from teleconsult.store import invitations as store
from teleconsult.store import outbox as outbox_store
from teleconsult.tickets import issue_ticket
from teleconsult.validation import mailbox


class Links:
    """How links are made: their lifetime (``access``) and the address patients reach (``base_url``)."""

    def __init__(self, access: AccessSettings, base_url: str):
        self.access = access
        self.base_url = base_url

    def expiry(self, consultation: ConsultationCore, now: datetime) -> datetime:
        if consultation.scheduled_at is not None:
            return consultation.scheduled_at + timedelta(seconds=self.access.invitation_ttl_after_scheduled_s)
        return now + timedelta(seconds=self.access.invitation_ttl_unscheduled_s)

    def link(self, token: str) -> str:
        return f"{self.base_url}/j/{token}"

    async def issue(
        self, tx: Tx, consultation: ConsultationCore, participant: Participant, now: datetime
    ) -> tuple[InvitationId, str]:
        """Store a new invitation for ``participant``; returns its id and the link (its token is never stored)."""
        token = new_token()
        invitation = Invitation(
            id=InvitationId(new_id("i")),
            consultation_id=consultation.id,
            participant_id=participant.id,
            role=participant.role,
            created_at=now,
            expires_at=self.expiry(consultation, now),
            revoked_at=None,
            redeemed_at=None,
        )
        await store.add_invitation(tx, invitation, hash_token(token))
        await audit.add_event(
            tx,
            action="invitation.issued",
            actor=f"doctor:{consultation.doctor_id}",
            consultation_id=consultation.id,
            detail={"invitation": invitation.id, "participant": participant.id, "role": participant.role},
        )
        return invitation.id, self.link(token)


@dataclass(frozen=True, slots=True)
class Practice:
    """How to reach the doctor, shown to someone whose link no longer works."""

    name: str
    phone: str | None
    email: str


class LinkUnusable(TeleconsultError):
    """``link_invalid`` or ``ended``, with the practice's contact details when the link was a real one."""

    def __init__(self, code: ErrorCode, practice: Practice | None = None):
        super().__init__(code)
        self.practice = practice


@dataclass(frozen=True, slots=True)
class Resent:
    participant_id: ParticipantId
    role: str
    link: str


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What the join page may show before anything is consumed."""

    role: Role
    consultation_id: ConsultationId
    doctor_name: str
    participant_name: str
    scheduled_at: datetime | None
    language: str


@dataclass(frozen=True, slots=True)
class JoinGrant:
    ticket: str
    credential: str
    role: Role
    consultation_id: str
    participant_id: str
    doctor_name: str
    participant_name: str


class InvitationService:
    def __init__(self, db: Database, links: Links, outbox: Outbox):
        self._db = db
        self._links = links
        self._outbox = outbox

    async def describe(self, token: str) -> LinkInfo:
        """Read-only look-up for GET /j/{token}; raises ``link_invalid`` for unknown, expired or revoked."""
        async with self._db.transaction() as tx:
            invitation, consultation, participant = await self._valid(tx, token, clock_now())
            doctor = await doctor_store.doctor_by_id(tx, consultation.doctor_id)
        return LinkInfo(
            role=Role(invitation.role),
            consultation_id=consultation.id,
            doctor_name=doctor.name if doctor else "",
            participant_name=participant.name,
            scheduled_at=consultation.scheduled_at,
            language=consultation.language,
        )

    async def redeem(self, token: str, *, consent: bool, ip: str | None, user_agent: str | None) -> JoinGrant:
        """Exchange a link for a WebSocket ticket and a participant credential (POST /api/join)."""
        now = clock_now()
        async with self._db.transaction() as tx:
            invitation, consultation, participant = await self._valid(tx, token, now)
            if invitation.role == Role.PATIENT and not consent:
                raise TeleconsultError(ErrorCode.CONSENT_REQUIRED)
            credential = new_token()
            values: dict[str, object] = {"credential_hash": hash_token(credential)}
            if consent and participant.consent_at is None:
                values["consent_at"] = now
            await consultation_store.update_participant(tx, participant.id, **values)
            await store.mark_redeemed(tx, invitation.id, now)
            ticket = await issue_ticket(tx, self._links.access, participant.id, now)
            doctor = await doctor_store.doctor_by_id(tx, consultation.doctor_id)
            await audit.add_event(
                tx,
                action="invitation.redeemed",
                actor=f"{participant.role}:{participant.id}",
                consultation_id=consultation.id,
                ip=ip,
                user_agent=user_agent,
                detail={"invitation": invitation.id, "consent": bool(consent)},
            )
        return JoinGrant(
            ticket=ticket,
            credential=credential,
            role=Role(participant.role),
            consultation_id=consultation.id,
            participant_id=participant.id,
            doctor_name=doctor.name if doctor else "",
            participant_name=participant.name,
        )

    async def resend(
        self, doctor: Doctor, consultation_id: str, *, participant_id: str | None, role: str | None, email: str | None
    ) -> Resent:
        """A new link for one invited participant (by id, or the patient's or nurse's by role), mailed again; the
        old link stops working, and so does everything obtained with it."""
        now = clock_now()
        async with self._db.transaction() as tx:
            consultation = await consultation_store.consultation_by_id(tx, consultation_id)
            if consultation is None or consultation.doctor_id != doctor.id:
                raise TeleconsultError(ErrorCode.NOT_FOUND)
            require_open(consultation)
            participant = next(
                (
                    p
                    for p in consultation.participants
                    if p.role != Role.DOCTOR.value
                    and (p.id == participant_id or (participant_id is None and p.role == role))
                ),
                None,
            )
            if participant is None:
                raise TeleconsultError(ErrorCode.NOT_FOUND, "No such invited participant.")
            if self._links.expiry(consultation, now) <= now:
                raise TeleconsultError(
                    ErrorCode.CONFLICT, "The appointment is more than a day past: create a new consultation."
                )
            # A corrected address (the doctor fixes a typo), or the stored one, checked again: a row written before
            # addresses were checked strictly is refused here rather than sent.
            address = mailbox(email if email is not None else participant.email or "", field="email")
            await store.revoke(tx, consultation.id, now, participant.id)
            # What the old link gave is taken back with it: the participant cookie, unused tickets, the right to
            # resume, and the admission (whoever comes with the new link waits for the doctor). The live socket
            # is cut by the signaling service (``link_revoked``).
            await consultation_store.update_participant(
                tx, participant.id, email=address, credential_hash=None, resume_hash=None, admitted_at=None
            )
            await store.revoke_tickets(tx, participant.id, now)
            await outbox_store.cancel_queued(tx, consultation.id, participant.id, now)
            consultation = await consultation_store.consultation_by_id(tx, consultation.id)
            assert consultation is not None
            participant = consultation.participant(participant.id) or participant
            invitation_id, link = await self._links.issue(tx, consultation, participant, now)
            letter = Letter("invitation", consultation, doctor, participant, link)
            await self._outbox.enqueue(tx, letter, invitation_id=invitation_id)
            await audit.add_event(
                tx,
                action="invitation.resent",
                actor=f"doctor:{doctor.id}",
                consultation_id=consultation.id,
                detail={"participant": participant.id, "address_changed": email is not None},
            )
        self._outbox.wake()
        return Resent(participant.id, participant.role, link)

    async def _valid(self, tx: Tx, token: str, now: datetime) -> tuple[Invitation, ConsultationCore, Participant]:
        invitation = await store.invitation_by_token_hash(tx, hash_token(token)) if looks_like_token(token) else None
        if invitation is None:
            raise LinkUnusable(ErrorCode.LINK_INVALID)
        consultation = await consultation_store.consultation_core(tx, invitation.consultation_id)
        participant = await consultation_store.participant_by_id(tx, invitation.participant_id)
        if consultation is None or participant is None:
            raise LinkUnusable(ErrorCode.LINK_INVALID)
        doctor = await doctor_store.doctor_by_id(tx, consultation.doctor_id)
        practice = Practice(doctor.name, doctor.phone, doctor.email) if doctor else None
        if Status(consultation.status) not in OPEN:
            raise LinkUnusable(ErrorCode.ENDED, practice)
        if invitation.revoked_at is not None or invitation.expires_at <= now:
            raise LinkUnusable(ErrorCode.LINK_INVALID, practice)
        return invitation, consultation, participant
