"""The billing ledger: entries are only ever added. Revision 0 of a consultation is written in the transaction that
ends it; the unique ``(consultation_id, revision)`` makes a second one fail, whatever the number of concurrent ends.
A correction is the next revision, naming the entry it replaces."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, String, exists, func, select, tuple_, type_coerce
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

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


# --- exports: pages of current entries, read as plain rows ----------------------------------------------------


def _plain(column: Any) -> Any:
    """A timestamp column as the driver hands it (asyncpg: an aware datetime; SQLite: the stored text), without
    the model's decorator around each value: a third of the export's reading time went there."""
    return type_coerce(column, String()).label(column.key)  # String: no result processor on either driver


def _from_sqlite(text: str | None) -> datetime | None:
    """SQLite's stored UTC text (``2026-11-03 13:05:09.000000``) as an aware datetime."""
    return None if text is None else datetime.fromisoformat(text + "+00:00")


def _as_is(moment: datetime | None) -> datetime | None:
    return moment


def _stamps(dialect: str) -> Callable[[Any], Any]:
    return _from_sqlite if dialect == "sqlite" else _as_is


_ENTRY_COLUMNS = (
    BillingEntry.id,
    BillingEntry.consultation_id,
    BillingEntry.revision,
    BillingEntry.corrects,
    BillingEntry.status,
    BillingEntry.reason,
    BillingEntry.act_date,
    BillingEntry.doctor_id,
    BillingEntry.doctor_name,
    BillingEntry.doctor_rpps,
    BillingEntry.patient_name,
    BillingEntry.patient_birth_date,
    BillingEntry.patient_nir,
    BillingEntry.nurse_name,
    BillingEntry.nurse_number,
    BillingEntry.nurse_place,
    _plain(BillingEntry.scheduled_at),
    _plain(BillingEntry.started_at),
    _plain(BillingEntry.ended_at),
    BillingEntry.duration_s,
    BillingEntry.video_connected,
    BillingEntry.total_cents,
    BillingEntry.currency,
    _plain(BillingEntry.recorded_at),
    BillingEntry.recorded_by,
)
_ENTRY_WIDTH = len(_ENTRY_COLUMNS)
_ACT_COLUMNS = (
    BillingEntryAct.role,
    BillingEntryAct.performer_name,
    BillingEntryAct.code,
    BillingEntryAct.amount_cents,
    BillingEntryAct.tariff_from,
    BillingEntryAct.modifiers,
)
_STATUSES = {status.value: status for status in domain.BillingStatus}


async def current_page(
    tx: Tx,
    first: date,
    last: date,
    *,
    after: tuple[date, str] | None = None,
    doctor_id: str | None = None,
    rpps: str | None = None,
    limit: int = EXPORT_BATCH,
) -> list[domain.BillingRecord]:
    """Up to ``limit`` current entries of the range after the keyset ``after`` (``(day, consultation)``), in that
    order, with their acts: one core query (the page's entries joined to their acts) of plain rows on the
    transaction's connection (no ORM objects, no identity map, no list of ids to bind), so a caller paging through
    a year holds one page at a time and may give each page its own short transaction. An entry is current when no
    later revision of its consultation exists (an index probe on ``(consultation_id, revision)``, not an aggregate
    over the whole range for every page)."""
    newer = aliased(BillingEntry)
    # One lower bound on the day, the cursor's once there is one: SQLite's index search starts at the first of
    # two bounds it is given, which made every page rescan the range from its first day.
    query = select(*_ENTRY_COLUMNS).where(
        BillingEntry.act_date >= (first if after is None else max(first, after[0])),
        BillingEntry.act_date <= last,
        ~exists().where(newer.consultation_id == BillingEntry.consultation_id, newer.revision > BillingEntry.revision),
    )
    if after is not None:
        query = query.where(tuple_(BillingEntry.act_date, BillingEntry.consultation_id) > tuple_(*after))
    if doctor_id is not None:
        query = query.where(BillingEntry.doctor_id == doctor_id)
    if rpps is not None:
        query = query.where(BillingEntry.doctor_rpps == rpps)
    page = query.order_by(BillingEntry.act_date, BillingEntry.consultation_id).limit(limit).subquery()
    joined = (
        select(page, *_ACT_COLUMNS)
        .outerjoin(BillingEntryAct, BillingEntryAct.entry_id == page.c.id)
        .order_by(page.c.act_date, page.c.consultation_id, BillingEntryAct.position)
    )
    conn = await tx.connection()
    stamp = _stamps(conn.dialect.name)
    records: list[domain.BillingRecord] = []
    entry: Any = None
    acts: list[domain.BillingAct] = []
    for row in (await conn.execute(joined)).all():
        if entry is None or row[0] != entry[0]:
            if entry is not None:
                records.append(_record(entry, tuple(acts), stamp))
            entry, acts = row, []
        role, performer, code, cents, tariff_from, modifiers = row[_ENTRY_WIDTH:]
        if code is not None:  # an entry without an act has one row, its act columns null
            acts.append(
                domain.BillingAct(
                    role=role,
                    performer_name=performer,
                    act_code=code,
                    amount_cents=cents,
                    tariff_from=tariff_from,
                    modifiers=_modifiers(modifiers),
                )
            )
    if entry is not None:
        records.append(_record(entry, tuple(acts), stamp))
    return records


def _modifiers(text: str) -> tuple[domain.Modifier, ...]:
    if text == "[]":
        return ()
    return tuple(
        domain.Modifier(code=m["code"], amount_cents=int(m["amount_cents"]), tariff_from=date.fromisoformat(m["from"]))
        for m in json.loads(text)
    )


def _record(row: Any, acts: tuple[domain.BillingAct, ...], stamp: Callable[[Any], Any]) -> domain.BillingRecord:
    (
        entry_id,
        consultation_id,
        revision,
        corrects,
        status,
        reason,
        act_date,
        doctor_id,
        doctor_name,
        doctor_rpps,
        patient_name,
        patient_birth_date,
        patient_nir,
        nurse_name,
        nurse_number,
        nurse_place,
        scheduled_at,
        started_at,
        ended_at,
        duration_s,
        video_connected,
        total_cents,
        currency,
        recorded_at,
        recorded_by,
    ) = row[:_ENTRY_WIDTH]
    return domain.BillingRecord(
        id=entry_id,
        consultation_id=consultation_id,
        revision=revision,
        corrects=corrects or None,
        status=_STATUSES[status],
        reason=reason,
        act_date=act_date,
        doctor_id=doctor_id,
        doctor_name=doctor_name,
        doctor_rpps=doctor_rpps,
        patient_name=patient_name,
        patient_birth_date=patient_birth_date,
        patient_nir=patient_nir,
        nurse=domain.Nurse(name=nurse_name, number=nurse_number, place=nurse_place or "")
        if nurse_name is not None
        else None,
        scheduled_at=stamp(scheduled_at),
        started_at=stamp(started_at),
        ended_at=stamp(ended_at),
        duration_s=duration_s,
        video_connected=bool(video_connected),
        total_cents=total_cents,
        currency=currency,
        acts=acts,
        recorded_at=stamp(recorded_at),
        recorded_by=recorded_by,
    )
