"""HTML pages: /login, /doctor, /c/{id} (the doctor's call page) and /j/{token} (the patient's or nurse's).

Opening a join link is read-only: GET and HEAD never consume or change anything (mail scanners prefetch links).
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from teleconsult.api.auth import current_doctor
from teleconsult.api.clients import limit_links
from teleconsult.api.keys import CATALOGS, CONSULTATIONS, INVITATIONS
from teleconsult.api.security import csrf_token, participant_credential, session_token
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.i18n import LANGUAGES, format_paris, negotiate, other
from teleconsult.invitations import LinkUnusable

routes = web.RouteTableDef()

LANG_COOKIE = "lang"


def page_language(request: web.Request) -> str:
    return negotiate(
        request.query.get("lang"), request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language")
    )


def render(
    request: web.Request,
    template: str,
    lang: str,
    *,
    http_status: int = 200,
    credential: str | None = None,
    **context: Any,
) -> web.Response:
    """A page in ``lang``; its CSRF token is bound to ``credential`` (a participant's cookie), else to the
    doctor's session if there is one."""
    catalog = dict(request.app[CATALOGS].catalog(lang))
    bound = credential or session_token(request)
    base = {
        "lang": lang,
        "other_lang": other(lang),
        "t": catalog,
        "t_json": catalog,
        "csrf_token": csrf_token(request, bound) if bound else "",
    }
    response = aiohttp_jinja2.render_template(template, request, base | context, status=http_status)
    if request.query.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    raise web.HTTPFound("/doctor" if session_token(request) else "/login")


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    return render(request, "login.html", page_language(request))


@routes.get("/doctor")
async def dashboard(request: web.Request) -> web.Response:
    doctor = await current_doctor(request)
    if doctor is None:
        raise web.HTTPFound("/login")
    return render(request, "doctor.html", page_language(request), doctor=doctor)


@routes.get("/c/{id}")
async def doctor_call(request: web.Request) -> web.Response:
    doctor = await current_doctor(request)
    if doctor is None:
        raise web.HTTPFound("/login")
    lang = page_language(request)
    try:
        consultation = await request.app[CONSULTATIONS].get_for_doctor(doctor, request.match_info["id"])
    except TeleconsultError:
        raise web.HTTPNotFound() from None
    patient = consultation.seat("patient")
    return render(
        request,
        "call.html",
        lang,
        role="doctor",
        consultation_id=consultation.id,
        token=None,
        link_valid=True,
        doctor_name=doctor.name,
        patient_name=patient.name if patient else "",
        scheduled_at=format_paris(consultation.scheduled_at, lang),
        status=consultation.status,
    )


#: An unknown, expired or revoked link is Not Found; the link of a consultation that is over is Gone.
LINK_STATUS = {ErrorCode.LINK_INVALID: 404, ErrorCode.ENDED: 410, ErrorCode.RATE_LIMITED: 429}


@routes.get("/j/{token}")
async def join_page(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    try:
        limit_links(request)
        info = await request.app[INVITATIONS].describe(token)
    except TeleconsultError as error:
        if error.code not in LINK_STATUS:
            raise
        response = render(
            request,
            "call.html",
            page_language(request),
            http_status=LINK_STATUS[error.code],
            role="patient",
            consultation_id=None,
            token=None,
            link_valid=False,
            link_error=error.code.value,
            practice=error.practice if isinstance(error, LinkUnusable) else None,
            doctor_name=None,
            patient_name=None,
            scheduled_at=None,
            status=None,
        )
        if error.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
        return response
    lang = (
        negotiate(request.query.get("lang"), request.cookies.get(LANG_COOKIE), None)
        if "lang" in request.query or LANG_COOKIE in request.cookies
        else info.language
    )
    return render(
        request,
        "call.html",
        lang,
        # Back on the page (a reload) with the cookie /api/join gave: its CSRF token, so tickets can be asked again.
        credential=participant_credential(request, info.consultation_id),
        role=info.role.value,
        consultation_id=info.consultation_id,
        token=token,
        link_valid=True,
        doctor_name=info.doctor_name,
        patient_name=info.participant_name,
        scheduled_at=format_paris(info.scheduled_at, lang),
        status=None,
    )
