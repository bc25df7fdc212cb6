"""SQLAlchemy models: the durable state of Teleconsult (the same models on SQLite and PostgreSQL).

Every time is stored in UTC. Tokens and credentials are stored only as SHA-256 hashes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, whatever the backend keeps (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


class Doctor(Base):
    __tablename__ = "doctors"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    rpps: Mapped[str] = mapped_column(String(11))
    password_hash: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    #: The practice's address, printed on prescriptions.
    address: Mapped[str | None] = mapped_column(String(300))
    #: generalist | specialist: which teleconsultation act they bill.
    profession: Mapped[str] = mapped_column(String(16), default="generalist")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DoctorSession(Base):
    __tablename__ = "doctor_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    doctor_id: Mapped[str] = mapped_column(ForeignKey("doctors.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class Consultation(Base):
    __tablename__ = "consultations"
    __table_args__ = (Index("ix_consultations_doctor_created", "doctor_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    doctor_id: Mapped[str] = mapped_column(ForeignKey("doctors.id"))
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    reason: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(5), default="fr")
    scheduled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    #: When video first flowed between the doctor and the patient, as a client reported it.
    video_at: Mapped[datetime | None]

    participants: Mapped[list[Participant]] = relationship(
        back_populates="consultation", order_by="Participant.created_at", lazy="selectin"
    )
    billing: Mapped[list[BillingEntry]] = relationship(lazy="selectin", order_by="BillingEntry.revision")
    invitations: Mapped[list[Invitation]] = relationship(lazy="selectin", order_by="Invitation.created_at")
    mails: Mapped[list[OutgoingMail]] = relationship(lazy="selectin", order_by="OutgoingMail.created_at")
    documents: Mapped[list[Document]] = relationship(lazy="selectin", order_by="Document.created_at")


class Participant(Base):
    """A seat in a consultation: the doctor, the patient, a nurse or a guest."""

    __tablename__ = "participants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    consultation_id: Mapped[str] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    doctor_id: Mapped[str | None] = mapped_column(ForeignKey("doctors.id"))
    #: Hash of the participant credential (the cookie handed out by /api/join).
    credential_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    consent_at: Mapped[datetime | None]
    joined_at: Mapped[datetime | None]
    admitted_at: Mapped[datetime | None]
    left_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The doctor let this seat in beforehand (a nurse who skips the waiting room).
    pre_admitted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The live connection of this seat, kept so a client can resume after a drop or a server restart.
    peer_id: Mapped[str | None] = mapped_column(String(32))
    resume_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: When the connection dropped without a goodbye; the seat is held for the grace period from then.
    away_since: Mapped[datetime | None]

    consultation: Mapped[Consultation] = relationship(back_populates="participants")


class Invitation(Base):
    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    consultation_id: Mapped[str] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    redeemed_at: Mapped[datetime | None]


class OutgoingMail(Base):
    """A mail waiting to be delivered, delivered, or given up on. Written in the transaction that causes it.

    The message itself is sealed (it carries an invitation link) and wiped once delivered.
    """

    __tablename__ = "outgoing_mails"
    __table_args__ = (Index("ix_outgoing_mails_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    consultation_id: Mapped[str] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[str | None] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    invitation_id: Mapped[str | None] = mapped_column(ForeignKey("invitations.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    recipient_role: Mapped[str] = mapped_column(String(16))
    #: The envelope recipient: the participant's validated address when the mail was queued. SMTP sends to this
    #: alone; the To header is display only and never parsed back for addresses.
    recipient: Mapped[str | None] = mapped_column(String(320))
    #: queued | sent | failed
    status: Mapped[str] = mapped_column(String(8), default="queued")
    sealed_message: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: A sender working on the mail holds it until then (several nodes never send it twice).
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))


class Ticket(Base):
    """A short-lived single-use right to open one WebSocket as one participant."""

    __tablename__ = "tickets"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]


class BillingEntry(Base):
    """The billing ledger: revision 0 is written in the transaction that ends the consultation, and the unique
    constraint makes it once whatever the number of concurrent ends; a correction is a new revision naming the
    entry it replaces. No entry is ever updated."""

    __tablename__ = "billing_entries"
    __table_args__ = (
        UniqueConstraint("consultation_id", "revision", name="uq_billing_entries_once"),
        # The exports' order (day, consultation, revision): a page starts at its keyset and reads in order, each
        # entry's acts by position, without a sort (migrations 0010 and 0011; unique, as (consultation, revision) is).
        Index("ix_billing_entries_doctor_day", "doctor_id", "act_date", "consultation_id", "revision", unique=True),
        Index("ix_billing_entries_day", "act_date", "consultation_id", "revision", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    consultation_id: Mapped[str] = mapped_column(ForeignKey("consultations.id"))
    revision: Mapped[int] = mapped_column(Integer)
    corrects: Mapped[str | None] = mapped_column(ForeignKey("billing_entries.id"))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(300))
    act_date: Mapped[date] = mapped_column(Date)
    doctor_id: Mapped[str] = mapped_column(ForeignKey("doctors.id"))
    doctor_name: Mapped[str] = mapped_column(String(200))
    doctor_rpps: Mapped[str] = mapped_column(String(11))
    patient_name: Mapped[str] = mapped_column(String(200))
    patient_birth_date: Mapped[date | None] = mapped_column(Date)
    patient_nir: Mapped[str | None] = mapped_column(String(15))
    nurse_name: Mapped[str | None] = mapped_column(String(200))
    nurse_number: Mapped[str | None] = mapped_column(String(11))
    nurse_place: Mapped[str | None] = mapped_column(String(16))
    scheduled_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime]
    duration_s: Mapped[int] = mapped_column(Integer)
    video_connected: Mapped[bool] = mapped_column(Boolean)
    total_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    recorded_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(64))

    acts: Mapped[list[BillingEntryAct]] = relationship(lazy="selectin", order_by="BillingEntryAct.position")


class BillingEntryAct(Base):
    __tablename__ = "billing_entry_acts"
    __table_args__ = (UniqueConstraint("entry_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("billing_entries.id"))
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    performer_name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(8))
    amount_cents: Mapped[int] = mapped_column(Integer)
    tariff_from: Mapped[date] = mapped_column(Date)
    #: The majorations: JSON ``[{"code", "amount_cents", "tariff_from"}]``.
    modifiers: Mapped[str] = mapped_column(Text)


class AuditEvent(Base):
    """The audit trail: append-only, one hash chain in ``seq`` order (``store/audit.py``); never updated or deleted,
    and no foreign key (nothing deleted elsewhere cascades into it)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: One sequence per deployment, 1, 2, 3…: the order of the chain.
    seq: Mapped[int] = mapped_column(BigInteger, unique=True, index=True)
    #: The previous entry's ``hash`` (64 zeros for the first) and SHA-256 of it and this entry's canonical content.
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    consultation_id: Mapped[str | None] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    detail: Mapped[str | None] = mapped_column(Text)


class Document(Base):
    """An uploaded file or a prescription: its ciphertext is on disk, bound to this row by its sha256."""

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    consultation_id: Mapped[str] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"), index=True)
    uploaded_by: Mapped[str] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    mime: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sealed_size: Mapped[int] = mapped_column(BigInteger)
    #: Of the ciphertext file: checked before every read, so a file moved between consultations is refused.
    sha256: Mapped[str] = mapped_column(String(64))
    #: The keys the file's header is wrapped for, comma-separated (``service:v2,escrow:1``).
    key_ids: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DoctorSigner(Base):
    """A doctor's prescription-signing certificate (from the server's CA) and private key, sealed."""

    __tablename__ = "doctor_signers"

    doctor_id: Mapped[str] = mapped_column(ForeignKey("doctors.id", ondelete="CASCADE"), primary_key=True)
    certificate_pem: Mapped[str] = mapped_column(Text)
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DoctorKey(Base):
    """A doctor's own document key (``doctor:<id>``, age X25519): every document of their consultations is also
    encrypted for ``recipient``; the private half is sealed under the server secret (bound to the key id)."""

    __tablename__ = "doctor_keys"

    doctor_id: Mapped[str] = mapped_column(ForeignKey("doctors.id", ondelete="CASCADE"), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(100))
    sealed_identity: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Prescription(Base):
    """A signed prescription: its PDF is a document; its CMS file is stored encrypted beside it. ``code_hash`` is
    the hash of the code the QR code carries (the code itself is never stored)."""

    __tablename__ = "prescriptions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), unique=True)
    consultation_id: Mapped[str] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"))
    doctor_id: Mapped[str] = mapped_column(ForeignKey("doctors.id"))
    number: Mapped[str] = mapped_column(String(32), unique=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    doctor_name: Mapped[str] = mapped_column(String(200))
    rpps: Mapped[str] = mapped_column(String(11))
    patient_initials: Mapped[str] = mapped_column(String(16))
    signed_sha256: Mapped[str] = mapped_column(String(64))
    signed_size: Mapped[int] = mapped_column(BigInteger)
    issued_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
