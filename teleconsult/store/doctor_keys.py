"""The doctors' own keys: their document key (``doctor_keys``) and their prescription signer (``doctor_signers``).

Both are added "if absent": a key issued on first use by two requests at once is stored once, and both get the
one kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from teleconsult.store.database import Tx
from teleconsult.store.models import Base, DoctorKey, DoctorSigner


async def _insert_if_absent(tx: Tx, model: type[Base], **values: Any) -> None:
    insert = sqlite_insert if tx.get_bind().dialect.name == "sqlite" else postgresql_insert
    await tx.execute(insert(model).values(**values).on_conflict_do_nothing(index_elements=["doctor_id"]))


async def document_key_of(tx: Tx, doctor_id: str) -> tuple[str, bytes] | None:
    """The doctor's document key: its public half (``age1…``) and its sealed private half."""
    row = (await tx.execute(select(DoctorKey).where(DoctorKey.doctor_id == doctor_id))).scalar_one_or_none()
    return (row.recipient, row.sealed_identity) if row is not None else None


async def add_document_key(tx: Tx, doctor_id: str, recipient: str, sealed: bytes, now: datetime) -> tuple[str, bytes]:
    """Store the doctor's document key unless they have one already; returns the one they have now."""
    await _insert_if_absent(
        tx, DoctorKey, doctor_id=doctor_id, recipient=recipient, sealed_identity=sealed, created_at=now
    )
    kept = await document_key_of(tx, doctor_id)
    assert kept is not None
    return kept


async def signer_of(tx: Tx, doctor_id: str) -> tuple[bytes, bytes] | None:
    """The doctor's certificate (PEM) and sealed private key, if they have one yet."""
    query = select(DoctorSigner).where(DoctorSigner.doctor_id == doctor_id)
    row = (await tx.execute(query)).scalar_one_or_none()
    return (row.certificate_pem.encode(), row.sealed_key) if row is not None else None


async def add_signer(
    tx: Tx, doctor_id: str, certificate_pem: bytes, sealed_key: bytes, now: datetime
) -> tuple[bytes, bytes]:
    """Store the doctor's signer unless they have one already; returns the one they have now."""
    await _insert_if_absent(
        tx,
        DoctorSigner,
        doctor_id=doctor_id,
        certificate_pem=certificate_pem.decode(),
        sealed_key=sealed_key,
        created_at=now,
    )
    kept = await signer_of(tx, doctor_id)
    assert kept is not None
    return kept


async def document_keys(tx: Tx) -> list[tuple[str, str]]:
    """Every doctor's document key: ``(doctor id, public half)``, in doctor id order."""
    query = select(DoctorKey.doctor_id, DoctorKey.recipient).order_by(DoctorKey.doctor_id)
    return [(doctor_id, recipient) for doctor_id, recipient in (await tx.execute(query)).all()]
