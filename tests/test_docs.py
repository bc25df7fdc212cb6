"""The documentation cannot drift: every frame type and error code is in docs/protocol.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from teleconsult.api.ws import CLOSE_RATE_LIMITED, CLOSE_TOO_LARGE, CLOSE_UNAUTHORIZED
from teleconsult.errors import HTTP_STATUS, ErrorCode
from teleconsult.protocol.messages import CLIENT_TYPES, ServerMessage

DOCS = Path(__file__).resolve().parent.parent / "docs"
PROTOCOL = (DOCS / "protocol.md").read_text(encoding="utf-8")
API = (DOCS / "api.md").read_text(encoding="utf-8")
SERVER_TYPES = [cls.__struct_config__.tag for cls in ServerMessage.__args__]  # type: ignore[attr-defined]
WS_CODES = [
    "bad_message",
    "unknown_type",
    "unsupported_version",
    "unauthorized",
    "forbidden",
    "not_found",
    "room_full",
    "too_large",
    "rate_limited",
    "ended",
    "internal",
]


@pytest.mark.parametrize("kind", sorted(set(CLIENT_TYPES) | set(SERVER_TYPES)))
def test_every_frame_type_is_documented_with_an_example(kind: str) -> None:
    assert f'"type": "{kind}"' in PROTOCOL


@pytest.mark.parametrize("code", WS_CODES)
def test_every_protocol_error_code_is_documented(code: str) -> None:
    assert f"`{code}`" in PROTOCOL


@pytest.mark.parametrize("close", [CLOSE_UNAUTHORIZED, CLOSE_TOO_LARGE, CLOSE_RATE_LIMITED])
def test_close_codes_are_documented(close: int) -> None:
    assert f"| {close} |" in PROTOCOL


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_http_error_code_is_documented(code: ErrorCode) -> None:
    assert f"`{code.value}`" in API and str(HTTP_STATUS[code]) in API
