"""The billing ledger: entries are only ever added. Revision 0 of a consultation is written in the transaction that
ends it; the unique ``(consultation_id, revision)`` makes a second one fail, whatever the number of concurrent ends.
A correction is the next revision, naming the entry it replaces."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from teleconsult import domain
from teleconsult.store import values
from teleconsult.store.database import Tx
from teleconsult.store.models import BillingEntry, BillingEntryAct, Consultation

#: Entries read per round trip by the exports: a year of a busy practice never sits in memory.
EXPORT_BATCH = 2_000


class AlreadyRecorded(Exception):
    """The consultation already has an entry of this revision (another writer won): the transaction is spoiled and
    must be rolled back."""


async def add_entry(tx: Tx, record: domain.BillingRecord) -> domain.BillingRecord:
    """Insert one entry and its acts; an existing ``(consultation, revision)`` raises ``AlreadyRecorded``."""
    row = BillingEntry(
        id=record.id,
        consultation_id=record.consultation_id,
        revision=record.revision,
        corrects=record.corrects,
        status=record.status.value,
        reason=record.reason,
        act_date=record.act_date,
        doctor_id=record.doctor_id,
        doctor_name=record.doctor_name,
        doctor_rpps=record.doctor_rpps,
        patient_name=record.patient_name,
        patient_birth_date=record.patient_birth_date,
        patient_nir=record.patient_nir,
        nurse_name=record.nurse.name if record.nurse else None,
        nurse_number=record.nurse.number if record.nurse else None,
        nurse_place=record.nurse.place if record.nurse else None,
        scheduled_at=record.scheduled_at,
        started_at=record.started_at,
        ended_at=record.ended_at,
        duration_s=record.duration_s,
        video_connected=record.video_connected,
        total_cents=record.total_cents,
        currency=record.currency,
        recorded_at=record.recorded_at,
        recorded_by=record.recorded_by,
    )
    tx.add(row)
    try:
        await tx.flush()
    except IntegrityError as exc:
        raise AlreadyRecorded(record.consultation_id) from exc
    for position, act in enumerate(record.acts):
        tx.add(
            BillingEntryAct(
                entry_id=record.id,
                position=position,
                role=act.role,
                performer_name=act.performer_name,
                code=act.act_code,
                amount_cents=act.amount_cents,
                tariff_from=act.tariff_from,
                modifiers=json.dumps(
                    [
                        {"code": m.code, "amount_cents": m.amount_cents, "from": m.tariff_from.isoformat()}
                        for m in act.modifiers
                    ]
                ),
            )
        )
    await tx.flush()
    await tx.refresh(row, ["acts"])
    return values.billing_record(row)


async def current_entry(tx: Tx, consultation_id: str) -> domain.BillingRecord | None:
    """The consultation's latest entry (its original, or the last correction)."""
    query = (
        select(BillingEntry)
        .where(BillingEntry.consultation_id == consultation_id)
        .order_by(BillingEntry.revision.desc())
        .limit(1)
    )
    row = (await tx.execute(query)).scalar_one_or_none()
    return values.billing_record(row) if row is not None else None


async def entries_of(tx: Tx, consultation_id: str) -> list[domain.BillingRecord]:
    """Every entry of a consultation, the original first."""
    query = select(BillingEntry).where(BillingEntry.consultation_id == consultation_id).order_by(BillingEntry.revision)
    return [values.billing_record(row) for row in (await tx.execute(query)).scalars()]


def _latest_in_range(first: date, last: date, doctor_id: str | None, rpps: str | None) -> Select[BillingEntry]:
    """The latest revision of each consultation whose day is in ``[first, last]``, by day then consultation."""
    latest = (
        select(BillingEntry.consultation_id, func.max(BillingEntry.revision).label("revision"))
        .where(BillingEntry.act_date >= first, BillingEntry.act_date <= last)
        .group_by(BillingEntry.consultation_id)
    )
    if doctor_id is not None:
        latest = latest.where(BillingEntry.doctor_id == doctor_id)
    if rpps is not None:
        latest = latest.where(BillingEntry.doctor_rpps == rpps)
    newest = latest.subquery()
    query: Select[BillingEntry] = select(BillingEntry)
    return query.join(
        newest,
        (BillingEntry.consultation_id == newest.c.consultation_id) & (BillingEntry.revision == newest.c.revision),
    )


async def stream_current(
    tx: Tx, first: date, last: date, *, doctor_id: str | None = None, rpps: str | None = None
) -> AsyncIterator[domain.BillingRecord]:
    """The current entry of each consultation of the range, in ``(day, consultation)`` order, read in batches
    (keyset pagination: memory stays flat however long the range)."""
    after: tuple[date, str] | None = None
    base = _latest_in_range(first, last, doctor_id, rpps)
    while True:
        query = base.order_by(BillingEntry.act_date, BillingEntry.consultation_id).limit(EXPORT_BATCH)
        if after is not None:
            query = query.where(
                (BillingEntry.act_date > after[0])
                | ((BillingEntry.act_date == after[0]) & (BillingEntry.consultation_id > after[1]))
            )
        rows = (await tx.execute(query)).scalars().all()
        for row in rows:
            yield values.billing_record(row)
        tx.expunge_all()
        if len(rows) < EXPORT_BATCH:
            return
        after = (rows[-1].act_date, rows[-1].consultation_id)


async def cancelled_between(tx: Tx, doctor_id: str, start: datetime, end: datetime) -> int:
    """How many of the doctor's consultations were cancelled in ``[start, end)`` (they have no ledger entry)."""
    query = select(func.count(Consultation.id)).where(
        Consultation.doctor_id == doctor_id,
        Consultation.status == "cancelled",
        Consultation.ended_at >= start,
        Consultation.ended_at < end,
    )
    return int((await tx.execute(query)).scalar_one())
