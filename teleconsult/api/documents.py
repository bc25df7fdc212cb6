"""Documents over HTTP: ``POST /api/consultations/{id}/documents`` (multipart, one file part, streamed) and
``GET /api/documents/{id}`` (streamed back, as an attachment)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import BodyPartReader, StreamReader, hdrs, web

from teleconsult.api.auth import current_doctor
from teleconsult.api.keys import DOCUMENTS
from teleconsult.api.multipart import Piece, boundary_of, part_body
from teleconsult.api.security import participant_credentials
from teleconsult.api.serialize import iso
from teleconsult.documents.files import DocumentFileError
from teleconsult.documents.service import Caller, Listed
from teleconsult.domain import Document, Prescription
from teleconsult.errors import ErrorCode, TeleconsultError

routes = web.RouteTableDef()

#: What a multipart envelope adds around the file at most (boundaries, part headers).
ENVELOPE_BYTES = 16 * 1024


def document_json(document: Document) -> dict[str, Any]:
    return {
        "id": document.id,
        "consultation_id": document.consultation_id,
        "name": document.name,
        "mime": document.mime,
        "size": document.size,
        "kind": document.kind,
        "uploaded_by": document.uploaded_by,
        "created_at": iso(document.created_at),
        "sha256_sealed": document.sha256,
    }


def prescription_json(prescription: Prescription) -> dict[str, Any]:
    return {
        "id": prescription.id,
        "number": prescription.number,
        "document_id": prescription.document_id,
        "issued_at": iso(prescription.issued_at),
        "revoked_at": iso(prescription.revoked_at),
    }


def listed_json(listed: Listed) -> dict[str, Any]:
    """A document as the consultation's list shows it: who gave it, and a prescription's number and revocation."""
    uploader = listed.uploader
    return document_json(listed.document) | {
        "uploader": {"role": uploader.role, "name": uploader.name} if uploader is not None else None,
        "prescription": prescription_json(listed.prescription) if listed.prescription is not None else None,
    }


async def caller_of(request: web.Request) -> Caller:
    """The logged-in doctor, else the participant cookies the request carries."""
    doctor = await current_doctor(request)
    return Caller(doctor=doctor) if doctor is not None else Caller(credentials=participant_credentials(request))


@routes.post("/api/consultations/{id}/documents")
async def upload(request: web.Request) -> web.Response:
    consultation_id = request.match_info["id"]
    service = request.app[DOCUMENTS]
    caller = await caller_of(request)
    if request.content_length is not None and request.content_length > service.max_bytes + ENVELOPE_BYTES:
        raise TeleconsultError(ErrorCode.TOO_LARGE, "This file is too large.", detail="document_too_large")
    try:
        reader = await request.multipart()
        part = await reader.next()
    except (ValueError, AssertionError):
        raise TeleconsultError(ErrorCode.BAD_REQUEST, "Send the file as multipart/form-data.") from None
    if not isinstance(part, BodyPartReader) or part.filename is None:
        raise TeleconsultError(ErrorCode.BAD_REQUEST, "Send one file part.", field="file")
    # Browsers percent-encode some characters of a file name (Chrome: `"` and line breaks; aiohttp: anything not
    # ASCII); the name is display text either way, cleaned by the documents service.
    name = unquote(part.filename)
    chunks = _chunks(request.content, boundary_of(request.headers[hdrs.CONTENT_TYPE]))
    document = await service.upload(consultation_id, caller, name, chunks)
    return web.json_response(document_json(document), status=201)


@routes.get("/api/consultations/{id}/documents")
async def listing(request: web.Request) -> web.Response:
    """The consultation's documents, for its doctor and its admitted participants."""
    consultation_id = request.match_info["id"]
    documents = await request.app[DOCUMENTS].documents_of(consultation_id, await caller_of(request))
    return web.json_response({"items": [listed_json(d) for d in documents]})


async def _chunks(content: StreamReader, boundary: str) -> AsyncIterator[Piece]:
    """The file part's body, as the socket gives it; a request that ends inside it is a bad request."""
    try:
        async for piece in part_body(content, boundary):
            yield piece
    except ValueError:
        raise TeleconsultError(ErrorCode.BAD_REQUEST, "The file was cut short.", field="file") from None


@routes.get("/api/documents/{id}")
async def download(request: web.Request) -> web.StreamResponse:
    document, plaintext = await request.app[DOCUMENTS].open(request.match_info["id"], await caller_of(request))
    try:
        first = await anext(plaintext, b"")
    except DocumentFileError:
        raise TeleconsultError(ErrorCode.NOT_FOUND, "This document cannot be read.") from None
    response = web.StreamResponse(headers=_download_headers(document))
    response.content_length = document.size
    await response.prepare(request)
    try:
        await response.write(first)
        async for chunk in plaintext:
            await response.write(chunk)
    except DocumentFileError:
        # Never finish as if complete: the client sees a reset, not a short file.
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


def _download_headers(document: Document) -> dict[str, str]:
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in document.name)
    return {
        "Content-Type": document.mime,
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(document.name)}",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
