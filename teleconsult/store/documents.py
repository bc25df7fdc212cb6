"""Document records (their ciphertext lives in files; see ``teleconsult/documents``)."""

from __future__ import annotations

from sqlalchemy import func, select, update

from teleconsult import domain
from teleconsult.store import values
from teleconsult.store.database import Tx
from teleconsult.store.models import Consultation, Document


async def add_document(tx: Tx, document: domain.Document) -> None:
    tx.add(
        Document(
            id=document.id,
            consultation_id=document.consultation_id,
            uploaded_by=document.uploaded_by,
            kind=document.kind,
            name=document.name,
            mime=document.mime,
            size=document.size,
            sealed_size=document.sealed_size,
            sha256=document.sha256,
            key_ids=",".join(document.key_ids),
            created_at=document.created_at,
        )
    )


async def document_by_id(tx: Tx, document_id: str) -> domain.Document | None:
    row = await tx.get(Document, document_id)
    return values.document(row) if row is not None else None


async def documents_of(tx: Tx, consultation_id: str) -> list[domain.Document]:
    query = select(Document).where(Document.consultation_id == consultation_id).order_by(Document.created_at)
    return [values.document(row) for row in (await tx.execute(query)).scalars().all()]


async def stored_bytes(tx: Tx, consultation_id: str) -> int:
    """What a consultation's documents hold in all (its quota counts this)."""
    query = select(func.coalesce(func.sum(Document.size), 0)).where(Document.consultation_id == consultation_id)
    return int((await tx.execute(query)).scalar_one())


async def documents_after(tx: Tx, after: str, limit: int) -> list[tuple[domain.Document, str]]:
    """Documents in id order from just after ``after``, each with its consultation's doctor id (a rewrap's page)."""
    query = (
        select(Document, Consultation.doctor_id)
        .join(Consultation, Consultation.id == Document.consultation_id)
        .where(Document.id > after)
        .order_by(Document.id)
        .limit(limit)
    )
    return [(values.document(row), doctor_id) for row, doctor_id in (await tx.execute(query)).all()]


async def set_wrapping(
    tx: Tx, document_id: str, *, was: str, sha256: str, sealed_size: int, key_ids: tuple[str, ...]
) -> bool:
    """The record follows its file's new header; only if it still describes the file as it was (``was``)."""
    result = await tx.execute(
        update(Document)
        .where(Document.id == document_id, Document.sha256 == was)
        .values(sha256=sha256, sealed_size=sealed_size, key_ids=",".join(key_ids))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
