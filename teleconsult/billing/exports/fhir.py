"""The FHIR export (the package's docstring gives the Bundle): the entries written as JSON text from pieces
(``_FhirText``), the Bundle's opening (``bundle_head``), and the chunks (``fhir_chunks`` from records,
``fhir_line_chunks`` from the store's pages of lines)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, date, datetime

from teleconsult.acts import ActCatalog
from teleconsult.billing.exports import formats
from teleconsult.billing.exports.fhir_resources import (
    ACT_CODE_SYSTEM,
    CONSULTATION_SYSTEM,
    ENCOUNTER_STATUS,
    ENTRY_SYSTEM,
    IDNPS_SYSTEM,
    INS_NIR_SYSTEM,
    NAMESPACE,
    NURSE_PLACES,
    RPPS_SYSTEM,
    STATUS_LABELS,
    STATUS_SYSTEM,
    _dumps,
    _identifier,
    _js,
    _money,
    _ngap,
    _participation,
    _practitioner,
    _ref,
    nurse_identifier,
    urn,
)
from teleconsult.billing.exports.formats import Chunks
from teleconsult.billing.exports.lines import _MINUTES_SECONDS, _Labels, _pages
from teleconsult.domain import BillingLine, BillingRecord

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
    chunk = formats.CHUNK_CHARS
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
