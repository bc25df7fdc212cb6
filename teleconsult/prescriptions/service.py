"""Issuing, serving, checking and revoking prescriptions.

A prescription is written by its consultation's doctor: the PDF (``pdf.py``) carries the prescription id, the RPPS,
the consultation and the issue time, and a QR code for ``/verify/<code>``; it is signed with the doctor's key (a
certificate of the server's CA, issued with the doctor's account, ``teleconsult.doctor_keys``) into a CMS
SignedData that contains it. Both are stored encrypted like any document (for the service key, the doctor's own
key and escrow): the PDF is the document the room sees, the CMS file is served by
``/api/documents/<id>/signed``. The code is 256 random bits, kept only as a hash; the check page shows the doctor,
the date and the patient's initials, never more.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from teleconsult.clock import now
from teleconsult.crypto.pki import CertificateAuthority
from teleconsult.doctor_keys import DoctorKeys
from teleconsult.documents.files import DocumentFiles
from teleconsult.documents.service import Announce, Caller, DocumentService
from teleconsult.domain import Doctor, Document, Prescription
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import DocumentId, hash_token, new_id, new_token
from teleconsult.lifecycle import Status
from teleconsult.prescriptions.pdf import Item, Ordonnance, render
from teleconsult.store import Database, audit
from teleconsult.store import consultations as consultation_store
from teleconsult.store import documents as document_store
from teleconsult.store import prescriptions as store
from teleconsult.validation import display_name, optional_text

PARIS = ZoneInfo("Europe/Paris")
MAX_ITEMS = 30


@dataclass(frozen=True, slots=True)
class Issued:
    document: Document
    prescription: Prescription
    verify_url: str


def signed_file_id(document_id: str) -> str:
    return f"{document_id}-signed"


def initials(name: str) -> str:
    """``Jeanne Dupont`` → ``J. D.``: all a pharmacist's check page shows of the patient."""
    return " ".join(f"{part[0].upper()}." for part in name.replace("-", " ").split() if part)[:16]


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class PrescriptionService:
    def __init__(
        self,
        db: Database,
        authority: CertificateAuthority,
        doctor_keys: DoctorKeys,
        files: DocumentFiles,
        documents: DocumentService,
        base_url: str,
        announce: Announce,
    ):
        self._db = db
        self._ca = authority
        self._doctor_keys = doctor_keys
        self._files = files
        self._documents = documents
        self._base_url = base_url
        self._announce = announce

    @property
    def ca_pem(self) -> bytes:
        return self._ca.pem

    async def issue(self, doctor: Doctor, consultation_id: str, items: list[Item], notes: str | None) -> Issued:
        items = [_checked(item, n) for n, item in enumerate(items)]
        if not items or len(items) > MAX_ITEMS:
            raise TeleconsultError(ErrorCode.BAD_REQUEST, "A prescription has 1 to 30 items.", field="items")
        notes = optional_text(notes, field="notes", max_length=2000)
        seat = await self._documents.seat(consultation_id, Caller(doctor=doctor))
        async with self._db.transaction() as tx:
            consultation = await consultation_store.consultation_by_id(tx, consultation_id)
            assert consultation is not None  # the doctor's seat was found in it
            if consultation.status == Status.CANCELLED.value:
                raise TeleconsultError(ErrorCode.ENDED)
            signer = await self._doctor_keys.signer(tx, doctor)
            recipients = await self._documents.recipients(tx, doctor.id)
        patient = consultation.seat("patient")
        issued_at = now()
        prescription_id, document_id = new_id("rx"), DocumentId(new_id("doc"))
        number = "RX-" + base64.b32encode(os.urandom(5)).decode()[:8]
        code = new_token()
        verify_url = f"{self._base_url}/verify/{code}"
        ordonnance = Ordonnance(
            number=number,
            prescription_id=prescription_id,
            consultation_id=consultation_id,
            issued_at=issued_at.astimezone(PARIS).replace(tzinfo=None),
            doctor_name=doctor.name,
            rpps=doctor.rpps,
            address=doctor.address,
            phone=doctor.phone,
            patient_name=patient.name if patient else "",
            items=tuple(items),
            notes=notes,
            verify_url=verify_url,
        )
        pdf = await asyncio.to_thread(render, ordonnance)
        signed = await asyncio.to_thread(self._ca.sign, pdf, signer, doctor.id)
        name = f"ordonnance-{number}.pdf"
        document = await self._documents.write(
            document_id, seat, _once(pdf), recipients, kind="prescription", name=name, mime="application/pdf"
        )
        written_signed = await self._files.write(signed_file_id(document_id), _once(signed), recipients)
        prescription = Prescription(
            id=prescription_id,
            document_id=document_id,
            consultation_id=consultation.id,
            doctor_id=doctor.id,
            number=number,
            doctor_name=doctor.name,
            rpps=doctor.rpps,
            patient_initials=initials(patient.name) if patient else "",
            signed_sha256=written_signed.sha256,
            signed_size=written_signed.size,
            issued_at=issued_at,
            revoked_at=None,
        )
        try:
            async with self._db.transaction() as tx:
                await document_store.add_document(tx, document)
                await store.add_prescription(tx, prescription, hash_token(code))
                await audit.add_event(
                    tx,
                    action="prescription.signed",
                    actor=f"doctor:{doctor.id}",
                    consultation_id=consultation.id,
                    detail={"prescription": prescription_id, "document": document_id, "items": len(items)},
                )
        except BaseException:
            self._files.remove(document_id)
            self._files.remove(signed_file_id(document_id))
            raise
        await self._announce(document, seat)
        return Issued(document, prescription, verify_url)

    async def signed(self, document_id: str, caller: Caller) -> tuple[Prescription, AsyncIterator[bytes | bytearray]]:
        """The CMS file of a prescription the caller may read."""
        async with self._db.transaction() as tx:
            prescription = await store.by_document(tx, document_id)
        if prescription is None:
            raise TeleconsultError(ErrorCode.NOT_FOUND)
        await self._documents.seat(prescription.consultation_id, caller)
        stream = self._documents.read_file(signed_file_id(document_id), prescription.signed_sha256)
        return prescription, stream

    async def check(self, code: str) -> Prescription | None:
        """What the pharmacist's page shows (None: no such prescription); the check is an audit event."""
        async with self._db.transaction() as tx:
            prescription = await store.by_code_hash(tx, hash_token(code))
            await audit.add_event(
                tx,
                action="prescription.verified",
                actor="public",
                consultation_id=prescription.consultation_id if prescription else None,
                detail={"found": prescription is not None},
            )
        return prescription

    async def revoke(self, doctor: Doctor, document_id: str) -> Prescription:
        at = now()
        async with self._db.transaction() as tx:
            prescription = await store.by_document(tx, document_id)
            if prescription is None or prescription.doctor_id != doctor.id:
                raise TeleconsultError(ErrorCode.NOT_FOUND)
            await store.revoke(tx, prescription.id, at)
            await audit.add_event(
                tx,
                action="prescription.revoked",
                actor=f"doctor:{doctor.id}",
                consultation_id=prescription.consultation_id,
                detail={"prescription": prescription.id},
            )
            revoked = await store.by_document(tx, document_id)
        assert revoked is not None
        return revoked


def _checked(item: Item, n: int) -> Item:
    return Item(
        drug=display_name(item.drug, field=f"items[{n}].drug"),
        dosage=display_name(item.dosage, field=f"items[{n}].dosage"),
        duration=display_name(item.duration, field=f"items[{n}].duration", max_length=80),
    )
