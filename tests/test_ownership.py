"""Room ownership on one node: a room is made once, rebuilt from the seats held, and released when it empties."""

from __future__ import annotations

import asyncio
from typing import Any

from teleconsult.domain import Seat
from teleconsult.ids import ConsultationId, DoctorId, ParticipantId, PeerId
from teleconsult.rooms import Capacity, Peer, PeerState, Role, Room
from teleconsult.signaling.ownership import LocalRooms
from teleconsult.signaling.sessions import SessionRegistry
from tests.test_bus import settled


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


async def test_the_registry_subscribes_a_session_and_forgets_it_cleanly(bus: Any) -> None:
    registry = SessionRegistry(bus, away_buffer=2)
    room = Room(ConsultationId("c_1"))
    peer = Peer(PeerId("p_1"), Role.PATIENT, "Jeanne", ParticipantId("u_1"), PeerState.WAITING)
    seat = Seat(
        ParticipantId("u_1"), ConsultationId("c_1"), DoctorId("d_1"), "patient", "Jeanne", None, False, None, None
    )
    session = await registry.open(peer, room, seat, None)
    for n in range(3):
        await bus.publish("peer:p_1", b"frame %d" % n)
    await settled(bus)
    assert session.take_pending() == [b"frame 1", b"frame 2"]  # away: the newest kept, up to the buffer
    assert registry.get("p_1") is session and registry.peer_ids() == {"p_1"} and len(registry) == 1
    await registry.forget(session)
    assert registry.get("p_1") is None and bus.channels() == 0 and session.closed
    await bus.publish("peer:p_1", b"late")
    await settled(bus)
    assert session.take_pending() == []
