"""Room rules: who is in a consultation's room, who waits, who may send what. Pure code, no I/O.

A ``Room`` is a state machine over its peers. Every illegal call raises ``TeleconsultError`` with the code the
client receives, so the signaling service never decides permissions itself: it asks the room.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import ConsultationId, ParticipantId, PeerId


class Role(enum.StrEnum):
    DOCTOR = "doctor"
    PATIENT = "patient"
    NURSE = "nurse"
    GUEST = "guest"


class PeerState(enum.StrEnum):
    WAITING = "waiting"
    ADMITTED = "admitted"


ALL_ROLES = frozenset(Role)


@dataclass(frozen=True, slots=True)
class Rule:
    """Who may send a message type, and whether they must be admitted first."""

    roles: frozenset[Role]
    admitted_only: bool
    #: Allowed once the consultation has ended (only harmless frames).
    after_end: bool = False


#: The permission table: one row per client message type (a test fails if a type has no row).
RULES: Mapping[str, Rule] = {
    "hello": Rule(frozenset(), admitted_only=False),  # only before welcome; never inside a room
    "admit": Rule(frozenset({Role.DOCTOR}), admitted_only=True),
    "deny": Rule(frozenset({Role.DOCTOR}), admitted_only=True),
    "remove": Rule(frozenset({Role.DOCTOR}), admitted_only=True),
    "end": Rule(frozenset({Role.DOCTOR}), admitted_only=True),
    "offer": Rule(ALL_ROLES, admitted_only=True),
    "answer": Rule(ALL_ROLES, admitted_only=True),
    "candidate": Rule(ALL_ROLES, admitted_only=True),
    "chat": Rule(ALL_ROLES, admitted_only=True),
    "return-to-lobby": Rule(frozenset({Role.DOCTOR}), admitted_only=True),
    "ready": Rule(ALL_ROLES, admitted_only=False),
    "leave": Rule(ALL_ROLES, admitted_only=False, after_end=True),
    "ping": Rule(ALL_ROLES, admitted_only=False, after_end=True),
    "media": Rule(ALL_ROLES, admitted_only=True),
}


@dataclass(frozen=True, slots=True)
class Capacity:
    doctor: int = 1
    patient: int = 1
    nurse: int = 1
    guest: int = 0

    def seats(self, role: Role) -> int:
        return int(getattr(self, role.value))


@dataclass(slots=True)
class Peer:
    peer_id: PeerId
    role: Role
    name: str
    #: The durable seat this peer occupies: one live peer per seat (two while a second device waits).
    seat: ParticipantId
    state: PeerState
    #: What the participant's device checks reported (devices, permission, network), shown in the lobby.
    ready: dict[str, str | bool | int | float] | None = None

    @property
    def admitted(self) -> bool:
        return self.state is PeerState.ADMITTED


def polite(me: Peer, other: Peer) -> bool:
    """Perfect negotiation: is ``me`` the polite side toward ``other``? The doctor always is; between two others
    the smaller peer id is. Both sides compute the same answer with no shared state."""
    if me.role is Role.DOCTOR:
        return True
    if other.role is Role.DOCTOR:
        return False
    return me.peer_id < other.peer_id


@dataclass(frozen=True, slots=True)
class JoinResult:
    peer: Peer
    #: The older connection of the same seat, now out of the room: a doctor's second tab, or a device that was
    #: only waiting when a newer one of the same seat arrived.
    replaced: Peer | None


@dataclass(frozen=True, slots=True)
class Admission:
    peer: Peer
    #: The connection that held the seat until the doctor admitted this newer device, now out of the room.
    replaced: Peer | None


@dataclass(slots=True)
class Room:
    consultation_id: ConsultationId
    capacity: Capacity = field(default_factory=Capacity)
    ended: bool = False
    #: Video has flowed between the doctor and the patient (a teleconsultation is billed only by video).
    video_connected: bool = False
    _peers: dict[PeerId, Peer] = field(default_factory=dict)

    # --- queries -----------------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Peer]:
        return iter(list(self._peers.values()))

    def __len__(self) -> int:
        return len(self._peers)

    def get(self, peer_id: str) -> Peer | None:
        return self._peers.get(PeerId(peer_id))

    def admitted(self, *, exclude: PeerId | None = None) -> list[Peer]:
        return [p for p in self._peers.values() if p.admitted and p.peer_id != exclude]

    def waiting(self) -> list[Peer]:
        return [p for p in self._peers.values() if not p.admitted]

    def doctors(self) -> list[Peer]:
        return [p for p in self._peers.values() if p.role is Role.DOCTOR]

    def other_device(self, peer: Peer) -> Peer | None:
        """Another connection holding the same seat, if any."""
        return next((p for p in self._peers.values() if p.seat == peer.seat and p is not peer), None)

    def is_second_device(self, peer: Peer) -> bool:
        """A waiting connection whose seat another, older connection holds (shown so in the lobby)."""
        if peer.admitted:
            return False
        for other in self._peers.values():  # in the order they came
            if other is peer:
                return False
            if other.seat == peer.seat:
                return True
        return False

    def is_in_progress(self) -> bool:
        """Doctor and patient both admitted: the consultation has really started."""
        roles = {p.role for p in self._peers.values() if p.admitted}
        return Role.DOCTOR in roles and Role.PATIENT in roles

    # --- transitions -------------------------------------------------------------------------------------------

    def join(self, peer_id: PeerId, role: Role, name: str, seat: ParticipantId, *, pre_admitted: bool) -> JoinResult:
        """Seat a new connection (a ticket, never a resume).

        The doctor is always admitted, and a second tab of theirs replaces the first. Anyone else is admitted
        only if the doctor let their seat in beforehand (``pre_admitted``), and only when no other connection
        holds that seat: a new device on a held seat (the link forwarded, or opened again elsewhere) waits as a
        *second device* until the doctor admits it (which replaces the first) or denies it. One second device
        waits at a time; a newer one replaces it.
        """
        if self.ended:
            raise TeleconsultError(ErrorCode.ENDED)
        if peer_id in self._peers:
            raise TeleconsultError(ErrorCode.BAD_MESSAGE, "Already joined.")
        holders = [p for p in self._peers.values() if p.seat == seat]
        if role is Role.DOCTOR:
            replaced = holders[0] if holders else None
            admitted = True
        else:
            replaced = next((p for p in holders if self.is_second_device(p)), None)
            admitted = pre_admitted and not holders
        taken = {p.seat for p in self._peers.values() if p.role is role and p.seat != seat}
        if len(taken) >= self.capacity.seats(role):
            raise TeleconsultError(ErrorCode.ROOM_FULL)
        if replaced is not None:
            del self._peers[replaced.peer_id]
        peer = Peer(peer_id, role, name, seat, PeerState.ADMITTED if admitted else PeerState.WAITING)
        self._peers[peer_id] = peer
        return JoinResult(peer, replaced)

    def restore(self, peer: Peer) -> None:
        """Seat a peer known from the database (a room rebuilt after a restart): no capacity or replacement rules,
        they held their seat already."""
        if self.ended:
            raise TeleconsultError(ErrorCode.ENDED)
        self._peers[peer.peer_id] = peer

    def authorize(self, sender: Peer, message_type: str) -> None:
        """Raise unless ``sender`` may send ``message_type`` in the room's current state."""
        rule = RULES.get(message_type)
        if rule is None:
            raise TeleconsultError(ErrorCode.UNKNOWN_TYPE)
        if message_type == "hello":
            raise TeleconsultError(ErrorCode.FORBIDDEN, "Already joined.")
        if self.ended and not rule.after_end:
            raise TeleconsultError(ErrorCode.ENDED)
        if sender.role not in rule.roles:
            raise TeleconsultError(ErrorCode.FORBIDDEN, f"A {sender.role} cannot send {message_type}.")
        if rule.admitted_only and not sender.admitted:
            raise TeleconsultError(ErrorCode.FORBIDDEN, "Wait until the doctor admits you.")

    def video_report(self, reporter: Peer, source_id: str) -> bool:
        """``reporter`` receives video from ``source_id``: True the first time it shows video flowing between the
        doctor and the patient (what billing needs), False otherwise (already known, another pair, unknown peer)."""
        self.authorize(reporter, "media")
        source = self.get(source_id)
        if self.video_connected or source is None or not source.admitted:
            return False
        if {reporter.role, source.role} != {Role.DOCTOR, Role.PATIENT}:
            return False
        self.video_connected = True
        return True

    def admit(self, actor: Peer, target_id: str) -> Admission:
        """Let a waiting peer in; a second device takes the seat from the connection that held it."""
        self.authorize(actor, "admit")
        target = self._require(target_id)
        if target.admitted:
            raise TeleconsultError(ErrorCode.FORBIDDEN, "Already admitted.")
        replaced = self.other_device(target) if self.is_second_device(target) else None
        if replaced is not None:
            self._pop(replaced)
        target.state = PeerState.ADMITTED
        return Admission(target, replaced)

    def undo_admission(self, admission: Admission) -> None:
        """The admission could not be recorded: the peer waits again and the replaced one is back."""
        admission.peer.state = PeerState.WAITING
        if admission.replaced is not None:  # back in its place, before the newer device
            self._peers = {admission.replaced.peer_id: admission.replaced, **self._peers}

    def deny(self, actor: Peer, target_id: str) -> Peer:
        self.authorize(actor, "deny")
        target = self._require(target_id)
        if target.admitted:
            raise TeleconsultError(ErrorCode.FORBIDDEN, "Only a waiting participant can be denied.")
        return self._pop(target)

    def remove(self, actor: Peer, target_id: str) -> Peer:
        self.authorize(actor, "remove")
        target = self._require(target_id)
        if target.peer_id == actor.peer_id:
            raise TeleconsultError(ErrorCode.FORBIDDEN, "Use leave or end to go yourself.")
        return self._pop(target)

    def return_to_lobby(self, actor: Peer, target_id: str) -> Peer:
        """The doctor sends an admitted participant back to the waiting room."""
        self.authorize(actor, "return-to-lobby")
        target = self._require(target_id)
        if target.peer_id == actor.peer_id or target.role is Role.DOCTOR:
            raise TeleconsultError(ErrorCode.FORBIDDEN, "The doctor stays in the room.")
        if not target.admitted:
            raise TeleconsultError(ErrorCode.FORBIDDEN, "That participant is already waiting.")
        target.state = PeerState.WAITING
        return target

    def undo_return(self, target: Peer) -> None:
        """Sending ``target`` back to the waiting room could not be recorded: it stays in the room."""
        target.state = PeerState.ADMITTED

    def set_ready(self, peer: Peer, checks: dict[str, str | bool | int | float]) -> None:
        self.authorize(peer, "ready")
        peer.ready = checks

    def relay_target(self, sender: Peer, message_type: str, to: str) -> Peer:
        """The admitted peer a relayed frame (offer, answer, candidate) may go to."""
        self.authorize(sender, message_type)
        target = self._require(to)
        if target.peer_id == sender.peer_id:
            raise TeleconsultError(ErrorCode.FORBIDDEN, "Cannot send to yourself.")
        if not target.admitted:
            raise TeleconsultError(ErrorCode.FORBIDDEN, "That participant is not admitted.")
        return target

    def leave(self, peer_id: PeerId) -> Peer | None:
        peer = self._peers.get(peer_id)
        return self._pop(peer) if peer is not None else None

    def end(self, actor: Peer) -> list[Peer]:
        """``actor`` ends the consultation: the room closes; returns everyone who was in it."""
        self.authorize(actor, "end")
        return self.close()

    def close(self) -> list[Peer]:
        """The consultation is over (ended, cancelled): nobody joins any more; returns everyone who was in it."""
        self.ended = True
        everyone = list(self._peers.values())
        self._peers.clear()
        return everyone

    # --- helpers -----------------------------------------------------------------------------------------------

    def _require(self, peer_id: str) -> Peer:
        peer = self._peers.get(PeerId(peer_id))
        if peer is None:
            raise TeleconsultError(ErrorCode.NOT_FOUND, "No such participant in this consultation.")
        return peer

    def _pop(self, peer: Peer) -> Peer:
        del self._peers[peer.peer_id]
        return peer
