"""HTTP request bodies: strict typed structs (unknown fields ignored), decoded in one place."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal, TypeVar

import msgspec
from aiohttp import web
from msgspec import Meta

from teleconsult.errors import ErrorCode, TeleconsultError

MAX_JSON_BYTES = 64 * 1024
T = TypeVar("T")

Short = Annotated[str, Meta(max_length=320)]


class LoginBody(msgspec.Struct):
    email: Short
    password: Annotated[str, Meta(max_length=1024)]


class InviteeBody(msgspec.Struct):
    name: Annotated[str, Meta(max_length=200)]
    email: Short


class NewConsultationBody(msgspec.Struct):
    patient_name: Annotated[str, Meta(max_length=200)]
    patient_email: Short
    scheduled_at: datetime | None = None
    reason: Annotated[str, Meta(max_length=2000)] | None = None
    nurse_name: Annotated[str, Meta(max_length=200)] | None = None
    nurse_email: Short | None = None
    language: Annotated[str, Meta(max_length=5)] = "fr"
    nurse_pre_admitted: bool = False
    guests: Annotated[list[InviteeBody], Meta(max_length=8)] = msgspec.field(default_factory=list)


class JoinBody(msgspec.Struct):
    token: Annotated[str, Meta(max_length=256)]
    consent: bool = False


async def read_all(request: web.Request, limit: int) -> bytes:
    """The whole body, however it arrives (several TCP segments, chunks), refused as soon as it passes ``limit``:
    a declared length over the limit is refused before anything is read."""
    if request.content_length is not None and request.content_length > limit:
        raise TeleconsultError(ErrorCode.TOO_LARGE, "Request body too large.")
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise TeleconsultError(ErrorCode.TOO_LARGE, "Request body too large.")
    return bytes(body)


_PATH = re.compile(r"at `\$\.([^`]+)`|required field `([^`]+)`")


def _field_of(error: msgspec.ValidationError) -> str | None:
    """The field msgspec names (``$.guests[0].email``, or a missing ``patient_email``)."""
    match = _PATH.search(str(error))
    return (match.group(1) or match.group(2)) if match else None


async def read_body(request: web.Request, kind: type[T]) -> T:
    raw = await read_all(request, MAX_JSON_BYTES)
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise TeleconsultError(ErrorCode.BAD_REQUEST, str(exc), field=_field_of(exc)) from None
    except (msgspec.DecodeError, RecursionError):
        raise TeleconsultError(ErrorCode.BAD_REQUEST, "The body must be a JSON object.") from None


class ResendBody(msgspec.Struct):
    """Whom to invite again: a participant id, or the role of the patient or the nurse."""

    participant_id: Annotated[str, Meta(max_length=32)] | None = None
    role: Annotated[str, Meta(max_length=16)] | None = None
    #: A corrected address (after a mistyped one was refused).
    email: Short | None = None


class ItemBody(msgspec.Struct):
    """One line of a prescription."""

    drug: Annotated[str, Meta(max_length=200)]
    dosage: Annotated[str, Meta(max_length=200)]
    duration: Annotated[str, Meta(max_length=80)]


class PrescriptionBody(msgspec.Struct):
    items: Annotated[list[ItemBody], Meta(max_length=30)]
    notes: Annotated[str, Meta(max_length=2000)] | None = None


class BillingBody(msgspec.Struct):
    """The doctor's billing choice when ending, or a correction; every field optional (the proposal stands)."""

    status: Literal["completed", "interrupted", "not_billable"] | None = None
    doctor_act: Annotated[str, Meta(max_length=8)] | None = None
    majorations: Annotated[list[Annotated[str, Meta(max_length=8)]], Meta(max_length=8)] = msgspec.field(
        default_factory=list
    )
    nurse_place: Literal["planned_visit", "dedicated_place", "home"] | None = None
    nurse_number: Annotated[str, Meta(max_length=11)] | None = None
    reason: Annotated[str, Meta(max_length=300)] | None = None
    patient_birth_date: date | None = None
    patient_nir: Annotated[str, Meta(max_length=32)] | None = None


async def read_optional_body(request: web.Request, kind: type[T]) -> T | None:
    """``read_body`` for an endpoint whose body may be absent (no bytes at all)."""
    if not request.can_read_body:
        return None
    return await read_body(request, kind)
