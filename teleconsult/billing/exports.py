"""The ledger's exports, as pure formatting: the current entries of a range, in the store's ``(day, consultation)``
order, become a stream of bytes chunks, CSV for the accountant (from pages of ``BillingLine``, an entry's act per
line, as the store reads them; or from ``BillingRecord`` values) or a FHIR R4 Bundle for software (from an async
iterator of ``BillingRecord``). Nothing here reads the database or a clock, and nothing holds more
than one chunk: a year of a busy practice never sits in memory. The same entries give the same bytes (no "now" in
the output; ids derived from the entries), so the CLI and the HTTP API, given the same range, agree byte for byte.

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
from teleconsult.domain import BillingAct, BillingLine, BillingRecord, BillingStatus

#: What the exports produce: bytes, a chunk at a time (an async generator: ``aclose`` it when stopping early).
Chunks = AsyncGenerator[bytes, None]

#: A chunk is handed on once it holds about this many characters.
CHUNK_CHARS = 64 * 1024
#: Records (FHIR) or lines (CSV) formatted between two turns of the event loop (``BillingService.export``): a few
#: milliseconds of work each.
YIELD_EVERY = 100
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
        record.status.value,
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
                        line.status,
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
        key = line[20:]  # role, performer, code, amount, tariff day, majorations
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
    """``urn:uuid:`` and ``uuid.uuid5(NAMESPACE, name)``, without building a ``UUID`` (a fifth of the FHIR export's
    time went there): SHA-1 of the namespace and the name, version 5, RFC 4122 variant."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8"), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    hex_ = digest.hex()
    return f"urn:uuid:{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"


_NAMESPACE_BYTES = NAMESPACE.bytes


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


class _Practitioners:
    """Each practitioner's entry once per Bundle (doctors by RPPS, nurses by number)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def doctor(self, record: BillingRecord) -> tuple[str, dict[str, Any] | None]:
        full_url = urn(f"practitioner:rpps:{record.doctor_rpps}")
        if full_url in self._seen:
            return full_url, None
        self._seen.add(full_url)
        identifiers = [
            _identifier(IDNPS_SYSTEM, "8" + record.doctor_rpps, "IDNPS"),
            _identifier(RPPS_SYSTEM, record.doctor_rpps, "RPPS"),
        ]
        return full_url, _practitioner(full_url, identifiers, record.doctor_name)

    def nurse(self, name: str, number: str) -> tuple[str, dict[str, Any] | None]:
        full_url = urn(f"practitioner:nurse:{number}")
        if full_url in self._seen:
            return full_url, None
        self._seen.add(full_url)
        return full_url, _practitioner(full_url, [nurse_identifier(number)], name)


def _practitioner(full_url: str, identifiers: list[dict[str, Any]], name: str) -> dict[str, Any]:
    resource = {
        "resourceType": "Practitioner",
        "id": full_url.removeprefix("urn:uuid:"),
        "identifier": identifiers,
        "name": [{"text": name}],
    }
    return {"fullUrl": full_url, "resource": resource}


def fhir_entries(record: BillingRecord, practitioners: _Practitioners, label: _Labels) -> Iterator[dict[str, Any]]:
    """The Bundle entries of one ledger entry: practitioners not yet in the Bundle, the Patient, the Encounter and
    its ChargeItems."""
    entry = record.id
    patient_url = urn(f"{entry}/patient")
    encounter_url = urn(f"{entry}/encounter")
    doctor_url, doctor_entry = practitioners.doctor(record)
    if doctor_entry is not None:
        yield doctor_entry
    nurse = record.nurse
    nurse_ref: dict[str, Any] | None = None
    if nurse is not None:
        if nurse.number:
            nurse_url, nurse_entry = practitioners.nurse(nurse.name, nurse.number)
            if nurse_entry is not None:
                yield nurse_entry
            nurse_ref = _ref(nurse_url, "Practitioner", nurse.name)
        else:
            nurse_ref = {"display": nurse.name}  # no number: named, without a Practitioner of her own
    doctor_ref = _ref(doctor_url, "Practitioner", record.doctor_name)

    patient: dict[str, Any] = {"resourceType": "Patient", "id": patient_url.removeprefix("urn:uuid:")}
    if record.patient_nir:
        patient["identifier"] = [_identifier(INS_NIR_SYSTEM, record.patient_nir, "INS-NIR")]
    patient["name"] = [{"text": record.patient_name}]
    if record.patient_birth_date is not None:
        patient["birthDate"] = record.patient_birth_date.isoformat()
    yield {"fullUrl": patient_url, "resource": patient}

    participants = [{"type": [_participation("PPRF", "primary performer")], "individual": doctor_ref}]
    if nurse_ref is not None:
        participants.append({"type": [_participation("SPRF", "secondary performer")], "individual": nurse_ref})
    ended = fhir_instant(record.ended_at)
    started = fhir_instant(record.started_at) if record.started_at is not None else None
    period = {"start": started, "end": ended} if started is not None else {"end": ended}
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": encounter_url.removeprefix("urn:uuid:"),
        "identifier": [{"system": CONSULTATION_SYSTEM, "value": record.consultation_id}],
        "status": ENCOUNTER_STATUS[record.status],
        "class": {"system": ACT_CODE_SYSTEM, "code": "VR", "display": "virtual"},
        "subject": _ref(patient_url, "Patient", record.patient_name),
        "participant": participants,
        "period": period,
        "length": {"value": record.duration_s, "unit": "s", "system": "http://unitsofmeasure.org", "code": "s"},
    }
    yield {"fullUrl": encounter_url, "resource": encounter}

    common = {
        "subject": _ref(patient_url, "Patient", record.patient_name),
        "context": _ref(encounter_url, "Encounter"),
        "occurrenceDateTime": started or ended,
        "enteredDate": ended if record.recorded_at == record.ended_at else fhir_instant(record.recorded_at),
    }
    if not record.acts:
        yield _no_act(record, common)
        return
    for position, act in enumerate(record.acts):
        performer = nurse_ref if act.role == "nurse" and nurse_ref is not None else doctor_ref
        yield from _charges(record, position, act, performer, common, label)


def _participation(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": PARTICIPATION_TYPE, "code": code, "display": display}]}


def _charges(
    record: BillingRecord,
    position: int,
    act: BillingAct,
    performer: dict[str, Any],
    common: dict[str, Any],
    label: _Labels,
) -> Iterator[dict[str, Any]]:
    """The act's ChargeItem, then one per majoration, ``partOf`` the act's."""
    act_url = urn(f"{record.id}/act/{position}")
    note = f"Tarif en vigueur depuis le {act.tariff_from.isoformat()}"
    if record.nurse is not None and act.role == "nurse":
        note += f"; infirmière {NURSE_PLACES.get(record.nurse.place, record.nurse.place)}"
    yield _charge_item(
        act_url,
        identifier=f"{record.id}/{position}",
        code=_ngap(act.act_code, act.tariff_from, label),
        cents=act.amount_cents,
        performer=performer,
        common=common,
        note=note,
    )
    for index, modifier in enumerate(act.modifiers):
        yield _charge_item(
            urn(f"{record.id}/act/{position}/modifier/{index}"),
            identifier=f"{record.id}/{position}/{modifier.code}",
            code=_ngap(modifier.code, modifier.tariff_from, label),
            cents=modifier.amount_cents,
            performer=performer,
            common=common,
            note=f"Majoration de {act.act_code}; tarif en vigueur depuis le {modifier.tariff_from.isoformat()}",
            part_of=act_url,
        )


def _ngap(code: str, day: date, label: _Labels) -> dict[str, Any]:
    coding = {"system": NGAP_SYSTEM, "code": code}
    display = label(code, day)
    if display:
        coding["display"] = display
    return {"coding": [coding], "text": display or code}


def _charge_item(
    full_url: str,
    *,
    identifier: str,
    code: dict[str, Any],
    cents: int,
    performer: dict[str, Any] | None,
    common: dict[str, Any],
    note: str | None,
    part_of: str | None = None,
    billable: bool = True,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "ChargeItem",
        "id": full_url.removeprefix("urn:uuid:"),
        "identifier": [{"system": ENTRY_SYSTEM, "value": identifier}],
        "status": "billable" if billable else "not-billable",
    }
    if part_of is not None:
        resource["partOf"] = [_ref(part_of, "ChargeItem")]
    resource["code"] = code
    resource.update(common)
    if performer is not None:
        resource["performer"] = [{"actor": performer}]
    resource["quantity"] = {"value": 1}
    resource["priceOverride"] = _money(cents)
    if note:
        resource["note"] = [{"text": note}]
    return {"fullUrl": full_url, "resource": resource}


def _no_act(record: BillingRecord, common: dict[str, Any]) -> dict[str, Any]:
    """An entry that bills nothing still appears, as one not-billable ChargeItem of 0 EUR saying why."""
    status = record.status
    return _charge_item(
        urn(f"{record.id}/none"),
        identifier=f"{record.id}/-",
        code={"coding": [{"system": STATUS_SYSTEM, "code": status.value, "display": STATUS_LABELS[status]}]},
        cents=0,
        performer=None,
        common=common,
        note=record.reason,
        billable=False,
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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


async def fhir_chunks(
    records: AsyncIterator[BillingRecord], catalog: ActCatalog, *, first: date, last: date, scope: str = ""
) -> Chunks:
    """The Bundle as JSON text: its opening, each entry as it comes, its closing (without ``entry`` when there is
    none: FHIR allows no empty array)."""
    parts: list[str] = [bundle_head(first, last, scope)]
    size = len(parts[0])
    separator = ',"entry":['
    practitioners = _Practitioners()
    label = _Labels(catalog)
    async for record in records:
        text = separator + _dumps(list(fhir_entries(record, practitioners, label)))[1:-1]  # one encoder call each
        separator = ","
        parts.append(text)
        size += len(text)
        if size >= CHUNK_CHARS:
            yield "".join(parts).encode("utf-8")
            parts.clear()
            size = 0
    parts.append("}" if separator != "," else "]}")
    yield "".join(parts).encode("utf-8")


async def collect(chunks: Chunks) -> bytes:
    """Every chunk joined (tests and small exports)."""
    return b"".join([chunk async for chunk in chunks])
