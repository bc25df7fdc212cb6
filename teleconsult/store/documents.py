"""Document records (their ciphertext lives in files; see ``teleconsult/documents``)."""

from __future__ import annotations

from sqlalchemy import func, select

from teleconsult import domain
from teleconsult.store import values
from teleconsult.store.database import Tx
from teleconsult.store.models import Document


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
