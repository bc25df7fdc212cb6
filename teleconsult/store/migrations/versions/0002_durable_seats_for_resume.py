"""durable seats for resume

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pre_admitted", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("peer_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("resume_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("away_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint("uq_participants_resume_hash", ["resume_hash"])


def downgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_constraint("uq_participants_resume_hash", type_="unique")
        batch_op.drop_column("away_since")
        batch_op.drop_column("resume_hash")
        batch_op.drop_column("peer_id")
        batch_op.drop_column("pre_admitted")
