"""Who may give and read a consultation's documents, and the records that bind each file to its consultation.

The consultation's doctor and its admitted participants (patient, nurse, guests) upload; the same people read. A
participant still waiting, another consultation's participant or another doctor is told ``not_found`` and learns
nothing. Every upload and download is an audit event (who, which document, when; never its name or content).

Each file is encrypted for the active service key (the server serves downloads with it), the consultation's
doctor's own key (``doctor:<id>``: the doctor opens it offline with any age reader) and the escrow recipients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from teleconsult.clock import now
from teleconsult.config import DocumentsSettings
from teleconsult.crypto.age import Recipient
from teleconsult.crypto.keyring import KeyRing
from teleconsult.doctor_keys import DoctorKeys
from teleconsult.documents.files import DocumentFiles, Piece
from teleconsult.documents.kinds import SNIFF_BYTES, detect, safe_name
from teleconsult.domain import Doctor, Document, Participant, Prescription
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import DocumentId, hash_token, new_id
from teleconsult.lifecycle import Status
from teleconsult.metrics import Metrics
from teleconsult.store import Database, Tx, audit
from teleconsult.store import consultations as consultation_store
from teleconsult.store import documents as store
from teleconsult.store import prescriptions as prescription_store

#: Told when a document was added, to show it in the room: ``(document, the uploader's seat)``.
Announce = Callable[[Document, Participant], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: a logged-in doctor, or a participant with the credentials (cookies) their browser holds, one per
    consultation it joined; the one for the consultation at hand is used."""

    doctor: Doctor | None = None
    credentials: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Listed:
    """A document as its consultation's list shows it: who gave it (their seat), and its prescription if it is one."""

    document: Document
    uploader: Participant | None
    prescription: Prescription | None


class DocumentService:
    def __init__(
        self,
        db: Database,
        files: DocumentFiles,
        keys: KeyRing,
        doctor_keys: DoctorKeys,
        settings: DocumentsSettings,
        announce: Announce,
        *,
        metrics: Metrics,
    ):
        self._db = db
        self._files = files
        self._keys = keys
        self._doctor_keys = doctor_keys
        self._settings = settings
        self._announce = announce
        self._metrics = metrics

    @property
    def max_bytes(self) -> int:
        return self._settings.max_document_bytes

    async def upload(
        self, consultation_id: str, caller: Caller, name: str | None, chunks: AsyncIterator[Piece]
    ) -> Document:
        """Store one file: typed by its content, encrypted as it streams, counted against the limits."""
        async with self._db.transaction() as tx:  # one transaction before the file, one after it
            seat = await self._seat(tx, consultation_id, caller)
            consultation = await consultation_store.consultation_core(tx, consultation_id)
            if consultation is None or consultation.status == Status.CANCELLED.value:
                raise TeleconsultError(ErrorCode.NOT_FOUND)
            room_left = self._settings.documents_quota_bytes - await store.stored_bytes(tx, consultation_id)
            recipients = await self.recipients(tx, consultation.doctor_id)
        head, rest = await _head(chunks, SNIFF_BYTES)
        mime = detect(head)
        # Whichever is smaller bounds this file: the size limit, or what the consultation's quota has left.
        bounded = _bounded(head, rest, min(self.max_bytes, room_left), quota=room_left < self.max_bytes)
        document = await self.write(
            DocumentId(new_id("doc")),
            seat,
            bounded,
            recipients,
            kind="document",
            name=safe_name(name, mime),
            mime=mime,
        )
        try:
            async with self._db.transaction() as tx:
                await store.add_document(tx, document)
                await audit.add_event(
                    tx,
                    action="document.uploaded",
                    actor=f"{seat.role}:{seat.id}",
                    consultation_id=seat.consultation_id,
                    detail={"document": document.id, "size": document.size, "mime": mime},
                )
        except BaseException:
            self._files.remove(document.id)  # no file without its record
            raise
        self._metrics.document_bytes("in", document.size)
        await self._announce(document, seat)
        return document

    async def write(
        self,
        document_id: DocumentId,
        seat: Participant,
        chunks: AsyncIterator[Piece],
        recipients: list[Recipient],
        *,
        kind: str,
        name: str,
        mime: str,
    ) -> Document:
        """Encrypt ``chunks`` into the document's file for ``recipients`` (``recipients()``); the record to store
        with it."""
        written = await self._files.write(document_id, chunks, recipients)
        return Document(
            id=document_id,
            consultation_id=seat.consultation_id,
            uploaded_by=seat.id,
            kind=kind,
            name=name,
            mime=mime,
            size=written.size,
            sealed_size=written.sealed_size,
            sha256=written.sha256,
            key_ids=tuple(r.key_id for r in recipients),
            created_at=now(),
        )

    async def recipients(self, tx: Tx, doctor_id: str) -> list[Recipient]:
        """Who a new document of this doctor's consultation is encrypted for: the active service key, the doctor's
        own key (made now for a doctor who has none yet), and the escrow recipients."""
        return self._keys.recipients(await self._doctor_keys.document_recipient(tx, doctor_id))

    def read_file(self, file_id: str, sha256: str) -> AsyncIterator[bytes | bytearray]:
        """The plaintext of a stored file (a document's, or a prescription's signed copy) once its ciphertext
        matches ``sha256``, opened with the service keys; its bytes are counted as they are served."""
        return _counted(self._files.read(file_id, sha256, self._keys.identities()), self._metrics)

    async def open(self, document_id: str, caller: Caller) -> tuple[Document, AsyncIterator[bytes | bytearray]]:
        """The record and the plaintext stream of a document the caller may read."""
        async with self._db.transaction() as tx:
            document = await store.document_by_id(tx, document_id)
        if document is None:
            raise TeleconsultError(ErrorCode.NOT_FOUND)
        seat = await self.seat(document.consultation_id, caller)
        async with self._db.transaction() as tx:
            await audit.add_event(
                tx,
                action="document.downloaded",
                actor=f"{seat.role}:{seat.id}",
                consultation_id=document.consultation_id,
                detail={"document": document.id},
            )
        return document, self.read_file(document.id, document.sha256)

    async def documents_of(self, consultation_id: str, caller: Caller) -> list[Listed]:
        """The consultation's documents, oldest first, each with its uploader's seat and, for a prescription, its
        record (number, revocation)."""
        await self.seat(consultation_id, caller)
        async with self._db.transaction() as tx:
            documents = await store.documents_of(tx, consultation_id)
            consultation = await consultation_store.consultation_by_id(tx, consultation_id)
            prescriptions = {p.document_id: p for p in await prescription_store.prescriptions_of(tx, consultation_id)}
        seats = {p.id: p for p in consultation.participants} if consultation is not None else {}
        return [Listed(d, seats.get(d.uploaded_by), prescriptions.get(d.id)) for d in documents]

    async def seat(self, consultation_id: str, caller: Caller) -> Participant:
        """The caller's seat in the consultation, if they may see its documents; ``not_found`` otherwise."""
        async with self._db.transaction() as tx:
            return await self._seat(tx, consultation_id, caller)

    async def _seat(self, tx: Tx, consultation_id: str, caller: Caller) -> Participant:
        if caller.doctor is not None:
            consultation = await consultation_store.consultation_core(tx, consultation_id)
            seat = await consultation_store.doctor_participant(tx, consultation_id) if consultation else None
            if consultation is None or consultation.doctor_id != caller.doctor.id or seat is None:
                raise TeleconsultError(ErrorCode.NOT_FOUND)
            return seat
        for credential in caller.credentials:
            seat = await consultation_store.participant_by_credential(tx, hash_token(credential))
            if seat is not None and seat.consultation_id == consultation_id and seat.admitted_at is not None:
                return seat
        raise TeleconsultError(ErrorCode.NOT_FOUND)


async def _counted(chunks: AsyncIterator[bytes | bytearray], metrics: Metrics) -> AsyncIterator[bytes | bytearray]:
    async for chunk in chunks:
        metrics.document_bytes("out", len(chunk))
        yield chunk


async def _head(chunks: AsyncIterator[Piece], size: int) -> tuple[bytes, AsyncIterator[Piece]]:
    """The first ``size`` bytes (fewer if the file is shorter), and the stream of what follows them."""
    head = bytearray()
    async for chunk in chunks:
        head += chunk
        if len(head) >= size:
            break
    return bytes(head), chunks


async def _bounded(head: bytes, rest: AsyncIterator[Piece], limit: int, *, quota: bool) -> AsyncIterator[Piece]:
    """``head`` then ``rest``, refused (413) as soon as it passes ``limit`` (``quota``: the consultation's)."""
    total = len(head)
    if total > limit:
        raise _too_large(quota)
    yield head
    async for chunk in rest:
        total += len(chunk)
        if total > limit:
            raise _too_large(quota)
        yield chunk


def _too_large(quota: bool) -> TeleconsultError:
    if quota:
        return TeleconsultError(
            ErrorCode.TOO_LARGE, "This consultation holds all the documents it may.", detail="quota"
        )
    return TeleconsultError(ErrorCode.TOO_LARGE, "This file is too large.", detail="document_too_large")
