"""Documents over real HTTP: uploaded streamed and encrypted, downloaded byte for byte by whoever may, refused with
their codes otherwise; nothing readable on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import update

from teleconsult.app import DATABASE
from teleconsult.store.models import Document
from tests.helpers import Call, admitted_call, connect, create_consultation, join, login

MIB = 1024 * 1024


def pdf(size: int) -> bytes:
    body = os.urandom(size - 20)
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + body[: size - 19] + b"\n%%EOF"[: max(0, size - len(body) - 15)]


def form(data: bytes, name: str, mime: str = "application/octet-stream") -> aiohttp.FormData:
    payload = aiohttp.FormData()
    payload.add_field("file", data, filename=name, content_type=mime)
    return payload


async def upload(http: Any, cid: str, data: bytes, name: str, csrf: str) -> Any:
    return await http.post(f"/api/consultations/{cid}/documents", data=form(data, name), headers={"X-CSRF-Token": csrf})


async def patient_csrf(call: Call) -> str:
    page = await (await call.patient_http.get(f"/j/{call.consultation['patient_link'].rsplit('/j/', 1)[1]}")).text()
    marker = 'name="csrf-token" content="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


async def test_a_patients_20_mib_pdf_reaches_the_doctor_byte_for_byte_and_nothing_readable_is_on_disk(
    clients: Any, running: Any
) -> None:
    call = await admitted_call(clients)
    cid = call.consultation["id"]
    data = pdf(20 * MIB)
    response = await upload(
        call.patient_http, cid, data, "../../résultats\u200b sanguins.PDF", await patient_csrf(call)
    )
    assert response.status == 201, await response.text()
    document = await response.json()
    assert document["name"] == "résultats sanguins.pdf" and document["mime"] == "application/pdf"
    assert document["size"] == len(data)
    frame = await call.doctor.expect("document")  # every admitted peer sees it at once
    assert frame["document"]["id"] == document["id"] and frame["document"]["from"] == call.patient.peer_id

    got = await call.doctor_http.get(f"/api/documents/{document['id']}")
    assert got.status == 200 and await got.read() == data
    assert got.headers["Content-Type"] == "application/pdf"
    assert got.headers["X-Content-Type-Options"] == "nosniff" and got.headers["Cache-Control"] == "no-store"
    disposition = got.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="r_sultats sanguins.pdf"')
    assert "filename*=UTF-8''r%C3%A9sultats%20sanguins.pdf" in disposition
    again = await call.patient_http.get(f"/api/documents/{document['id']}")  # the patient reads it too
    assert again.status == 200 and await again.read() == data

    windows = {data[i : i + 64] for i in range(0, len(data) - 64, len(data) // 50)}
    for path in Path(running.settings.server.data_dir).rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(window in content for window in windows), path


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (b"\x7fELF\x02\x01\x01" + bytes(600), "rapport.pdf"),
        (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "note.txt"),
        (b"%PDF-1.4\n" + b"<html><body onload=alert(1)>" + bytes(400), "polyglotte.pdf"),
        (b"GIF89a" + bytes(500), "image.gif"),
    ],
)
async def test_a_file_is_judged_on_its_content_not_its_name(clients: Any, content: bytes, name: str) -> None:
    call = await admitted_call(clients)
    response = await upload(call.patient_http, call.consultation["id"], content, name, await patient_csrf(call))
    body = await response.json()
    assert response.status == 415 and body["error"] == "unsupported_type" and body["detail"] == "document_type"


async def test_plain_text_and_images_are_accepted(clients: Any) -> None:
    call = await admitted_call(clients)
    csrf = await patient_csrf(call)
    text = await upload(call.patient_http, call.consultation["id"], b"Tension: 12/8\n", "mesures", csrf)
    assert text.status == 201 and (await text.json())["name"] == "mesures.txt"
    png = b"\x89PNG\r\n\x1a\n" + bytes(300)
    image = await upload(call.patient_http, call.consultation["id"], png, "photo.jpg", csrf)
    assert image.status == 201 and (await image.json())["name"] == "photo.png"  # the type found, not claimed


async def test_too_large_before_reading_and_mid_stream(server_with: Any) -> None:
    live, clients = await server_with(max_document_bytes=MIB)
    call = await admitted_call(clients)
    csrf = await patient_csrf(call)
    declared = await upload(call.patient_http, call.consultation["id"], pdf(2 * MIB), "grand.pdf", csrf)
    assert declared.status == 413 and (await declared.json())["detail"] == "document_too_large"

    async def chunked() -> Any:  # no Content-Length: refused as the bytes pass the limit
        for _ in range(4):
            yield pdf(MIB // 2)

    payload = aiohttp.FormData()
    payload.add_field("file", chunked(), filename="flux.pdf", content_type="application/pdf")
    streamed = await call.patient_http.post(
        f"/api/consultations/{call.consultation['id']}/documents", data=payload, headers={"X-CSRF-Token": csrf}
    )
    assert streamed.status == 413
    assert not list((live.settings.server.data_dir / "documents").glob("*"))  # no file, not even a partial one


async def test_nobody_else_reads_or_uploads(clients: Any) -> None:
    call = await admitted_call(clients)
    csrf = await patient_csrf(call)
    document = await (await upload(call.patient_http, call.consultation["id"], pdf(10_000), "a.pdf", csrf)).json()
    # Another consultation of the same doctor, with its own patient: they see nothing of the first.
    other = await create_consultation(call.doctor_http, call.csrf, patient_email="paul@example.org")
    other_http = await clients()
    joined = await join(other_http, other["patient_link"])
    await connect(other_http, joined["ticket"])  # waiting in their own room
    assert (await other_http.get(f"/api/documents/{document['id']}")).status == 404
    waiting = await upload(other_http, other["id"], pdf(1000), "b.pdf", joined["csrf_token"])
    assert waiting.status == 404  # a waiting patient cannot upload either
    assert (await upload(other_http, call.consultation["id"], pdf(1000), "c.pdf", joined["csrf_token"])).status == 404
    # Another doctor.
    from teleconsult.api.keys import DOCTORS

    await call.doctor_http.server.app[DOCTORS].create_doctor(  # type: ignore[union-attr]
        email="dr.autre@example.org", name="Dr Autre", rpps="20202020202", password="another long password"
    )
    stranger = await clients()
    await login(stranger, "dr.autre@example.org", "another long password")
    assert (await stranger.get(f"/api/documents/{document['id']}")).status == 404
    assert (await (await clients()).get(f"/api/documents/{document['id']}")).status == 404  # no credential at all


async def test_a_file_moved_or_altered_on_disk_is_refused(clients: Any, running: Any) -> None:
    call = await admitted_call(clients)
    csrf = await patient_csrf(call)
    first = await (await upload(call.patient_http, call.consultation["id"], pdf(300_000), "a.pdf", csrf)).json()
    second = await (await upload(call.patient_http, call.consultation["id"], pdf(300_000), "b.pdf", csrf)).json()
    folder = Path(running.settings.server.data_dir) / "documents"
    a, b = folder / f"{first['id']}.age", folder / f"{second['id']}.age"
    a.write_bytes(b.read_bytes())  # another document's valid ciphertext in its place
    assert (await call.doctor_http.get(f"/api/documents/{first['id']}")).status == 404

    sealed = bytearray(b.read_bytes())
    sealed[-5] ^= 1  # the last chunk altered...
    b.write_bytes(bytes(sealed))
    import hashlib

    async with running.app[DATABASE].transaction() as tx:  # ...and its record made to match, as an attacker might
        await tx.execute(
            update(Document).where(Document.id == second["id"]).values(sha256=hashlib.sha256(sealed).hexdigest())
        )
    response = await call.doctor_http.get(f"/api/documents/{second['id']}")
    assert response.status == 200  # the first chunks authenticate and go out...
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()  # ...and the download is cut, never finished as if complete


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_a_256_mib_upload_and_its_download_keep_memory_flat(server_with: Any) -> None:
    """The server runs in this process: its resident memory may grow by less than 64 MiB while 256 MiB go through
    it both ways (the client streams from a generator and hashes what comes back)."""
    import hashlib

    _, clients = await server_with(max_document_bytes=300 * MIB, documents_quota_bytes=300 * MIB)
    call = await admitted_call(clients)
    csrf = await patient_csrf(call)
    block = pdf(MIB)
    sent = hashlib.sha256()

    async def stream() -> Any:
        for _ in range(256):
            sent.update(block)
            yield block

    before = rss_bytes()
    payload = aiohttp.FormData()
    payload.add_field("file", stream(), filename="scanner.pdf", content_type="application/pdf")
    response = await call.patient_http.post(
        f"/api/consultations/{call.consultation['id']}/documents", data=payload, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 201, await response.text()
    document = await response.json()
    assert document["size"] == 256 * MIB
    got = hashlib.sha256()
    download = await call.doctor_http.get(f"/api/documents/{document['id']}")
    async for chunk in download.content.iter_chunked(MIB):
        got.update(chunk)
    assert got.hexdigest() == sent.hexdigest()
    growth = rss_bytes() - before
    assert growth < 64 * MIB, f"resident memory grew by {growth / MIB:.0f} MiB"
