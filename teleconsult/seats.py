"""Seats: who may open a socket into a consultation, and the durable state of each seat's connection.

Tickets (short-lived, single use) open a socket; a resume token brings a dropped connection back to the same seat.
The signaling service drives the rest of a seat's life through this service: taken, admitted, sent back to the
waiting room, away (dropped within its grace period), released. Seats are durable (peer id, resume token hash,
away time in the database), so a restarted node rebuilds its rooms from the seats still held.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from teleconsult.clock import now
from teleconsult.config import AccessSettings, SignalingSettings
from teleconsult.domain import ConsultationCore, Doctor, Participant, Seat
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.group_commit import GroupCommit
from teleconsult.ids import ConsultationId, ParticipantId, PeerId, hash_token, looks_like_token
from teleconsult.lifecycle import CLOSED, Status, sources
from teleconsult.rooms import Role
from teleconsult.store import Database, Tx, audit
from teleconsult.store import consultations as store
from teleconsult.tickets import consume_ticket, issue_ticket

NOT_RESUMABLE = "Unknown, used or expired resume token."
#: The most callers one group-commit transaction serves (resumes, rooms rebuilt).
BATCH = 500


class SeatService:
    def __init__(self, db: Database, access: AccessSettings, signaling: SignalingSettings):
        self._db = db
        self._access = access
        self._grace = timedelta(seconds=signaling.resume_grace_s)
        self._resumes: GroupCommit[tuple[str, str], Seat] = GroupCommit(self._resume_batch, max_batch=BATCH)
        self._held: GroupCommit[ConsultationId, list[Seat]] = GroupCommit(self._held_batch, max_batch=BATCH)
        self._away: GroupCommit[tuple[ParticipantId, str | None], None] = GroupCommit(self._away_batch, max_batch=BATCH)

    # --- tickets -----------------------------------------------------------------------------------------------

    async def ticket_for_doctor(self, doctor: Doctor, consultation_id: str) -> str:
        async with self._db.transaction() as tx:
            consultation = await store.consultation_core(tx, consultation_id)
            if consultation is None or consultation.doctor_id != doctor.id:
                raise TeleconsultError(ErrorCode.NOT_FOUND)  # never tell another doctor's consultation exists
            require_open(consultation)
            seat = await store.doctor_participant(tx, consultation.id)
            if seat is None:
                raise TeleconsultError(ErrorCode.NOT_FOUND)
            return await issue_ticket(tx, self._access, seat.id, now())

    async def ticket_for_participant(self, credential: str, consultation_id: str) -> str:
        async with self._db.transaction() as tx:
            participant = await store.participant_by_credential(tx, hash_token(credential))
            if participant is None or participant.consultation_id != consultation_id:
                raise TeleconsultError(ErrorCode.UNAUTHORIZED)
            consultation = await store.consultation_core(tx, consultation_id)
            if consultation is None:
                raise TeleconsultError(ErrorCode.NOT_FOUND)
            require_open(consultation)
            return await issue_ticket(tx, self._access, participant.id, now())

    async def open_ticket(self, ticket: str) -> Seat:
        """Consume a ticket (single use) and say whose seat it opens."""
        async with self._db.transaction() as tx:
            participant_id = await consume_ticket(tx, ticket, now())
            participant = await store.participant_by_id(tx, participant_id) if participant_id else None
            if participant is None:
                raise TeleconsultError(ErrorCode.UNAUTHORIZED, "Unknown, expired or already used ticket.")
            return await self._seat_of(tx, participant)

    async def _seat_of(self, tx: Tx, participant: Participant) -> Seat:
        consultation = await store.consultation_core(tx, participant.consultation_id)
        if consultation is None:
            raise TeleconsultError(ErrorCode.NOT_FOUND)
        require_open(consultation)
        return Seat.of(participant, consultation)

    # --- a seat's connection, driven by the signaling service --------------------------------------------------

    async def seat_taken(self, seat: Seat, peer_id: PeerId, resume_token: str, *, admitted: bool) -> None:
        """A connection now holds this seat; the resume token lets the same client come back after a drop."""
        at = now()
        values: dict[str, object] = {
            "joined_at": at,
            "left_at": None,
            "peer_id": peer_id,
            "resume_hash": hash_token(resume_token),
            "away_since": None,
        }
        if admitted and seat.admitted_at is None:
            values["admitted_at"] = at
        async with self._db.transaction() as tx:
            await store.update_participant(tx, seat.participant_id, **values)
            if seat.role != Role.DOCTOR.value:
                await store.set_status(tx, seat.consultation_id, Status.WAITING, allowed_from=sources(Status.WAITING))
            await audit.add_event(
                tx,
                action="participant.joined",
                actor=actor_of(seat),
                consultation_id=seat.consultation_id,
                detail={"participant": seat.participant_id, "peer": peer_id, "admitted": admitted},
            )

    async def resume_seat(self, resume_token: str, fresh_token: str) -> Seat:
        """The seat a resume token holds, if the consultation is open and the grace period has not run out.

        The token is spent in the same transaction (``fresh_token`` replaces it), so two sockets racing with one
        token cannot both resume. Resumes arriving together (a restarted node) share one transaction.
        """
        if not looks_like_token(resume_token):
            raise TeleconsultError(ErrorCode.UNAUTHORIZED, NOT_RESUMABLE)
        return await self._resumes((hash_token(resume_token), hash_token(fresh_token)))

    async def unspend(self, seat: Seat, resume_token: str, fresh_token: str) -> None:
        """A resume spent its token (``resume_seat``) but could not be applied (the room's server unreachable, the
        database away): the presented token works again, so the client's next try is not refused."""
        async with self._db.transaction() as tx:
            await store.restore_resume_hash(
                tx, seat.participant_id, hash_token(resume_token), hash_token(fresh_token), seat.away_since
            )

    async def _resume_batch(self, spends: list[tuple[str, str]]) -> list[Seat | Exception]:
        """``(presented hash, fresh hash)`` each: the seat, or why it cannot be resumed."""
        deadline = now() - self._grace
        outcomes: list[Seat | Exception] = []
        async with self._db.transaction() as tx:
            held = await store.resumable(tx, [presented for presented, _ in spends])
            changes = []
            for presented, fresh in spends:
                pair = held.pop(presented, None)  # a token spent once per batch too
                try:
                    seat = _resumable(pair, deadline)
                except TeleconsultError as refused:
                    outcomes.append(refused)
                    continue
                changes.append((seat.participant_id, presented, fresh))
                outcomes.append(seat)
            await store.replace_resume_hashes(tx, changes)
        return outcomes

    async def seats_held(self, consultation_id: ConsultationId) -> list[Seat]:
        """The seats with a live or resumable connection (rooms rebuilt together share one query)."""
        return await self._held(consultation_id)

    async def _held_batch(self, consultation_ids: list[ConsultationId]) -> list[list[Seat] | Exception]:
        async with self._db.transaction() as tx:
            rows = await store.seats_held_in(tx, set(consultation_ids))
        seats: dict[str, list[Seat]] = {}
        for (participant, consultation), resume_hash in rows:
            seats.setdefault(consultation.id, []).append(Seat.of(participant, consultation, resume_hash))
        return [seats.get(consultation_id, []) for consultation_id in consultation_ids]

    async def participants_away(self, held: Sequence[tuple[ParticipantId, str | None]]) -> None:
        """Seats whose connections are gone, ``(participant id, hash of the resume token the connection held)``
        each: away from now, except those a resume has taken since (``store.mark_away``). A connection whose token
        the database does not record (none was issued to it) holds nothing to mark."""
        known = [(participant_id, resume_hash) for participant_id, resume_hash in held if resume_hash is not None]
        async with self._db.transaction() as tx:
            await store.mark_away(tx, known, now())

    async def participant_away(self, participant_id: ParticipantId, resume_hash: str | None) -> None:
        """One dropped connection's seat marked away; drops arriving together (thousands of clients gone at once)
        share one transaction instead of queueing for the database's connections."""
        await self._away((participant_id, resume_hash))

    async def _away_batch(self, held: list[tuple[ParticipantId, str | None]]) -> list[Exception | None]:
        await self.participants_away(held)
        return [None] * len(held)

    async def participant_admitted(
        self,
        participant_id: ParticipantId,
        consultation_id: ConsultationId,
        *,
        in_progress: bool,
        by: str | None = None,
    ) -> None:
        """The seat is admitted (``by``: who let it in, for the audit trail; None when it came in admitted and its
        joining says so already); the consultation starts with the first admission that makes it in progress."""
        at = now()
        async with self._db.transaction() as tx:
            await store.update_participant(tx, participant_id, admitted_at=at)
            if by is not None:
                await audit.add_event(
                    tx,
                    action="participant.admitted",
                    actor=by,
                    consultation_id=consultation_id,
                    detail={"participant": participant_id},
                )
            if in_progress and await store.set_status(
                tx, consultation_id, Status.IN_PROGRESS, allowed_from=sources(Status.IN_PROGRESS), started_at=at
            ):
                await audit.add_event(
                    tx, action="consultation.started", actor=by or "system", consultation_id=consultation_id
                )

    async def participant_returned(self, participant_id: ParticipantId, *, consultation_id: str, by: str) -> None:
        """Sent back to the waiting room: still connected, no longer admitted."""
        async with self._db.transaction() as tx:
            await store.update_participant(tx, participant_id, admitted_at=None, pre_admitted=False)
            await audit.add_event(
                tx,
                action="participant.returned",
                actor=by,
                consultation_id=consultation_id,
                detail={"participant": participant_id},
            )

    async def seat_released(
        self,
        participant_id: ParticipantId,
        *,
        sent_away: bool = False,
        consultation_id: str | None = None,
        actor: str = "system",
        reason: str = "left",
    ) -> None:
        """The connection is gone for good (left, timed out, denied or removed); denied or removed seats must be
        admitted again to come back. With ``consultation_id``, the departure goes in the audit trail (``actor``:
        who ended it, ``reason``: left, timed_out, denied, removed, link_revoked)."""
        values: dict[str, object] = {"left_at": now(), "peer_id": None, "resume_hash": None, "away_since": None}
        if sent_away:
            values |= {"admitted_at": None, "pre_admitted": False}
        async with self._db.transaction() as tx:
            await store.update_participant(tx, participant_id, **values)
            if consultation_id is not None:
                await audit.add_event(
                    tx,
                    action="participant.left",
                    actor=actor,
                    consultation_id=consultation_id,
                    detail={"participant": participant_id, "reason": reason},
                )


def actor_of(seat: Seat) -> str:
    """Who a seat is in the audit trail: the doctor's account (``doctor:d_…``), or the seat (``patient:u_…``)."""
    return f"doctor:{seat.doctor_id}" if seat.role == Role.DOCTOR.value else f"{seat.role}:{seat.participant_id}"


def _resumable(pair: tuple[Participant, ConsultationCore] | None, deadline: datetime) -> Seat:
    """The seat to resume; raises if the token is unknown or spent, its grace period is over, or the consultation
    has closed."""
    if pair is None:
        raise TeleconsultError(ErrorCode.UNAUTHORIZED, NOT_RESUMABLE)
    participant, consultation = pair
    expired = participant.away_since is not None and participant.away_since <= deadline
    if participant.peer_id is None or expired:
        raise TeleconsultError(ErrorCode.UNAUTHORIZED, NOT_RESUMABLE)
    require_open(consultation)
    return Seat.of(participant, consultation)


def require_open(consultation: ConsultationCore) -> None:
    if Status(consultation.status) in CLOSED:
        raise TeleconsultError(ErrorCode.ENDED)
