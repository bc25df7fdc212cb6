"""audit trail as an append-only hash chain: seq, prev_hash, hash; existing events chained in id order

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: The chain's first ``prev_hash``.
GENESIS = "0" * 64
BATCH = 1000

# A frozen copy of ``teleconsult.store.audit.entry_hash`` (a migration never imports code that may change later);
# tests/test_audit.py checks that both give the same hash.


def _entry_hash(
    prev_hash: str,
    *,
    seq: int,
    at: datetime,
    consultation_id: str | None,
    actor: str,
    action: str,
    detail: str | None,
) -> str:
    when = (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).isoformat(timespec="microseconds")
    content = {
        "action": action,
        "actor": actor,
        "at": when,
        "consultation_id": consultation_id,
        "detail": json.loads(detail) if detail else None,
        "seq": seq,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


_events = sa.table(
    "audit_events",
    sa.column("id", sa.Integer()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("consultation_id", sa.String()),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("detail", sa.Text()),
    sa.column("seq", sa.BigInteger()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)


def _chain_existing_events() -> None:
    """Number and chain the events already written, in id order, a batch at a time."""
    connection = op.get_bind()
    prev_hash, seq, last_id = GENESIS, 0, 0
    while True:
        rows = connection.execute(
            sa.select(
                _events.c.id,
                _events.c.at,
                _events.c.consultation_id,
                _events.c.actor,
                _events.c.action,
                _events.c.detail,
            )
            .where(_events.c.id > last_id)
            .order_by(_events.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        updates = []
        for row in rows:
            seq += 1
            digest = _entry_hash(
                prev_hash,
                seq=seq,
                at=row.at,
                consultation_id=row.consultation_id,
                actor=row.actor,
                action=row.action,
                detail=row.detail,
            )
            updates.append({"row_id": row.id, "seq": seq, "prev_hash": prev_hash, "hash": digest})
            prev_hash, last_id = digest, row.id
        connection.execute(
            _events.update()
            .where(_events.c.id == sa.bindparam("row_id"))
            .values(seq=sa.bindparam("seq"), prev_hash=sa.bindparam("prev_hash"), hash=sa.bindparam("hash")),
            updates,
        )


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _chain_existing_events()
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch.create_index("ix_audit_events_seq", ["seq"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_index("ix_audit_events_seq")
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
        batch.drop_column("seq")
