"""Billing records: one per consultation, written in the transaction that ends it."""

from __future__ import annotations

from sqlalchemy import select

from teleconsult.store.database import Tx
from teleconsult.store.models import BillingAct, BillingRecord


async def add_billing_record(tx: Tx, record: BillingRecord, acts: list[BillingAct]) -> BillingRecord:
    tx.add(record)
    await tx.flush()
    for position, act in enumerate(acts):
        act.record_id = record.id
        act.position = position
        tx.add(act)
    await tx.flush()
    await tx.refresh(record, ["acts"])
    return record


async def billing_for_consultation(tx: Tx, consultation_id: str) -> BillingRecord | None:
    query = select(BillingRecord).where(BillingRecord.consultation_id == consultation_id)
    return (await tx.execute(query)).scalar_one_or_none()
