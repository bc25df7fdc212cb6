"""The audit trail: who did what, when, from where (never names, tokens or medical content), as a hash chain.

Every entry has a ``seq`` (one sequence per deployment: 1, 2, 3…), the ``prev_hash`` of the entry before it (64
zeros for the first) and its ``hash``: SHA-256 over ``prev_hash`` followed by the entry's canonical content
(``canonical``). Changing, removing or inserting an entry breaks the chain at that entry; ``verify`` walks it and
names the first broken one. Nothing here (or anywhere: ``tests/test_audit.py`` checks) updates or deletes a row.

Appends are serialised so that the chain never forks. ``add_event`` only queues the event on the transaction;
when that transaction commits, the queued events are appended in one go: the transaction's other writes are
flushed, then the chain's lock is taken (on
PostgreSQL ``pg_advisory_xact_lock(CHAIN_LOCK)``, released with the transaction; on SQLite the database's write
lock, taken with a write before anything is read), then the head is read, then the entries are written. The lock
is held only for the last moments of the transaction, once every other lock it needs is already held, so appending
never waits inside a lock order that could deadlock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from teleconsult.domain import AuditEntry, ChainBreak, ChainCheck, ChainFault, ChainHead
from teleconsult.ids import ConsultationId
from teleconsult.store.database import Database, Tx
from teleconsult.store.models import AuditEvent

#: The first entry's ``prev_hash``.
GENESIS = "0" * 64
#: The PostgreSQL advisory lock key every append takes ("tc-audit" as a 63-bit number): one per deployment.
CHAIN_LOCK = 0x74632D6175646974
#: How many entries ``verify`` reads per round trip.
VERIFY_BATCH = 5000
USER_AGENT_MAX = 300

_PENDING = "teleconsult.audit.pending"
# A write that writes nothing, to take SQLite's write lock before the head is read (a deferred transaction that
# read first and wrote later could fail with SQLITE_BUSY_SNAPSHOT, or read a head another process is replacing).
_SQLITE_WRITE_LOCK = text(
    "INSERT INTO audit_events (seq, at, actor, action, prev_hash, hash) "
    "SELECT seq, at, actor, action, prev_hash, hash FROM audit_events WHERE 0"
)


def canonical(
    *, seq: int, at: datetime, consultation_id: str | None, actor: str, action: str, detail: str | None
) -> str:
    """An entry's content as hashed: a JSON object with sorted keys, no spaces, UTF-8; ``at`` in UTC ISO 8601 with
    microseconds; ``detail`` as the JSON value it holds (or null). The address and the browser are not in it."""
    content = {
        "action": action,
        "actor": actor,
        "at": _utc_iso(at),
        "consultation_id": consultation_id,
        "detail": json.loads(detail) if detail else None,
        "seq": seq,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    prev_hash: str,
    *,
    seq: int,
    at: datetime,
    consultation_id: str | None,
    actor: str,
    action: str,
    detail: str | None,
) -> str:
    """SHA-256 (hex) of ``prev_hash`` (64 hex characters) followed by the canonical content, encoded in UTF-8."""
    content = canonical(seq=seq, at=at, consultation_id=consultation_id, actor=actor, action=action, detail=detail)
    return hashlib.sha256((prev_hash + content).encode("utf-8")).hexdigest()


def _utc_iso(at: datetime) -> str:
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).isoformat(timespec="microseconds")


# --- appending ---------------------------------------------------------------------------------------------------


async def add_event(
    tx: Tx,
    *,
    action: str,
    actor: str,
    consultation_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    detail: Mapping[str, object] | None = None,
) -> None:
    """Queue an event; it is chained and written when ``tx`` commits (never if it rolls back)."""
    pending: list[dict[str, Any]] = tx.info.setdefault(_PENDING, [])
    pending.append(
        {
            "at": datetime.now(UTC),
            "action": action,
            "actor": actor,
            "consultation_id": consultation_id,
            "ip": ip,
            "user_agent": (user_agent or "")[:USER_AGENT_MAX] or None,
            "detail": json.dumps(dict(detail), sort_keys=True) if detail else None,
        }
    )


@event.listens_for(Session, "before_commit")
def _append_pending(session: Session) -> None:
    """Chain the events queued on this transaction, under the chain's lock (see the module's docstring)."""
    pending: list[dict[str, Any]] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    session.flush()  # the transaction's own writes first: under the chain's lock, only the chain is written
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(CHAIN_LOCK)))
    else:
        session.execute(_SQLITE_WRITE_LOCK)
    head = session.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)).first()
    seq, prev_hash = (head[0], head[1]) if head is not None else (0, GENESIS)
    for values in pending:
        seq += 1
        digest = entry_hash(
            prev_hash,
            seq=seq,
            at=values["at"],
            consultation_id=values["consultation_id"],
            actor=values["actor"],
            action=values["action"],
            detail=values["detail"],
        )
        session.add(AuditEvent(seq=seq, prev_hash=prev_hash, hash=digest, **values))
        prev_hash = digest


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


# --- reading -----------------------------------------------------------------------------------------------------


async def events_for_consultation(tx: Tx, consultation_id: str) -> Sequence[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.consultation_id == consultation_id).order_by(AuditEvent.seq)
    return (await tx.execute(query)).scalars().all()


async def entries_for_consultation(tx: Tx, consultation_id: str) -> list[AuditEntry]:
    """A consultation's entries in chain order, as domain values."""
    return [
        AuditEntry(
            seq=row.seq,
            at=row.at,
            consultation_id=ConsultationId(row.consultation_id) if row.consultation_id else None,
            actor=row.actor,
            action=row.action,
            detail=json.loads(row.detail) if row.detail else None,
        )
        for row in await events_for_consultation(tx, consultation_id)
    ]


async def head(tx: Tx) -> ChainHead:
    """How many entries the trail holds and its last entry's seq and hash (what an anchor records)."""
    count = (await tx.execute(select(func.count()).select_from(AuditEvent))).scalar_one()
    last = (await tx.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1))).first()
    return ChainHead(count=count, seq=last[0] if last else 0, hash=last[1] if last else GENESIS)


# --- verifying ---------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Walk:
    """Where the walk stands: the last entry checked and the hash the next one must link to."""

    count: int = 0
    seq: int = 0
    id: int | None = None
    hash: str = GENESIS


_CHAIN_COLUMNS = (
    AuditEvent.id,
    AuditEvent.seq,
    AuditEvent.at,
    AuditEvent.consultation_id,
    AuditEvent.actor,
    AuditEvent.action,
    AuditEvent.detail,
    AuditEvent.prev_hash,
    AuditEvent.hash,
)


async def verify(database: Database, *, anchor: tuple[int, str] | None = None, batch: int = VERIFY_BATCH) -> ChainCheck:
    """Walk the whole chain in seq order, ``batch`` entries per short transaction (keyset pagination: constant
    memory, and no transaction held open across the walk), and return it intact or its first broken entry.

    ``anchor`` (seq, hash), an entry recorded earlier outside the database, must still be in the chain with that
    hash: this is what catches a chain rewritten from some entry on, or cut short at its end.
    """
    walk = _Walk()
    anchored = anchor is None
    query = select(*_CHAIN_COLUMNS).order_by(AuditEvent.seq).limit(batch)
    while True:
        async with database.transaction() as tx:  # the first page from the lowest seq: a forged 0 or -1 shows
            page = query.where(AuditEvent.seq > walk.seq) if walk.count else query
            rows = (await tx.execute(page)).all()
        for row in rows:
            broken = _check(walk, row)
            if broken is not None:
                return _result(walk, broken)
            if anchor is not None and row.seq == anchor[0]:
                if row.hash != anchor[1]:
                    reason = f"its hash {row.hash} is not the anchored {anchor[1]}: the chain was rewritten up to it"
                    return _result(walk, ChainBreak(row.seq, row.id, ChainFault.CHANGED, reason))
                anchored = True
            walk.count, walk.seq, walk.id, walk.hash = walk.count + 1, row.seq, row.id, row.hash
        if len(rows) < batch:
            break
    if not anchored:
        assert anchor is not None
        reason = f"the chain ends at seq {walk.seq}, before the anchored entry: entries were removed from its end"
        return _result(walk, ChainBreak(anchor[0], None, ChainFault.REMOVED, reason))
    return ChainCheck(count=walk.count, last_seq=walk.seq, last_hash=walk.hash)


def _check(walk: _Walk, row: Any) -> ChainBreak | None:
    """Why this entry breaks the chain after ``walk``, or None."""
    expected = walk.seq + 1
    if row.seq > expected:
        missing = f"seq {expected}" if row.seq == expected + 1 else f"seq {expected} to {row.seq - 1}"
        return ChainBreak(row.seq, row.id, ChainFault.REMOVED, f"the entries before it ({missing}) are missing")
    if row.seq < expected:  # only without the unique index: two entries with one seq
        return ChainBreak(row.seq, row.id, ChainFault.INSERTED, f"a second entry with seq {row.seq}")
    if row.prev_hash != walk.hash:
        before = f"entry seq {walk.seq}" if walk.seq else "the start of the chain"
        return ChainBreak(
            row.seq, row.id, ChainFault.INSERTED, f"its prev_hash does not link to {before}: it was put in the chain"
        )
    try:
        digest = entry_hash(
            row.prev_hash,
            seq=row.seq,
            at=row.at,
            consultation_id=row.consultation_id,
            actor=row.actor,
            action=row.action,
            detail=row.detail,
        )
    except ValueError:  # detail that is no longer JSON
        digest = None
    if digest != row.hash:
        return ChainBreak(row.seq, row.id, ChainFault.CHANGED, "its hash does not match its content")
    return None


def _result(walk: _Walk, broken: ChainBreak) -> ChainCheck:
    return ChainCheck(count=walk.count, last_seq=walk.seq, last_hash=walk.hash, broken=broken)
