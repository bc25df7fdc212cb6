"""Sessions and their registry: each peer's place in a room, on this node, whether or not its socket is there.

A ``Session`` outlives its socket: when the socket drops without a goodbye it waits ``resume_grace_s`` for the
client to resume, keeping what is addressed to it, and the room sees nothing. The registry is the one table of
sessions. What the room sends a peer goes straight to its session (``deliver``), on the node that holds the room;
in a cluster, a session whose socket is on an endpoint holds a ``RemoteSocket`` (another node: the peer's bus
channel) or a ``LocalSocket`` (``routing.py``: this node, no bus at all).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from teleconsult.bus import Bus
from teleconsult.domain import Seat
from teleconsult.ids import ParticipantId, PeerId, hash_token
from teleconsult.rooms import Peer, Room


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
    seat: Seat
    conn: Connection | None
    away_buffer: int
    #: Frames addressed to the peer while it is away, oldest first (made when first needed).
    pending: deque[bytes] | None = None
    grace: asyncio.TimerHandle | None = None
    closed: bool = False
    #: A second device waiting on a seat another connection holds: the database still records that other one, so
    #: this session's resume token is kept here and written only if the doctor admits it (it is then durable).
    unsaved_resume: str | None = None
    #: The hash of the resume token the database records for this session's connection: its drop is written
    #: against it, so that a resume written first (maybe by another node) is not undone (``store.mark_away``).
    resume_hash: str | None = None

    @property
    def durable(self) -> bool:
        """The database records this session's seat (peer id, resume token, away time)."""
        return self.unsaved_resume is None

    @property
    def participant_id(self) -> ParticipantId:
        return self.seat.participant_id

    def holds(self, resume_token: str) -> None:
        """The database now records this resume token for the session's seat."""
        self.resume_hash = hash_token(resume_token)

    def deliver(self, frame: bytes) -> None:
        """To the socket, or kept in order while the client is away."""
        if self.conn is not None:
            self.conn.send(frame)
        elif not self.closed:
            if self.pending is None:
                self.pending = deque(maxlen=self.away_buffer)  # the oldest frames go first when it is full
            self.pending.append(frame)

    def take_pending(self) -> list[bytes]:
        """What arrived while the peer was away, in order; the buffer is emptied."""
        frames, self.pending = list(self.pending or ()), None
        return frames

    def stop_grace(self) -> None:
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None


#: A socket closed by the server: the peer left or the consultation ended; the node is stopping (reconnect, resume).
CLOSE_NORMAL = 1000
CLOSE_RESTART = 1012
#: The first byte of a message on a peer's channel that is for the endpoint holding its socket, not for the client.
CONTROL = b"\x00"


class RemoteSocket:
    """The owner's view of a socket held by an endpoint (``routing.py``) on another node: what is sent goes on the
    peer's channel, in order with everything else this node publishes there; a close is a control message that only
    that endpoint obeys."""

    __slots__ = ("_bus", "channel", "endpoint", "node")

    def __init__(self, bus: Bus, peer_id: str, endpoint: int, node: str):
        self._bus = bus
        self.channel = f"peer:{peer_id}"
        self.endpoint = endpoint
        self.node = node

    def send(self, frame: bytes) -> None:
        self._bus.post(self.channel, frame)

    def close_soon(self, code: int, reason: str) -> None:
        control = {"c": "close", "ep": self.endpoint, "node": self.node, "code": code, "reason": reason}
        self._bus.post(self.channel, CONTROL + json.dumps(control).encode())


class SessionRegistry:
    """This node's sessions, by peer id."""

    def __init__(self, away_buffer: int):
        self._away_buffer = away_buffer
        self._sessions: dict[PeerId, Session] = {}

    def open(self, peer: Peer, room: Room, seat: Seat, conn: Connection | None) -> Session:
        session = Session(peer, room, seat, conn, self._away_buffer, resume_hash=seat.resume_hash)
        self._sessions[peer.peer_id] = session
        return session

    def forget(self, session: Session) -> None:
        """The session is over: nothing more is kept or delivered for it."""
        session.closed = True
        session.pending = None
        session.stop_grace()
        if self._sessions.get(session.peer.peer_id) is session:
            del self._sessions[session.peer.peer_id]

    def deliver(self, peer: Peer, frame: bytes) -> None:
        """A frame for a peer of a room this node holds; nothing if the peer has no session any more."""
        session = self._sessions.get(peer.peer_id)
        if session is not None:
            session.deliver(frame)

    def get(self, peer_id: str) -> Session | None:
        return self._sessions.get(PeerId(peer_id))

    def peer_ids(self) -> set[str]:
        return set(self._sessions)

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))
