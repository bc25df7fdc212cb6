"""The billing ledger's service: the proposal shown when the doctor ends, the entry written in the transaction that
ends the consultation (once: a unique constraint, not a check), corrections as new entries, and a month's summary.
Every entry and correction is an audit event (ids and codes only)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime

from teleconsult.acts import ActCatalog
from teleconsult.billing.exports import LINES_PER_TURN, Chunks, ExportFormat, csv_line_chunks, fhir_line_chunks
from teleconsult.billing.proposal import BillingChoice, Proposal, propose
from teleconsult.clock import now as clock_now
from teleconsult.clock import paris_day_bounds
from teleconsult.domain import BillingLine, BillingRecord, BillingStatus, Consultation, Doctor
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.lifecycle import CLOSED, Status
from teleconsult.store import Database, Tx, audit
from teleconsult.store import billing as store
from teleconsult.store import consultations as consultation_store
from teleconsult.validation import birth_date, nir, optional_text


@dataclass(frozen=True, slots=True)
class MonthSummary:
    first: date
    last: date
    #: Consultations by status: completed, no_show, interrupted, not_billable (their ledger entries) and
    #: cancelled (no entry).
    statuses: dict[str, int]
    #: Acts by code: how many, and their total in cents.
    acts: dict[str, tuple[int, int]]
    total_cents: int


def checked(choice: BillingChoice) -> BillingChoice:
    """The doctor's free input checked at the edge (reason length, birth date, NIR and its key)."""
    return BillingChoice(
        status=choice.status,
        doctor_act=choice.doctor_act,
        majorations=choice.majorations,
        nurse_place=choice.nurse_place,
        nurse_number=optional_text(choice.nurse_number, field="nurse_number", max_length=11),
        reason=optional_text(choice.reason, field="reason", max_length=300),
        patient_birth_date=birth_date(choice.patient_birth_date) if choice.patient_birth_date else None,
        patient_nir=nir(choice.patient_nir) if choice.patient_nir else None,
    )


class BillingService:
    def __init__(self, db: Database, catalog: ActCatalog):
        self._db = db
        self._catalog = catalog

    @property
    def catalog(self) -> ActCatalog:
        return self._catalog

    async def exported(self, *, actor: str, first: date, last: date, fmt: str, scope: str) -> None:
        """An export is an audit event: who took which range, in which format (never its content)."""
        async with self._db.transaction() as tx:
            await audit.add_event(
                tx,
                action="billing.exported",
                actor=actor,
                detail={"from": first.isoformat(), "to": last.isoformat(), "format": fmt, "scope": scope},
            )

    # --- inside the transaction that ends a consultation -------------------------------------------------------

    def draft(
        self,
        consultation: Consultation,
        doctor: Doctor,
        *,
        ended_at: datetime,
        choice: BillingChoice | None,
        recorded_by: str,
    ) -> BillingRecord:
        """The entry the doctor's choice makes; raises before anything is written when the choice is refused."""
        return propose(
            self._catalog,
            consultation,
            doctor,
            ended_at=ended_at,
            choice=checked(choice) if choice else None,
            recorded_by=recorded_by,
        ).draft

    async def record(self, tx: Tx, draft: BillingRecord) -> BillingRecord:
        """Revision 0, in the caller's transaction: a second writer fails on the unique constraint."""
        record = await store.add_entry(tx, draft)
        await _audit(tx, record, "billing.recorded")
        return record

    async def existing(self, tx: Tx, consultation_id: str) -> BillingRecord | None:
        return await store.current_entry(tx, consultation_id)

    # --- the doctor's own requests -----------------------------------------------------------------------------

    async def proposal(self, doctor: Doctor, consultation_id: str, choice: BillingChoice | None = None) -> Proposal:
        """What ending now would bill (or, after the end, what a correction with ``choice`` would make)."""
        async with self._db.transaction() as tx:
            consultation = await _owned(tx, doctor, consultation_id)
        ended_at = consultation.ended_at or clock_now()
        return propose(
            self._catalog,
            consultation,
            doctor,
            ended_at=ended_at,
            choice=checked(choice) if choice else None,
            recorded_by=f"doctor:{doctor.id}",
        )

    async def entries(self, doctor: Doctor, consultation_id: str) -> list[BillingRecord]:
        async with self._db.transaction() as tx:
            await _owned(tx, doctor, consultation_id)
            return await store.entries_of(tx, consultation_id)

    async def correct(self, doctor: Doctor, consultation_id: str, choice: BillingChoice) -> BillingRecord:
        """A new entry replacing the current one; the original and every earlier correction stay as they were."""
        choice = checked(choice)
        async with self._db.transaction() as tx:
            consultation = await _owned(tx, doctor, consultation_id)
            current = await store.current_entry(tx, consultation_id)
            if current is None or Status(consultation.status) not in CLOSED:
                raise TeleconsultError(ErrorCode.CONFLICT, "Only an ended consultation's billing can be corrected.")
            if current.status is BillingStatus.NO_SHOW:
                raise TeleconsultError(ErrorCode.CONFLICT, "The patient never joined: there is nothing to bill.")
            draft = propose(
                self._catalog,
                consultation,
                doctor,
                ended_at=current.ended_at,
                choice=choice,
                recorded_by=f"doctor:{doctor.id}",
                recorded_at=clock_now(),
                revision=current.revision + 1,
                corrects=current.id,
            ).draft
            record = await store.add_entry(tx, draft)
            await _audit(tx, record, "billing.corrected")
            return record

    async def month(self, doctor: Doctor, first: date, last: date) -> MonthSummary:
        """The doctor's consultations of the range by status, their acts and the total."""
        statuses: Counter[str] = Counter()
        acts: dict[str, tuple[int, int]] = {}
        total = 0
        start, end = paris_day_bounds(first, last)
        async with self._db.transaction() as tx:
            async for record in store.stream_current(tx, first, last, doctor_id=doctor.id):
                statuses[record.status.value] += 1
                total += record.total_cents
                for act in record.acts:
                    count, cents = acts.get(act.act_code, (0, 0))
                    acts[act.act_code] = (count + 1, cents + act.total_cents)
            statuses["cancelled"] = await store.cancelled_between(tx, doctor.id, start, end)
        for status in BillingStatus:
            statuses.setdefault(status.value, 0)
        return MonthSummary(first=first, last=last, statuses=dict(statuses), acts=acts, total_cents=total)

    # --- exports (teleconsult/billing/exports/) -------------------------------------------------------------------

    def export(
        self, first: date, last: date, fmt: ExportFormat, *, doctor: Doctor | None = None, rpps: str | None = None
    ) -> Chunks:
        """The current entry of each consultation of ``[first, last]`` (Paris days) as ``fmt`` bytes, streamed: a
        doctor's own (``doctor``), those of an RPPS number (``rpps``, the operator's CLI), or everyone's. The entries
        are read ``EXPORT_BATCH`` at a time (``_pages``) as lines (``current_lines``: an entry's act per line, no
        ``BillingRecord`` built). The same range and scope give the same bytes, whoever asks."""
        scope = f"rpps:{doctor.rpps}" if doctor is not None else f"rpps:{rpps}" if rpps else "all"
        lines = self._lines(first, last, doctor_id=doctor.id if doctor else None, rpps=rpps)
        if fmt is ExportFormat.CSV:
            return csv_line_chunks(lines, self._catalog)
        return fhir_line_chunks(lines, self._catalog, first=first, last=last, scope=scope)

    async def _lines(
        self, first: date, last: date, *, doctor_id: str | None, rpps: str | None
    ) -> AsyncIterator[list[BillingLine]]:
        """The current entries' lines, ``LINES_PER_TURN`` at a time, with a turn of the event loop before each: an
        export never holds the loop (live rooms) for more than a few milliseconds."""

        async def read(tx: Tx, after: tuple[date, str] | None) -> list[BillingLine]:
            return await store.current_lines(
                tx, first, last, after=after, doctor_id=doctor_id, rpps=rpps, limit=store.EXPORT_BATCH
            )

        async for found in self._pages(read):
            for start in range(0, len(found), LINES_PER_TURN):
                await asyncio.sleep(0)
                yield found[start : start + LINES_PER_TURN]

    async def _pages(
        self, read: Callable[[Tx, tuple[date, str] | None], Awaitable[list[BillingLine]]]
    ) -> AsyncIterator[list[BillingLine]]:
        """Pages of the export, each read after the keyset of the one before (its last ``(day, consultation)``),
        until an empty one. The next page is asked for as soon as this one arrives: the database
        reads it while this one is formatted. On SQLite each page is read in a transaction of its own (its one
        connection is never held for the whole export); on PostgreSQL every page in one transaction, on one
        connection of the pool, so that a page is one round trip (not four: the connection's check, ``BEGIN``, the
        query, ``COMMIT``, each waiting for a turn of the loop between two slices of formatting)."""
        async with contextlib.AsyncExitStack() as stack:
            shared = None if self._db.is_sqlite else await stack.enter_async_context(self._db.transaction())
            if shared is not None:
                await store.export_pages(shared)

            async def page(after: tuple[date, str] | None) -> list[BillingLine]:
                if shared is not None:
                    return await read(shared, after)
                async with self._db.transaction() as tx:
                    return await read(tx, after)

            pending: asyncio.Task[list[BillingLine]] | None = asyncio.ensure_future(page(None))
            try:
                while pending is not None:
                    found = await pending
                    pending = None
                    if found:
                        pending = asyncio.ensure_future(page((found[-1].act_date, found[-1].consultation_id)))
                    yield found
            finally:
                if pending is not None:  # the reader stopped early: let the read end (a read is never cancelled)
                    with contextlib.suppress(Exception):
                        await asyncio.shield(pending)


async def _owned(tx: Tx, doctor: Doctor, consultation_id: str) -> Consultation:
    consultation = await consultation_store.consultation_by_id(tx, consultation_id)
    if consultation is None or consultation.doctor_id != doctor.id:
        raise TeleconsultError(ErrorCode.NOT_FOUND)
    return consultation


async def _audit(tx: Tx, record: BillingRecord, action: str) -> None:
    detail: dict[str, object] = {
        "entry": record.id,
        "revision": record.revision,
        "status": record.status.value,
        "acts": [act.act_code for act in record.acts],
        "modifiers": [m.code for act in record.acts for m in act.modifiers],
        "total_cents": record.total_cents,
    }
    if record.corrects:
        detail["corrects"] = record.corrects
    await audit.add_event(
        tx, action=action, actor=record.recorded_by, consultation_id=record.consultation_id, detail=detail
    )
