"""the ledger's day indexes unique, with the revision: (act_date, consultation_id, revision) and the same after
doctor_id, so that SQLite reads an export's page in its order, each entry's acts by their position, without a sort
(a day and a consultation have one entry of each revision, as (consultation_id, revision) already says)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_billing_entries_day", table_name="billing_entries")
    op.create_index(
        "ix_billing_entries_day", "billing_entries", ["act_date", "consultation_id", "revision"], unique=True
    )
    op.drop_index("ix_billing_entries_doctor_day", table_name="billing_entries")
    op.create_index(
        "ix_billing_entries_doctor_day",
        "billing_entries",
        ["doctor_id", "act_date", "consultation_id", "revision"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ix_billing_entries_doctor_day", table_name="billing_entries")
    op.create_index("ix_billing_entries_doctor_day", "billing_entries", ["doctor_id", "act_date", "consultation_id"])
    op.drop_index("ix_billing_entries_day", table_name="billing_entries")
    op.create_index("ix_billing_entries_day", "billing_entries", ["act_date", "consultation_id"])
