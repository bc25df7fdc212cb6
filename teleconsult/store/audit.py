"""The audit trail: who did what, when, from where (never tokens or medical content)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from sqlalchemy import select

from teleconsult.store.database import Tx
from teleconsult.store.models import AuditEvent


async def add_event(
    tx: Tx,
    *,
    action: str,
    actor: str,
    consultation_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    detail: Mapping[str, object] | None = None,
) -> None:
    tx.add(
        AuditEvent(
            action=action,
            actor=actor,
            consultation_id=consultation_id,
            ip=ip,
            user_agent=(user_agent or "")[:300] or None,
            detail=json.dumps(dict(detail), sort_keys=True) if detail else None,
        )
    )


async def events_for_consultation(tx: Tx, consultation_id: str) -> Sequence[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.consultation_id == consultation_id).order_by(AuditEvent.id)
    return (await tx.execute(query)).scalars().all()
