"""Stable error codes (DESIGN.md) and the one exception type that carries them.

The HTTP middleware and the WebSocket endpoint turn a ``TeleconsultError`` into a JSON response or an error frame;
nothing else does. Messages here are English defaults for logs and API clients; pages translate by code.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    ROOM_FULL = "room_full"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    ENDED = "ended"
    # HTTP-only codes.
    BAD_REQUEST = "bad_request"
    INVALID_CREDENTIALS = "invalid_credentials"
    CONSENT_REQUIRED = "consent_required"
    LINK_INVALID = "link_invalid"
    CSRF = "csrf"
    CONFLICT = "conflict"
    UNSUPPORTED_TYPE = "unsupported_type"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_MESSAGE: 400,
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.UNSUPPORTED_VERSION: 400,
    ErrorCode.CONSENT_REQUIRED: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.INVALID_CREDENTIALS: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.CSRF: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.LINK_INVALID: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.ROOM_FULL: 409,
    ErrorCode.ENDED: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_TYPE: 415,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}

DEFAULT_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.BAD_MESSAGE: "The message is malformed.",
    ErrorCode.BAD_REQUEST: "The request is malformed.",
    ErrorCode.UNKNOWN_TYPE: "Unknown message type.",
    ErrorCode.UNSUPPORTED_VERSION: "Unsupported protocol version.",
    ErrorCode.UNAUTHORIZED: "Authentication required or invalid.",
    ErrorCode.INVALID_CREDENTIALS: "Wrong email or password.",
    ErrorCode.FORBIDDEN: "Not allowed.",
    ErrorCode.NOT_FOUND: "Not found.",
    ErrorCode.ROOM_FULL: "The consultation room is full.",
    ErrorCode.TOO_LARGE: "Too large.",
    ErrorCode.RATE_LIMITED: "Too many requests; slow down.",
    ErrorCode.ENDED: "The consultation is over.",
    ErrorCode.CONSENT_REQUIRED: "Consent is required to join.",
    ErrorCode.LINK_INVALID: "This link is unknown, expired or revoked.",
    ErrorCode.CSRF: "Cross-site request refused.",
    ErrorCode.CONFLICT: "Conflict with the current state.",
    ErrorCode.UNSUPPORTED_TYPE: "This kind of file is not accepted.",
    ErrorCode.UNAVAILABLE: "Service temporarily unavailable.",
    ErrorCode.INTERNAL: "Internal error; it has been logged.",
}


class TeleconsultError(Exception):
    """An expected failure with a stable code; safe to show to the client (never holds secrets)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        field: str | None = None,
        detail: str | None = None,
    ):
        self.code = code
        self.message = message or DEFAULT_MESSAGES[code]
        self.retry_after = retry_after
        #: The request field at fault, and a finer code than ``code`` that pages translate (``error.detail.*``).
        self.field = field
        self.detail = detail
        super().__init__(f"{code}: {self.message}")

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]
