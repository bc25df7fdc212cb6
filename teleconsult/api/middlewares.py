"""Middlewares: errors become JSON in one place, security headers on every response, CSRF on unsafe requests,
request latency by route."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, MutableMapping

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from teleconsult.api.keys import CATALOGS, METRICS, SETTINGS
from teleconsult.api.security import csrf_valid, has_credential_cookie, same_origin
from teleconsult.errors import DEFAULT_MESSAGES, ErrorCode, TeleconsultError
from teleconsult.i18n import negotiate
from teleconsult.metrics import OTHER_ROUTE

log = logging.getLogger(__name__)

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: These endpoints carry their own credential in the body; the Origin check still applies.
CSRF_EXEMPT = frozenset({"/api/login", "/api/join"})

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


#: Longer request paths are refused before routing (no page or file has such a name).
MAX_PATH_CHARS = 2048
LANG_COOKIE = "lang"


def error_response(error: TeleconsultError, request: web.Request) -> web.Response:
    body: dict[str, str] = {"error": error.code.value, "message": _message(error, request)}
    if error.field is not None:
        body["field"] = error.field
    if error.detail is not None:
        body["detail"] = error.detail
    response = web.json_response(body, status=error.http_status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return response


def _message(error: TeleconsultError, request: web.Request) -> str:
    """The sentence in the caller's language (French unless it asks for English) when the catalogs have one: a
    ``detail`` first, then the code when the message is the code's own; otherwise the service's message."""
    catalog = request.app[CATALOGS].catalog(
        negotiate(None, request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language"))
    )
    if error.detail is not None and f"error.detail.{error.detail}" in catalog:
        return catalog[f"error.detail.{error.detail}"]
    if error.message == DEFAULT_MESSAGES[error.code] and f"error.{error.code.value}" in catalog:
        return catalog[f"error.{error.code.value}"]
    return error.message


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if len(request.path) > MAX_PATH_CHARS:
        raise web.HTTPRequestURITooLong()
    try:
        return await handler(request)
    except TeleconsultError as error:
        return error_response(error, request)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.BAD_REQUEST, 413: ErrorCode.TOO_LARGE}.get(
            exc.status, ErrorCode.BAD_REQUEST
        )
        return web.json_response({"error": code.value, "message": exc.reason}, status=exc.status)
    except Exception as exc:
        if isinstance(exc, OSError) and request.path.startswith("/static/"):
            raise web.HTTPNotFound() from None  # a name the file system refuses (too long...) is no file of ours
        log.exception("unhandled error on %s %s", request.method, _route(request))
        return error_response(TeleconsultError(ErrorCode.INTERNAL), request)


def _route(request: web.Request) -> str | None:
    """The route's pattern (``/j/{token}``), never the path itself (it may hold a token)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


@web.middleware
def timed(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Request latency, labelled by the route's pattern (``/api/consultations/{id}``: never the path, which holds
    ids and tokens), ``other`` when no route matched. A WebSocket is not timed (it lasts the call) and, as in
    ``csrf``, gets no coroutine frame of its own."""
    if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
        return handler(request)
    route = request.match_info.route
    if route.resource is None:
        return _timed(request, handler, OTHER_ROUTE, OTHER_ROUTE)
    return _timed(request, handler, route.resource.canonical, route.method)


async def _timed(request: web.Request, handler: Handler, route: str, method: str) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        return await handler(request)
    finally:
        request.app[METRICS].request_latency(route, time.perf_counter() - started, method=method)


@web.middleware
def csrf(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Checks, then hands the handler's awaitable on as it is: no coroutine frame of its own, which every open
    WebSocket would otherwise keep for its whole life."""
    if request.method in UNSAFE:
        if not same_origin(request):
            raise TeleconsultError(ErrorCode.CSRF)
        if request.path not in CSRF_EXEMPT and has_credential_cookie(request) and not csrf_valid(request):
            raise TeleconsultError(ErrorCode.CSRF, "Missing or invalid CSRF token.")
    return handler(request)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # raised responses (redirects, 404s) get the same headers
        _secure(request, exc.headers)
        raise
    _secure(request, response.headers)
    return response


def _secure(request: web.Request, headers: MutableMapping[str, str]) -> None:
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")  # join links hold tokens: never leak them
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()")
    if request.secure or request.app[SETTINGS].server.reached_over_tls:  # TLS here, or ended at the proxy
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if not request.path.startswith("/static/"):  # pages and answers are about someone: never kept by a cache
        headers.setdefault("Cache-Control", "no-store")
