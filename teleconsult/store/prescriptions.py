"""Prescriptions and the doctors' signing keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from teleconsult import domain
from teleconsult.store import values
from teleconsult.store.database import Tx
from teleconsult.store.models import DoctorSigner, Prescription


async def signer_of(tx: Tx, doctor_id: str) -> tuple[bytes, bytes] | None:
    """The doctor's certificate (PEM) and sealed private key, if they have one yet."""
    row = await tx.get(DoctorSigner, doctor_id)
    return (row.certificate_pem.encode(), row.sealed_key) if row is not None else None


async def add_signer(tx: Tx, doctor_id: str, certificate_pem: bytes, sealed_key: bytes, now: datetime) -> None:
    tx.add(
        DoctorSigner(
            doctor_id=doctor_id, certificate_pem=certificate_pem.decode(), sealed_key=sealed_key, created_at=now
        )
    )


async def add_prescription(tx: Tx, prescription: domain.Prescription, code_hash: str) -> None:
    tx.add(
        Prescription(
            id=prescription.id,
            document_id=prescription.document_id,
            consultation_id=prescription.consultation_id,
            doctor_id=prescription.doctor_id,
            number=prescription.number,
            code_hash=code_hash,
            doctor_name=prescription.doctor_name,
            rpps=prescription.rpps,
            patient_initials=prescription.patient_initials,
            signed_sha256=prescription.signed_sha256,
            signed_size=prescription.signed_size,
            issued_at=prescription.issued_at,
        )
    )


async def by_code_hash(tx: Tx, code_hash: str) -> domain.Prescription | None:
    row = (await tx.execute(select(Prescription).where(Prescription.code_hash == code_hash))).scalar_one_or_none()
    return values.prescription(row) if row is not None else None


async def by_document(tx: Tx, document_id: str) -> domain.Prescription | None:
    query = select(Prescription).where(Prescription.document_id == document_id)
    row = (await tx.execute(query)).scalar_one_or_none()
    return values.prescription(row) if row is not None else None


async def revoke(tx: Tx, prescription_id: str, now: datetime) -> bool:
    result = await tx.execute(
        update(Prescription)
        .where(Prescription.id == prescription_id, Prescription.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
