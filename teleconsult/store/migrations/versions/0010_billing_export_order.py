"""the ledger's day indexes in the exports' order: (act_date, consultation_id), and the same after doctor_id, so
that a page of an export starts at its keyset in the index and reads its entries in order, without a sort

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_billing_entries_day", table_name="billing_entries")
    op.create_index("ix_billing_entries_day", "billing_entries", ["act_date", "consultation_id"])
    op.drop_index("ix_billing_entries_doctor_day", table_name="billing_entries")
    op.create_index("ix_billing_entries_doctor_day", "billing_entries", ["doctor_id", "act_date", "consultation_id"])


def downgrade() -> None:
    op.drop_index("ix_billing_entries_doctor_day", table_name="billing_entries")
    op.create_index("ix_billing_entries_doctor_day", "billing_entries", ["doctor_id", "act_date"])
    op.drop_index("ix_billing_entries_day", table_name="billing_entries")
    op.create_index("ix_billing_entries_day", "billing_entries", ["act_date"])
