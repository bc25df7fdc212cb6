"""Cookies, CSRF tokens and the same-origin check shared by the HTTP handlers and the WebSocket endpoint."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from teleconsult.api.keys import SECRET, SETTINGS
from teleconsult.ids import constant_time_equal, hash_token, hmac_hex

SESSION_COOKIE = "tc_session"
PARTICIPANT_COOKIE_PREFIX = "tc_p_"
CSRF_HEADER = "X-CSRF-Token"


def participant_cookie(consultation_id: str) -> str:
    return PARTICIPANT_COOKIE_PREFIX + consultation_id


def csrf_token(request: web.Request, credential: str) -> str:
    """A token bound to one cookie credential (synchronizer pattern without server state)."""
    return hmac_hex(request.app[SECRET], "csrf:" + hash_token(credential))


def csrf_valid(request: web.Request) -> bool:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        return False
    credentials = [
        v for k, v in request.cookies.items() if k == SESSION_COOKIE or k.startswith(PARTICIPANT_COOKIE_PREFIX)
    ]
    return any(constant_time_equal(sent, csrf_token(request, c)) for c in credentials)


def has_credential_cookie(request: web.Request) -> bool:
    return any(k == SESSION_COOKIE or k.startswith(PARTICIPANT_COOKIE_PREFIX) for k in request.cookies)


def same_origin(request: web.Request) -> bool:
    """True when the request carries no Origin (non-browser client) or one that names this server."""
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site", "same-origin") in {"same-origin", "none"}
    if origin == "null":
        return False
    host = urlsplit(origin).netloc.lower()
    allowed = {request.host.lower()}
    public = request.app[SETTINGS].public_url
    if public:
        allowed.add(urlsplit(public).netloc.lower())
    return host in allowed


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.app[SETTINGS].secure_cookies or request.secure,
    )
