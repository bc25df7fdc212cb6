"""Prescriptions over HTTP: issuing (the doctor), the signed CMS file, revocation, the pharmacist's check page
(``/verify/{code}``, public, rate-limited) and the CA certificate (``/ca.pem``)."""

from __future__ import annotations

from aiohttp import web

from teleconsult.api.auth import require_doctor
from teleconsult.api.bodies import PrescriptionBody, read_body
from teleconsult.api.clients import limit_links
from teleconsult.api.documents import caller_of, document_json, prescription_json
from teleconsult.api.keys import PRESCRIPTIONS
from teleconsult.api.pages import page_language, render
from teleconsult.documents.files import DocumentFileError
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.i18n import format_paris
from teleconsult.ids import looks_like_token
from teleconsult.prescriptions.pdf import Item

routes = web.RouteTableDef()


@routes.post("/api/consultations/{id}/prescriptions")
async def issue(request: web.Request) -> web.Response:
    doctor = await require_doctor(request)  # only the doctor prescribes
    body = await read_body(request, PrescriptionBody)
    items = [Item(i.drug, i.dosage, i.duration) for i in body.items]
    issued = await request.app[PRESCRIPTIONS].issue(doctor, request.match_info["id"], items, body.notes)
    payload = document_json(issued.document) | {
        "prescription": prescription_json(issued.prescription) | {"verify_url": issued.verify_url}
    }
    return web.json_response(payload, status=201)


@routes.get("/api/documents/{id}/signed")
async def signed(request: web.Request) -> web.StreamResponse:
    prescription, stream = await request.app[PRESCRIPTIONS].signed(request.match_info["id"], await caller_of(request))
    try:
        data = b"".join([chunk async for chunk in stream])  # a few tens of KiB
    except DocumentFileError:
        raise TeleconsultError(ErrorCode.NOT_FOUND, "This document cannot be read.") from None
    return web.Response(
        body=data,
        headers={
            "Content-Type": "application/pkcs7-mime; smime-type=signed-data",
            "Content-Disposition": f'attachment; filename="ordonnance-{prescription.number}.p7m"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@routes.post("/api/documents/{id}/revoke")
async def revoke(request: web.Request) -> web.Response:
    doctor = await require_doctor(request)
    prescription = await request.app[PRESCRIPTIONS].revoke(doctor, request.match_info["id"])
    return web.json_response(prescription_json(prescription))


@routes.get("/ca.pem")
async def ca_pem(request: web.Request) -> web.Response:
    return web.Response(body=request.app[PRESCRIPTIONS].ca_pem, content_type="application/x-pem-file")


@routes.get("/verify/{code}")
async def verify(request: web.Request) -> web.Response:
    """What a pharmacist sees from the QR code: valid, revoked or unknown; by whom, when; the patient's initials."""
    lang = page_language(request)
    try:
        limit_links(request)
    except TeleconsultError:
        return render(request, "verify.html", lang, http_status=429, state="rate_limited", prescription=None)
    code = request.match_info["code"]
    prescription = await request.app[PRESCRIPTIONS].check(code) if looks_like_token(code) else None
    if prescription is None:
        return render(request, "verify.html", lang, http_status=404, state="unknown", prescription=None)
    return render(
        request,
        "verify.html",
        lang,
        state="revoked" if prescription.revoked_at else "valid",
        prescription=prescription,
        issued=format_paris(prescription.issued_at, lang),
        revoked=format_paris(prescription.revoked_at, lang),
    )
