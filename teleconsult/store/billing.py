"""The billing ledger: entries are only ever added. Revision 0 of a consultation is written in the transaction that
ends it; the unique ``(consultation_id, revision)`` makes a second one fail, whatever the number of concurrent ends.
A correction is the next revision, naming the entry it replaces."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Integer, Select, String, bindparam, case, exists, func, select, text, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
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


def _from_sqlite(text: str | None) -> datetime | None:
    """SQLite's stored UTC text (``2026-11-03 13:05:09.000000``) as an aware datetime."""
    return None if text is None else datetime.fromisoformat(text + "+00:00")


def _as_is(value: Any) -> Any:
    return value


#: A line's act (all null for an entry without one); the performer null when it is the doctor, the majorations
#: null when there are none, as most often: one value less to read for each line.
_ACT_COLUMNS = (
    BillingEntryAct.role,
    case(
        (BillingEntryAct.performer_name == BillingEntry.doctor_name, None), else_=BillingEntryAct.performer_name
    ).label("performer"),
    BillingEntryAct.code,
    BillingEntryAct.amount_cents,
    BillingEntryAct.tariff_from,
    case((BillingEntryAct.modifiers == "[]", None), else_=BillingEntryAct.modifiers).label("majorations"),
)


#: A page's query: a select of the line's columns.
_Query = Select[*tuple[Any, ...]]


@functools.cache
def _page(after: bool, by_doctor: bool, by_rpps: bool) -> _Query:
    """The query of a page: up to ``:limit`` rows of the current entries of the range, each joined to its acts (an
    entry without an act: one row, its act columns null), in the export's order ``(day, consultation, act)``, from
    ``:since`` or after the keyset ``(:after_day, :after_consultation)``, the columns of a ``BillingLine``. An entry
    is current when no later revision of its consultation exists (an index probe on ``(consultation_id,
    revision)``, not an aggregate over the whole range for every page). One flat join read in the index's order
    (``(act_date, consultation_id, revision)``, migrations 0010 and 0011), not a page of entries joined to their
    acts and sorted again: a third of SQLite's time. Built once for each shape, its values bound (``_bounds``):
    building a query took a millisecond a page."""
    newer = aliased(BillingEntry)
    query: _Query = (
        select(*_LINE_COLUMNS, *_ACT_COLUMNS)
        .outerjoin(BillingEntryAct, BillingEntryAct.entry_id == BillingEntry.id)
        .where(
            BillingEntry.act_date <= bindparam("last", type_=Date()),
            ~exists().where(
                newer.consultation_id == BillingEntry.consultation_id, newer.revision > BillingEntry.revision
            ),
        )
    )
    # One lower bound, the day's or the keyset's: SQLite's index search starts at the first of two it is given,
    # which made every page rescan its day from the start.
    if after:
        cursor = tuple_(bindparam("after_day", type_=Date()), bindparam("after_consultation", type_=String()))
        query = query.where(tuple_(BillingEntry.act_date, BillingEntry.consultation_id) > cursor)
    else:
        query = query.where(BillingEntry.act_date >= bindparam("since", type_=Date()))
    if by_doctor:
        query = query.where(BillingEntry.doctor_id == bindparam("doctor_id", type_=String()))
    if by_rpps:
        query = query.where(BillingEntry.doctor_rpps == bindparam("rpps", type_=String()))
    # The revision too (one current entry per consultation: the same order), as the unique day index has it: SQLite
    # then reads each entry's acts in their position's order along their own index, and sorts nothing.
    order = (BillingEntry.act_date, BillingEntry.consultation_id, BillingEntry.revision, BillingEntryAct.position)
    return query.order_by(*order).limit(bindparam("limit", type_=Integer()))


def _bounds(
    first: date,
    last: date,
    after: tuple[date, str] | None,
    doctor_id: str | None,
    rpps: str | None,
    limit: int,
) -> tuple[_Query, dict[str, Any]]:
    """A page's query and its values (a keyset before the range's first day is the range's start)."""
    keyset = after is not None and after[0] >= first
    values: dict[str, Any] = {"last": last, "limit": limit}
    if after is not None and keyset:
        values |= {"after_day": after[0], "after_consultation": after[1]}
    else:
        values["since"] = first
    if doctor_id is not None:
        values["doctor_id"] = doctor_id
    if rpps is not None:
        values["rpps"] = rpps
    return _page(keyset, doctor_id is not None, rpps is not None), values


#: What a ``BillingLine`` holds of its entry, in its order (its act's columns, ``_ACT_COLUMNS``, follow).
_LINE_COLUMNS = (
    BillingEntry.act_date,
    BillingEntry.consultation_id,
    BillingEntry.id,
    BillingEntry.revision,
    BillingEntry.corrects,
    BillingEntry.status,
    BillingEntry.reason,
    BillingEntry.doctor_name,
    BillingEntry.doctor_rpps,
    BillingEntry.patient_name,
    BillingEntry.patient_birth_date,
    BillingEntry.patient_nir,
    BillingEntry.nurse_name,
    BillingEntry.nurse_number,
    BillingEntry.nurse_place,
    BillingEntry.scheduled_at,
    BillingEntry.started_at,
    BillingEntry.ended_at,
    BillingEntry.duration_s,
    BillingEntry.video_connected,
    # Null when it is the end, as it most often is: one value less to read and convert for each line.
    case((BillingEntry.recorded_at == BillingEntry.ended_at, None), else_=BillingEntry.recorded_at).label("recorded"),
)

_STATUSES = {status.value: status for status in domain.BillingStatus}

#: ``tuple.__new__``: a ``BillingLine`` from a tuple of its fields, without the keyword-checking constructor.
_new_line: Callable[[type[domain.BillingLine], tuple[Any, ...]], domain.BillingLine] = tuple.__new__


_ENTRY_ID = [column.key for column in _LINE_COLUMNS].index("id")


async def _rows(
    conn: AsyncConnection,
    first: date,
    last: date,
    after: tuple[date, str] | None,
    doctor_id: str | None,
    rpps: str | None,
    limit: int,
) -> Sequence[Any]:
    """The driver's rows of a page of whole entries: a full page's last entry may go on in the next rows, so it is
    left to the next page; a page that holds one entry only is read again, twice as long, until it ends."""
    while True:
        query, bound = _bounds(first, last, after, doctor_id, rpps, limit)
        result = await conn.execute(query, bound)
        try:
            rows: Sequence[Any] = result.cursor.fetchall()  # the driver's rows, every one read (async drivers buffer)
        finally:
            result.close()
        if len(rows) < limit:
            return rows
        last_entry = rows[-1][_ENTRY_ID]
        cut = len(rows) - 1
        while cut > 0 and rows[cut - 1][_ENTRY_ID] == last_entry:
            cut -= 1
        if cut:
            return rows[:cut]
        limit *= 2


async def export_pages(tx: Tx) -> None:
    """Make ``tx`` the transaction of an export's pages (PostgreSQL: every page in one transaction): no parallel
    plans in it. A page is a few thousand rows read in a few milliseconds along an index; the planner, seeing a
    range of a million, would start two workers for each, which cost more to start than they save and take the
    cores that the export's own formatting needs."""
    conn = await tx.connection()
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


async def current_lines(
    tx: Tx,
    first: date,
    last: date,
    *,
    after: tuple[date, str] | None = None,
    doctor_id: str | None = None,
    rpps: str | None = None,
    limit: int = EXPORT_BATCH,
) -> list[domain.BillingLine]:
    """About ``limit`` lines (whole entries) of the current entries of the range after the keyset ``after``
    (``(day, consultation)``), in the export's order, with their acts: one core query (``_page``) on the
    transaction's connection, its rows the driver's own tuples (no ORM objects, no
    SQLAlchemy rows and their type processing: a fifth of the reading time on SQLite) made straight into
    ``BillingLine`` tuples, one per act or one for an entry without an act (no ``BillingRecord`` or ``BillingAct``
    per entry: a third of the export's time went there). A caller paging through a year holds one page at a time
    and may give each page its own short transaction. An entry's lines are never split between two pages; an empty
    page is the end."""
    conn = await tx.connection()
    rows = await _rows(conn, first, last, after, doctor_id, rpps, limit)
    # SQLite hands days and times back as the text it stores them as (and booleans as integers).
    if conn.dialect.name == "sqlite":
        return _lines_of(rows, _sqlite_day, _from_sqlite)
    return _lines_of(rows, _as_is, _as_is)


def _lines_of(
    rows: Sequence[Any], day: Callable[[Any], date | None], stamp: Callable[[Any], datetime | None]
) -> list[domain.BillingLine]:
    """The driver's rows (``_LINE_COLUMNS`` and ``_ACT_COLUMNS``) as lines: an entry's own values converted once
    for all its lines."""
    line, new, known_modifiers, statuses = domain.BillingLine, _new_line, _MODIFIERS, _STATUSES
    lines: list[domain.BillingLine] = []
    add = lines.append
    entry: tuple[Any, ...] = ()
    entry_id = doctor_name = None
    for (
        act_date,
        consultation_id,
        row_entry_id,
        revision,
        corrects,
        status,
        reason,
        row_doctor_name,
        doctor_rpps,
        patient_name,
        birth_date,
        nir,
        nurse_name,
        nurse_number,
        nurse_place,
        scheduled_at,
        started_at,
        ended_at,
        duration_s,
        video_connected,
        recorded_at,
        role,
        performer,
        code,
        cents,
        tariff_from,
        modifiers,
    ) in rows:
        if row_entry_id != entry_id:
            entry_id, doctor_name, ended = row_entry_id, row_doctor_name, stamp(ended_at)
            entry = (
                day(act_date),
                consultation_id,
                entry_id,
                revision,
                corrects or None,
                statuses[status],
                reason,
                doctor_name,
                doctor_rpps,
                patient_name,
                day(birth_date),
                nir,
                nurse_name,
                nurse_number,
                nurse_place,
                stamp(scheduled_at),
                stamp(started_at),
                ended,
                duration_s,
                bool(video_connected),
                ended if recorded_at is None else stamp(recorded_at),  # null: at the end (most often)
            )
        found = () if modifiers is None else known_modifiers.get(modifiers)  # null: none (most often)
        if found is None:
            found = _modifiers_cached(modifiers)
        if performer is None and code is not None:  # null: the doctor (most often)
            performer = doctor_name
        add(new(line, (*entry, role, performer, code, cents, day(tariff_from), found)))
    return lines


def _sqlite_day(text: str | None) -> date | None:
    """SQLite's stored day (``2026-11-03``) as a date, each distinct one parsed once."""
    if text is None:
        return None
    found = _DAYS.get(text)
    if found is None:
        found = date.fromisoformat(text)
        if len(_DAYS) < 65536:  # the days of the ledger's years, the tariffs' and the patients' birth dates
            _DAYS[text] = found
    return found


_DAYS: dict[str, date] = {}


def _modifiers_cached(text: str) -> tuple[domain.Modifier, ...]:
    """``_modifiers``, each distinct text parsed once (a ledger has a handful; the tuples are frozen, so shared)."""
    found = _MODIFIERS.get(text)
    if found is None:
        found = _modifiers(text)
        if len(_MODIFIERS) < 1024:
            _MODIFIERS[text] = found
    return found


_MODIFIERS: dict[str, tuple[domain.Modifier, ...]] = {}


def _modifiers(text: str) -> tuple[domain.Modifier, ...]:
    if text == "[]":
        return ()
    return tuple(
        domain.Modifier(code=m["code"], amount_cents=int(m["amount_cents"]), tariff_from=date.fromisoformat(m["from"]))
        for m in json.loads(text)
    )
