"""Prescriptions over real HTTP: the doctor issues, the patient downloads the PDF, OpenSSL alone checks the signed
file against the server's CA, the pharmacist's page says valid then revoked; nobody else prescribes."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pypdf
import pytest

from tests.conftest import unavailable
from tests.helpers import admitted_call
from tests.test_documents import patient_csrf

ITEMS = [
    {"drug": "Paracétamol 1 g", "dosage": "1 comprimé 3 fois par jour", "duration": "5 jours"},
    {"drug": "Amoxicilline 500 mg", "dosage": "2 gélules matin et soir", "duration": "7 jours"},
]


@pytest.fixture
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        unavailable("openssl is not installed")
    return str(path)


async def issue(call: Any, **body: Any) -> Any:
    return await call.doctor_http.post(
        f"/api/consultations/{call.consultation['id']}/prescriptions",
        json={"items": ITEMS, "notes": "À prendre pendant les repas."} | body,
        headers={"X-CSRF-Token": call.csrf},
    )


async def test_a_signed_prescription_the_patient_downloads_and_openssl_checks(
    clients: Any, openssl: str, tmp_path: Path
) -> None:
    call = await admitted_call(clients)
    response = await issue(call)
    assert response.status == 201, await response.text()
    issued = await response.json()
    prescription = issued["prescription"]
    assert issued["kind"] == "prescription" and prescription["number"].startswith("RX-")
    frame = await call.patient.expect("document")  # the patient sees it appear at once
    assert frame["document"]["kind"] == "prescription" and frame["document"]["id"] == issued["id"]

    pdf = await (await call.patient_http.get(f"/api/documents/{issued['id']}")).read()
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    for expected in (
        "Dr Alice Martin",
        "RPPS 10101010101",
        "Jeanne Dupont",
        "Paracétamol 1 g",
        "5 jours",
        "Amoxicilline 500 mg",
        prescription["number"],
        prescription["id"],
        call.consultation["id"],
    ):
        assert expected in text, expected
    assert prescription["verify_url"] in text.replace("\n", "")

    signed = await call.patient_http.get(f"/api/documents/{issued['id']}/signed")
    assert signed.status == 200 and signed.headers["Content-Disposition"].endswith('.p7m"')
    p7m, ca = tmp_path / "rx.p7m", tmp_path / "ca.pem"
    p7m.write_bytes(await signed.read())
    ca.write_bytes(await (await call.patient_http.get("/ca.pem")).read())
    out = tmp_path / "rx.pdf"
    checked = subprocess.run(
        [openssl, "cms", "-verify", "-inform", "DER", "-in", str(p7m), "-CAfile", str(ca), "-out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert out.read_bytes() == pdf  # the PDF back, byte for byte

    tampered = bytearray(p7m.read_bytes())
    tampered[len(tampered) // 2] ^= 0x01
    (tmp_path / "bad.p7m").write_bytes(bytes(tampered))
    refused = subprocess.run(
        [openssl, "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "bad.p7m"), "-CAfile", str(ca)],
        capture_output=True,
        check=False,
    )
    assert refused.returncode != 0
    other_ca = tmp_path / "other.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=Another CA",
            "-keyout",
            str(tmp_path / "other.key"),
            "-out",
            str(other_ca),
            "-days",
            "1",
        ],
        capture_output=True,
        check=True,
    )
    wrong = subprocess.run(
        [openssl, "cms", "-verify", "-inform", "DER", "-in", str(p7m), "-CAfile", str(other_ca)],
        capture_output=True,
        check=False,
    )
    assert wrong.returncode != 0


async def test_the_pharmacists_page_says_valid_then_revoked_and_shows_only_initials(clients: Any) -> None:
    call = await admitted_call(clients)
    issued = await (await issue(call)).json()
    url = issued["prescription"]["verify_url"]
    path = url[url.index("/verify/") :]
    pharmacist = await clients()
    page = await pharmacist.get(path)
    html = await page.text()
    assert page.status == 200 and 'data-state="valid"' in html and "valide" in html
    assert "Dr Alice Martin" in html and "10101010101" in html and "J. D." in html
    assert "Jeanne" not in html and "Dupont" not in html  # the initials only
    revoked = await call.doctor_http.post(f"/api/documents/{issued['id']}/revoke", headers={"X-CSRF-Token": call.csrf})
    assert revoked.status == 200 and (await revoked.json())["revoked_at"]
    html = await (await pharmacist.get(path)).text()
    assert 'data-state="revoked"' in html and "révoquée" in html
    detail = await (await call.doctor_http.get(f"/api/consultations/{call.consultation['id']}")).json()
    assert [(d["id"], d["kind"]) for d in detail["documents"]] == [(issued["id"], "prescription")]  # on its page
    unknown = await pharmacist.get("/verify/" + "z" * 43)
    assert unknown.status == 404 and 'data-state="unknown"' in await unknown.text()
    english = await (await pharmacist.get(path + "?lang=en")).text()
    assert "revoked" in english


async def test_only_the_consultations_doctor_prescribes(clients: Any) -> None:
    call = await admitted_call(clients)
    by_patient = await call.patient_http.post(
        f"/api/consultations/{call.consultation['id']}/prescriptions",
        json={"items": ITEMS},
        headers={"X-CSRF-Token": await patient_csrf(call)},
    )
    assert by_patient.status == 401 and (await by_patient.json())["error"] == "unauthorized"
    empty = await issue(call, items=[])
    assert empty.status == 400 and (await empty.json())["field"] == "items"


async def test_the_check_page_is_rate_limited(server_with: Any) -> None:
    _, clients = await server_with(link_rate_per_min=3)
    pharmacist = await clients()
    statuses = [(await pharmacist.get("/verify/" + "z" * 43)).status for _ in range(5)]
    assert statuses[:3] == [404, 404, 404] and statuses[3:] == [429, 429]
