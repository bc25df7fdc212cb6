"""Cookies, CSRF tokens and the same-origin check shared by the HTTP handlers and the WebSocket endpoint.

Cookies are HttpOnly, SameSite=Strict and, when the server is reached over TLS (directly or through the proxy),
Secure with the ``__Host-`` prefix: a browser then refuses them unless they come from this exact origin over
HTTPS, for the whole path, with no Domain, so a sibling subdomain cannot plant or shadow them. On plain-HTTP
loopback (``make run``) the prefix cannot be used and the bare names are.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from teleconsult.api.keys import SECRET, SETTINGS
from teleconsult.ids import constant_time_equal, hash_token, hmac_hex

SESSION = "tc_session"
PARTICIPANT_PREFIX = "tc_p_"
HOST_PREFIX = "__Host-"
CSRF_HEADER = "X-CSRF-Token"


def _prefixed(request: web.Request, name: str) -> str:
    return HOST_PREFIX + name if request.app[SETTINGS].server.secure_cookies else name


def session_cookie(request: web.Request) -> str:
    return _prefixed(request, SESSION)


def participant_cookie(request: web.Request, consultation_id: str) -> str:
    return _prefixed(request, PARTICIPANT_PREFIX + consultation_id)


def session_token(request: web.Request) -> str | None:
    return request.cookies.get(session_cookie(request)) or None


def participant_credential(request: web.Request, consultation_id: str) -> str | None:
    return request.cookies.get(participant_cookie(request, consultation_id)) or None


def participant_credentials(request: web.Request) -> tuple[str, ...]:
    """Every participant cookie the request carries (one per consultation the browser joined)."""
    return tuple(v for k, v in request.cookies.items() if k.removeprefix(HOST_PREFIX).startswith(PARTICIPANT_PREFIX))


def _credentials(request: web.Request) -> list[str]:
    """Every credential cookie of ours the request carries (the doctor's session, participant cookies)."""
    return [value for name, value in request.cookies.items() if _is_credential(name.removeprefix(HOST_PREFIX))]


def _is_credential(name: str) -> bool:
    return name == SESSION or name.startswith(PARTICIPANT_PREFIX)


def csrf_token(request: web.Request, credential: str) -> str:
    """A token bound to one cookie credential (synchronizer pattern without server state)."""
    return hmac_hex(request.app[SECRET], "csrf:" + hash_token(credential))


def csrf_valid(request: web.Request) -> bool:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        return False
    return any(constant_time_equal(sent, csrf_token(request, c)) for c in _credentials(request))


def has_credential_cookie(request: web.Request) -> bool:
    return bool(_credentials(request))


def same_origin(request: web.Request) -> bool:
    """True when the request carries no Origin (non-browser client) or one of the configured public origins.

    The Host header is never the reference: a client chooses it, so a forged Host with a matching Origin would
    pass. The reference is ``public_url`` (``Settings.origins``)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site", "same-origin") in {"same-origin", "none"}
    if origin == "null":
        return False
    parts = urlsplit(origin.lower())
    return f"{parts.scheme}://{parts.netloc}" in request.app[SETTINGS].server.origins


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.app[SETTINGS].server.secure_cookies or request.secure,
    )
