"""A doctor's own keys: issued with the account (a certificate and a document key, before any prescription), every
document of their consultations wrapped for their key, which alone opens it with the ``age`` command line once
exported, and kept when a rotation rewrites the headers."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy import delete, select, update

from teleconsult.app import DATABASE
from teleconsult.crypto.age import Identity
from teleconsult.store.models import AuditEvent, Doctor, DoctorKey, DoctorSigner, Document, Prescription
from tests.conftest import DOCTOR_EMAIL
from tests.helpers import admitted_call
from tests.test_documents import patient_csrf, pdf, upload
from tests.test_prescriptions import issue


def age_cli() -> str:
    path = shutil.which("age")
    if path is None:
        pytest.skip("Debian's age is not installed (apt-get install age)")
    return str(path)


def cli(data_dir: Path, *args: str, secret: str | None = "test-secret") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    if secret is not None:
        env["TELECONSULT_SECRET_KEY"] = secret
    return subprocess.run(
        [sys.executable, "-m", "teleconsult", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def age_open(key_file: Path, sealed: Path) -> bytes:
    result = subprocess.run([age_cli(), "-d", "-i", str(key_file), str(sealed)], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def doctor_id(live: Any) -> str:
    async with live.app[DATABASE].transaction() as tx:
        return str((await tx.execute(select(Doctor.id).where(Doctor.email == DOCTOR_EMAIL))).scalar_one())


async def record(live: Any, document_id: str) -> Document:
    async with live.app[DATABASE].transaction() as tx:
        row = await tx.get(Document, document_id, populate_existing=True)
        assert row is not None
        return row


def export_key(live: Any, tmp_path: Path) -> tuple[Path, str]:
    exported = cli(live.settings.server.data_dir, "doctors", "export-key", "--email", DOCTOR_EMAIL)
    assert exported.returncode == 0, exported.stderr
    assert "keep this key private" in exported.stderr
    key_file = tmp_path / "doctor-key.txt"
    key_file.write_text(exported.stdout)
    return key_file, exported.stdout


async def test_a_new_doctor_has_a_certificate_and_a_document_key_before_any_prescription(running: Any) -> None:
    doctor = await doctor_id(running)
    async with running.app[DATABASE].transaction() as tx:
        signer = await tx.get(DoctorSigner, doctor)
        key = await tx.get(DoctorKey, doctor)
        prescriptions = (await tx.execute(select(Prescription))).scalars().all()
    assert prescriptions == [] and signer is not None and key is not None
    certificate = x509.load_pem_x509_certificate(signer.certificate_pem.encode())
    assert certificate.subject.rfc4514_string().startswith("2.5.4.5=RPPS ")  # the serialNumber attribute
    assert key.recipient.startswith("age1") and b"AGE-SECRET-KEY" not in key.sealed_identity.upper()
    assert b"PRIVATE KEY" not in signer.sealed_key  # both sealed, never in clear


def test_the_cli_issues_both_keys_with_the_account(tmp_path: Path) -> None:
    created = cli(
        tmp_path,
        "create-doctor",
        "--email",
        "cli@example.org",
        "--name",
        "Dr Cli",
        "--rpps",
        "12345678901",
        "--password",
        "long enough pw",
    )
    assert created.returncode == 0, created.stderr
    with sqlite3.connect(tmp_path / "teleconsult.db") as db:
        doctor = db.execute("SELECT id FROM doctors").fetchone()[0]
        assert db.execute("SELECT count(*) FROM doctor_signers WHERE doctor_id = ?", (doctor,)).fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM doctor_keys WHERE doctor_id = ?", (doctor,)).fetchone() == (1,)
    missing = cli(tmp_path, "doctors", "export-key", "--email", "nobody@example.org")
    assert missing.returncode == 2 and "No doctor" in missing.stderr


async def test_every_document_opens_with_the_doctors_key_alone(server_with: Any, tmp_path: Path) -> None:
    escrow = Identity.generate("offline")
    live, clients = await server_with(escrow_recipients=(str(escrow.recipient()),))
    call = await admitted_call(clients, video=False)
    data = pdf(200_000)
    uploaded = await upload(call.patient_http, call.consultation["id"], data, "bilan.pdf", await patient_csrf(call))
    assert uploaded.status == 201
    document = await uploaded.json()
    prescribed = await issue(call)
    assert prescribed.status == 201
    prescription = await prescribed.json()
    doctor = await doctor_id(live)
    for document_id in (document["id"], prescription["id"]):
        assert (await record(live, document_id)).key_ids == f"service:v1,doctor:{doctor},escrow:1"

    key_file, text = export_key(live, tmp_path)
    assert text.count("AGE-SECRET-KEY-1") == 1 and f"doctor:{doctor}" in text
    folder = live.settings.server.data_dir / "documents"
    assert age_open(key_file, folder / f"{document['id']}.age") == data  # offline, without the server
    assert age_open(key_file, folder / f"{prescription['id']}.age").startswith(b"%PDF")
    signed = await call.doctor_http.get(f"/api/documents/{prescription['id']}/signed")
    assert age_open(key_file, folder / f"{prescription['id']}-signed.age") == await signed.read()
    async with live.app[DATABASE].transaction() as tx:
        events = (await tx.execute(select(AuditEvent).where(AuditEvent.action == "doctor.key_exported"))).scalars()
        exported = [(e.actor, json.loads(e.detail or "{}")) for e in events]
    assert exported == [("cli", {"doctor": doctor, "key": f"doctor:{doctor}"})]  # ids only


async def test_a_doctor_made_before_gets_keys_on_first_use(running: Any, clients: Any) -> None:
    doctor = await doctor_id(running)
    async with running.app[DATABASE].transaction() as tx:
        await tx.execute(delete(DoctorKey))
        await tx.execute(delete(DoctorSigner))
    call = await admitted_call(clients, video=False)
    uploaded = await upload(call.patient_http, call.consultation["id"], pdf(5000), "a.pdf", await patient_csrf(call))
    assert uploaded.status == 201
    assert (await record(running, (await uploaded.json())["id"])).key_ids == f"service:v1,doctor:{doctor}"
    assert (await issue(call)).status == 201  # the signer is issued on the first prescription
    async with running.app[DATABASE].transaction() as tx:
        assert await tx.get(DoctorSigner, doctor) is not None


async def test_a_key_row_altered_in_the_database_is_refused_not_obeyed(running: Any, clients: Any) -> None:
    """Whoever can write the database but lacks the server secret cannot have documents wrapped for their key."""
    intruder = Identity.generate("intruder")
    async with running.app[DATABASE].transaction() as tx:
        await tx.execute(update(DoctorKey).values(recipient=str(intruder.recipient())))
    call = await admitted_call(clients, video=False)
    uploaded = await upload(call.patient_http, call.consultation["id"], pdf(5000), "a.pdf", await patient_csrf(call))
    assert uploaded.status == 500
    assert not list((running.settings.server.data_dir / "documents").glob("*.age"))


async def test_rotation_rewraps_headers_and_keeps_the_doctors_key(running: Any, clients: Any, tmp_path: Path) -> None:
    call = await admitted_call(clients, video=False)
    data = pdf(300_000)
    uploaded = await upload(call.patient_http, call.consultation["id"], data, "bilan.pdf", await patient_csrf(call))
    document = await uploaded.json()
    prescription = await (await issue(call)).json()
    doctor = await doctor_id(running)
    before = await record(running, document["id"])
    signed_before = await (await call.doctor_http.get(f"/api/documents/{prescription['id']}/signed")).read()
    folder = running.settings.server.data_dir / "documents"
    payload_before = (folder / f"{document['id']}.age").read_bytes()

    rotated = cli(running.settings.server.data_dir, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "2 stored documents gained it" in rotated.stdout
    after = await record(running, document["id"])
    assert after.key_ids == f"service:v2,service:v1,doctor:{doctor}"
    assert after.sha256 != before.sha256 and after.sealed_size > before.sealed_size
    assert (folder / f"{document['id']}.age").read_bytes().endswith(payload_before[-100_000:])  # payload untouched

    # The running server loaded its ring before the rotation: the kept v1 stanza still opens the files for it.
    got = await call.doctor_http.get(f"/api/documents/{document['id']}")
    assert got.status == 200 and await got.read() == data
    signed = await call.doctor_http.get(f"/api/documents/{prescription['id']}/signed")
    assert signed.status == 200 and await signed.read() == signed_before
    # The doctor's key alone, and the new service key alone, open them.
    key_file, _ = export_key(running, tmp_path)
    assert age_open(key_file, folder / f"{document['id']}.age") == data
    assert age_open(key_file, folder / f"{prescription['id']}-signed.age") == signed_before
    from teleconsult.crypto.age import decrypt
    from teleconsult.crypto.keyring import KeyRing

    ring = KeyRing.open(running.settings.server.data_dir / "keys", b"test-secret")
    newest = [i for i in ring.identities() if i.key_id == "service:v2"]
    assert decrypt((folder / f"{document['id']}.age").read_bytes(), newest) == data

    again = cli(running.settings.server.data_dir, "keys", "rotate")  # v3: the headers gain it in turn
    assert again.returncode == 0 and "2 stored documents gained it" in again.stdout
    assert (await record(running, document["id"])).key_ids == f"service:v3,service:v2,service:v1,doctor:{doctor}"
    async with running.app[DATABASE].transaction() as tx:
        events = (await tx.execute(select(AuditEvent).where(AuditEvent.action == "documents.rewrapped"))).scalars()
        details = [json.loads(e.detail or "{}") for e in events]
    assert details == [
        {"key": "service:v2", "rewrapped": 2, "skipped": []},
        {"key": "service:v3", "rewrapped": 2, "skipped": []},
    ]


async def test_a_file_that_does_not_match_its_record_is_skipped_by_the_rewrap(running: Any, clients: Any) -> None:
    call = await admitted_call(clients, video=False)
    csrf = await patient_csrf(call)
    first = await (await upload(call.patient_http, call.consultation["id"], pdf(5000), "a.pdf", csrf)).json()
    second = await (await upload(call.patient_http, call.consultation["id"], pdf(5000), "b.pdf", csrf)).json()
    folder = running.settings.server.data_dir / "documents"
    (folder / f"{first['id']}.age").write_bytes((folder / f"{second['id']}.age").read_bytes())
    before = await record(running, first["id"])
    rotated = cli(running.settings.server.data_dir, "keys", "rotate")
    assert rotated.returncode == 0 and first["id"] in rotated.stderr and "1 stored documents gained" in rotated.stdout
    assert (await record(running, first["id"])).key_ids == before.key_ids  # left as it was, never "repaired"


async def test_keys_list_shows_each_doctors_key(running: Any) -> None:
    doctor = await doctor_id(running)
    listed = cli(running.settings.server.data_dir, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    async with running.app[DATABASE].transaction() as tx:
        key = await tx.get(DoctorKey, doctor)
    assert key is not None
    assert [f"doctor:{doctor}", key.recipient] in [line[:2] for line in lines]
    assert [line[0] for line in lines] == ["service:v1", f"doctor:{doctor}"]
