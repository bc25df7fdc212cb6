"""The outbox: mails are written in the transaction that causes them and delivered by a background sender.

Creating a consultation never waits on SMTP. The sender retries with exponential back-off while the server is
down or answers 4xx, gives up after ``mail_give_up_s`` (or at once on a 5xx) with the reason, and never sends a
mail twice while it holds it; several nodes may run senders side by side.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
from datetime import timedelta
from email.message import EmailMessage

from teleconsult.background import BackgroundLoops
from teleconsult.clock import now as clock_now
from teleconsult.config import MailSettings
from teleconsult.crypto.sealing import Sealer, SealError
from teleconsult.domain import Mail
from teleconsult.errors import TeleconsultError
from teleconsult.ids import InvitationId, MailId, new_id
from teleconsult.mail import MailTransport, PermanentFailure, TemporaryFailure
from teleconsult.notifications import Letter, Notifier, recipient_of
from teleconsult.store import Database, Tx, audit
from teleconsult.store import outbox as store

log = logging.getLogger(__name__)

BATCH = 20
HOLD = timedelta(minutes=2)
MAX_DELAY_S = 3600.0
IDLE_POLL_S = 15.0


class Outbox:
    def __init__(self, db: Database, mail: MailSettings, notifier: Notifier, transport: MailTransport, sealer: Sealer):
        self._db = db
        self._mail = mail
        self._notifier = notifier
        self.transport = transport
        self._sealer = sealer
        self._wake = asyncio.Event()

    # --- queueing (inside the caller's transaction) ----------------------------------------------------------

    async def enqueue(self, tx: Tx, letter: Letter, *, invitation_id: InvitationId | None = None) -> Mail:
        message = self._notifier.compose(letter)
        now = clock_now()
        mail = Mail(
            id=MailId(new_id("ml")),
            consultation_id=letter.consultation.id,
            participant_id=letter.participant.id,
            invitation_id=invitation_id,
            kind=letter.kind,
            recipient_role=letter.participant.role,
            recipient=recipient_of(letter),
            status="queued",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            sent_at=None,
            failed_at=None,
            last_error=None,
        )
        await store.add_mail(tx, mail, self._sealer.seal(bytes(message), mail.id))
        return mail

    async def queued(self) -> int:
        """How many mails wait to be sent, on every node (the mail queue depth of the metrics)."""
        async with self._db.transaction() as tx:
            return await store.queued_count(tx)

    def wake(self) -> None:
        """Deliver now rather than at the next poll (called once the queueing transaction has committed)."""
        self._wake.set()

    # --- delivering ------------------------------------------------------------------------------------------

    async def run(self, chores: BackgroundLoops) -> None:
        """Deliver due mails until the server stops (between two mails, never in the middle of one)."""
        while not chores.stopping.is_set():
            try:
                delivered = await self.deliver_due()
            except TeleconsultError:
                log.warning("outbox: database unavailable; will retry")
                delivered = 0
            except Exception:  # a bug must not stop every later mail: said, then the next round
                log.exception("outbox: unexpected error; will retry")
                delivered = 0
            if delivered:
                continue
            self._wake.clear()
            await chores.rest(min(IDLE_POLL_S, self._mail.mail_retry_base_s), wake=self._wake)

    async def deliver_due(self) -> int:
        """Deliver (or reschedule) every due mail this sender can claim; returns how many it handled."""
        now = clock_now()
        async with self._db.transaction() as tx:
            claimed = await store.claim_due(tx, now, now + HOLD, BATCH)
        for mail_id in claimed:
            await self._deliver(mail_id)
        return len(claimed)

    async def _deliver(self, mail_id: str) -> None:
        async with self._db.transaction() as tx:
            mail, sealed = await store.load(tx, mail_id)
        try:
            if not mail.recipient:
                raise PermanentFailure("no recipient address")
            message = self._open(mail, sealed)
            await self.transport.send(message, recipient=mail.recipient)
        except TemporaryFailure as failure:
            await self._retry_or_give_up(mail, str(failure))
        except (PermanentFailure, SealError) as failure:
            await self._fail(mail, str(failure))
        except Exception as error:  # this mail cannot be sent (a malformed message, a library's bug): it fails
            # alone, with a reason that names no one, and the sender goes on with the next.
            await self._fail(mail, f"unexpected {type(error).__name__}")
        else:
            async with self._db.transaction() as tx:
                await store.mark_sent(tx, mail.id, clock_now())
                await _audit(tx, "mail.sent", mail)
            log.info("mail %s delivered (%s to the %s)", mail.id, mail.kind, mail.recipient_role)

    def _open(self, mail: Mail, sealed: bytes | None) -> EmailMessage:
        if sealed is None:
            raise SealError("the message is gone")
        data = self._sealer.open(sealed, mail.id)
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message

    async def _retry_or_give_up(self, mail: Mail, reason: str) -> None:
        now = clock_now()
        if now - mail.created_at >= timedelta(seconds=self._mail.mail_give_up_s):
            await self._fail(mail, f"gave up after {mail.attempts + 1} attempts: {reason}")
            return
        delay = retry_delay(self._mail.mail_retry_base_s, mail.attempts)
        async with self._db.transaction() as tx:
            await store.mark_retry(tx, mail.id, now + timedelta(seconds=delay), reason)
        log.warning("mail %s not delivered yet (attempt %d): %s", mail.id, mail.attempts + 1, reason)

    async def _fail(self, mail: Mail, reason: str) -> None:
        async with self._db.transaction() as tx:
            await store.mark_failed(tx, mail.id, clock_now(), reason)
            await _audit(tx, "mail.failed", mail)
        log.error("mail %s failed: %s", mail.id, reason)


async def _audit(tx: Tx, action: str, mail: Mail) -> None:
    """The mail's id and kind only: its address, its text and the server's reason stay out of the trail."""
    await audit.add_event(
        tx,
        action=action,
        actor="system",
        consultation_id=mail.consultation_id,
        detail={"mail": mail.id, "kind": mail.kind},
    )


def retry_delay(base_s: float, attempts: int) -> float:
    """How long to wait after ``attempts`` failed tries: ``base_s``, doubling, at most an hour."""
    return float(min(base_s * 2**attempts, MAX_DELAY_S))
