"""The ledger's exports, as pure formatting: the current entries of a range, in the store's ``(day, consultation)``
order, become a stream of bytes chunks, CSV for the accountant or a FHIR R4 Bundle for software. Both are written
from pages of ``BillingLine`` (an entry's act per line, as the store reads them: ``csv_line_chunks``,
``fhir_line_chunks``) or from ``BillingRecord`` values (``csv_chunks``, ``fhir_chunks``: their lines), as text
made of pieces formatted once (a day, an hour, an act, a practitioner) and written the way the csv module and the
json encoder write them, byte for byte (``tests/test_exports.py`` compares them). Nothing here reads the database
or a clock, and nothing holds more than one chunk: a year of a busy practice never sits in memory. The same
entries give the same bytes (no "now" in the output; ids derived from the entries), so the CLI and the HTTP API,
given the same range, agree byte for byte.

CSV (``docs/billing.md``, "Exports"): UTF-8 with a BOM, ``;`` between cells, CRLF line ends, French decimal
amounts (``25,00``), days as ISO dates (``2026-11-03``) and times in Europe/Paris (``2026-11-03 14:05:09``), one
row per act; an entry without an act (no-show, interrupted, not billable) gets one row with an empty act code and
0,00 so that the month is complete. A text cell that would start a formula (``=``, ``+``, ``-``, ``@``, tab, CR)
gets a leading apostrophe.

FHIR: a Bundle of type ``collection``, with, per entry, an Encounter (class ``VR``), a Patient, a ChargeItem per
act and per majoration (the majoration's ``partOf`` its act), and a Practitioner per doctor and per nurse with a
number (once per Bundle).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from teleconsult.acts import ActCatalog, UnknownAct
from teleconsult.clock import PARIS
from teleconsult.domain import BillingLine, BillingRecord, BillingStatus

#: What the exports produce: bytes, a chunk at a time (an async generator: ``aclose`` it when stopping early).
Chunks = AsyncGenerator[bytes, None]

#: A chunk is handed on once it holds about this many characters.
CHUNK_CHARS = 64 * 1024
#: Lines formatted between two turns of the event loop (``BillingService.export``): a millisecond or two of work.
LINES_PER_TURN = 500


class ExportFormat(StrEnum):
    CSV = "csv"
    FHIR = "fhir"


#: ``Content-Type`` and file extension of each format.
MEDIA_TYPES = {ExportFormat.CSV: "text/csv; charset=utf-8", ExportFormat.FHIR: "application/fhir+json"}
EXTENSIONS = {ExportFormat.CSV: "csv", ExportFormat.FHIR: "json"}


def file_name(first: date, last: date, fmt: ExportFormat) -> str:
    """``teleconsult-2026-11-01-2026-11-30.csv``."""
    return f"teleconsult-{first.isoformat()}-{last.isoformat()}.{EXTENSIONS[fmt]}"


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


# --- CSV -----------------------------------------------------------------------------------------------------------

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
#: "MM:SS" for each second of an hour.
_MINUTES_SECONDS = tuple(f"{minutes:02d}:{seconds:02d}" for minutes in range(60) for seconds in range(60))
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


async def _pages(records: AsyncIterator[BillingRecord]) -> AsyncIterator[list[BillingLine]]:
    page: list[BillingLine] = []
    async for record in records:
        page.extend(lines_of(record))
        if len(page) >= 256:
            yield page
            page = []
    if page:
        yield page


async def csv_line_chunks(pages: AsyncIterator[Sequence[BillingLine]], catalog: ActCatalog) -> Chunks:
    """The CSV of ``pages`` of lines (the store's ``current_lines``), header first, in chunks of about
    ``CHUNK_CHARS`` characters (a page's more)."""
    text = _CsvText(catalog)
    chunk = CHUNK_CHARS
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


# --- FHIR R4 -------------------------------------------------------------------------------------------------------

#: The namespace of every id in the exports: uuid5 of a name made of the entry's id.
NAMESPACE = uuid.UUID("6f1d3c2e-5b1a-5e0c-9a57-0c6e1d7a1e16")

ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#: The NGAP codes (TCG, TLS…): no CodeSystem URI for the NGAP is published in the ANS terminologies, so the
#: server names its own (docs/billing.md).
NGAP_SYSTEM = "urn:teleconsult:ngap"
#: A ledger entry without an act: the ChargeItem's code is the entry's status.
STATUS_SYSTEM = "urn:teleconsult:billing-status"
#: FR Core's identifier types (IDNPS, RPPS, INS-NIR).
IDENTIFIER_TYPES = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
#: The national health professional identifier (IDNPS): ``8`` followed by the RPPS number (FR Core, ANS).
IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
RPPS_SYSTEM = "https://rpps.esante.gouv.fr"
#: The NIR as INS (INS-NIR).
INS_NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
CONSULTATION_SYSTEM = "urn:teleconsult:consultation"
ENTRY_SYSTEM = "urn:teleconsult:billing-entry"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"

#: The Encounter's status for each ledger status: a no-show never began; the others ended.
ENCOUNTER_STATUS = {
    BillingStatus.COMPLETED: "finished",
    BillingStatus.NO_SHOW: "cancelled",
    BillingStatus.INTERRUPTED: "finished",
    BillingStatus.NOT_BILLABLE: "finished",
}
STATUS_LABELS = {
    BillingStatus.COMPLETED: "Réalisée",
    BillingStatus.NO_SHOW: "Patient absent",
    BillingStatus.INTERRUPTED: "Interrompue",
    BillingStatus.NOT_BILLABLE: "Non facturable",
}
NURSE_PLACES = {
    "planned_visit": "au décours d'un soin infirmier programmé",
    "dedicated_place": "dans un lieu dédié aux téléconsultations",
    "home": "au domicile du patient, déplacement dédié",
}


def urn(name: str) -> str:
    """``urn:uuid:`` and ``uuid.uuid5(NAMESPACE, name)``, without building a ``UUID``: SHA-1 of the namespace (its
    state kept, copied for each name) and the name, version 5, RFC 4122 variant, set on the hexadecimal digits."""
    sha = _NAMESPACE_SHA1.copy()
    sha.update(name.encode("utf-8"))
    h = sha.hexdigest()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_NAMESPACE_SHA1 = hashlib.sha1(NAMESPACE.bytes, usedforsecurity=False)
#: The variant's digit (``10xx``) for each digit of the hash.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def fhir_instant(moment: datetime) -> str:
    """A FHIR dateTime in UTC, to the second: ``2026-11-03T13:05:09Z``."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return str(aware)[:19].replace(" ", "T") + "Z"  # "YYYY-MM-DD HH:MM:SS", then microseconds and offset, cut off


def _money(cents: int) -> dict[str, Any]:
    return {"value": cents / 100, "currency": "EUR"}


def _ref(full_url: str, kind: str, display: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"reference": full_url, "type": kind}
    if display:
        ref["display"] = display
    return ref


def _identifier(system: str | None, value: str, kind: str | None = None, text: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"use": "official"}
    if kind is not None or text is not None:
        found["type"] = {"coding": [{"system": IDENTIFIER_TYPES, "code": kind}]} if kind else {"text": text}
    if system is not None:
        found["system"] = system
    found["value"] = value
    return found


def nurse_identifier(number: str) -> dict[str, Any]:
    """An RPPS number (11 digits) as IDNPS; any other number (the Assurance Maladie one) as a plain identifier."""
    if len(number) == 11 and number.isdigit():
        return _identifier(IDNPS_SYSTEM, "8" + number, "IDNPS")
    return _identifier(None, number, text="Numéro Assurance Maladie")


def _practitioner(full_url: str, identifiers: list[dict[str, Any]], name: str) -> dict[str, Any]:
    resource = {
        "resourceType": "Practitioner",
        "id": full_url.removeprefix("urn:uuid:"),
        "identifier": identifiers,
        "name": [{"text": name}],
    }
    return {"fullUrl": full_url, "resource": resource}


def _participation(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": PARTICIPATION_TYPE, "code": code, "display": display}]}


def _ngap(code: str, day: date, label: _Labels) -> dict[str, Any]:
    coding = {"system": NGAP_SYSTEM, "code": code}
    display = label(code, day)
    if display:
        coding["display"] = display
    return {"coding": [coding], "text": display or code}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _js(text: str) -> str:
    """``text`` as a JSON string, as ``_dumps`` writes it: as is between quotes when nothing in it needs escaping."""
    if '"' not in text and "\\" not in text and text.isprintable():  # no control character, no quote, no backslash
        return '"' + text + '"'
    return _dumps(text)


# The Bundle's fixed pieces, written once by the encoder itself.
_CLASS = _dumps({"system": ACT_CODE_SYSTEM, "code": "VR", "display": "virtual"})
_PRIMARY = _dumps([_participation("PPRF", "primary performer")])
_SECONDARY = _dumps([_participation("SPRF", "secondary performer")])
_LENGTH_UNIT = ',"unit":"s","system":"http://unitsofmeasure.org","code":"s"}'
_CONSULTATION = '[{"system":' + _dumps(CONSULTATION_SYSTEM) + ',"value":'
_ENTRY_IDENTIFIER = '[{"system":' + _dumps(ENTRY_SYSTEM) + ',"value":'
_ENCOUNTER_STATUS = {status: _dumps(text) for status, text in ENCOUNTER_STATUS.items()}
_STATUS_CODES = {
    status: _dumps({"coding": [{"system": STATUS_SYSTEM, "code": status.value, "display": text}]})
    for status, text in STATUS_LABELS.items()
}


class _FhirText:
    """The Bundle's entries of an export's lines, an entry's at a time (its lines may come in two slices: the last
    entry of a slice waits for the next one, or ``flush``), written as JSON text from pieces: what repeats is written
    once by the encoder (a practitioner's reference, an act's code, an amount), each name or id is quoted as is
    unless it needs escaping, each hour's UTC prefix is made once. The same text as the encoder gives for the
    entries' objects (``tests/test_exports.py`` compares them); each practitioner once per Bundle."""

    def __init__(self, catalog: ActCatalog):
        self._label = _Labels(catalog)
        self._seen: set[str] = set()  # the practitioners already in the Bundle
        self._urls: dict[str, str] = {}  # a practitioner's name for ``urn`` -> its URL
        self._refs: dict[tuple[str, str], str] = {}  # (URL, name) -> the reference's JSON
        self._codes: dict[tuple[str, date], str] = {}
        self._prices: dict[int, str] = {}
        self._hours: dict[int, str] = {}
        self._entry: list[BillingLine] = []

    def lines(self, lines: Iterable[BillingLine]) -> list[str]:
        """The text of each entry these lines complete (its Bundle entries, separated by commas)."""
        texts: list[str] = []
        entry = self._entry
        for line in lines:
            if entry and line.entry_id != entry[0].entry_id:
                texts.append(self._text(entry))
                entry = self._entry = []
            entry.append(line)
        return texts

    def flush(self) -> list[str]:
        """The text of the entry still waiting, if any."""
        entry, self._entry = self._entry, []
        return [self._text(entry)] if entry else []

    def _text(self, lines: list[BillingLine]) -> str:
        first = lines[0]
        entry_id = first.entry_id
        parts: list[str] = []
        doctor_url = self._practitioner(f"practitioner:rpps:{first.doctor_rpps}", first.doctor_name, parts, None)
        doctor_ref = self._ref(doctor_url, first.doctor_name)
        nurse_ref: str | None = None
        nurse_name = first.nurse_name
        if nurse_name is not None:
            if first.nurse_number:
                nurse_url = self._practitioner(
                    f"practitioner:nurse:{first.nurse_number}", nurse_name, parts, first.nurse_number
                )
                nurse_ref = self._ref(nurse_url, nurse_name)
            else:
                nurse_ref = '{"display":' + _js(nurse_name) + "}"  # no number: named, without a Practitioner

        patient_url = urn(f"{entry_id}/patient")
        patient = [f'{{"fullUrl":"{patient_url}","resource":{{"resourceType":"Patient","id":"{patient_url[9:]}"']
        if first.patient_nir:
            patient.append(',"identifier":[' + _dumps(_identifier(INS_NIR_SYSTEM, first.patient_nir, "INS-NIR")) + "]")
        patient.append(',"name":[{"text":' + _js(first.patient_name) + "}]")
        if first.patient_birth_date is not None:
            patient.append(f',"birthDate":"{first.patient_birth_date.isoformat()}"')
        patient.append("}}")
        parts.append("".join(patient))

        subject = f'{{"reference":"{patient_url}","type":"Patient"'
        subject += (',"display":' + _js(first.patient_name) + "}") if first.patient_name else "}"
        participants = '[{"type":' + _PRIMARY + ',"individual":' + doctor_ref + "}"
        if nurse_ref is not None:
            participants += ',{"type":' + _SECONDARY + ',"individual":' + nurse_ref + "}"
        instant = self._instant
        ended = instant(first.ended_at)
        started = instant(first.started_at) if first.started_at is not None else None
        period = f'{{"start":"{started}","end":"{ended}"}}' if started is not None else f'{{"end":"{ended}"}}'
        encounter_url = urn(f"{entry_id}/encounter")
        parts.append(
            f'{{"fullUrl":"{encounter_url}","resource":{{"resourceType":"Encounter","id":"{encounter_url[9:]}",'
            f'"identifier":{_CONSULTATION}{_js(first.consultation_id)}}}],'
            f'"status":{_ENCOUNTER_STATUS[first.status]},"class":{_CLASS},"subject":{subject},'
            f'"participant":{participants}],"period":{period},"length":{{"value":{first.duration_s}{_LENGTH_UNIT}}}}}'
        )

        entered = ended if first.recorded_at == first.ended_at else instant(first.recorded_at)
        common = (
            f',"subject":{subject},"context":{{"reference":"{encounter_url}","type":"Encounter"}},'
            f'"occurrenceDateTime":"{started or ended}","enteredDate":"{entered}"'
        )
        acts = [line for line in lines if line.act_code is not None]
        if not acts:  # an entry that bills nothing still appears, as one not-billable ChargeItem of 0 EUR saying why
            none_url = urn(f"{entry_id}/none")
            code = _STATUS_CODES[first.status]
            parts.append(self._charge(none_url, f"{entry_id}/-", code, 0, None, common, first.reason, None, False))
        for position, act in enumerate(acts):
            performer = nurse_ref if act.role == "nurse" and nurse_ref is not None else doctor_ref
            act_url = urn(f"{entry_id}/act/{position}")
            act_code, day = act.act_code or "", act.tariff_from or date.min
            note = f"Tarif en vigueur depuis le {day.isoformat()}"
            if nurse_name is not None and act.role == "nurse":
                place = first.nurse_place or ""
                note += f"; infirmière {NURSE_PLACES.get(place, place)}"
            code = self._code(act_code, day)
            parts.append(
                self._charge(act_url, f"{entry_id}/{position}", code, act.amount_cents or 0, performer, common, note)
            )
            for index, modifier in enumerate(act.modifiers):
                parts.append(
                    self._charge(
                        urn(f"{entry_id}/act/{position}/modifier/{index}"),
                        f"{entry_id}/{position}/{modifier.code}",
                        self._code(modifier.code, modifier.tariff_from),
                        modifier.amount_cents,
                        performer,
                        common,
                        f"Majoration de {act_code}; tarif en vigueur depuis le {modifier.tariff_from.isoformat()}",
                        act_url,
                    )
                )
        return ",".join(parts)

    def _charge(
        self,
        url: str,
        identifier: str,
        code: str,
        cents: int,
        performer: str | None,
        common: str,
        note: str | None,
        part_of: str | None = None,
        billable: bool = True,
    ) -> str:
        """A ChargeItem's entry (``_charge_item``'s keys, in its order)."""
        text = (
            f'{{"fullUrl":"{url}","resource":{{"resourceType":"ChargeItem","id":"{url[9:]}",'
            f'"identifier":{_ENTRY_IDENTIFIER}{_js(identifier)}}}],'
            f'"status":"{"billable" if billable else "not-billable"}"'
        )
        if part_of is not None:
            text += f',"partOf":[{{"reference":"{part_of}","type":"ChargeItem"}}]'
        text += ',"code":' + code + common
        if performer is not None:
            text += ',"performer":[{"actor":' + performer + "}]"
        price = self._prices.get(cents)
        if price is None:
            price = self._prices[cents] = _dumps(_money(cents))
        text += ',"quantity":{"value":1},"priceOverride":' + price
        if note:
            text += ',"note":[{"text":' + _js(note) + "}]"
        return text + "}}"

    def _practitioner(self, name: str, display: str, parts: list[str], nurse_number: str | None) -> str:
        """The URL of a doctor's (by RPPS) or a nurse's (by number) Practitioner; its entry in ``parts`` the first
        time the Bundle meets it, with this name."""
        url = self._urls.get(name)
        if url is None:
            url = self._urls[name] = urn(name)
        if url not in self._seen:
            self._seen.add(url)
            if nurse_number is not None:
                identifiers = [nurse_identifier(nurse_number)]
            else:
                rpps = name.removeprefix("practitioner:rpps:")
                identifiers = [
                    _identifier(IDNPS_SYSTEM, "8" + rpps, "IDNPS"),
                    _identifier(RPPS_SYSTEM, rpps, "RPPS"),
                ]
            parts.append(_dumps(_practitioner(url, identifiers, display)))
        return url

    def _ref(self, url: str, display: str) -> str:
        found = self._refs.get((url, display))
        if found is None:
            found = self._refs[(url, display)] = _dumps(_ref(url, "Practitioner", display))
        return found

    def _code(self, code: str, day: date) -> str:
        found = self._codes.get((code, day))
        if found is None:
            found = self._codes[(code, day)] = _dumps(_ngap(code, day, self._label))
        return found

    def _instant(self, moment: datetime) -> str:
        """``fhir_instant(moment)``."""
        if moment.tzinfo is not UTC:
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        hour = moment.toordinal() * 24 + moment.hour
        prefix = self._hours.get(hour)
        if prefix is None:
            prefix = self._hours[hour] = str(moment)[:14].replace(" ", "T")  # "YYYY-MM-DDTHH:"
        return prefix + _MINUTES_SECONDS[moment.minute * 60 + moment.second] + "Z"


def bundle_head(first: date, last: date, scope: str) -> str:
    """The Bundle's opening, up to its entries: its id is derived from the range and the scope, so one range gives
    one Bundle (and no timestamp: the same ledger gives the same bytes)."""
    bundle_id = uuid.uuid5(NAMESPACE, f"bundle:{first.isoformat()}:{last.isoformat()}:{scope}")
    head = {
        "resourceType": "Bundle",
        "id": str(bundle_id),
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"},
        "type": "collection",
    }
    return _dumps(head)[:-1]


def fhir_chunks(
    records: AsyncIterator[BillingRecord], catalog: ActCatalog, *, first: date, last: date, scope: str = ""
) -> Chunks:
    """The Bundle of ``records``: its opening, each entry as it comes, its closing."""
    return fhir_line_chunks(_pages(records), catalog, first=first, last=last, scope=scope)


async def fhir_line_chunks(
    pages: AsyncIterator[Sequence[BillingLine]], catalog: ActCatalog, *, first: date, last: date, scope: str = ""
) -> Chunks:
    """The Bundle as JSON text from ``pages`` of lines (the store's ``current_lines``): its opening, each entry as it
    comes, its closing (without ``entry`` when there is none: FHIR allows no empty array), in chunks of about
    ``CHUNK_CHARS`` characters (a page's more)."""
    text = _FhirText(catalog)
    chunk = CHUNK_CHARS
    parts: list[str] = [bundle_head(first, last, scope)]
    size = len(parts[0])
    separator = ',"entry":['
    async for page in pages:
        texts = text.lines(page)
        if texts:
            joined = separator + ",".join(texts)
            separator = ","
            parts.append(joined)
            size += len(joined)
            if size >= chunk:
                yield "".join(parts).encode("utf-8")
                parts.clear()
                size = 0
    texts = text.flush()
    if texts:
        parts.append(separator + ",".join(texts))
        separator = ","
    parts.append("}" if separator != "," else "]}")
    yield "".join(parts).encode("utf-8")


async def collect(chunks: Chunks) -> bytes:
    """Every chunk joined (tests and small exports)."""
    return b"".join([chunk async for chunk in chunks])
