"""the billing ledger: entries with revisions (a correction is a new entry), statuses, the tariff's date per act,
the doctor's profession, and when video flowed

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PARIS = ZoneInfo("Europe/Paris")


def upgrade() -> None:
    with op.batch_alter_table("doctors") as batch:
        batch.add_column(sa.Column("profession", sa.String(length=16), nullable=False, server_default="generalist"))
    with op.batch_alter_table("consultations") as batch:
        batch.add_column(sa.Column("video_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "billing_entries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("consultation_id", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("corrects", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("act_date", sa.Date(), nullable=False),
        sa.Column("doctor_id", sa.String(length=32), nullable=False),
        sa.Column("doctor_name", sa.String(length=200), nullable=False),
        sa.Column("doctor_rpps", sa.String(length=11), nullable=False),
        sa.Column("patient_name", sa.String(length=200), nullable=False),
        sa.Column("patient_birth_date", sa.Date(), nullable=True),
        sa.Column("patient_nir", sa.String(length=15), nullable=True),
        sa.Column("nurse_name", sa.String(length=200), nullable=True),
        sa.Column("nurse_number", sa.String(length=11), nullable=True),
        sa.Column("nurse_place", sa.String(length=16), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("video_connected", sa.Boolean(), nullable=False),
        sa.Column("total_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["consultation_id"], ["consultations.id"]),
        sa.ForeignKeyConstraint(["corrects"], ["billing_entries.id"]),
        sa.ForeignKeyConstraint(["doctor_id"], ["doctors.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("consultation_id", "revision", name="uq_billing_entries_once"),
    )
    op.create_index("ix_billing_entries_doctor_day", "billing_entries", ["doctor_id", "act_date"])
    op.create_index("ix_billing_entries_day", "billing_entries", ["act_date"])
    op.create_table(
        "billing_entry_acts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("performer_name", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("tariff_from", sa.Date(), nullable=False),
        sa.Column("modifiers", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["billing_entries.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("entry_id", "position"),
    )
    _copy_records()
    op.drop_table("billing_acts")
    with op.batch_alter_table("billing_records") as batch:
        batch.drop_index("ix_billing_records_doctor_id")
    op.drop_table("billing_records")


def _copy_records() -> None:
    """The records written before the ledger become its revision 0 entries (completed: only those were written).
    The tariff's own start date was not kept then: the act's day stands for it."""
    bind = op.get_bind()
    records = bind.execute(sa.text("SELECT * FROM billing_records")).mappings().all()
    for record in records:
        started = _aware(record["started_at"])
        day = started.astimezone(PARIS).date()
        consultation = bind.execute(
            sa.text("SELECT scheduled_at FROM consultations WHERE id = :id"), {"id": record["consultation_id"]}
        ).one()
        bind.execute(
            sa.text(
                "INSERT INTO billing_entries (id, consultation_id, revision, corrects, status, reason, act_date,"
                " doctor_id, doctor_name, doctor_rpps, patient_name, scheduled_at, started_at, ended_at, duration_s,"
                " video_connected, total_cents, currency, recorded_at, recorded_by) VALUES (:id, :consultation_id,"
                " 0, NULL, 'completed', NULL, :day, :doctor_id, :doctor_name, :doctor_rpps, :patient_name,"
                " :scheduled_at, :started_at, :ended_at, :duration_s, :video, :total_cents, :currency, :created_at,"
                " 'system')"
            ),
            {**record, "day": day, "scheduled_at": consultation[0], "video": False},
        )
        acts = bind.execute(
            sa.text("SELECT * FROM billing_acts WHERE record_id = :id ORDER BY position"), {"id": record["id"]}
        ).mappings()
        for act in acts:
            bind.execute(
                sa.text(
                    "INSERT INTO billing_entry_acts (entry_id, position, role, performer_name, code, amount_cents,"
                    " tariff_from, modifiers) VALUES (:record_id, :position, :role, :performer_name, :act_code,"
                    " :amount_cents, :day, :modifiers)"
                ),
                {**act, "day": day, "modifiers": json.dumps([])},
            )


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite hands text back to raw SQL
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def downgrade() -> None:
    raise NotImplementedError("the ledger keeps corrections the old records cannot hold; restore a backup instead")
