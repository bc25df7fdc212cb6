"""Which node holds which room: the interface, its one-node implementation and its cluster one.

A room lives on the node that owns it. ``LocalRooms`` owns every room a client of this node asks for, and
rebuilds a room from the seats still held in the database when this process has none (after a restart).
``RedisRooms`` (a cluster) owns a room while it holds the room's lease in Redis, and rebuilds it the same way when
it takes a room over; ``routing.py`` carries the frames of sockets on other nodes to the owner. ``app.py`` chooses
(as LiveKit chooses its local or Redis router once at start-up); the signaling service only sees the interface.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from teleconsult.bus import Leases
from teleconsult.errors import TeleconsultError
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


@dataclass(frozen=True, slots=True)
class Cluster:
    """What a node of a cluster needs: its own id (random at start) and the leases its rooms are held by."""

    node_id: str
    leases: Leases


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


#: How long a node's liveness lasts unless renewed: a dead node's rooms are taken over after at most this long.
LEASE_TTL_MS = 5000
#: Liveness is renewed this often (a third of its life: two renewals may fail before it lapses).
RENEW_EVERY_S = LEASE_TTL_MS / 3000


class NotOwner(Exception):
    """Another node holds the room's lease (``holder``; None when it could not be told)."""

    def __init__(self, holder: str | None):
        super().__init__(holder or "unknown")
        self.holder = holder


def lease_key(consultation_id: str) -> str:
    return f"room:{consultation_id}:owner"


class RedisRooms:
    """A cluster: a room is this node's while the room's key names it (``room:<cid>:owner``) and this node is alive
    (its liveness lease, renewed by ``renew``, one command however many rooms); the key is given up when the room
    empties or closes. A room this node claims is rebuilt from the seats held, as after a restart; a room a live
    node holds raises ``NotOwner``; a dead node's rooms may be claimed once its liveness has expired."""

    def __init__(self, capacity: Capacity, rebuild: Rebuild, leases: Leases, node_id: str, ttl_ms: int = LEASE_TTL_MS):
        self._capacity = capacity
        self._rebuild = rebuild
        self._leases = leases
        self.node_id = node_id
        self.ttl_ms = ttl_ms
        self._rooms: dict[str, Room] = {}
        self._building: dict[str, asyncio.Lock] = {}
        self._releases: set[asyncio.Task[None]] = set()
        #: This node's liveness has been set at least once (before its first claim).
        self._alive = False
        #: The node is stopping: it holds on to nothing new (a claim raises ``NotOwner``).
        self.stopping = False

    def get(self, consultation_id: str) -> Room | None:
        return self._rooms.get(consultation_id)

    async def claim(self, consultation_id: ConsultationId) -> Room:
        room = self._rooms.get(consultation_id)
        if room is not None:
            return room
        if self.stopping:
            raise NotOwner(None)
        lock = self._building.setdefault(consultation_id, asyncio.Lock())
        try:
            async with lock:
                room = self._rooms.get(consultation_id)
                if room is None:
                    if not self._alive:
                        await self._leases.keep_alive(self.node_id, self.ttl_ms)
                        self._alive = True
                    holder = await self._leases.claim(lease_key(consultation_id), self.node_id)
                    if holder != self.node_id:
                        raise NotOwner(holder)
                    room = Room(consultation_id, self._capacity)
                    await self._rebuild(room)
                    self._rooms[consultation_id] = room
        finally:
            self._building.pop(consultation_id, None)
        return room

    def release(self, consultation_id: str) -> Room | None:
        room = self._rooms.pop(consultation_id, None)
        if room is not None:
            task = asyncio.create_task(self._give_up(consultation_id))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)
        return room

    def drop(self, consultation_id: str) -> Room | None:
        """Forget a room whose lease another node has taken (nothing to give up)."""
        return self._rooms.pop(consultation_id, None)

    async def _give_up(self, consultation_id: str) -> None:
        with contextlib.suppress(TeleconsultError):  # Redis away: the lease expires by itself
            await self._leases.release(lease_key(consultation_id), self.node_id)

    async def holder(self, consultation_id: str) -> str | None:
        return await self._leases.holder(lease_key(consultation_id))

    async def renew(self) -> dict[str, str | None]:
        """Renew this node's liveness; the rooms another node holds now (with that node), which can only happen if
        the liveness had lapsed (this node stalled, or Redis lost its keys): then each room's key is read, and those
        that name nobody are claimed again."""
        if await self._leases.keep_alive(self.node_id, self.ttl_ms) or not self._rooms:
            self._alive = True
            return {}
        self._alive = True
        ids = list(self._rooms)
        holders = await self._leases.holders([lease_key(c) for c in ids])
        lost: dict[str, str | None] = {}
        for consultation_id, holder in zip(ids, holders, strict=True):
            if holder is None:
                holder = await self._leases.claim(lease_key(consultation_id), self.node_id)
            if holder != self.node_id:
                lost[consultation_id] = holder
        return lost

    async def release_all(self) -> None:
        """Shutting down: every lease given up now, so other nodes take the rooms over at once."""
        ids = list(self._rooms)
        self._rooms.clear()
        await asyncio.gather(*(self._give_up(c) for c in ids))
        await asyncio.gather(*self._releases, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._rooms)
