"""Room ownership on one node: a room is made once, rebuilt from the seats held, and released when it empties."""

from __future__ import annotations

import asyncio

from teleconsult.domain import Seat
from teleconsult.ids import ConsultationId, DoctorId, ParticipantId, PeerId
from teleconsult.rooms import Capacity, Peer, PeerState, Role, Room
from teleconsult.signaling.ownership import LocalRooms
from teleconsult.signaling.sessions import SessionRegistry


async def test_concurrent_claims_build_one_room_and_rebuild_it_once() -> None:
    rebuilt: list[Room] = []

    async def rebuild(room: Room) -> None:
        await asyncio.sleep(0.01)  # a database round trip: other claims arrive meanwhile
        rebuilt.append(room)

    rooms = LocalRooms(Capacity(), rebuild)
    claimed = await asyncio.gather(*(rooms.claim(ConsultationId("c_1")) for _ in range(10)))
    assert len({id(room) for room in claimed}) == 1 and len(rebuilt) == 1 and len(rooms) == 1
    assert rooms.get("c_1") is claimed[0]
    assert rooms.release("c_1") is claimed[0] and rooms.get("c_1") is None and len(rooms) == 0
    assert await rooms.claim(ConsultationId("c_1")) is not claimed[0]  # a released room is built afresh
    assert len(rebuilt) == 2


def test_the_registry_keeps_frames_for_a_session_away_and_forgets_it_cleanly() -> None:
    registry = SessionRegistry(away_buffer=2)
    room = Room(ConsultationId("c_1"))
    peer = Peer(PeerId("p_1"), Role.PATIENT, "Jeanne", ParticipantId("u_1"), PeerState.WAITING)
    seat = Seat(
        ParticipantId("u_1"), ConsultationId("c_1"), DoctorId("d_1"), "patient", "Jeanne", None, False, None, None
    )
    session = registry.open(peer, room, seat, None)
    for n in range(3):
        registry.deliver(peer, b"frame %d" % n)
    assert session.take_pending() == [b"frame 1", b"frame 2"]  # away: the newest kept, up to the buffer
    assert registry.get("p_1") is session and registry.peer_ids() == {"p_1"} and len(registry) == 1
    sent: list[bytes] = []
    session.conn = Sink(sent)
    registry.deliver(peer, b"live")
    assert sent == [b"live"] and session.take_pending() == []
    registry.forget(session)
    assert registry.get("p_1") is None and len(registry) == 0 and session.closed
    session.conn = None
    registry.deliver(peer, b"late")
    session.deliver(b"late")
    assert session.take_pending() == [] and sent == [b"live"]


class Sink:
    def __init__(self, sent: list[bytes]):
        self.sent = sent

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)

    def close_soon(self, code: int, reason: str) -> None:
        raise AssertionError("not closed here")
