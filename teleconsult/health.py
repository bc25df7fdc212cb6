"""Whether this node can serve: its database and bus answer, and its background loops run."""

from __future__ import annotations

import time
from dataclasses import dataclass

from teleconsult.background import BackgroundLoops
from teleconsult.bus import Bus
from teleconsult.store import Database


@dataclass(frozen=True, slots=True)
class Report:
    database: bool
    bus: bool
    loops: dict[str, bool]

    @property
    def healthy(self) -> bool:
        return self.database and self.bus and all(self.loops.values())


class HealthService:
    def __init__(self, db: Database, bus: Bus, chores: BackgroundLoops):
        self._db = db
        self._bus = bus
        self.chores = chores

    async def check(self) -> Report:
        return Report(database=await self._db.ping(), bus=await self._bus.ping(), loops=self.chores.running())

    async def bus_round_trip(self) -> float | None:
        """The health check's bus ping, timed: seconds to the answer, or None when the bus does not answer."""
        started = time.perf_counter()
        answered = await self._bus.ping()
        return time.perf_counter() - started if answered else None
