"""The ledger's exports, as pure formatting: the current entries of a range (an async iterator of
``BillingRecord``, in the store's ``(day, consultation)`` order) become a stream of bytes chunks, CSV for the
accountant or a FHIR R4 Bundle for software. Nothing here reads the database or a clock, and nothing holds more
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
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from teleconsult.acts import ActCatalog, UnknownAct
from teleconsult.clock import PARIS
from teleconsult.domain import BillingAct, BillingRecord, BillingStatus

#: What the exports produce: bytes, a chunk at a time (an async generator: ``aclose`` it when stopping early).
Chunks = AsyncGenerator[bytes, None]

#: A chunk is handed on once it holds about this many characters.
CHUNK_CHARS = 64 * 1024
#: Records read between two turns of the event loop (``BillingService.export``): a few milliseconds of work.
YIELD_EVERY = 100


class ExportFormat(StrEnum):
    CSV = "csv"
    FHIR = "fhir"


#: ``Content-Type`` and file extension of each format.
MEDIA_TYPES = {ExportFormat.CSV: "text/csv; charset=utf-8", ExportFormat.FHIR: "application/fhir+json"}
EXTENSIONS = {ExportFormat.CSV: "csv", ExportFormat.FHIR: "json"}


def file_name(first: date, last: date, fmt: ExportFormat) -> str:
    """``teleconsult-2026-11-01-2026-11-30.csv``."""
    return f"teleconsult-{first.isoformat()}-{last.isoformat()}.{EXTENSIONS[fmt]}"


def export_chunks(
    records: AsyncIterator[BillingRecord],
    fmt: ExportFormat,
    catalog: ActCatalog,
    *,
    first: date,
    last: date,
    scope: str = "",
) -> Chunks:
    """The chunks of ``records`` in ``fmt``; ``first``, ``last`` and ``scope`` (the doctor filter) name the Bundle."""
    if fmt is ExportFormat.CSV:
        return csv_chunks(records, catalog)
    return fhir_chunks(records, catalog, first=first, last=last, scope=scope)


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


def _day(value: date | None) -> str:
    return value.isoformat() if value is not None else ""


def csv_rows(record: BillingRecord, label: _Labels) -> list[list[str]]:
    """The rows of one entry: one per act, or one without an act (so that every consultation is in the file)."""
    nurse = record.nurse
    head = [
        record.act_date.isoformat(),
        record.consultation_id,
        record.id,
        str(record.revision),
        record.corrects or "",
        record.status.value,
        safe_cell(record.reason),
        safe_cell(record.doctor_name),
        safe_cell(record.doctor_rpps),
        safe_cell(record.patient_name),
        _day(record.patient_birth_date),
        safe_cell(record.patient_nir),
        safe_cell(nurse.name) if nurse else "",
        safe_cell(nurse.number) if nurse else "",
        nurse.place if nurse else "",
    ]
    tail = [
        paris_time(record.scheduled_at),
        paris_time(record.started_at),
        paris_time(record.ended_at),
        str(record.duration_s),
        "oui" if record.video_connected else "non",
    ]
    if not record.acts:
        return [[*head, "", "", "", "", "0,00", "", "", "0,00", "0,00", *tail]]
    rows = []
    for act in record.acts:
        modifiers = act.modifiers
        extra = sum(m.amount_cents for m in modifiers) if modifiers else 0
        rows.append(
            [
                *head,
                act.role,
                safe_cell(act.performer_name),
                safe_cell(act.act_code),
                safe_cell(label(act.act_code, act.tariff_from)),
                euros(act.amount_cents),
                act.tariff_from.isoformat(),
                safe_cell("+".join(m.code for m in modifiers)) if modifiers else "",
                euros(extra),
                euros(act.amount_cents + extra),
                *tail,
            ]
        )
    return rows


async def csv_chunks(records: AsyncIterator[BillingRecord], catalog: ActCatalog) -> Chunks:
    """The CSV, header first, in chunks of about ``CHUNK_CHARS`` characters."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    buffer.write(CSV_BOM)
    writer.writerow(CSV_COLUMNS)
    label = _Labels(catalog)
    async for record in records:
        writer.writerows(csv_rows(record, label))
        if buffer.tell() >= CHUNK_CHARS:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


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
