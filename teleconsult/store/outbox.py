"""Outgoing mails: queued in the transaction that causes them, claimed by one sender at a time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select, update

from teleconsult import domain
from teleconsult.store import values
from teleconsult.store.database import Tx
from teleconsult.store.models import OutgoingMail


async def add_mail(tx: Tx, mail: domain.Mail, sealed_message: bytes) -> None:
    tx.add(
        OutgoingMail(
            id=mail.id,
            consultation_id=mail.consultation_id,
            participant_id=mail.participant_id,
            invitation_id=mail.invitation_id,
            kind=mail.kind,
            recipient_role=mail.recipient_role,
            recipient=mail.recipient,
            status=mail.status,
            attempts=mail.attempts,
            next_attempt_at=mail.next_attempt_at,
            created_at=mail.created_at,
            sealed_message=sealed_message,
        )
    )


def _free(now: datetime) -> ColumnElement[bool]:
    return or_(OutgoingMail.locked_until.is_(None), OutgoingMail.locked_until < now)


async def claim_due(tx: Tx, now: datetime, hold_until: datetime, limit: int) -> list[str]:
    """Ids of due mails this caller now holds until ``hold_until``; a mail another sender holds is skipped."""
    candidates = (
        (
            await tx.execute(
                select(OutgoingMail.id)
                .where(OutgoingMail.status == "queued", OutgoingMail.next_attempt_at <= now, _free(now))
                .order_by(OutgoingMail.next_attempt_at)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    if not candidates:
        return []
    # One conditional update for the batch: a row another sender claimed meanwhile no longer matches.
    claimed = set(
        (
            await tx.execute(
                update(OutgoingMail)
                .where(OutgoingMail.id.in_(candidates), OutgoingMail.status == "queued", _free(now))
                .values(locked_until=hold_until)
                .returning(OutgoingMail.id)
                .execution_options(synchronize_session=False)
            )
        )
        .scalars()
        .all()
    )
    return [mail_id for mail_id in candidates if mail_id in claimed]


async def queued_count(tx: Tx) -> int:
    """Mails still to send (due or waiting for their next attempt): one count on the ``(status, …)`` index."""
    count = await tx.scalar(select(func.count()).select_from(OutgoingMail).where(OutgoingMail.status == "queued"))
    return int(count or 0)


async def load(tx: Tx, mail_id: str) -> tuple[domain.Mail, bytes | None]:
    """A mail's state and its sealed message (None once delivered or given up on)."""
    mail = await tx.get_one(OutgoingMail, mail_id)
    sealed = (await tx.execute(select(OutgoingMail.sealed_message).where(OutgoingMail.id == mail_id))).scalar_one()
    return values.mail(mail), sealed


async def mark_sent(tx: Tx, mail_id: str, now: datetime) -> None:
    await _close(tx, mail_id, status="sent", sent_at=now, last_error=None)


async def mark_retry(tx: Tx, mail_id: str, next_attempt_at: datetime, error: str) -> None:
    await _set(
        tx,
        mail_id,
        next_attempt_at=next_attempt_at,
        locked_until=None,
        attempts=OutgoingMail.attempts + 1,
        last_error=error[:500],
    )


async def mark_failed(tx: Tx, mail_id: str, now: datetime, error: str) -> None:
    await _close(tx, mail_id, status="failed", failed_at=now, last_error=error[:500])


async def _close(tx: Tx, mail_id: str, **outcome: object) -> None:
    """The last attempt: its outcome recorded, the sealed message wiped, the lock released."""
    await _set(tx, mail_id, sealed_message=None, locked_until=None, attempts=OutgoingMail.attempts + 1, **outcome)


async def cancel_queued(tx: Tx, consultation_id: str, participant_id: str | None, now: datetime) -> None:
    """Queued invitations that would now carry a dead link are not sent."""
    query = update(OutgoingMail).where(
        OutgoingMail.consultation_id == consultation_id,
        OutgoingMail.status == "queued",
        OutgoingMail.kind == "invitation",
    )
    if participant_id is not None:
        query = query.where(OutgoingMail.participant_id == participant_id)
    await tx.execute(
        query.values(status="failed", failed_at=now, sealed_message=None, last_error="superseded").execution_options(
            synchronize_session=False
        )
    )


async def _set(tx: Tx, mail_id: str, **values: object) -> None:
    await tx.execute(
        update(OutgoingMail)
        .where(OutgoingMail.id == mail_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
