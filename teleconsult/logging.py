"""Logging set-up with a redaction filter: no tokens, emails, SDP or IP addresses in log lines (STYLE.md #11)."""

from __future__ import annotations

import logging
import re

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A token is a whole run of exactly 43 URL-safe characters (ids, file names and hashes are other lengths).
    (re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"), "[token]"),
    # A TURN credential (base64 of an HMAC-SHA1, teleconsult/turn.py): 27 characters and one "=".
    (re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{27}=(?![A-Za-z0-9+/=])"), "[credential]"),
    # SQLAlchemy's error text names the statement's parameters (names, reasons): never logged.
    (re.compile(r"\[parameters: .*?\]\n?(?=\(Background|\Z)", re.DOTALL), "[parameters hidden]"),
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "[email]"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "[ip]"),
    (re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){3,7}[0-9a-fA-F]{1,4}\b"), "[ip]"),
    (re.compile(r"v=0\r?\n.*", re.DOTALL), "[sdp]"),
)

#: Loggers that must stay below INFO: aioice logs every connectivity check with addresses.
QUIET_LOGGERS = ("aioice", "aiortc", "aiohttp.access", "aiosqlite")


#: Put ``extra={SERVER_ADDRESS: True}`` on a record that names the server's own address (the start-up line): IP
#: addresses are redacted because they are clients'; tokens and emails are redacted in it all the same.
SERVER_ADDRESS = "teleconsult_server_address"
_IP_REPLACEMENT = "[ip]"


def redact(text: str, *, keep_ips: bool = False) -> str:
    for pattern, replacement in _PATTERNS:
        if keep_ips and replacement == _IP_REPLACEMENT:
            continue
        text = pattern.sub(replacement, text)
    return text


_TRACEBACKS = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, exception text and stack so secrets and personal data never reach a
    handler (an exception's message may carry a URL with a token, or a value the client sent)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, keep_ips=bool(getattr(record, SERVER_ADDRESS, False)))
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
