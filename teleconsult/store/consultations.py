"""Consultations and their participants."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Select, Table, Update, bindparam, select, tuple_, update
from sqlalchemy.orm import raiseload

from teleconsult import domain
from teleconsult.store import values
from teleconsult.store.database import Tx
from teleconsult.store.models import Consultation, Participant

Seated = tuple[domain.Participant, domain.ConsultationCore]


async def add_consultation(
    tx: Tx, consultation: domain.ConsultationCore, participants: Iterable[domain.Participant]
) -> None:
    tx.add(
        Consultation(
            id=consultation.id,
            doctor_id=consultation.doctor_id,
            status=consultation.status,
            reason=consultation.reason,
            scheduled_at=consultation.scheduled_at,
            language=consultation.language,
            created_at=consultation.created_at,
        )
    )
    tx.add_all(
        Participant(
            id=p.id,
            consultation_id=p.consultation_id,
            role=p.role,
            name=p.name,
            email=p.email,
            doctor_id=consultation.doctor_id if p.role == "doctor" else None,
            pre_admitted=p.pre_admitted,
            created_at=p.created_at,
        )
        for p in participants
    )
    await tx.flush()


async def consultation_by_id(tx: Tx, consultation_id: str) -> domain.Consultation | None:
    """The consultation as it stands now, with its seats, links, mails and billing record."""
    tx.expire_all()  # earlier statements in this transaction may have changed it behind the identity map
    row = await tx.get(Consultation, consultation_id)
    return values.consultation(row) if row is not None else None


async def consultation_core(tx: Tx, consultation_id: str) -> domain.ConsultationCore | None:
    """The consultation's own columns, none of its relationships: what a socket needs on the hot paths."""
    query = select(Consultation).where(Consultation.id == consultation_id).options(raiseload("*"))
    row = (await tx.execute(query)).scalar_one_or_none()
    return values.consultation_core(row) if row is not None else None


async def consultations_for_doctor(
    tx: Tx, doctor_id: str, *, limit: int, before: tuple[datetime, str] | None = None
) -> list[domain.Consultation]:
    """Newest first; ``before`` is the (created_at, id) of the last row of the previous page."""
    query = select(Consultation).where(Consultation.doctor_id == doctor_id)
    if before is not None:
        query = query.where(tuple_(Consultation.created_at, Consultation.id) < tuple_(*before))
    query = query.order_by(Consultation.created_at.desc(), Consultation.id.desc()).limit(limit)
    return [values.consultation(row) for row in (await tx.execute(query)).scalars().all()]


async def set_status(tx: Tx, consultation_id: str, new: str, *, allowed_from: Iterable[str], **times: datetime) -> bool:
    """Move the consultation to ``new`` only from one of ``allowed_from``; True if this call made the change.

    The condition lives in the UPDATE itself, so two racing callers cannot both win.
    """
    result = await tx.execute(
        update(Consultation)
        .where(Consultation.id == consultation_id, Consultation.status.in_(list(allowed_from)))
        .values(status=new, **times)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def overdue_appointments(tx: Tx, before: datetime, limit: int) -> list[tuple[str, str]]:
    """``(consultation id, doctor id)`` of appointments set before ``before`` that never started (the patient
    never came in): oldest first."""
    query = (
        select(Consultation.id, Consultation.doctor_id)
        .where(
            Consultation.status.in_(["scheduled", "waiting"]),
            Consultation.scheduled_at.is_not(None),
            Consultation.scheduled_at < before,
        )
        .order_by(Consultation.scheduled_at)
        .limit(limit)
    )
    return [(row.id, row.doctor_id) for row in (await tx.execute(query)).all()]


async def set_video_at(tx: Tx, consultation_id: str, at: datetime) -> bool:
    """Note when video first flowed; True only for the first report (the condition is in the UPDATE)."""
    result = await tx.execute(
        update(Consultation)
        .where(Consultation.id == consultation_id, Consultation.video_at.is_(None))
        .values(video_at=at)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def participant_by_id(tx: Tx, participant_id: str) -> domain.Participant | None:
    return await _participant(tx, Participant.id == participant_id)


async def participant_by_credential(tx: Tx, credential_hash: str) -> domain.Participant | None:
    return await _participant(tx, Participant.credential_hash == credential_hash)


async def doctor_participant(tx: Tx, consultation_id: str) -> domain.Participant | None:
    return await _participant(tx, Participant.consultation_id == consultation_id, Participant.role == "doctor")


async def _participant(tx: Tx, *where: ColumnElement[bool]) -> domain.Participant | None:
    query = select(Participant).where(*where).options(raiseload("*")).execution_options(populate_existing=True)
    row = (await tx.execute(query)).scalar_one_or_none()
    return values.participant(row) if row is not None else None


async def update_participant(tx: Tx, participant_id: str, **values: object) -> None:
    await tx.execute(
        update(Participant)
        .where(Participant.id == participant_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def resumable(tx: Tx, resume_hashes: Collection[str]) -> dict[str, Seated]:
    """The seats these resume-token hashes hold, by hash; the seats are locked until the transaction ends
    (``FOR UPDATE`` on PostgreSQL; SQLite has one writer at a time)."""
    query = _with_consultation(Participant.resume_hash.in_(list(resume_hashes))).with_for_update(of=Participant)
    rows = (await tx.execute(query.execution_options(populate_existing=True))).all()
    return {p.resume_hash: (values.participant(p), values.consultation_core(c)) for p, c in rows if p.resume_hash}


async def replace_resume_hashes(tx: Tx, changes: Sequence[tuple[str, str, str]]) -> None:
    """Spend resume tokens, ``(participant id, presented hash, fresh hash)`` each, on seats ``resumable`` locked:
    the seats are no longer away. One statement, many parameter sets."""
    table = _participants()
    statement = (
        update(table)
        .where(table.c.id == bindparam("seat"), table.c.resume_hash == bindparam("presented"))
        .values(resume_hash=bindparam("fresh"), away_since=None)
    )
    rows = [{"seat": seat, "presented": presented, "fresh": fresh} for seat, presented, fresh in changes]
    await _execute_many(tx, statement, rows)


async def restore_resume_hash(
    tx: Tx, participant_id: str, presented: str, fresh: str, away_since: datetime | None
) -> bool:
    """Undo a resume that could not be applied: the presented token's hash back, if the fresh one is still there
    (nothing resumed the seat since), and the seat away as it was. True if it was restored."""
    table = _participants()
    statement = (
        update(table)
        .where(table.c.id == participant_id, table.c.resume_hash == fresh)
        .values(resume_hash=presented, away_since=away_since)
    )
    connection = await tx.connection()
    result = await connection.execute(statement)
    return bool(result.rowcount)


async def seats_held_in(tx: Tx, consultation_ids: Collection[str]) -> list[tuple[Seated, str | None]]:
    """Participants with a live or resumable connection (a peer id) in these consultations, each with the hash of
    the resume token its connection holds."""
    query = _with_consultation(
        Participant.consultation_id.in_(list(consultation_ids)), Participant.peer_id.is_not(None)
    )
    rows = (await tx.execute(query.execution_options(populate_existing=True))).all()
    return [((values.participant(p), values.consultation_core(c)), p.resume_hash) for p, c in rows]


def _with_consultation(*where: ColumnElement[bool]) -> Select[Participant, Consultation]:
    """Seats, each with its consultation's own columns (no relationship loaded): what sockets need."""
    return (
        select(Participant, Consultation)
        .join(Consultation, Participant.consultation_id == Consultation.id)
        .where(*where)
        .options(raiseload("*"))
    )


async def release_seats(tx: Tx, consultation_id: str) -> None:
    """Nobody can resume into a closed consultation."""
    await tx.execute(
        update(Participant)
        .where(Participant.consultation_id == consultation_id, Participant.peer_id.is_not(None))
        .values(peer_id=None, resume_hash=None, away_since=None)
        .execution_options(synchronize_session=False)
    )


async def mark_away(tx: Tx, held: Iterable[tuple[str, str]], now: datetime) -> None:
    """Seats whose connection dropped (or whose node stops), ``(participant id, resume hash)`` each: away from now,
    unless the seat's resume hash is no longer the one that connection held. A resume spends the token and clears
    ``away_since`` in a transaction of its own, maybe on another node: a drop written after it must not mark the
    resumed seat away again (its grace period would then run from the drop, across the next takeover or restart).
    One statement, many parameter sets."""
    table = _participants()
    statement = (
        update(table)
        .where(table.c.id == bindparam("seat"), table.c.resume_hash == bindparam("held"), table.c.peer_id.is_not(None))
        .values(away_since=now)
    )
    await _execute_many(tx, statement, [{"seat": seat, "held": resume_hash} for seat, resume_hash in held])


def _participants() -> Table:
    table = Participant.__table__
    assert isinstance(table, Table)
    return table


async def _execute_many(tx: Tx, statement: Update, rows: Sequence[Mapping[str, object]]) -> None:
    """One statement, a parameter set per row (nothing to do for none)."""
    if rows:
        connection = await tx.connection()
        await connection.execute(statement, rows)
