"""Which node holds which room: the interface, and its one-node implementation.

A room lives on the node that owns it. ``LocalRooms`` owns every room a client of this node asks for, and
rebuilds a room from the seats still held in the database when this process has none (after a restart). The
scale-out issue adds a second implementation over Redis (as LiveKit's local and Redis routers do), chosen once in
``app.py``; the signaling service only sees ``RoomOwnership``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from teleconsult.ids import ConsultationId
from teleconsult.rooms import Capacity, Room

#: Fills a room just made with the peers whose seats are still held (their sessions, their grace periods).
Rebuild = Callable[[Room], Awaitable[None]]


class RoomOwnership(Protocol):
    def get(self, consultation_id: str) -> Room | None:
        """The room if this node holds it."""

    async def claim(self, consultation_id: ConsultationId) -> Room:
        """The room, made (and rebuilt from the seats still held) if this node holds none."""

    def release(self, consultation_id: str) -> Room | None:
        """This node no longer holds the room (it emptied or closed); returns it if it did."""

    def __len__(self) -> int: ...


class LocalRooms:
    """One node: every room is this node's."""

    def __init__(self, capacity: Capacity, rebuild: Rebuild):
        self._capacity = capacity
        self._rebuild = rebuild
        self._rooms: dict[str, Room] = {}
        self._building: dict[str, asyncio.Lock] = {}

    def get(self, consultation_id: str) -> Room | None:
        return self._rooms.get(consultation_id)

    async def claim(self, consultation_id: ConsultationId) -> Room:
        room = self._rooms.get(consultation_id)
        if room is not None:
            return room
        lock = self._building.setdefault(consultation_id, asyncio.Lock())
        async with lock:
            room = self._rooms.get(consultation_id)
            if room is None:
                room = Room(consultation_id, self._capacity)
                await self._rebuild(room)
                self._rooms[consultation_id] = room
        self._building.pop(consultation_id, None)
        return room

    def release(self, consultation_id: str) -> Room | None:
        return self._rooms.pop(consultation_id, None)

    def __len__(self) -> int:
        return len(self._rooms)
