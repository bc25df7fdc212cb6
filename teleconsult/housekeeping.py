"""Housekeeping: purge expired doctor sessions and spent tickets, periodically, off the request path."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Protocol

from teleconsult.background import BackgroundLoops
from teleconsult.clock import now as clock_now
from teleconsult.errors import TeleconsultError
from teleconsult.store import Database
from teleconsult.store import doctors as doctor_store
from teleconsult.store import invitations as ticket_store

log = logging.getLogger(__name__)

#: Spent or expired tickets are kept this long (useful when reading an incident), then deleted.
TICKET_RETENTION = timedelta(hours=1)


async def purge(database: Database) -> None:
    now = clock_now()
    async with database.transaction() as tx:
        await doctor_store.delete_expired_sessions(tx, now)
        await ticket_store.delete_stale_tickets(tx, now - TICKET_RETENTION)


async def run(database: Database, every_s: float, chores: BackgroundLoops) -> None:
    while not chores.stopping.is_set():
        try:
            await purge(database)
        except TeleconsultError:
            log.warning("housekeeping skipped: database unavailable")
        except Exception:  # never the end of the loop: said, and tried again next time
            log.exception("housekeeping failed; will retry")
        await chores.rest(every_s)


class Overdue(Protocol):
    async def close_overdue(self, grace: timedelta) -> int: ...


async def close_no_shows(signaling: Overdue, grace: timedelta, every_s: float, chores: BackgroundLoops) -> None:
    """Appointments the patient never came into are closed as no-shows ``grace`` after their time."""
    while not chores.stopping.is_set():
        try:
            closed = await signaling.close_overdue(grace)
            if closed:
                log.info("closed %d appointment(s) the patient never came into, as no-shows", closed)
        except TeleconsultError:
            log.warning("no-show round skipped: database unavailable")
        except Exception:  # never the end of the loop
            log.exception("no-show round failed; will retry")
        await chores.rest(every_s)
