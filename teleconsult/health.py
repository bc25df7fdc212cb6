"""Whether this node can serve: its database and bus answer, and its background loops run."""

from __future__ import annotations

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
