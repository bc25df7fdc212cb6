"""WebSocket tickets: short-lived (60 s), single-use, stored hashed; one names one participant's seat."""

from __future__ import annotations

from datetime import datetime, timedelta

from teleconsult.config import AccessSettings
from teleconsult.ids import hash_token, looks_like_token, new_token
from teleconsult.store import Tx
from teleconsult.store import invitations as store


async def issue_ticket(tx: Tx, access: AccessSettings, participant_id: str, now: datetime) -> str:
    ticket = new_token()
    await store.add_ticket(tx, hash_token(ticket), participant_id, now + timedelta(seconds=access.ticket_ttl_s))
    return ticket


async def consume_ticket(tx: Tx, ticket: str, now: datetime) -> str | None:
    """The participant id the ticket was issued for, or None if unknown, expired or already used."""
    if not looks_like_token(ticket):
        return None
    return await store.consume_ticket(tx, hash_token(ticket), now)
