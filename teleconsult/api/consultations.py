"""The doctor's consultation endpoints, and the ticket endpoint shared with participants."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from teleconsult.api.auth import current_doctor, require_doctor
from teleconsult.api.billing import choice_of
from teleconsult.api.bodies import BillingBody, NewConsultationBody, ResendBody, read_body, read_optional_body
from teleconsult.api.keys import CONSULTATIONS, SEATS, SIGNALING
from teleconsult.api.security import participant_credential
from teleconsult.api.serialize import billing_json, consultation_json
from teleconsult.consultations import PAGE_SIZE, Invitee, NewConsultation
from teleconsult.errors import ErrorCode, TeleconsultError

routes = web.RouteTableDef()


@routes.post("/api/consultations")
async def create(request: web.Request) -> web.Response:
    doctor = await require_doctor(request)
    body = await read_body(request, NewConsultationBody)
    created = await request.app[CONSULTATIONS].create(
        doctor,
        NewConsultation(
            patient_name=body.patient_name,
            patient_email=body.patient_email,
            scheduled_at=body.scheduled_at,
            reason=body.reason,
            nurse_name=body.nurse_name,
            nurse_email=body.nurse_email,
            language=body.language,
            nurse_pre_admitted=body.nurse_pre_admitted,
            guests=tuple(Invitee(g.name, g.email) for g in body.guests),
        ),
    )
    payload = consultation_json(created.consultation)
    payload["patient_link"] = created.patient_link
    if created.nurse_link:
        payload["nurse_link"] = created.nurse_link
    if created.guest_links:
        payload["guest_links"] = list(created.guest_links)
    return web.json_response(payload, status=201)


@routes.get("/api/consultations")
async def list_consultations(request: web.Request) -> web.Response:
    doctor = await require_doctor(request)
    limit = _int(request.query.get("limit"), PAGE_SIZE, 1, 200)
    before = _cursor(request.query.get("before"))
    items = await request.app[CONSULTATIONS].list_for_doctor(doctor, limit=limit, before=before)
    next_cursor = f"{items[-1].created_at.isoformat()}|{items[-1].id}" if len(items) == limit else None
    return web.json_response({"items": [consultation_json(c) for c in items], "next": next_cursor})


@routes.get("/api/consultations/{id}")
async def get_one(request: web.Request) -> web.Response:
    doctor = await require_doctor(request)
    consultation = await request.app[CONSULTATIONS].get_for_doctor(doctor, request.match_info["id"])
    return web.json_response(consultation_json(consultation, detail=True))


@routes.post("/api/consultations/{id}/ticket")
async def ticket(request: web.Request) -> web.Response:
    """The doctor (session cookie) or a participant (their consultation's cookie) asks for a WebSocket ticket."""
    consultation_id = request.match_info["id"]
    service = request.app[SEATS]
    credential = participant_credential(request, consultation_id)
    doctor = await current_doctor(request)
    if doctor is not None:
        value = await service.ticket_for_doctor(doctor, consultation_id)
    elif credential:
        value = await service.ticket_for_participant(credential, consultation_id)
    else:
        raise TeleconsultError(ErrorCode.UNAUTHORIZED)
    return web.json_response({"ticket": value})


@routes.post("/api/consultations/{id}/end")
async def end(request: web.Request) -> web.Response:
    doctor = await require_doctor(request)
    consultation_id = request.match_info["id"]
    choice = choice_of(await read_optional_body(request, BillingBody))
    ended = await request.app[SIGNALING].end_consultation(consultation_id, doctor.id, choice)
    return web.json_response({"status": ended.status.value, "billing": billing_json(ended.billing)})


def _int(raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    try:
        return min(high, max(low, int(raw)))
    except ValueError:
        raise TeleconsultError(ErrorCode.BAD_REQUEST, "limit must be a number.") from None


def _cursor(raw: str | None) -> tuple[datetime, str] | None:
    if not raw:
        return None
    try:
        created, _, ident = raw.partition("|")
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None:
            raise ValueError("no offset")
        return moment.astimezone(UTC), ident[:64]
    except (ValueError, OverflowError):
        raise TeleconsultError(ErrorCode.BAD_REQUEST, "Invalid cursor.", field="before") from None


@routes.post("/api/consultations/{id}/invitations")
async def resend(request: web.Request) -> web.Response:
    """Invite a participant again: a new link is mailed, the previous one stops working."""
    doctor = await require_doctor(request)
    body = await read_body(request, ResendBody)
    resent = await request.app[SIGNALING].resend_invitation(
        doctor, request.match_info["id"], participant_id=body.participant_id, role=body.role, email=body.email
    )
    return web.json_response(
        {"participant_id": resent.participant_id, "role": resent.role, "link": resent.link}, status=201
    )


@routes.post("/api/consultations/{id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    doctor = await require_doctor(request)
    consultation = await request.app[SIGNALING].cancel_consultation(doctor, request.match_info["id"])
    return web.json_response(consultation_json(consultation, detail=True))
