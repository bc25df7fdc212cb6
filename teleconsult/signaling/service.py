"""The signaling service: the dispatcher of protocol v1. It seats peers (``hello``, resume), applies each client
message through the room's rules, relays, and applies to live rooms what changes them (end, cancel, a resent link).

It sees protocol messages and domain values only (no aiohttp). Its sessions are in a ``SessionRegistry``
(``sessions.py``) and its rooms behind ``RoomOwnership`` (``ownership.py``). What a peer is sent goes to its session,
whose connection is a socket, or in a cluster an endpoint's socket on this node or on another (``routing.py``): nothing
here cares which node holds a socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from teleconsult import turn
from teleconsult.background import settle
from teleconsult.billing import BillingChoice
from teleconsult.bus import Bus
from teleconsult.clock import now as clock_now
from teleconsult.config import SignalingSettings
from teleconsult.consultations import ConsultationService, Ended
from teleconsult.domain import Consultation, Doctor, Document, Participant, Seat
from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import ConsultationId, ParticipantId, PeerId, new_id, new_token
from teleconsult.invitations import InvitationService, Resent
from teleconsult.protocol import PROTOCOL_VERSION, ClientMessage, ServerMessage, encode
from teleconsult.protocol import messages as m
from teleconsult.rooms import Capacity, Peer, PeerState, Role, Room, polite
from teleconsult.seats import SeatService, actor_of
from teleconsult.signaling.ownership import Cluster, LocalRooms, RedisRooms, RoomOwnership
from teleconsult.signaling.routing import Endpoint, LocalSocket, Router
from teleconsult.signaling.sessions import (
    CLOSE_NORMAL,
    CLOSE_RESTART,
    Connection,
    RemoteSocket,
    Session,
    SessionRegistry,
)

#: What holds a socket on this node: a session of a room this node owns (one node), or an endpoint (a cluster).
Seated = Session | Endpoint

log = logging.getLogger(__name__)

#: How long shutdown waits for departures already being written (a grace period that ran out just before).
DEPARTURES_SETTLE_S = 2.0


def peer_info(
    peer: Peer, viewer: Peer | None = None, *, with_ready: bool = False, second_device: bool = False
) -> m.PeerInfo:
    return m.PeerInfo(
        peer_id=peer.peer_id,
        role=peer.role.value,
        name=peer.name,
        polite=polite(viewer, peer) if viewer is not None else None,
        ready=peer.ready if with_ready else None,
        second_device=True if second_device else None,
    )


class SignalingService:
    def __init__(
        self,
        seats: SeatService,
        consultations: ConsultationService,
        invitations: InvitationService,
        bus: Bus,
        settings: SignalingSettings,
        cluster: Cluster | None = None,
    ):
        self._seats = seats
        self._consultations = consultations
        self._invitations = invitations
        self._settings = settings
        self._capacity = Capacity(guest=settings.guest_seats)
        self._sessions = SessionRegistry(settings.away_buffer_frames)
        self._rooms: RoomOwnership = LocalRooms(self._capacity, self._rebuild)
        #: A cluster: rooms held by lease, sockets on endpoints, frames routed to each room's owner.
        self._router: Router | None = None
        if cluster is not None:
            rooms = RedisRooms(self._capacity, self._rebuild, cluster.leases, cluster.node_id)
            self._rooms = rooms
            self._router = Router(self, bus, rooms, settings.max_frame_bytes)
        self._chores: set[asyncio.Task[None]] = set()
        self._stopping = False

    # --- introspection (health, metrics, tests) ----------------------------------------------------------------

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    def session(self, peer_id: str) -> Session | None:
        return self._sessions.get(peer_id)

    def peer_ids(self) -> set[str]:
        return self._sessions.peer_ids()

    def sessions(self) -> list[Session]:
        return list(self._sessions)

    @property
    def seats(self) -> SeatService:
        return self._seats

    @property
    def node_id(self) -> str | None:
        """This node's id in a cluster (random at start), None on one node."""
        return self._router.node_id if self._router is not None else None

    # --- joining and resuming ----------------------------------------------------------------------------------

    async def hello(self, conn: Connection, hello: m.Hello) -> Seated:
        if hello.v != PROTOCOL_VERSION:
            raise TeleconsultError(ErrorCode.UNSUPPORTED_VERSION, f"This server speaks protocol v{PROTOCOL_VERSION}.")
        if self._stopping:
            raise TeleconsultError(ErrorCode.UNAVAILABLE, "The server is restarting; reconnect shortly.")
        if self._router is not None and (hello.resume or hello.ticket):
            return await self._router.hello(conn, hello)
        if hello.resume:
            return await self._resume(conn, hello.resume)
        if hello.ticket:
            return await self._take_seat(conn, hello.ticket)
        raise TeleconsultError(ErrorCode.UNAUTHORIZED, "A ticket or a resume token is required.")

    async def _take_seat(self, conn: Connection, ticket: str) -> Session:
        seat = await self._seats.open_ticket(ticket)
        return await self.seat_peer(conn, seat, PeerId(new_id("p")))

    async def seat_peer(self, conn: Connection, seat: Seat, peer_id: PeerId) -> Session:
        """Seat a peer whose ticket was checked (here, or by the node holding its socket) in the room."""
        room = await self._rooms.claim(seat.consultation_id)
        # Only a resume token keeps an admission: a fresh ticket waits unless the doctor let the seat in beforehand.
        joined = room.join(peer_id, Role(seat.role), seat.name, seat.participant_id, pre_admitted=seat.pre_admitted)
        if joined.replaced is not None:
            await self._evict(joined.replaced, m.Removed(reason="replaced"), release_seat=False)
        session = self._sessions.open(joined.peer, room, seat, conn)
        token = new_token()
        if room.is_second_device(joined.peer):
            session.unsaved_resume = token  # the seat's holder stays recorded until the doctor chooses
        else:
            await self._seats.seat_taken(seat, session.peer.peer_id, token, admitted=session.peer.admitted)
            session.holds(token)
        self._welcome(session, token)
        await self._announce_arrival(session)
        return session

    async def _resume(self, conn: Connection, token: str) -> Session:
        fresh = new_token()
        seat = await self._seats.resume_seat(token, fresh)
        try:
            return await self.reattach(conn, seat.consultation_id, seat.peer_id or "", fresh)
        except BaseException as failure:
            await self.give_token_back(failure, seat, token, fresh)
            raise

    async def give_token_back(self, failure: BaseException, seat: Seat, token: str, fresh: str) -> None:
        """A resume whose token was spent failed before the client had its fresh one: unless the seat can no longer
        be resumed at all, the token it presented works again, so trying again is not refused."""
        if isinstance(failure, TeleconsultError) and failure.code in (ErrorCode.UNAUTHORIZED, ErrorCode.ENDED):
            return
        try:
            await self._seats.unspend(seat, token, fresh)
        except TeleconsultError:
            log.warning("could not give a resume token back (database unavailable)")

    async def reattach(self, conn: Connection, consultation_id: ConsultationId, peer_id: str, fresh: str) -> Session:
        """A resume whose token was spent (here, or by the node holding the socket): the same session, on ``conn``."""
        await self._rooms.claim(consultation_id)
        session = self._sessions.get(peer_id)
        if session is None or session.closed:
            log.info("a resume found no live session for its peer (%s)", "closed" if session else "none")
            raise TeleconsultError(ErrorCode.UNAUTHORIZED, "This connection can no longer be resumed.")
        session.stop_grace()
        if session.conn is not None and session.conn is not conn:
            session.conn.close_soon(CLOSE_NORMAL, "resumed on another connection")
        session.conn = conn
        session.holds(fresh)
        self._welcome(session, fresh)
        for frame in session.take_pending():
            conn.send(frame)
        return session

    async def _rebuild(self, room: Room) -> None:
        """A room this node did not hold: the seats still held come back as peers away until they resume."""
        for held in await self._seats.seats_held(room.consultation_id):
            await self._restore(room, held)
        if self._router is not None:  # taken over: the endpoints holding its sockets attach to this node
            self._router.announce([p.peer_id for p in room])

    def attach(self, session: Session, conn: Connection) -> None:
        """A session away (or rebuilt after a takeover) gets its socket back without a resume: the endpoint that
        holds the socket is known (a cluster); what was kept for it is sent on."""
        session.stop_grace()
        session.conn = conn
        for frame in session.take_pending():
            conn.send(frame)

    async def _restore(self, room: Room, seat: Seat) -> None:
        """A seat held before this node started: the peer is away until it resumes or its grace runs out."""
        state = PeerState.ADMITTED if seat.admitted_at is not None else PeerState.WAITING
        peer = Peer(PeerId(seat.peer_id or ""), Role(seat.role), seat.name, seat.participant_id, state)
        room.restore(peer)
        session = self._sessions.open(peer, room, seat, None)
        elapsed = (clock_now() - seat.away_since).total_seconds() if seat.away_since else 0.0
        self._start_grace(session, max(0.0, self._settings.resume_grace_s - elapsed))

    def _welcome(self, session: Session, resume_token: str) -> None:
        peer, room = session.peer, session.room
        peers = [peer_info(p, peer) for p in room.admitted(exclude=peer.peer_id)] if peer.admitted else []
        assert session.conn is not None
        session.conn.send(
            encode(
                m.Welcome(
                    peer_id=peer.peer_id,
                    role=peer.role.value,
                    consultation_id=room.consultation_id,
                    state=peer.state.value,
                    peers=peers,
                    ice_servers=self._ice_servers(peer.peer_id),
                    resume=resume_token,
                    polite=peer.role is Role.DOCTOR,
                )
            )
        )
        if not peer.admitted:
            session.conn.send(encode(m.Waiting()))
        elif peer.role is Role.DOCTOR:
            session.conn.send(encode(self._lobby(room)))

    def _ice_servers(self, peer_id: str) -> list[m.IceServerInfo]:
        """The configured STUN and ICE servers, and TURN with a credential for this peer made now: each welcome
        (a resume's too) carries fresh ones."""
        return [
            m.IceServerInfo(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in turn.ice_servers(self._settings, peer_id, clock_now())
        ]

    async def _announce_arrival(self, session: Session) -> None:
        peer, room = session.peer, session.room
        if not peer.admitted:
            await self._send_lobby(room)
            return
        for other in room.admitted(exclude=peer.peer_id):
            await self._send(other, m.PeerJoined(peer=peer_info(peer, other)))
        if room.is_in_progress():
            await self._seats.participant_admitted(session.participant_id, room.consultation_id, in_progress=True)

    # --- messages from a seated peer ---------------------------------------------------------------------------

    async def handle(self, session: Seated, message: ClientMessage) -> None:
        """Apply one client message; raises ``TeleconsultError`` for the caller to turn into an error frame."""
        if type(session) is Endpoint:
            assert self._router is not None
            await self._router.forward(session, message)
            return
        assert isinstance(session, Session)
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
                self._reply(session, m.Pong(ref=ref))
            case m.Chat(text=text):
                room.authorize(peer, "chat")
                chat = m.ChatOut(from_=peer.peer_id, text=text, ts=_now_iso(), msg_id=new_id("m"))
                await self._broadcast(room.admitted(), chat)
            case m.Ready(checks=checks):
                room.set_ready(peer, checks)
                await self._send_lobby(room)
            case m.Admit(peer_id=target_id):
                await self._admit(session, target_id)
            case m.Deny(peer_id=target_id):
                target = room.deny(peer, target_id)
                await self._evict(target, m.Denied(), sent_away=True, by=actor_of(session.seat))
            case m.Remove(peer_id=target_id):
                target = room.remove(peer, target_id)
                await self._evict(target, m.Removed(), sent_away=True, by=actor_of(session.seat))
            case m.ReturnToLobby(peer_id=target_id):
                await self._return_to_lobby(session, target_id)
            case m.Leave():
                room.authorize(peer, "leave")
                await self._depart(session)
                if session.conn is not None:
                    session.conn.close_soon(CLOSE_NORMAL, "left")
            case m.End():
                room.authorize(peer, "end")
                await self.end_consultation(room.consultation_id, session.seat.doctor_id)
            case m.Media(peer_id=source_id, video=True):
                if room.video_report(peer, source_id):
                    await self._consultations.video_connected(room.consultation_id, actor_of(session.seat), source_id)
            case m.Media():
                room.authorize(peer, "media")
            case m.Hello():
                room.authorize(peer, "hello")

    def _reply(self, session: Session, message: ServerMessage) -> None:
        if session.conn is not None:
            session.conn.send(encode(message))

    async def _admit(self, session: Session, target_id: str) -> None:
        room = session.room
        admission = room.admit(session.peer, target_id)
        target = admission.peer
        newcomer = self._sessions.get(target.peer_id)
        try:  # durable first: nobody is told of an admission the database does not hold
            if newcomer is not None and newcomer.unsaved_resume is not None:
                await self._seats.seat_taken(newcomer.seat, target.peer_id, newcomer.unsaved_resume, admitted=True)
                newcomer.holds(newcomer.unsaved_resume)
                newcomer.unsaved_resume = None
            await self._seats.participant_admitted(
                target.seat, room.consultation_id, in_progress=room.is_in_progress(), by=actor_of(session.seat)
            )
        except TeleconsultError:
            room.undo_admission(admission)
            raise
        if admission.replaced is not None:  # the device the seat was taken from
            await self._evict(admission.replaced, m.Removed(reason="replaced"), release_seat=False)
        peers = [peer_info(p, target) for p in room.admitted(exclude=target.peer_id)]
        await self._send(target, m.Admitted(peers=peers))
        for other in room.admitted(exclude=target.peer_id):
            await self._send(other, m.PeerJoined(peer=peer_info(target, other)))
        await self._send_lobby(room)

    async def _return_to_lobby(self, session: Session, target_id: str) -> None:
        room = session.room
        target = room.return_to_lobby(session.peer, target_id)
        try:
            await self._seats.participant_returned(
                target.seat, consultation_id=room.consultation_id, by=actor_of(session.seat)
            )
        except TeleconsultError:
            room.undo_return(target)
            raise
        await self._send(target, m.Waiting())
        await self._broadcast(room.admitted(), m.PeerLeft(peer_id=target.peer_id))
        await self._send_lobby(room)

    # --- leaving -----------------------------------------------------------------------------------------------

    async def disconnect(self, session: Seated, conn: Connection) -> None:
        """``conn`` is gone without a goodbye: hold the seat for the grace period. Idempotent."""
        if isinstance(session, Endpoint):
            assert self._router is not None
            await self._router.detach(session, conn, stopping=self._stopping)
            return
        if session.closed or session.conn is not conn:
            return
        session.conn = None
        if self._stopping:
            return  # shutdown marks every seat away at once
        if not session.durable:
            await self._depart(session)  # a second device cannot resume: nothing holds its seat for it
            return
        self._start_grace(session, self._settings.resume_grace_s)
        await self._seats.participant_away(session.participant_id, session.resume_hash)

    def _start_grace(self, session: Session, delay: float) -> None:
        session.grace = asyncio.get_running_loop().call_later(delay, self._grace_over, session)

    def _grace_over(self, session: Session) -> None:
        task = asyncio.create_task(self._expire(session))
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _expire(self, session: Session) -> None:
        if session.closed or session.conn is not None:
            return
        try:
            await self._depart(session, reason="timed_out")
        except TeleconsultError:
            log.warning("could not record the departure of a peer (database unavailable)")
        except Exception:  # a bug: said, and the other rooms go on
            log.exception("could not complete the departure of a peer")

    async def _depart(self, session: Session, *, reason: str = "left") -> None:
        """The peer is gone for good (``left``, or its grace ran out: ``timed_out``)."""
        if session.closed:
            return
        await self._forget(session)
        peer = session.room.leave(session.peer.peer_id)
        if peer is not None:
            await self._announce_departure(session.room, peer)
        if session.durable:
            await self._seats.seat_released(
                session.participant_id,
                consultation_id=session.room.consultation_id,
                actor=actor_of(session.seat) if reason == "left" else "system",
                reason=reason,
            )

    async def _evict(
        self,
        peer: Peer,
        notice: ServerMessage,
        *,
        sent_away: bool = False,
        release_seat: bool = True,
        by: str = "system",
    ) -> None:
        """Tell a peer already taken out of its room why, close its socket, and tell the room (``by``: who sent it
        away, for the audit trail)."""
        session = self._sessions.get(peer.peer_id)
        await self._send(peer, notice)
        if session is not None:
            await self._forget(session)
            if session.conn is not None:
                session.conn.close_soon(CLOSE_NORMAL, notice.__struct_config__.tag)  # type: ignore[arg-type]
            await self._announce_departure(session.room, peer)
            release_seat = release_seat and session.durable  # a second device never held the seat
        if release_seat:
            await self._seats.seat_released(
                peer.seat,
                sent_away=sent_away,
                consultation_id=session.room.consultation_id if session is not None else None,
                actor=by,
                reason=str(getattr(notice, "reason", None) or notice.__struct_config__.tag),
            )

    async def document_added(self, document: Document, seat: Participant) -> None:
        """Show a new document to the room's admitted peers at once (a ``document`` frame)."""
        info = m.DocumentInfo(
            id=document.id,
            name=document.name,
            size=document.size,
            mime=document.mime,
            kind="prescription" if document.kind == "prescription" else "document",
            from_=seat.peer_id or seat.id,
        )
        await self.broadcast_admitted(document.consultation_id, encode(m.DocumentOut(document=info)))

    async def broadcast_admitted(self, consultation_id: str, frame: bytes) -> None:
        """A frame to the admitted peers of a live room (this node's, or its owner's in a cluster)."""
        room = self._rooms.get(consultation_id)
        if room is None:
            if self._router is not None:
                await self._router.room_op(consultation_id, {"op": "document"}, body=frame)
            return
        for peer in room.admitted():
            self._sessions.deliver(peer, frame)

    async def link_revoked(self, consultation_id: str, participant_id: str) -> None:
        """The participant's link was replaced (resent): whoever got in with the old one is cut off now."""
        room = self._rooms.get(consultation_id)
        if room is None:
            if self._router is not None:
                await self._router.room_op(consultation_id, {"op": "revoke", "participant": participant_id})
            return
        for peer in [p for p in room if p.seat == participant_id]:
            room.leave(peer.peer_id)
            await self._evict(peer, m.Removed(reason="link_revoked"))

    async def _announce_departure(self, room: Room, peer: Peer) -> None:
        if peer.admitted:
            await self._broadcast(room.admitted(), m.PeerLeft(peer_id=peer.peer_id))
        else:
            await self._send_lobby(room)
        if not len(room):
            self._rooms.release(room.consultation_id)

    async def _forget(self, session: Session) -> None:
        self._sessions.forget(session)

    # --- ending and shutting down ------------------------------------------------------------------------------

    async def end_consultation(
        self, consultation_id: str, doctor_id: str, choice: BillingChoice | None = None
    ) -> Ended:
        """End for everyone (from the doctor's ``end`` frame or the HTTP API, with the doctor's billing choice):
        bill, tell the room, close."""
        ended = await self._consultations.end(consultation_id, doctor_id, choice)
        await self.close_room(consultation_id)
        return ended

    async def close_overdue(self, grace: timedelta) -> int:
        """Appointments the patient never came into, ``grace`` after their time: closed as no-shows (an entry that
        bills nothing and says why), and their waiting rooms emptied. How many were closed."""
        closed = 0
        for consultation_id, doctor_id in await self._consultations.overdue(grace):
            await self._consultations.end(consultation_id, doctor_id, by="system:no-show")
            await self.close_room(consultation_id)
            closed += 1
        return closed

    async def cancel_consultation(self, doctor: Doctor, consultation_id: str) -> Consultation:
        """Cancel before it took place (links revoked, the invited told), and empty its waiting room."""
        consultation = await self._consultations.cancel(doctor, consultation_id)
        await self.close_room(consultation.id)
        return consultation

    async def resend_invitation(
        self, doctor: Doctor, consultation_id: str, *, participant_id: str | None, role: str | None, email: str | None
    ) -> Resent:
        """A new link for one participant, and whoever came in with the old one is cut off."""
        resent = await self._invitations.resend(
            doctor, consultation_id, participant_id=participant_id, role=role, email=email
        )
        await self.link_revoked(consultation_id, resent.participant_id)
        return resent

    async def close_room(self, consultation_id: str) -> None:
        """The consultation is over (ended or cancelled): tell whoever is connected, close, forget the room."""
        room = self._rooms.release(consultation_id)
        if room is None:
            if self._router is not None:
                await self._router.room_op(consultation_id, {"op": "close"})
            return
        everyone = room.close()
        await self._broadcast(everyone, m.Ended(consultation_id=room.consultation_id))
        for peer in everyone:
            session = self._sessions.get(peer.peer_id)
            if session is not None:
                await self._forget(session)
                if session.conn is not None:
                    session.conn.close_soon(CLOSE_NORMAL, "ended")

    async def shutdown(self) -> None:
        """Graceful stop: tell every client on this node to reconnect, close, and keep every seat resumable from
        now. In a cluster, the rooms move to other nodes quietly: sockets held elsewhere stay open and attach to
        the room's next owner."""
        self._stopping = True
        if self._router is not None:
            self._router.stopping()  # no room is claimed here any more
        for session in self._sessions:
            session.stop_grace()
        # Departures already under way are written, not cut short in the middle of their transaction.
        await settle(list(self._chores), DEPARTURES_SETTLE_S)
        reconnect = encode(m.Reconnect(after_ms=self._settings.reconnect_after_ms))
        seats: list[tuple[ParticipantId, str | None]] = []
        for session in self._sessions:
            if type(session.conn) is RemoteSocket:
                continue  # its socket is on another node, and stays there
            if session.durable:
                seats.append((session.participant_id, session.resume_hash))
            if session.conn is not None:
                session.conn.send(reconnect)
                session.conn.close_soon(CLOSE_RESTART, "server restart")
                session.conn = None
        try:
            await self._seats.participants_away(seats)  # before the rooms are given up: their next owner reads them
        except TeleconsultError:
            log.warning("could not mark seats away at shutdown (database unavailable)")
        if self._router is not None:  # its sockets reconnect anywhere; its rooms are given up for others to take
            await self._router.shutdown(reconnect)

    async def hand_over(self, consultation_id: str, holder: str | None) -> None:
        """Another node holds this room's lease now (it took the room over while this node could not renew): the
        room is forgotten here, and the endpoints of its peers attach to the new owner."""
        assert isinstance(self._rooms, RedisRooms) and self._router is not None
        room = self._rooms.drop(consultation_id)
        if room is None:
            return
        here: list[LocalSocket] = []
        for peer in room:
            session = self._sessions.get(peer.peer_id)
            if session is not None:
                if type(session.conn) is LocalSocket:
                    here.append(session.conn)
                await self._forget(session)
        if holder is not None:
            self._router.announce([p.peer_id for p in room], holder, here)

    # --- delivery ----------------------------------------------------------------------------------------------

    async def _send(self, peer: Peer, message: ServerMessage) -> None:
        self._sessions.deliver(peer, encode(message))

    async def _broadcast(self, peers: Iterable[Peer], message: ServerMessage) -> None:
        frame = encode(message)
        for peer in peers:
            self._sessions.deliver(peer, frame)

    def _lobby(self, room: Room) -> m.Lobby:
        return m.Lobby(
            waiting=[peer_info(p, with_ready=True, second_device=room.is_second_device(p)) for p in room.waiting()]
        )

    async def _send_lobby(self, room: Room) -> None:
        await self._broadcast(room.doctors(), self._lobby(room))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
