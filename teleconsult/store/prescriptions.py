"""Prescriptions (the doctors' signing keys are in ``doctor_keys.py``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from teleconsult import domain
from teleconsult.store import values
from teleconsult.store.database import Tx
from teleconsult.store.models import Prescription


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


async def prescriptions_of(tx: Tx, consultation_id: str) -> list[domain.Prescription]:
    query = select(Prescription).where(Prescription.consultation_id == consultation_id).order_by(Prescription.issued_at)
    return [values.prescription(row) for row in (await tx.execute(query)).scalars().all()]


async def set_signed_sha256(tx: Tx, prescription_id: str, sha256: str) -> None:
    """The signed file's new hash, once its header was rewritten (the payload, hence its size, is unchanged)."""
    await tx.execute(
        update(Prescription)
        .where(Prescription.id == prescription_id)
        .values(signed_sha256=sha256)
        .execution_options(synchronize_session=False)
    )
