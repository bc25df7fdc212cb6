"""The signaling service: seats WebSocket peers in rooms, applies the room rules, relays, and drives the lifecycle.

It sees protocol messages and domain objects only (no aiohttp). Each live connection is a ``Connection`` whose
``send`` enqueues a frame without blocking; delivery between peers goes through the bus on the channel
``peer:<peer_id>``, so the room code does not care which node holds a socket.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from teleconsult.bus import Bus
from teleconsult.config import Settings
from teleconsult.consultations import ConsultationService, Seat
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import PeerId, new_id, new_token
from teleconsult.protocol import PROTOCOL_VERSION, ClientMessage, ServerMessage, encode
from teleconsult.protocol import messages as m
from teleconsult.rooms import Capacity, Peer, Role, Room
from teleconsult.store.models import BillingRecord

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000


class Connection(Protocol):
    """One client socket as the service sees it."""

    def send(self, frame: bytes) -> None:
        """Queue a text frame; never blocks (a connection that cannot keep up is dropped by its owner)."""

    def close_soon(self, code: int, reason: str) -> None:
        """Close after the frames already queued have been written."""


@dataclass(eq=False, slots=True)
class Session:
    peer: Peer
    room: Room
    conn: Connection
    seat: Seat
    resume_token: str
    closed: bool = field(default=False)

    @property
    def channel(self) -> str:
        return f"peer:{self.peer.peer_id}"


def peer_info(peer: Peer) -> m.PeerInfo:
    return m.PeerInfo(peer_id=peer.peer_id, role=peer.role.value, name=peer.name)


class SignalingService:
    def __init__(self, consultations: ConsultationService, bus: Bus, settings: Settings):
        self._consultations = consultations
        self._bus = bus
        self._settings = settings
        self._capacity = Capacity(guest=settings.guest_seats)
        self._ice_servers = [
            m.IceServerInfo(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in settings.ice_servers
        ]
        self._rooms: dict[str, Room] = {}
        self._sessions: dict[PeerId, Session] = {}

    # --- introspection (metrics, tests) ------------------------------------------------------------------------

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    # --- joining -----------------------------------------------------------------------------------------------

    async def hello(self, conn: Connection, hello: m.Hello) -> Session:
        if hello.v != PROTOCOL_VERSION:
            raise TeleconsultError(ErrorCode.UNSUPPORTED_VERSION, f"This server speaks protocol v{PROTOCOL_VERSION}.")
        if not hello.ticket:
            raise TeleconsultError(ErrorCode.UNAUTHORIZED, "A ticket is required.")
        seat = await self._consultations.open_ticket(hello.ticket)
        participant = seat.participant
        room = self._rooms.get(seat.consultation.id)
        if room is None:
            room = self._rooms[seat.consultation.id] = Room(seat.consultation.id, self._capacity)
        joined = room.join(
            PeerId(new_id("p")),
            Role(participant.role),
            participant.name,
            participant.id,
            pre_admitted=participant.admitted_at is not None,
        )
        session = Session(joined.peer, room, conn, seat, resume_token=new_token())
        self._sessions[session.peer.peer_id] = session
        if joined.replaced is not None:
            await self._evict(joined.replaced, m.Removed(reason="replaced"))
        await self._bus.subscribe(session.channel, conn.send)  # after the eviction: it is not news to this peer
        await self._consultations.participant_joined(participant)
        await self._welcome(session)
        return session

    async def _welcome(self, session: Session) -> None:
        peer, room = session.peer, session.room
        peers = [peer_info(p) for p in room.admitted(exclude=peer.peer_id)] if peer.admitted else []
        session.conn.send(
            encode(
                m.Welcome(
                    peer_id=peer.peer_id,
                    role=peer.role.value,
                    consultation_id=room.consultation_id,
                    state=peer.state.value,
                    peers=peers,
                    ice_servers=self._ice_servers,
                    resume=session.resume_token,
                    polite=peer.role is Role.DOCTOR,
                )
            )
        )
        if not peer.admitted:
            session.conn.send(encode(m.Waiting()))
            await self._send_lobby(room)
            return
        await self._broadcast(room.admitted(exclude=peer.peer_id), m.PeerJoined(peer=peer_info(peer)))
        if peer.role is Role.DOCTOR:
            await self._send_lobby(room)
        if room.is_in_progress():
            await self._consultations.participant_admitted(
                session.seat.participant.id, room.consultation_id, in_progress=True
            )

    # --- messages from a seated peer ---------------------------------------------------------------------------

    async def handle(self, session: Session, message: ClientMessage) -> None:
        """Apply one client message; raises ``TeleconsultError`` for the caller to turn into an error frame."""
        peer, room = session.peer, session.room
        match message:
            case m.Offer(to=to, sdp=sdp):
                target = room.relay_target(peer, "offer", to)
                await self._send(target, m.OfferOut(from_=peer.peer_id, sdp=sdp))
            case m.Answer(to=to, sdp=sdp):
                target = room.relay_target(peer, "answer", to)
                await self._send(target, m.AnswerOut(from_=peer.peer_id, sdp=sdp))
            case m.Candidate(to=to, candidate=candidate):
                target = room.relay_target(peer, "candidate", to)
                await self._send(target, m.CandidateOut(from_=peer.peer_id, candidate=candidate))
            case m.Ping(id=ref):
                room.authorize(peer, "ping")
                session.conn.send(encode(m.Pong(ref=ref)))
            case m.Chat(text=text):
                room.authorize(peer, "chat")
                chat = m.ChatOut(from_=peer.peer_id, text=text, ts=_now_iso(), msg_id=new_id("m"))
                await self._broadcast(room.admitted(), chat)
            case m.Admit(peer_id=target_id):
                await self._admit(session, target_id)
            case m.Deny(peer_id=target_id):
                target = room.deny(peer, target_id)
                await self._evict(target, m.Denied(), sent_away=True)
            case m.Remove(peer_id=target_id):
                target = room.remove(peer, target_id)
                await self._evict(target, m.Removed(), sent_away=True)
            case m.Leave():
                room.authorize(peer, "leave")
                await self.disconnect(session)
                session.conn.close_soon(CLOSE_NORMAL, "left")
            case m.End():
                room.authorize(peer, "end")
                await self.end_consultation(room.consultation_id, session.seat.consultation.doctor_id)
            case m.Hello():
                room.authorize(peer, "hello")

    async def _admit(self, session: Session, target_id: str) -> None:
        room = session.room
        target = room.admit(session.peer, target_id)
        await self._send(target, m.Admitted(peers=[peer_info(p) for p in room.admitted(exclude=target.peer_id)]))
        await self._broadcast(room.admitted(exclude=target.peer_id), m.PeerJoined(peer=peer_info(target)))
        await self._send_lobby(room)
        await self._consultations.participant_admitted(
            target.seat, room.consultation_id, in_progress=room.is_in_progress()
        )

    # --- leaving -----------------------------------------------------------------------------------------------

    async def disconnect(self, session: Session) -> None:
        """The peer's socket is gone (or it left): take it out of its room. Idempotent."""
        if session.closed:
            return
        await self._forget(session)
        peer = session.room.leave(session.peer.peer_id)
        if peer is None:
            return
        await self._announce_departure(session.room, peer)
        await self._consultations.participant_left(peer.seat)

    async def _evict(self, peer: Peer, notice: ServerMessage, *, sent_away: bool = False) -> None:
        """Tell a peer already taken out of its room why, close its socket, and tell the room."""
        session = self._sessions.get(peer.peer_id)
        await self._send(peer, notice)
        if session is not None:
            await self._forget(session)
            session.conn.close_soon(CLOSE_NORMAL, notice.__struct_config__.tag)  # type: ignore[arg-type]
            await self._announce_departure(session.room, peer)
        if sent_away:
            await self._consultations.participant_sent_away(peer.seat)

    async def _announce_departure(self, room: Room, peer: Peer) -> None:
        if peer.admitted:
            await self._broadcast(room.admitted(), m.PeerLeft(peer_id=peer.peer_id))
        else:
            await self._send_lobby(room)
        if not len(room):
            self._rooms.pop(room.consultation_id, None)

    async def _forget(self, session: Session) -> None:
        session.closed = True
        if self._sessions.get(session.peer.peer_id) is session:
            del self._sessions[session.peer.peer_id]
        await self._bus.unsubscribe(session.channel, session.conn.send)

    # --- ending ------------------------------------------------------------------------------------------------

    async def end_consultation(self, consultation_id: str, doctor_id: str) -> BillingRecord | None:
        """End for everyone (from the doctor's ``end`` frame or the HTTP API): bill, tell the room, close."""
        record = await self._consultations.end(consultation_id, doctor_id)
        room = self._rooms.pop(consultation_id, None)
        if room is not None:
            room.ended = True
            everyone = list(room)
            await self._broadcast(everyone, m.Ended(consultation_id=consultation_id))
            for peer in everyone:
                session = self._sessions.get(peer.peer_id)
                if session is not None:
                    await self._forget(session)
                    session.conn.close_soon(CLOSE_NORMAL, "ended")
                room.leave(peer.peer_id)
        return record

    async def close_all(self, code: int, reason: str) -> None:
        for session in list(self._sessions.values()):
            await self._forget(session)
            session.conn.close_soon(code, reason)
        self._rooms.clear()

    # --- delivery ----------------------------------------------------------------------------------------------

    async def _send(self, peer: Peer, message: ServerMessage) -> None:
        await self._bus.publish(f"peer:{peer.peer_id}", encode(message))

    async def _broadcast(self, peers: Iterable[Peer], message: ServerMessage) -> None:
        frame = encode(message)
        for peer in peers:
            await self._bus.publish(f"peer:{peer.peer_id}", frame)

    async def _send_lobby(self, room: Room) -> None:
        await self._broadcast(room.doctors(), m.Lobby(waiting=[peer_info(p) for p in room.waiting()]))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
