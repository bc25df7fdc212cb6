"""The FHIR R4 vocabulary of the Bundle and its small pieces as objects: the code and identifier systems, each ledger
status's Encounter status and label, the entries' ids (``urn``: uuid5 under ``NAMESPACE``), instants
(``fhir_instant``), and the references, identifiers, Practitioners and codings (``_ref``, ``_identifier``,
``_practitioner``, ``_ngap``…) as the json encoder writes them (``_dumps``). The writer (``fhir``) is made of them;
``tests/test_exports.py`` builds its reference Bundle from them."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

from teleconsult.billing.exports.lines import _Labels
from teleconsult.domain import BillingStatus

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
