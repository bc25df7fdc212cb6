"""The documentation cannot drift: every frame type and error code is in docs/protocol.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from teleconsult.api.ws import CLOSE_RATE_LIMITED, CLOSE_TOO_LARGE, CLOSE_UNAUTHORIZED
from teleconsult.config import setting_names
from teleconsult.errors import HTTP_STATUS, ErrorCode
from teleconsult.protocol.messages import CLIENT_TYPES, ServerMessage

DOCS = Path(__file__).resolve().parent.parent / "docs"
PROTOCOL = (DOCS / "protocol.md").read_text(encoding="utf-8")
API = (DOCS / "api.md").read_text(encoding="utf-8")
README = (DOCS.parent / "README.md").read_text(encoding="utf-8")
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


def test_the_readme_table_names_every_setting_in_its_section() -> None:
    table = README.split("## Configuration", 1)[1].split("Command line:", 1)[0]
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| ") and "`" in line]
    documented = {name: section.strip() for section, names in rows for name in re.findall(r"`(\w+)`", names)}
    assert documented == setting_names()
