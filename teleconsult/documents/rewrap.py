"""After a key rotation, every stored file's header gains the active service key; its contents are not re-encrypted.

A document (and a prescription's signed copy beside it) is rewrapped for: the active service key, the older service
keys it was wrapped for that the ring still holds (a server still running with the ring it loaded before the
rotation keeps opening it), the consultation's doctor's own key (made now for a doctor who had none: their older
documents become theirs too), and the escrow recipients. Its record follows (key ids, hash, size), in one
transaction per document; if that fails, the old header is put back. A file already wrapped for exactly those
keys is left alone, so running it again does nothing. A file that does not match its record is skipped and
counted, never "repaired".
"""

from __future__ import annotations

from dataclasses import dataclass

from teleconsult.crypto.age import Recipient
from teleconsult.crypto.keyring import KeyRing
from teleconsult.doctor_keys import DoctorKeys
from teleconsult.documents.files import DocumentFileError, DocumentFiles, Rewrapped
from teleconsult.domain import Document
from teleconsult.prescriptions.service import signed_file_id
from teleconsult.store import Database
from teleconsult.store import documents as store
from teleconsult.store import prescriptions as prescription_store

PAGE = 200


@dataclass(frozen=True, slots=True)
class RewrapReport:
    rewrapped: int  # documents whose header gained keys
    unchanged: int  # already wrapped for the keys they should be
    skipped: tuple[str, ...]  # ids of documents whose file does not match its record (or is missing)


async def rewrap_documents(db: Database, files: DocumentFiles, keys: KeyRing, doctor_keys: DoctorKeys) -> RewrapReport:
    rewrapped = unchanged = 0
    skipped: list[str] = []
    after = ""
    while True:
        async with db.transaction() as tx:
            page = await store.documents_after(tx, after, PAGE)
            doctors = {d: await doctor_keys.document_recipient(tx, d) for d in {doctor for _, doctor in page}}
        if not page:
            break
        for document, doctor_id in page:
            recipients = keys.recipients(*keys.service_recipients(document.key_ids), doctors[doctor_id])
            key_ids = tuple(r.key_id for r in recipients)
            if key_ids == document.key_ids:
                unchanged += 1
                continue
            try:
                await _rewrap_one(db, files, keys, document, recipients, key_ids)
            except DocumentFileError:
                skipped.append(document.id)
                continue
            rewrapped += 1
        after = page[-1][0].id
    return RewrapReport(rewrapped, unchanged, tuple(skipped))


async def _rewrap_one(
    db: Database,
    files: DocumentFiles,
    keys: KeyRing,
    document: Document,
    recipients: list[Recipient],
    key_ids: tuple[str, ...],
) -> None:
    identities = keys.identities()
    async with db.transaction() as tx:
        prescription = await prescription_store.by_document(tx, document.id)
    done: list[tuple[str, Rewrapped]] = []
    try:
        new = await files.rewrap(document.id, document.sha256, identities, recipients)
        done.append((document.id, new))
        signed = None
        if prescription is not None:
            signed = await files.rewrap(signed_file_id(document.id), prescription.signed_sha256, identities, recipients)
            done.append((signed_file_id(document.id), signed))
        async with db.transaction() as tx:
            if not await store.set_wrapping(
                tx, document.id, was=document.sha256, sha256=new.sha256, sealed_size=new.sealed_size, key_ids=key_ids
            ):
                raise DocumentFileError("the record changed while its file was rewrapped")
            if prescription is not None and signed is not None:
                await prescription_store.set_signed_sha256(tx, prescription.id, signed.sha256)
    except BaseException:
        for file_id, rewritten in reversed(done):  # the files go back to what their records say
            await files.restore_header(file_id, rewritten)
        raise
