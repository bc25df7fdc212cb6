"""Invitation links (stored as token hashes) and WebSocket tickets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update

from teleconsult import domain
from teleconsult.store import values
from teleconsult.store.database import Tx
from teleconsult.store.models import Invitation, Ticket


async def add_invitation(tx: Tx, invitation: domain.Invitation, token_hash: str) -> None:
    tx.add(
        Invitation(
            id=invitation.id,
            consultation_id=invitation.consultation_id,
            participant_id=invitation.participant_id,
            role=invitation.role,
            token_hash=token_hash,
            expires_at=invitation.expires_at,
            created_at=invitation.created_at,
        )
    )


async def invitation_by_token_hash(tx: Tx, token_hash: str) -> domain.Invitation | None:
    query = select(Invitation).where(Invitation.token_hash == token_hash)
    row = (await tx.execute(query)).scalar_one_or_none()
    return values.invitation(row) if row is not None else None


async def mark_redeemed(tx: Tx, invitation_id: str, now: datetime) -> None:
    await tx.execute(
        update(Invitation)
        .where(Invitation.id == invitation_id, Invitation.redeemed_at.is_(None))
        .values(redeemed_at=now)
        .execution_options(synchronize_session=False)
    )


async def add_ticket(tx: Tx, token_hash: str, participant_id: str, expires_at: datetime) -> None:
    tx.add(Ticket(token_hash=token_hash, participant_id=participant_id, expires_at=expires_at))


async def consume_ticket(tx: Tx, token_hash: str, now: datetime) -> str | None:
    """Mark the ticket used and return its participant id; None if unknown, expired or already used.

    Single use holds under concurrency: only the UPDATE that finds ``used_at IS NULL`` counts a row.
    """
    result = await tx.execute(
        update(Ticket)
        .where(Ticket.token_hash == token_hash, Ticket.used_at.is_(None), Ticket.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    query = select(Ticket.participant_id).where(Ticket.token_hash == token_hash)
    return (await tx.execute(query)).scalar_one()


async def delete_stale_tickets(tx: Tx, before: datetime) -> None:
    await tx.execute(delete(Ticket).where(Ticket.expires_at < before))


async def revoke(tx: Tx, consultation_id: str, now: datetime, participant_id: str | None = None) -> None:
    """Revoke the live invitations of a consultation (or of one participant)."""
    query = update(Invitation).where(Invitation.consultation_id == consultation_id, Invitation.revoked_at.is_(None))
    if participant_id is not None:
        query = query.where(Invitation.participant_id == participant_id)
    await tx.execute(query.values(revoked_at=now).execution_options(synchronize_session=False))


async def revoke_tickets(tx: Tx, participant_id: str, now: datetime) -> None:
    """Tickets not used yet stop working (their participant's link was replaced)."""
    await tx.execute(
        update(Ticket)
        .where(Ticket.participant_id == participant_id, Ticket.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
