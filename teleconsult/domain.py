"""The domain values every layer passes around: frozen, plain, typed. Pure code.

The store turns its rows into these (``store/values.py``) and never lets an ORM object out; services compute
with them; the API serialises them. A value is a snapshot: to see a change, ask the store again.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from enum import StrEnum
from typing import NamedTuple

from teleconsult.ids import (
    BillingRecordId,
    ConsultationId,
    DoctorId,
    DocumentId,
    InvitationId,
    MailId,
    ParticipantId,
    PeerId,
)


@dataclass(frozen=True, slots=True)
class Doctor:
    id: DoctorId
    email: str
    name: str
    rpps: str
    phone: str | None
    address: str | None = None
    profession: str = "generalist"  # generalist | specialist: which teleconsultation act they bill


@dataclass(frozen=True, slots=True)
class Participant:
    """A seat in a consultation: the doctor, the patient, a nurse or a guest."""

    id: ParticipantId
    consultation_id: ConsultationId
    role: str
    name: str
    email: str | None
    consent_at: datetime | None
    joined_at: datetime | None
    admitted_at: datetime | None
    left_at: datetime | None
    pre_admitted: bool
    peer_id: PeerId | None
    away_since: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Invitation:
    id: InvitationId
    consultation_id: ConsultationId
    participant_id: ParticipantId
    role: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    redeemed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Mail:
    """An outgoing mail's state (its sealed message stays in the store)."""

    id: MailId
    consultation_id: ConsultationId
    participant_id: ParticipantId | None
    invitation_id: InvitationId | None
    kind: str
    recipient_role: str
    recipient: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    failed_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Modifier:
    """A majoration added to an act (its own code and amount, at the tariff in force on the act's date)."""

    code: str
    amount_cents: int
    tariff_from: date


@dataclass(frozen=True, slots=True)
class BillingAct:
    role: str
    performer_name: str
    act_code: str
    amount_cents: int
    #: The day from which the amount used holds (the tariff in force on the consultation's date).
    tariff_from: date
    modifiers: tuple[Modifier, ...] = ()

    @property
    def total_cents(self) -> int:
        return self.amount_cents + sum(m.amount_cents for m in self.modifiers)


class BillingStatus(StrEnum):
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    INTERRUPTED = "interrupted"
    NOT_BILLABLE = "not_billable"


@dataclass(frozen=True, slots=True)
class Nurse:
    """The nurse beside the patient, as billed: her act depends on where she was."""

    name: str
    number: str | None  # RPPS or Assurance Maladie number, when the doctor gives it
    place: str  # planned_visit | dedicated_place | home


@dataclass(frozen=True, slots=True)
class BillingRecord:
    """One ledger entry: revision 0 is written in the transaction that ends the consultation; each correction is a
    new entry (revision 1, 2…) that names the one it replaces. Nothing is overwritten."""

    id: BillingRecordId
    consultation_id: ConsultationId
    revision: int
    corrects: BillingRecordId | None
    status: BillingStatus
    reason: str | None
    act_date: date  # the consultation's day in Europe/Paris: the tariffs of that day apply
    doctor_id: DoctorId
    doctor_name: str
    doctor_rpps: str
    patient_name: str
    patient_birth_date: date | None
    patient_nir: str | None
    nurse: Nurse | None
    scheduled_at: datetime | None
    started_at: datetime | None
    ended_at: datetime
    duration_s: int
    video_connected: bool
    total_cents: int
    currency: str
    acts: tuple[BillingAct, ...]
    recorded_at: datetime
    recorded_by: str


class BillingLine(NamedTuple):
    """One line of a ledger export: a current entry with one of its acts, in the export's order (day, consultation,
    act). An entry without an act (a no-show, an interrupted or not billable consultation) is one line whose act
    fields are ``None``. The store reads these straight from its rows, so that a year's CSV export builds no
    ``BillingRecord`` per entry (``billing/exports/lines.py`` makes them from a record too: ``lines_of``)."""

    act_date: date
    consultation_id: ConsultationId
    entry_id: BillingRecordId
    revision: int
    corrects: BillingRecordId | None
    status: BillingStatus
    reason: str | None
    doctor_name: str
    doctor_rpps: str
    patient_name: str
    patient_birth_date: date | None
    patient_nir: str | None
    #: The nurse's name, number and place: the number and the place count only when the name is given.
    nurse_name: str | None
    nurse_number: str | None
    nurse_place: str | None
    scheduled_at: datetime | None
    started_at: datetime | None
    ended_at: datetime
    duration_s: int
    video_connected: bool
    recorded_at: datetime
    #: The act: all ``None`` (and no modifiers) on the one line of an entry without an act.
    role: str | None
    performer_name: str | None
    act_code: str | None
    amount_cents: int | None
    tariff_from: date | None
    modifiers: tuple[Modifier, ...]


@dataclass(frozen=True, slots=True)
class ConsultationCore:
    """A consultation's own columns: what the hot paths (tickets, seats, resumes) need."""

    id: ConsultationId
    doctor_id: DoctorId
    status: str
    reason: str | None
    language: str
    scheduled_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    #: When video first flowed between the doctor and the patient, as a client reported it.
    video_at: datetime | None


@dataclass(frozen=True, slots=True)
class Consultation(ConsultationCore):
    """A consultation with everything about it the doctor sees: seats, links, mails, the billing record."""

    participants: tuple[Participant, ...]
    invitations: tuple[Invitation, ...]
    mails: tuple[Mail, ...]
    billing: BillingRecord | None
    documents: tuple[Document, ...] = ()

    @classmethod
    def of(
        cls,
        core: ConsultationCore,
        *,
        participants: tuple[Participant, ...],
        invitations: tuple[Invitation, ...],
        mails: tuple[Mail, ...],
        billing: BillingRecord | None,
        documents: tuple[Document, ...] = (),
    ) -> Consultation:
        own = {f.name: getattr(core, f.name) for f in fields(ConsultationCore)}
        return cls(
            **own,
            participants=participants,
            invitations=invitations,
            mails=mails,
            billing=billing,
            documents=documents,
        )

    def seat(self, role: str) -> Participant | None:
        """The first participant with ``role`` (there is one doctor, one patient, at most one nurse)."""
        return next((p for p in self.participants if p.role == role), None)

    def participant(self, participant_id: str) -> Participant | None:
        return next((p for p in self.participants if p.id == participant_id), None)


@dataclass(frozen=True, slots=True)
class Seat:
    """Who a consumed ticket or resume token lets in: plain values, so that a live connection (thousands per node)
    holds nothing else."""

    participant_id: ParticipantId
    consultation_id: ConsultationId
    doctor_id: DoctorId
    role: str
    name: str
    admitted_at: datetime | None
    pre_admitted: bool
    peer_id: PeerId | None
    away_since: datetime | None
    #: The hash of the resume token its connection holds, as the database records it (never the token), where it
    #: was read with the seat (a room rebuilt from its seats): a drop is recorded against that connection only.
    resume_hash: str | None = None

    @classmethod
    def of(cls, participant: Participant, consultation: ConsultationCore, resume_hash: str | None = None) -> Seat:
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
            resume_hash=resume_hash,
        )


@dataclass(frozen=True, slots=True)
class Document:
    """A stored document's record: what it is, who gave it, and what binds the file on disk to it."""

    id: DocumentId
    consultation_id: ConsultationId
    uploaded_by: ParticipantId
    kind: str
    name: str
    mime: str
    size: int
    sealed_size: int
    sha256: str
    key_ids: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Prescription:
    id: str
    document_id: DocumentId
    consultation_id: ConsultationId
    doctor_id: DoctorId
    number: str
    doctor_name: str
    rpps: str
    patient_initials: str
    signed_sha256: str
    signed_size: int
    issued_at: datetime
    revoked_at: datetime | None


#: Who can be an audit entry's actor: a seat's role (``patient:u_…``), the command line, the public (a pharmacist
#: checking a prescription), or the server itself.
ACTOR_ROLES = frozenset({"doctor", "patient", "nurse", "guest", "cli", "public", "system"})


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One entry of the audit trail as a doctor sees it (ids and codes only)."""

    seq: int
    at: datetime
    consultation_id: ConsultationId | None
    #: ``<role>:<id>`` (``doctor:d_…``, ``patient:u_…``), or ``cli``, ``public``, ``system``.
    actor: str
    action: str
    detail: dict[str, object] | None

    @property
    def actor_role(self) -> str:
        role = self.actor.split(":", 1)[0]
        return role if role in ACTOR_ROLES else "system"


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The audit chain's last entry, as an anchor records it."""

    count: int
    seq: int
    hash: str


class ChainFault(StrEnum):
    CHANGED = "changed"  # the entry's hash does not match its content
    REMOVED = "removed"  # entries before it are missing (a gap in seq)
    INSERTED = "inserted"  # its prev_hash does not link to the entry before it, or its seq is taken


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first entry at which the chain does not hold (``id`` is None when the entry is missing)."""

    seq: int
    id: int | None
    fault: ChainFault
    reason: str


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """What verifying the chain found: the entries that hold (up to the last good one) and the break, if any."""

    count: int
    last_seq: int
    last_hash: str
    broken: ChainBreak | None = None

    @property
    def intact(self) -> bool:
        return self.broken is None
