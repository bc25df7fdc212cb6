"""``POST /api/join``: a patient or nurse exchanges the emailed link for a ticket and a participant cookie."""

from __future__ import annotations

from aiohttp import web

from teleconsult.api.bodies import JoinBody, read_body
from teleconsult.api.clients import client_ip, limit_links
from teleconsult.api.keys import INVITATIONS, SETTINGS
from teleconsult.api.security import csrf_token, participant_cookie, set_cookie

routes = web.RouteTableDef()

PARTICIPANT_COOKIE_MAX_AGE = 24 * 3600


@routes.post("/api/join")
async def join(request: web.Request) -> web.Response:
    limit_links(request)
    body = await read_body(request, JoinBody)
    grant = await request.app[INVITATIONS].redeem(
        body.token,
        consent=body.consent,
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent"),
    )
    response = web.json_response(
        {
            "ticket": grant.ticket,
            "role": grant.role.value,
            "consultation_id": grant.consultation_id,
            "doctor_name": grant.doctor_name,
            "name": grant.participant_name,
            "csrf_token": csrf_token(request, grant.credential),
            "ticket_ttl_s": request.app[SETTINGS].access.ticket_ttl_s,
        }
    )
    set_cookie(
        response,
        request,
        participant_cookie(request, grant.consultation_id),
        grant.credential,
        PARTICIPANT_COOKIE_MAX_AGE,
    )
    return response
