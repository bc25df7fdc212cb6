"""the envelope recipient of each mail, kept apart from its headers

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outgoing_mails") as batch:
        batch.add_column(sa.Column("recipient", sa.String(length=320), nullable=True))
    # Mails queued before: their participant's validated address (never the To header parsed back).
    op.execute(
        "UPDATE outgoing_mails SET recipient = "
        "(SELECT email FROM participants WHERE participants.id = outgoing_mails.participant_id) "
        "WHERE recipient IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("outgoing_mails") as batch:
        batch.drop_column("recipient")
