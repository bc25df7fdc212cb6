"""What both writers read: a record's lines (``lines_of``: one per act, as the store's ``current_lines`` reads them),
records turned into pages of lines (``_pages``), each act code's French label (``_Labels``), and the minutes and
seconds of an hour (``_MINUTES_SECONDS``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date

from teleconsult.acts import ActCatalog, UnknownAct
from teleconsult.domain import BillingLine, BillingRecord

#: "MM:SS" for each second of an hour.
_MINUTES_SECONDS = tuple(f"{minutes:02d}:{seconds:02d}" for minutes in range(60) for seconds in range(60))


class _Labels:
    """Each act code's French label, looked up once per code (a code the catalog no longer has: no label)."""

    def __init__(self, catalog: ActCatalog):
        self._catalog = catalog
        self._known: dict[str, str] = {}

    def __call__(self, code: str, day: date) -> str:
        label = self._known.get(code)
        if label is None:
            try:
                label = self._catalog.tariff(code, day, include_unconfirmed=True).label("fr")
            except UnknownAct:
                label = ""
            self._known[code] = label
        return label


def lines_of(record: BillingRecord) -> Iterator[BillingLine]:
    """A record's export lines: one per act, or one without an act (what the store's ``current_lines`` reads)."""
    nurse = record.nurse
    entry = (
        record.act_date,
        record.consultation_id,
        record.id,
        record.revision,
        record.corrects,
        record.status,
        record.reason,
        record.doctor_name,
        record.doctor_rpps,
        record.patient_name,
        record.patient_birth_date,
        record.patient_nir,
        nurse.name if nurse is not None else None,
        nurse.number if nurse is not None else None,
        nurse.place if nurse is not None else None,
        record.scheduled_at,
        record.started_at,
        record.ended_at,
        record.duration_s,
        record.video_connected,
        record.recorded_at,
    )
    if not record.acts:
        yield BillingLine(*entry, None, None, None, None, None, ())
    for act in record.acts:
        yield BillingLine(
            *entry, act.role, act.performer_name, act.act_code, act.amount_cents, act.tariff_from, act.modifiers
        )


async def _pages(records: AsyncIterator[BillingRecord]) -> AsyncIterator[list[BillingLine]]:
    page: list[BillingLine] = []
    async for record in records:
        page.extend(lines_of(record))
        if len(page) >= 256:
            yield page
            page = []
    if page:
        yield page
