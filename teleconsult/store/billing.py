"""Billing records: one per consultation, written in the transaction that ends it."""

from __future__ import annotations

from sqlalchemy import select

from teleconsult import domain
from teleconsult.store import values
from teleconsult.store.database import Tx
from teleconsult.store.models import BillingAct, BillingRecord


async def add_billing_record(tx: Tx, record: domain.BillingRecord) -> domain.BillingRecord:
    row = BillingRecord(
        id=record.id,
        consultation_id=record.consultation_id,
        doctor_id=record.doctor_id,
        doctor_name=record.doctor_name,
        doctor_rpps=record.doctor_rpps,
        patient_name=record.patient_name,
        started_at=record.started_at,
        ended_at=record.ended_at,
        duration_s=record.duration_s,
        total_cents=record.total_cents,
        currency=record.currency,
    )
    tx.add(row)
    await tx.flush()
    for position, act in enumerate(record.acts):
        tx.add(
            BillingAct(
                record_id=record.id,
                position=position,
                role=act.role,
                performer_name=act.performer_name,
                act_code=act.act_code,
                amount_cents=act.amount_cents,
            )
        )
    await tx.flush()
    await tx.refresh(row, ["acts"])
    return values.billing_record(row)


async def billing_for_consultation(tx: Tx, consultation_id: str) -> domain.BillingRecord | None:
    query = select(BillingRecord).where(BillingRecord.consultation_id == consultation_id)
    row = (await tx.execute(query)).scalar_one_or_none()
    return values.billing_record(row) if row is not None else None
