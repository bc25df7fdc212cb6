"""Doctor login, logout and identity (``/api/login``, ``/api/logout``, ``/api/me``)."""

from __future__ import annotations

from aiohttp import web

from teleconsult.api.bodies import LoginBody, read_body
from teleconsult.api.clients import client_ip
from teleconsult.api.keys import DOCTORS, SETTINGS
from teleconsult.api.security import csrf_token, session_cookie, session_token, set_cookie
from teleconsult.api.serialize import doctor_json
from teleconsult.domain import Doctor
from teleconsult.errors import ErrorCode, TeleconsultError

routes = web.RouteTableDef()


async def current_doctor(request: web.Request) -> Doctor | None:
    token = session_token(request)
    if not token:
        return None
    return await request.app[DOCTORS].doctor_for_session(token)


async def require_doctor(request: web.Request) -> Doctor:
    doctor = await current_doctor(request)
    if doctor is None:
        raise TeleconsultError(ErrorCode.UNAUTHORIZED, "Please log in.")
    return doctor


@routes.post("/api/login")
async def login(request: web.Request) -> web.Response:
    body = await read_body(request, LoginBody)
    token, doctor = await request.app[DOCTORS].login(body.email, body.password, client=client_ip(request))
    response = web.json_response({"doctor": doctor_json(doctor), "csrf_token": csrf_token(request, token)})
    set_cookie(response, request, session_cookie(request), token, request.app[SETTINGS].access.session_ttl_s)
    return response


@routes.post("/api/logout")
async def logout(request: web.Request) -> web.Response:
    token = session_token(request)
    if token:
        await request.app[DOCTORS].logout(token)
    response = web.json_response({"ok": True})
    response.del_cookie(session_cookie(request), path="/")
    return response


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    doctor = await require_doctor(request)
    return web.json_response(doctor_json(doctor))
