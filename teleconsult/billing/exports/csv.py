"""The CSV export (``docs/billing.md``, "Exports"; the package's docstring gives the format): the cells (``safe_cell``,
``euros``, ``paris_time``), the lines written from pieces formatted once (``_CsvText``), and the chunks
(``csv_chunks`` from records, ``csv_line_chunks`` from the store's pages of lines).

``import csv`` below is the standard library's module (imports are absolute), not this one."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from teleconsult.acts import ActCatalog
from teleconsult.billing.exports import formats
from teleconsult.billing.exports.formats import Chunks
from teleconsult.billing.exports.lines import _MINUTES_SECONDS, _Labels, _pages
from teleconsult.clock import PARIS
from teleconsult.domain import BillingLine, BillingRecord

CSV_BOM = "\ufeff"

#: The columns, in order (French headers: the accountant's spreadsheet).
CSV_COLUMNS = (
    "Date",
    "Consultation",
    "Écriture",
    "Révision",
    "Corrige",
    "Statut",
    "Motif",
    "Médecin",
    "RPPS médecin",
    "Patient",
    "Date de naissance",
    "NIR",
    "Infirmière",
    "N° infirmière",
    "Lieu infirmière",
    "Rôle",
    "Exécutant",
    "Code acte",
    "Libellé acte",
    "Montant acte (€)",
    "Tarif du",
    "Majorations",
    "Montant majorations (€)",
    "Total acte (€)",
    "Programmée",
    "Début",
    "Fin",
    "Durée (s)",
    "Vidéo",
)

#: What makes a spreadsheet read a cell as a formula (OWASP "CSV injection").
_FORMULA_STARTS = frozenset("=+-@\t\r")


def safe_cell(text: str | None) -> str:
    """Free text as a cell that no spreadsheet evaluates: a leading apostrophe before a formula's first character."""
    if not text:
        return ""
    return "'" + text if text[0] in _FORMULA_STARTS else text


def euros(cents: int) -> str:
    """``2500`` → ``25,00`` (no thousands separator: spreadsheets read it as a number)."""
    found = _EUROS.get(cents)
    if found is None:
        sign = "-" if cents < 0 else ""
        whole, rest = divmod(abs(cents), 100)
        found = f"{sign}{whole},{rest:02d}"
        if len(_EUROS) < 1024:  # the few amounts of a ledger, each formatted once
            _EUROS[cents] = found
    return found


_EUROS: dict[int, str] = {}


def paris_time(moment: datetime | None) -> str:
    """An instant as the Paris wall clock, ``2026-11-03 14:05:09`` (what Calc and Excel read as a date-time)."""
    if moment is None:
        return ""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return str(aware.astimezone(PARIS))[:19]  # "YYYY-MM-DD HH:MM:SS", then microseconds and offset, cut off


#: The csv module's dialect of the export: what the fast path below writes the same, byte for byte.
_DIALECT: dict[str, Any] = {"delimiter": ";", "lineterminator": "\r\n", "quoting": csv.QUOTE_MINIMAL}


def _joined(cells: Sequence[str]) -> str:
    """Cells as one piece of a CSV line: joined by ``;`` when none needs quoting (none holds ``;``, ``"``, a line
    break or a NUL), else written by the csv module (each cell is quoted on its own, so a piece is the same text as
    in a whole row)."""
    text = ";".join(cells)
    plain = '"' not in text and "\n" not in text and "\r" not in text and "\0" not in text
    if plain and text.count(";") == len(cells) - 1:
        return text
    buffer = io.StringIO()
    csv.writer(buffer, **_DIALECT).writerow(cells)
    return buffer.getvalue().removesuffix("\r\n")


#: Where a line's act begins (its role, then its performer, code, amount, tariff day and majorations).
_ACT_START = BillingLine._fields.index("role")
_NO_ACT = ";;;;0,00;;;0,00;0,00"
_UNSEEN = object()


class _CsvText:
    """The CSV lines of an export, with what repeats formatted once: each day; each act with its performer (label,
    amounts, majorations); each hour's Paris wall clock (the time zone asked once per hour, not once per time, and
    the minutes and seconds from a table); an entry's own cells once for all its lines. The same text as
    ``paris_time``, ``euros``, ``safe_cell`` and the csv module give, cell by cell (``tests/test_exports.py``)."""

    def __init__(self, catalog: ActCatalog):
        self._label = _Labels(catalog)
        self._days: dict[date, str] = {}
        self._acts: dict[tuple[Any, ...], str] = {}
        self._hours: dict[int, Any] = {}

    def lines(self, lines: Iterable[BillingLine]) -> list[str]:
        """Each line's text, CRLF included."""
        day, paris, act_text = self._day, self._paris, self._act
        texts: list[str] = []
        add = texts.append
        entry_id: str | None = None
        head = tail = ""
        for line in lines:
            if line.entry_id != entry_id:  # a new entry: its cells before and after the act's, once
                entry_id = line.entry_id
                nurse = line.nurse_name is not None
                head = _joined(
                    (
                        day(line.act_date),
                        line.consultation_id,
                        line.entry_id,
                        str(line.revision),
                        line.corrects or "",
                        line.status.value,
                        safe_cell(line.reason),
                        safe_cell(line.doctor_name),
                        safe_cell(line.doctor_rpps),
                        safe_cell(line.patient_name),
                        day(line.patient_birth_date),
                        safe_cell(line.patient_nir),
                        safe_cell(line.nurse_name) if nurse else "",
                        safe_cell(line.nurse_number) if nurse else "",
                        (line.nurse_place or "") if nurse else "",
                    )
                )
                # Times, digits and oui/non: nothing to quote.
                tail = (
                    f"{paris(line.scheduled_at)};{paris(line.started_at)};{paris(line.ended_at)};"
                    f"{line.duration_s};{'oui' if line.video_connected else 'non'}\r\n"
                )
            add(f"{head};{_NO_ACT if line.act_code is None else act_text(line)};{tail}")
        return texts

    def _day(self, value: date | None) -> str:
        if value is None:
            return ""
        found = self._days.get(value)
        if found is None:
            found = value.isoformat()
            if len(self._days) < 65536:  # the days of a year and the birth dates of its patients
                self._days[value] = found
        return found

    def _paris(self, moment: datetime | None) -> str:
        """``paris_time(moment)``."""
        if moment is None:
            return ""
        if moment.tzinfo is not UTC:
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        hour = moment.toordinal() * 24 + moment.hour
        prefix = self._hours.get(hour, _UNSEEN)
        if prefix is _UNSEEN:
            prefix = self._hours[hour] = _paris_hour(moment)
        if prefix is None:
            return paris_time(moment)
        text: str = prefix + _MINUTES_SECONDS[moment.minute * 60 + moment.second]
        return text

    def _act(self, line: BillingLine) -> str:
        """The act's nine cells (role to total), for a line with an act."""
        key = line[_ACT_START:]  # role, performer, code, amount, tariff day, majorations
        found = self._acts.get(key)
        if found is None:
            code, cents, day, modifiers = line.act_code or "", line.amount_cents or 0, line.tariff_from, line.modifiers
            extra = sum(m.amount_cents for m in modifiers)
            found = _joined(
                (
                    line.role or "",
                    safe_cell(line.performer_name),
                    safe_cell(code),
                    safe_cell(self._label(code, day) if day is not None else ""),
                    euros(cents),
                    self._day(day),
                    safe_cell("+".join(m.code for m in modifiers)) if modifiers else "",
                    euros(extra),
                    euros(cents + extra),
                )
            )
            if len(self._acts) >= 4096:  # performers come and go: forget them all now and then
                self._acts.clear()
            self._acts[key] = found
        return found


def _paris_hour(moment: datetime) -> str | None:
    """``YYYY-MM-DD HH:`` in Paris for the UTC hour of ``moment``, or ``None`` when Paris is not a whole number of
    hours from UTC for all of that hour (then each time is converted on its own)."""
    start = moment.replace(minute=0, second=0, microsecond=0)
    local, end = start.astimezone(PARIS), (start + timedelta(seconds=3599)).astimezone(PARIS)
    if local.minute or local.second or local.utcoffset() != end.utcoffset():
        return None
    return str(local)[:14]


def csv_chunks(records: AsyncIterator[BillingRecord], catalog: ActCatalog) -> Chunks:
    """The CSV of ``records``, header first, in chunks of about ``CHUNK_CHARS`` characters."""
    return csv_line_chunks(_pages(records), catalog)


async def csv_line_chunks(pages: AsyncIterator[Sequence[BillingLine]], catalog: ActCatalog) -> Chunks:
    """The CSV of ``pages`` of lines (the store's ``current_lines``), header first, in chunks of about
    ``CHUNK_CHARS`` characters (a page's more)."""
    text = _CsvText(catalog)
    chunk = formats.CHUNK_CHARS
    parts = [CSV_BOM + _joined(CSV_COLUMNS) + "\r\n"]
    size = len(parts[0])
    async for page in pages:
        texts = text.lines(page)
        parts += texts
        size += sum(map(len, texts))
        if size >= chunk:
            yield "".join(parts).encode("utf-8")
            parts.clear()
            size = 0
    yield "".join(parts).encode("utf-8")
