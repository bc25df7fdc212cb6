"""Sending mail: the only home of aiosmtplib.

Two transports behind one protocol: SMTP (``smtp://``, ``smtps://``, STARTTLS, user and password), and, as the
embedded default, ``.eml`` files written under ``data_dir/outbox`` so that ``make run`` works with no mail server.
Transports tell a temporary failure (try again later) from a permanent one (give up now).
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from teleconsult.config import ConfigError, MailSettings
from teleconsult.files import private_directory

log = logging.getLogger(__name__)


class TemporaryFailure(Exception):
    """The server is down, slow or answered 4xx: the same mail may go through later."""


class PermanentFailure(Exception):
    """The server refused the mail for good (5xx): retrying would not help."""


class MailTransport(Protocol):
    async def send(self, message: EmailMessage, *, recipient: str) -> None:
        """Deliver ``message`` to ``recipient`` alone (the envelope), whatever its headers say."""


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError("smtp_url must look like smtp://[user:password@]host[:port] or smtps://…")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 587),
            implicit_tls=implicit,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class SmtpTransport:
    def __init__(
        self, server: SmtpServer, timeout: float, sender: str, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self._server = server
        self._timeout = timeout
        self._sender = sender
        self._tls = tls_context or ssl.create_default_context()

    async def send(self, message: EmailMessage, *, recipient: str) -> None:
        server = self._server
        try:
            await aiosmtplib.send(
                message,
                sender=self._sender,
                recipients=[recipient],
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                use_tls=server.implicit_tls,
                start_tls=None if not server.implicit_tls else False,  # STARTTLS whenever the server offers it
                tls_context=self._tls,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            reason = f"SMTP {exc.code}: {exc.message[:200]}"
            if 400 <= exc.code < 500:
                raise TemporaryFailure(reason) from exc
            raise PermanentFailure(reason) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TemporaryFailure(f"{type(exc).__name__}: {str(exc)[:200]}") from exc


class OutboxDirectory:
    """Each mail becomes ``<outbox>/<timestamp>-<id>.eml`` (written atomically); the log says where."""

    def __init__(self, directory: Path):
        self.directory = directory

    async def send(self, message: EmailMessage, *, recipient: str) -> None:
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{_safe(message['Message-ID'])}.eml"
        data = bytes(message)
        try:
            private_directory(self.directory)
            handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".part")
        except OSError as exc:  # the operator can fix it (a full disk, a file in the way): try again later
            raise TemporaryFailure(f"cannot write to the outbox: {exc.strerror}") from exc
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, self.directory / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise TemporaryFailure(f"cannot write to the outbox: {exc.strerror}") from exc
        # The file holds the link; the log only says where it is (links carry tokens and never reach logs).
        log.info("mail written to %s", self.directory / name)


def transport_for(mail: MailSettings, data_dir: Path) -> MailTransport:
    if mail.smtp_url:
        return SmtpTransport(SmtpServer.from_url(mail.smtp_url), mail.mail_timeout_s, envelope_sender(mail))
    return OutboxDirectory(data_dir / "outbox")


def envelope_sender(mail: MailSettings) -> str:
    """The bare address of ``mail_from`` (``Teleconsult <no-reply@…>``), for MAIL FROM."""
    _, address = parseaddr(mail.mail_from)
    if "@" not in address:
        raise ConfigError(f"mail_from must hold an address: {mail.mail_from!r}")
    return address


def _safe(message_id: str | None) -> str:
    return "".join(c for c in (message_id or "mail") if c.isalnum())[:40]
