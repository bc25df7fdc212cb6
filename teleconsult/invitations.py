"""Invitation links: issued with a consultation, shown once, stored hashed, exchanged at /api/join.

Opening a link (GET) changes nothing: mail scanners prefetch links. Only ``redeem`` (POST /api/join) acts, and the
doctor still admits from the lobby.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from teleconsult.config import Settings
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import hash_token, looks_like_token, new_id, new_token
from teleconsult.lifecycle import OPEN, Status
from teleconsult.rooms import Role
from teleconsult.store import Database, Tx, audit
from teleconsult.store import consultations as consultation_store
from teleconsult.store import doctors as doctor_store
from teleconsult.store import invitations as store
from teleconsult.store.models import Consultation, Invitation, Participant, utcnow
from teleconsult.tickets import issue_ticket


def invitation_expiry(settings: Settings, consultation: Consultation, now: datetime) -> datetime:
    if consultation.scheduled_at is not None:
        return consultation.scheduled_at + timedelta(seconds=settings.invitation_ttl_after_scheduled_s)
    return now + timedelta(seconds=settings.invitation_ttl_unscheduled_s)


async def issue_invitation(
    tx: Tx, settings: Settings, consultation: Consultation, participant: Participant, now: datetime
) -> tuple[Invitation, str]:
    """Store a new invitation for ``participant``; returns it with the raw link token (never stored)."""
    token = new_token()
    invitation = Invitation(
        id=new_id("i"),
        consultation_id=consultation.id,
        participant_id=participant.id,
        role=participant.role,
        token_hash=hash_token(token),
        expires_at=invitation_expiry(settings, consultation, now),
        created_at=now,
    )
    await store.add_invitation(tx, invitation)
    return invitation, token


def join_link(settings: Settings, token: str) -> str:
    return f"{settings.base_url}/j/{token}"


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
class LinkInfo:
    """What the join page may show before anything is consumed."""

    role: Role
    consultation_id: str
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
    def __init__(self, db: Database, settings: Settings):
        self._db = db
        self._settings = settings

    async def describe(self, token: str) -> LinkInfo:
        """Read-only look-up for GET /j/{token}; raises ``link_invalid`` for unknown, expired or revoked."""
        async with self._db.transaction() as tx:
            invitation, consultation, participant = await self._valid(tx, token, utcnow())
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
        now = utcnow()
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
            ticket = await issue_ticket(tx, self._settings, participant.id, now)
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

    async def _valid(self, tx: Tx, token: str, now: datetime) -> tuple[Invitation, Consultation, Participant]:
        invitation = await store.invitation_by_token_hash(tx, hash_token(token)) if looks_like_token(token) else None
        if invitation is None:
            raise LinkUnusable(ErrorCode.LINK_INVALID)
        consultation = await consultation_store.consultation_alone(tx, invitation.consultation_id)
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
